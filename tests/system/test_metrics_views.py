"""Metrics views end to end: a known dataset is posted through the gateway
(producer → Kafka → consumer → store), then every view is asked through gRPC
and through the REST shim. Expected values are computed here from the posted
records with the documented semantics (hour buckets, UTC days, semantic
versions); both answers must equal them and each other. Zones, devices and
alert codes carry a per-run suffix and every request filters by zone, so data
of other tests cannot interfere. The dashboard is driven in headless Chromium
against the same data."""
import collections
import math
import os
import pathlib
import shutil
import tempfile
import time
import uuid

import grpc
import pytest
import requests

from conftest import wait_until

HOUR = 3_600_000
DAY = 86_400_000
SEVERITIES = ["critical", "warning", "info"]


def hour_start(ms):
    return ms - ms % HOUR


def utc_day(ms):
    return time.strftime("%Y-%m-%d", time.gmtime(ms // 1000))


def semver_key(v):
    """Precedence key for the versions used here (MAJOR.MINOR.PATCH[-pre])."""
    core, _, pre = v.partition("-")
    nums = tuple(int(x) for x in core.split("."))
    pre_key = (1,) if not pre else (0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p)
                                             for p in pre.split(".")))
    return nums, pre_key


# ---- the dataset -------------------------------------------------------------


class Dataset:
    """Readings and alerts of one run, and the expected views derived from them."""

    def __init__(self, now_ms):
        sfx = uuid.uuid4().hex[:8]
        self.suffix = sfx
        self.zone_a = f"mx-{sfx}-north"
        self.zone_b = f"mx-{sfx}-south"
        self.codes = [f"MX_{sfx.upper()}_OVERHEAT", f"MX_{sfx.upper()}_VIBRATION",
                      f"MX_{sfx.upper()}_DOOR"]
        dev = lambda n: f"mx-{sfx}-d{n}"  # noqa: E731
        self.readings, self.alerts = [], []
        a, b = self.zone_a, self.zone_b
        # (device, zone, firmware, ms before now, type, value)
        rows = [
            (dev(1), a, "1.2.0", 2 * HOUR, "temperature", 20.5),
            (dev(1), a, "1.2.0", 3 * HOUR, "temperature", 19.75),
            (dev(1), a, "1.2.0", 30 * HOUR, "temperature", 10.0),       # outside 24 h, inside 48 h
            (dev(1), a, "1.2.0", 4 * DAY, "temperature", 15.25),         # earlier day of the trend
            (dev(2), a, "1.10.0", 2 * HOUR + 60_000, "temperature", 22.25),
            (dev(2), a, "1.10.0", 3 * HOUR, "temperature", 23.0),
            (dev(2), a, "1.10.0", 3 * HOUR, "pressure", 1013.25),        # not a temperature
            (dev(2), a, "1.10.0", 6 * DAY, "pressure", 1001.5),
            (dev(2), a, "1.10.0", 8 * DAY, "temperature", 5.0),          # before the trend's 7 days
            (dev(3), a, "1.10.0", 30_000, "temperature", 21.5),          # fresh: not silent
            (dev(4), b, "1.9.3", 1 * HOUR, "temperature", 30.0),
            (dev(4), b, "1.9.3", 1 * HOUR + 5_000, "temperature", 31.5),
            (dev(5), b, "2.0.0-rc.1", 5 * HOUR, "temperature", -5.25),
            (dev(5), b, "2.0.0-rc.1", 2 * DAY, "humidity", 40.0),
        ]
        for device, zone, fw, ago, typ, value in rows:
            unit = {"temperature": "C", "pressure": "hPa", "humidity": "%"}[typ]
            self.readings.append({"device_id": device, "zone": zone, "type": typ, "value": value,
                                  "unit": unit, "ts": now_ms - ago, "firmware": fw})
        c1, c2, c3 = self.codes
        # (device, zone, firmware, ms before now, severity, code, times)
        alert_rows = [
            (dev(1), a, "1.2.0", 2 * HOUR, "critical", c1, 3),
            (dev(2), a, "1.10.0", 3 * HOUR, "warning", c2, 2),
            (dev(2), a, "1.10.0", 26 * HOUR, "info", c3, 1),     # outside 24 h, inside 168 h
            (dev(1), a, "1.2.0", 8 * DAY, "warning", c1, 4),     # outside 168 h (and the trend)
            (dev(4), b, "1.9.3", 1 * HOUR, "warning", c1, 1),
        ]
        for device, zone, fw, ago, sev, code, times in alert_rows:
            for i in range(times):
                self.alerts.append({"device_id": device, "zone": zone, "severity": sev,
                                    "code": code, "message": f"test alert {i}",
                                    "ts": now_ms - ago - i * 1000, "firmware": fw})

    # expected views (params as the service applies them) ------------------------

    def records(self, zone):
        return [r for r in self.readings + self.alerts if r["zone"] == zone]

    def temperature(self, zone, from_ms, to_ms):
        rows = [r for r in self.readings if r["zone"] == zone and r["type"] == "temperature"
                and from_ms <= hour_start(r["ts"]) < to_ms]
        if not rows:
            return []
        vals = [r["value"] for r in rows]
        return [{"zone": zone, "avg_c": sum(vals) / len(vals), "min_c": min(vals),
                 "max_c": max(vals), "count": len(vals)}]

    def alert_breakdown(self, zone, from_ms, to_ms, top):
        rows = [r for r in self.alerts if r["zone"] == zone and from_ms <= hour_start(r["ts"]) < to_ms]
        sev = collections.Counter(r["severity"] for r in rows)
        codes = collections.Counter(r["code"] for r in rows)
        ranked = sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        return {"by_severity": [{"severity": s, "count": sev.get(s, 0)} for s in SEVERITIES],
                "top_codes": [{"code": c, "count": n} for c, n in ranked], "total": len(rows)}

    def trend(self, zone, days):
        out = []
        for day in days:
            readings = [r for r in self.readings if r["zone"] == zone and utc_day(r["ts"]) == day]
            alerts = [r for r in self.alerts if r["zone"] == zone and utc_day(r["ts"]) == day]
            devices = {r["device_id"] for r in readings + alerts}
            out.append({"day": day, "readings": len(readings), "alerts": len(alerts),
                        "active_devices": len(devices)})
        return out

    def devices(self, zone):
        """device → (last_seen_ms, firmware of its newest record), as the consumer keeps them."""
        newest = {}
        for r in self.readings + self.alerts:
            cur = newest.get(r["device_id"])
            if cur is None or r["ts"] >= cur["ts"]:
                newest[r["device_id"]] = r
        return {d: (r["ts"], r["firmware"]) for d, r in newest.items() if r["zone"] == zone}

    def firmware(self, zone):
        devs = self.devices(zone)
        by_fw = collections.defaultdict(list)
        for last, fw in devs.values():
            by_fw[fw].append(last)
        order = sorted(by_fw, key=semver_key, reverse=True)
        newest = order[0]
        versions = [{"firmware": fw, "devices": len(by_fw[fw]), "share": len(by_fw[fw]) / len(devs),
                     "last_seen_ms": max(by_fw[fw]), "outdated": fw != newest} for fw in order]
        return {"versions": versions, "newest": newest, "total_devices": len(devs),
                "outdated_devices": sum(v["devices"] for v in versions if v["outdated"])}

    def health(self, zone, threshold_ms, limit):
        devs = self.devices(zone)
        silent = sorted((last, d) for d, (last, _) in devs.items() if last < threshold_ms)
        return {"silent": [{"device_id": d, "zone": zone, "last_seen_ms": last}
                           for last, d in silent[:limit]],
                "total_devices": len(devs), "silent_devices": len(silent)}


def post_all(stack, path, items):
    key = next(iter(stack.keys.values()))
    for _ in range(50):
        r = requests.post(stack.gateway_url + path, json=items,
                          headers={"apikey": key, "Content-Type": "application/json"}, timeout=60)
        if r.status_code != 429:
            break
        time.sleep(1.0)
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == len(items)


@pytest.fixture(scope="module")
def dataset(stack):
    ds = Dataset(int(time.time() * 1000))
    post_all(stack, "/v1/telemetry", ds.readings)
    post_all(stack, "/v1/alerts", ds.alerts)

    def stored():
        # everything is stored once the trend counts all records of the last 7
        # days and the devices of both zones are known
        total = 0
        for zone in (ds.zone_a, ds.zone_b):
            days = rest(stack, "/v1/metrics/activity/trend", zone=zone)["days"]
            got = sum(d["readings"] + d["alerts"] for d in days)
            want = sum(d["readings"] + d["alerts"] for d in ds.trend(zone, [d["day"] for d in days]))
            health = rest(stack, "/v1/metrics/devices/health", zone=zone)
            if got != want or health["total_devices"] != len(ds.devices(zone)):
                return False
            total += got
        # the 8-day-old records come last in their device's partition
        month = rest(stack, "/v1/metrics/alerts/breakdown", zone=ds.zone_a, window_hours=720)
        if month["total"] != sum(1 for r in ds.alerts if r["zone"] == ds.zone_a):
            return False
        return total

    assert wait_until(stored, timeout_s=180, interval_s=1.0), "the dataset never reached the store"
    return ds


# ---- clients -----------------------------------------------------------------


def rest(stack, path, **params):
    r = requests.get(stack.metrics_url + path, params=params, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


@pytest.fixture(scope="module")
def metrics_stub(stack, iot_pb2):
    channel = grpc.insecure_channel(stack.metrics_grpc)
    yield iot_pb2.metrics_pb2_grpc.MetricsServiceStub(channel)
    channel.close()


def message_to_dict(msg):
    """Field-for-field dict of a protobuf message: proto names, defaults included."""
    out = {}
    for f in msg.DESCRIPTOR.fields:
        v = getattr(msg, f.name)
        conv = message_to_dict if f.message_type is not None else (lambda x: x)
        repeated = getattr(f, "is_repeated", None)  # protobuf >= 6; label before
        if repeated is None:
            repeated = f.label == f.LABEL_REPEATED
        if repeated:
            out[f.name] = [conv(x) for x in v]
        else:
            out[f.name] = conv(v)
    return out


def strip_time_twins(obj):
    """REST adds <x> (RFC 3339) next to every <x>_ms; checks and removes them."""
    if isinstance(obj, list):
        return [strip_time_twins(x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for k, v in obj.items():
        if k + "_ms" in obj:
            ms = obj[k + "_ms"]
            if ms == 0:
                assert v is None
            else:
                assert v == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + \
                    f".{ms % 1000:03d}Z", (k, v, ms)
            continue
        out[k] = strip_time_twins(v)
    return out


def both(stack, stub, iot_pb2, rpc, request_cls, path, **params):
    """(REST dict, gRPC dict) for the same request, asked within one hour bucket."""
    for _ in range(3):
        before = hour_start(int(time.time() * 1000))
        j = strip_time_twins(rest(stack, path, **params))
        m = message_to_dict(getattr(stub, rpc)(getattr(iot_pb2.metrics_pb2, request_cls)(**params),
                                                timeout=30))
        if hour_start(int(time.time() * 1000)) == before:
            return j, m
    raise AssertionError("could not ask both protocols within one hour")


def approx_equal(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)
    return a == b


def assert_window(resp, hours):
    now = int(time.time() * 1000)
    assert resp["window_hours"] == hours
    assert resp["to_ms"] % HOUR == 0 and resp["to_ms"] - HOUR <= now < resp["to_ms"] + HOUR
    assert resp["to_ms"] - resp["from_ms"] == (hours + 1) * HOUR


# ---- views ---------------------------------------------------------------------


@pytest.mark.parametrize("hours", [24, 48])
def test_temperature_by_zone(stack, metrics_stub, iot_pb2, dataset, hours):
    for zone in (dataset.zone_a, dataset.zone_b):
        j, m = both(stack, metrics_stub, iot_pb2, "TemperatureByZone", "ZoneTemperatureRequest",
                    "/v1/metrics/temperature/zones", window_hours=hours, zone=zone)
        assert j == m
        assert_window(m, hours)
        want = dataset.temperature(zone, m["from_ms"], m["to_ms"])
        assert len(m["zones"]) == len(want) == 1
        got, exp = m["zones"][0], want[0]
        assert got["zone"] == zone and got["count"] == exp["count"]
        for k in ("avg_c", "min_c", "max_c"):
            assert approx_equal(got[k], exp[k]), (k, got, exp)
    # concrete numbers, independent of the model above
    j = rest(stack, "/v1/metrics/temperature/zones", zone=dataset.zone_a, window_hours=hours)
    north = j["zones"][0]
    if hours == 24:
        assert (north["count"], north["min_c"], north["max_c"]) == (5, 19.75, 23.0)
        assert north["avg_c"] == (20.5 + 19.75 + 22.25 + 23.0 + 21.5) / 5
    else:
        assert (north["count"], north["min_c"], north["max_c"]) == (6, 10.0, 23.0)


def test_temperature_default_window_is_24h(stack, metrics_stub, iot_pb2, dataset):
    j, m = both(stack, metrics_stub, iot_pb2, "TemperatureByZone", "ZoneTemperatureRequest",
                "/v1/metrics/temperature/zones", zone=dataset.zone_b)
    assert j == m
    assert_window(m, 24)
    assert [(z["zone"], z["count"], z["min_c"], z["max_c"]) for z in m["zones"]] == \
        [(dataset.zone_b, 3, -5.25, 31.5)]
    assert m["zones"][0]["avg_c"] == (30.0 + 31.5 - 5.25) / 3


@pytest.mark.parametrize("hours,top", [(24, 10), (168, 10), (168, 2), (720, 1)])
def test_alert_breakdown(stack, metrics_stub, iot_pb2, dataset, hours, top):
    zone = dataset.zone_a
    j, m = both(stack, metrics_stub, iot_pb2, "AlertBreakdown", "AlertBreakdownRequest",
                "/v1/metrics/alerts/breakdown", window_hours=hours, top=top, zone=zone)
    assert j == m
    assert_window(m, hours)
    want = dataset.alert_breakdown(zone, m["from_ms"], m["to_ms"], top)
    assert m["by_severity"] == want["by_severity"]
    assert m["top_codes"] == want["top_codes"]
    assert m["total"] == want["total"]
    c1, c2, c3 = dataset.codes
    expected_total = {24: 5, 168: 6, 720: 10}[hours]
    assert m["total"] == expected_total
    if hours == 168 and top == 10:
        assert m["top_codes"] == [{"code": c1, "count": 3}, {"code": c2, "count": 2},
                                  {"code": c3, "count": 1}]
        assert m["by_severity"] == [{"severity": "critical", "count": 3},
                                    {"severity": "warning", "count": 2},
                                    {"severity": "info", "count": 1}]


def test_alert_breakdown_defaults(stack, metrics_stub, iot_pb2, dataset):
    j, m = both(stack, metrics_stub, iot_pb2, "AlertBreakdown", "AlertBreakdownRequest",
                "/v1/metrics/alerts/breakdown", zone=dataset.zone_b)
    assert j == m
    assert_window(m, 168)
    assert m["total"] == 1
    assert m["top_codes"] == [{"code": dataset.codes[0], "count": 1}]


def seven_days_ending(ms):
    today = ms - ms % DAY
    return [utc_day(today - (6 - i) * DAY) for i in range(7)]


def test_activity_trend(stack, metrics_stub, iot_pb2, dataset):
    for zone in (dataset.zone_a, dataset.zone_b):
        before = int(time.time() * 1000)
        j, m = both(stack, metrics_stub, iot_pb2, "ActivityTrend", "ActivityTrendRequest",
                    "/v1/metrics/activity/trend", zone=zone)
        after = int(time.time() * 1000)
        assert j == m
        days = [d["day"] for d in m["days"]]
        assert days in (seven_days_ending(before), seven_days_ending(after))
        assert m["days"] == dataset.trend(zone, days)
    # totals over the 7 days for the north zone: everything but the 8-day-old records
    j = rest(stack, "/v1/metrics/activity/trend", zone=dataset.zone_a)
    assert sum(d["readings"] for d in j["days"]) == 9
    assert sum(d["alerts"] for d in j["days"]) == 6
    # d1, d2, d3 are active on the day of their newest records (today, or
    # yesterday in the first hours after midnight UTC)
    want = max(d["active_devices"] for d in dataset.trend(dataset.zone_a, [d["day"] for d in j["days"]]))
    assert want in (2, 3)
    assert max(d["active_devices"] for d in j["days"]) == want


def test_firmware_status(stack, metrics_stub, iot_pb2, dataset):
    for zone in (dataset.zone_a, dataset.zone_b):
        j, m = both(stack, metrics_stub, iot_pb2, "FirmwareStatus", "FirmwareStatusRequest",
                    "/v1/metrics/firmware/status", zone=zone)
        assert j == m
        want = dataset.firmware(zone)
        assert m["newest"] == want["newest"]
        assert m["total_devices"] == want["total_devices"]
        assert m["outdated_devices"] == want["outdated_devices"]
        assert len(m["versions"]) == len(want["versions"])
        for got, exp in zip(m["versions"], want["versions"]):
            assert {k: v for k, v in got.items() if k != "share"} == \
                {k: v for k, v in exp.items() if k != "share"}
            assert approx_equal(got["share"], exp["share"])
    north = rest(stack, "/v1/metrics/firmware/status", zone=dataset.zone_a)
    # semantic order: 1.10.0 is newer than 1.2.0 (a string sort would say otherwise)
    assert [(v["firmware"], v["devices"], v["outdated"]) for v in north["versions"]] == \
        [("1.10.0", 2, False), ("1.2.0", 1, True)]
    assert north["versions"][0]["share"] == 2 / 3
    south = rest(stack, "/v1/metrics/firmware/status", zone=dataset.zone_b)
    assert south["newest"] == "2.0.0-rc.1" and south["outdated_devices"] == 1


def test_device_health(stack, metrics_stub, iot_pb2, dataset):
    for zone, limit in ((dataset.zone_a, 100), (dataset.zone_a, 1), (dataset.zone_b, 100)):
        j, m = both(stack, metrics_stub, iot_pb2, "DeviceHealth", "DeviceHealthRequest",
                    "/v1/metrics/devices/health", silent_minutes=10, limit=limit, zone=zone)
        for resp in (j, m):
            assert resp["threshold_ms"] == resp["as_of_ms"] - 10 * 60_000
            for s in resp["silent"]:
                assert s["silent_seconds"] == (resp["as_of_ms"] - s["last_seen_ms"]) // 1000
        # the two answers differ only in their evaluation instant
        varying = ("as_of_ms", "threshold_ms")
        strip = lambda r: {**{k: v for k, v in r.items() if k not in varying},  # noqa: E731
                           "silent": [{k: v for k, v in s.items() if k != "silent_seconds"}
                                      for s in r["silent"]]}
        assert strip(j) == strip(m)
        want = dataset.health(zone, m["threshold_ms"], limit)
        assert strip(m) == want
    north = rest(stack, "/v1/metrics/devices/health", zone=dataset.zone_a)
    d = lambda n: f"mx-{dataset.suffix}-d{n}"  # noqa: E731
    # longest silence first: d2 (2 h 1 min) before d1 (2 h); d3 is fresh
    assert [s["device_id"] for s in north["silent"]] == [d(2), d(1)]
    assert north["total_devices"] == 3 and north["silent_devices"] == 2
    # a threshold longer than every silence lists nobody
    calm = rest(stack, "/v1/metrics/devices/health", zone=dataset.zone_a, silent_minutes=43200)
    assert calm["silent"] == [] and calm["silent_devices"] == 0 and calm["total_devices"] == 3


def test_unfiltered_views_include_the_dataset(stack, dataset):
    # an unfiltered answer computed before the dataset was stored may be served
    # while its successor is computed (at most a few cache intervals old)
    def zones():
        got = {z["zone"] for z in rest(stack, "/v1/metrics/temperature/zones")["zones"]}
        return got if {dataset.zone_a, dataset.zone_b} <= got else None

    def codes():
        got = {c["code"] for c in
               rest(stack, "/v1/metrics/alerts/breakdown", top=100)["top_codes"]}
        return got if dataset.codes[0] in got else None

    assert {dataset.zone_a, dataset.zone_b} <= (wait_until(zones, 60, 0.5) or set())
    assert dataset.codes[0] in (wait_until(codes, 60, 0.5) or set())
    fw = rest(stack, "/v1/metrics/firmware/status")
    assert fw["total_devices"] >= 5
    assert abs(sum(v["share"] for v in fw["versions"]) - 1.0) < 1e-9


def test_views_are_counted_in_prometheus_metrics(stack, dataset):
    text = requests.get(stack.metrics_url + "/metrics", timeout=10).text
    for view in ("temperature", "alerts", "activity", "firmware", "health"):
        for proto in ("rest", "grpc"):
            line = f'plantwatch_metrics_requests_total{{view="{view}",protocol="{proto}",outcome="ok"}}'
            assert line in text, line
    assert 'plantwatch_metrics_view_duration_seconds_bucket{view="temperature",protocol="grpc"' in text


# ---- dashboard -------------------------------------------------------------------


def chromium_paths():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return browser, driver


def test_dashboard_in_headless_chromium(stack, dataset):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver = chromium_paths()
    assert browser and driver, "chromium and chromedriver are required (Debian chromium chromium-driver)"
    profile = tempfile.mkdtemp(prefix="pw-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1200",
                 "--hide-scrollbars"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    panels = ["panel-temperature", "panel-alerts", "panel-activity", "panel-firmware", "panel-health"]
    try:
        drv.get(f"{stack.metrics_url}/?zone={dataset.zone_a}")
        assert drv.title.startswith("plantwatch")

        def all_ok(d):
            states = {p: d.find_element(By.ID, p).get_attribute("data-state") for p in panels}
            return states if all(s == "ok" for s in states.values()) else False

        WebDriverWait(drv, 60, poll_frequency=0.25).until(all_ok)
        text = {p: drv.find_element(By.ID, p).text for p in panels}
        assert dataset.zone_a[:17] in text["panel-temperature"]
        assert "21.4 °C" in text["panel-temperature"]  # (20.5+19.75+22.25+23+21.5)/5 = 21.4
        assert dataset.codes[0] in text["panel-alerts"]
        assert "Readings" in text["panel-activity"] and "Active devices" in text["panel-activity"]
        assert "1.10.0" in text["panel-firmware"] and "outdated" in text["panel-firmware"]
        assert f"mx-{dataset.suffix}-d1" in text["panel-health"]
        assert "2 of 3 devices silent" in text["panel-health"]
        for p in panels:  # every panel drew something
            n = len(drv.find_elements(By.CSS_SELECTOR, f"#{p} svg, #{p} table"))
            assert n > 0, p
        out = pathlib.Path(os.environ.get("PW_STATE", stack.state)) / "artifacts"
        out.mkdir(parents=True, exist_ok=True)
        assert drv.save_screenshot(str(out / "dashboard.png"))
        assert (out / "dashboard.png").stat().st_size > 10_000
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)
