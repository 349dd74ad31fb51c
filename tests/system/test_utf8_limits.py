"""Text at the documented limits, in characters of every UTF-8 width (Latin-1
accents, CJK, 4-byte emoji). Readings and alerts whose zone, device id, type,
unit, code, firmware and message are exactly at their limit are accepted (202
over REST, OK over gRPC), stored byte for byte after the documented
normalization (ids trimmed and ASCII lower-cased, the sensor's original in
device_id_orig / zone_orig / type_orig; units and raw_unit kept), and shown
identically by the REST views, the gRPC views and the JSON the dashboard
draws from (and by the dashboard itself, in headless Chromium). One character
more is a 400 (INVALID_ARGUMENT) naming the field and its limit."""
import json
import time
import uuid

import grpc
import pytest
import requests

from conftest import find_ids, wait_until
from test_metrics_views import chromium_paths, message_to_dict, strip_time_twins

LIMITS = {"device_id": 128, "zone": 64, "type": 32, "unit": 16, "code": 64, "firmware": 32,
          "message": 1024}
ASCII_WS = " \t\n\r\v\f"
MINUTE = 60_000


def fill(prefix, pad, n):
    """prefix padded with pad to exactly n characters (code points)."""
    s = prefix + pad * (n - len(prefix))
    assert len(s) == n, (prefix, pad, n)
    return s


def normalized_id(s):
    """The consumer's id normalization: ASCII whitespace trimmed, A-Z lower-cased,
    every other character (é, Ü, 炉, 🔥) kept as is."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s.strip(ASCII_WS))


class Family:
    """One device in one zone whose texts are all at their limits, padded with
    characters of one UTF-8 width."""

    def __init__(self, name, pad, sfx, now_ms, zone, device, code, message, device_pad=None,
                 spaces=0):
        self.name, self.pad = name, pad
        self.zone = fill(zone.format(sfx=sfx), pad, LIMITS["zone"])
        # device ids may have ASCII spaces around them (counted, then trimmed)
        core = fill(device.format(sfx=sfx), device_pad or pad, LIMITS["device_id"] - 2 * spaces)
        self.device = " " * spaces + core + " " * spaces
        self.type = fill("Feuchte-", pad, LIMITS["type"])
        self.unit = fill("g/m³", pad, LIMITS["unit"])
        self.code = fill(code.format(sfx=sfx), pad, LIMITS["code"])
        self.firmware = fill(f"{sfx}-", pad, LIMITS["firmware"])
        self.message = fill(message.format(sfx=sfx), pad, LIMITS["message"])
        # silent for the health view (and for the dashboard's 10 minutes)
        self.ts_temperature = now_ms - 16 * MINUTE
        self.ts_other = now_ms - 16 * MINUTE + 1000
        self.ts_alert = now_ms - 15 * MINUTE

    @property
    def stored_zone(self):
        return normalized_id(self.zone)

    @property
    def stored_device(self):
        return normalized_id(self.device)

    def readings(self):
        return [
            {"device_id": self.device, "zone": self.zone, "type": "temperature", "value": 21.5,
             "unit": "°C", "ts": self.ts_temperature, "firmware": self.firmware},
            {"device_id": self.device, "zone": self.zone, "type": self.type, "value": 7.25,
             "unit": self.unit, "ts": self.ts_other, "firmware": self.firmware},
        ]

    def alert(self):
        return {"device_id": self.device, "zone": self.zone, "severity": "warning",
                "code": self.code, "message": self.message, "ts": self.ts_alert,
                "firmware": self.firmware}


def families(now_ms):
    sfx = uuid.uuid4().hex[:8]
    return [
        # 2-byte: Latin-1 accents; upper-case non-ASCII letters stay as they are
        Family("latin1", "é", sfx, now_ms, "Zone-ÄUSSERE-Öfen-{sfx}-", "Gerät-Ü-{sfx}-",
               "ÜBERDRUCK-{sfx}-", "Überdruck in Kammer Süd ({sfx}).\n\tDétails: "),
        # 3-byte: 'Halle-Süd-' padded with 炉 to exactly 64 characters
        Family("cjk", "炉", sfx, now_ms, "Halle-Süd-{sfx}-", "溶鉱炉-{sfx}-", "過熱-{sfx}-",
               "炉の温度が高すぎます ({sfx})。\n"),
        # 4-byte: emoji; the device id has ASCII spaces around it (trimmed)
        Family("emoji", "🔥", sfx, now_ms, "Zone-{sfx}-", "Sensor-{sfx}-", "HOT-{sfx}-",
               "Too hot 🌡 ({sfx})\r\n", device_pad="😀", spaces=1),
    ]


# ---- clients -----------------------------------------------------------------


def gateway_key(stack):
    return sorted(stack.keys.values())[0]


def post(stack, path, body):
    """POSTs through the gateway, waiting out 429s; the final response."""
    for _ in range(100):
        r = requests.post(f"{stack.gateway_url}{path}", json=body,
                          headers={"apikey": gateway_key(stack)}, timeout=60)
        if r.status_code != 429:
            return r
        time.sleep(0.5)
    return r


def grpc_publish(stack, iot_pb2, request):
    """Publish through the gateway's gRPC listener, waiting out rate limiting:
    (response, None) or (None, RpcError)."""
    with grpc.insecure_channel(stack.gateway_grpc) as channel:
        stub = iot_pb2.ingest_pb2_grpc.IngestServiceStub(channel)
        for _ in range(100):
            try:
                return stub.Publish(request, metadata=[("apikey", gateway_key(stack))],
                                    timeout=60), None
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    return None, e
            time.sleep(0.5)
    raise AssertionError("still rate limited")


def pb_reading(iot_pb2, r):
    return iot_pb2.telemetry_pb2.Reading(device_id=r["device_id"], zone=r["zone"], type=r["type"],
                                         value=r["value"], unit=r["unit"], ts_ms=r["ts"],
                                         firmware=r["firmware"])


def pb_alert(iot_pb2, a):
    tp = iot_pb2.telemetry_pb2
    return tp.Alert(device_id=a["device_id"], zone=a["zone"], severity=tp.SEVERITY_WARNING,
                    code=a["code"], message=a["message"], ts_ms=a["ts"], firmware=a["firmware"])


def rest_json(stack, path, **params):
    """A REST view's answer, decoded from its bytes as strict UTF-8."""
    r = requests.get(stack.metrics_url + path, params=params, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    return json.loads(r.content.decode("utf-8", errors="strict"))


# ---- the accepted dataset ------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(stack, iot_pb2, mongo_db):
    now_ms = int(time.time() * 1000)
    fams = families(now_ms)
    tokens = {}
    for f in fams:
        if f.name == "emoji":  # through gRPC
            req = iot_pb2.ingest_pb2.PublishRequest(
                readings=[pb_reading(iot_pb2, r) for r in f.readings()],
                alerts=[pb_alert(iot_pb2, f.alert())])
            resp, err = grpc_publish(stack, iot_pb2, req)
            assert err is None, err
            assert resp.accepted == 3
            ids = list(resp.ids)  # readings first
            tokens[f.name] = {"readings": ids[:2], "alert": ids[2]}
            continue
        r = post(stack, "/v1/telemetry", f.readings())
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 2
        a = post(stack, "/v1/alerts", f.alert())
        assert a.status_code == 202, a.text
        tokens[f.name] = {"readings": r.json()["ids"], "alert": a.json()["ids"][0]}

    def stored():
        for f in fams:
            t = tokens[f.name]
            if len(find_ids(mongo_db.telemetry, t["readings"])) != 2 or \
                    not find_ids(mongo_db.alerts, [t["alert"]]):
                return False
        return True

    assert wait_until(stored, 180, 1.0), "the records at the limits were not all stored"
    return fams, tokens


def expect_orig(doc, field, sent, stored):
    if sent == stored:
        assert field not in doc, (field, doc.get(field))
    else:
        assert doc[field] == sent
        assert doc[field].encode() == sent.encode()


@pytest.mark.parametrize("name", ["latin1", "cjk", "emoji"])
def test_stored_byte_for_byte_after_normalization(mongo_db, dataset, name):
    fams, tokens = dataset
    f = next(x for x in fams if x.name == name)
    t = tokens[name]
    temp, other = find_ids(mongo_db.telemetry, t["readings"])
    alert = mongo_db.alerts.find_one({"_id": t["alert"]})
    z, d = f.stored_zone, f.stored_device
    assert len(f.zone) == LIMITS["zone"] and len(f.device) == LIMITS["device_id"]
    assert len(z) == LIMITS["zone"]
    for doc in (temp, other, alert):
        assert doc["device"] == d and doc["device"].encode() == d.encode()
        assert doc["zone"] == z and doc["zone"].encode() == z.encode()
        assert doc["firmware"] == f.firmware and len(doc["firmware"]) == LIMITS["firmware"]
        expect_orig(doc, "device_id_orig", f.device, d)
        expect_orig(doc, "zone_orig", f.zone, z)
    # ids are only ASCII-lower-cased: the non-ASCII letters are what was sent
    if name == "latin1":
        assert z.startswith("zone-Äussere-Öfen-") and d.startswith("gerät-Ü-")
    if name == "cjk":
        assert f.zone.startswith("Halle-Süd-") and z.startswith("halle-süd-")
        assert z.endswith("炉" * 40)
    if name == "emoji":
        assert d == f.device.strip(" ").replace("Sensor", "sensor")
        assert len(d) == LIMITS["device_id"] - 2 and d.endswith("😀" * 100)
    # the temperature reading: unit converted (°C is already Celsius), raw kept
    assert temp["type"] == "temperature" and "type_orig" not in temp
    assert temp["value"] == 21.5 and temp["unit"] == "C"
    assert temp["raw_value"] == 21.5 and temp["raw_unit"] == "°C"
    assert temp["meta"] == {"device": d, "zone": z, "type": "temperature"}
    # the other reading: type lower-cased (original kept), unit kept whole
    assert other["type"] == normalized_id(f.type) and other["type"] != f.type
    assert other["type_orig"] == f.type and len(other["type_orig"]) == LIMITS["type"]
    assert other["unit"] == f.unit and other["raw_unit"] == f.unit
    assert len(other["unit"]) == LIMITS["unit"] and other["unit"].encode() == f.unit.encode()
    assert other["value"] == 7.25 and other["raw_value"] == 7.25
    # the alert: code and message are not normalized, stored whole
    assert alert["severity"] == "warning"
    assert alert["code"] == f.code and alert["code"].encode() == f.code.encode()
    assert len(alert["code"]) == LIMITS["code"]
    assert alert["message"] == f.message and alert["message"].encode() == f.message.encode()
    assert len(alert["message"]) == LIMITS["message"]
    assert alert["source"] == ("grpc" if name == "emoji" else "rest")


def expected_views(f):
    z, d = f.stored_zone, f.stored_device
    return {
        "temperature": [{"zone": z, "avg_c": 21.5, "min_c": 21.5, "max_c": 21.5, "count": 1}],
        "codes": [{"code": f.code, "count": 1}],
        "firmware": [{"firmware": f.firmware, "devices": 1, "share": 1.0,
                      "last_seen_ms": f.ts_alert, "outdated": False}],
        "silent": [{"device_id": d, "zone": z, "last_seen_ms": f.ts_alert}],
    }


def rest_views(stack, f):
    z = f.stored_zone
    temp = rest_json(stack, "/v1/metrics/temperature/zones", zone=z, window_hours=24)
    alerts = rest_json(stack, "/v1/metrics/alerts/breakdown", zone=z, window_hours=24, top=10)
    fw = rest_json(stack, "/v1/metrics/firmware/status", zone=z)
    health = rest_json(stack, "/v1/metrics/devices/health", zone=z, silent_minutes=1)
    return temp, alerts, fw, health


def grpc_views(stub, iot_pb2, f):
    m = iot_pb2.metrics_pb2
    z = f.stored_zone
    return (stub.TemperatureByZone(m.ZoneTemperatureRequest(zone=z, window_hours=24), timeout=30),
            stub.AlertBreakdown(m.AlertBreakdownRequest(zone=z, window_hours=24, top=10),
                                timeout=30),
            stub.FirmwareStatus(m.FirmwareStatusRequest(zone=z), timeout=30),
            stub.DeviceHealth(m.DeviceHealthRequest(zone=z, silent_minutes=1), timeout=30))


def names_of(temp, alerts, fw, health):
    """What the names-bearing parts of the four views say, as dicts."""
    return {
        "temperature": temp["zones"],
        "codes": alerts["top_codes"],
        "firmware": fw["versions"],
        "silent": [{k: v for k, v in s.items() if k != "silent_seconds"} for s in health["silent"]],
    }


@pytest.fixture(scope="module")
def metrics_stub(stack, iot_pb2):
    channel = grpc.insecure_channel(stack.metrics_grpc)
    yield iot_pb2.metrics_pb2_grpc.MetricsServiceStub(channel)
    channel.close()


@pytest.mark.parametrize("name", ["latin1", "cjk", "emoji"])
def test_rest_and_grpc_views_show_the_names_whole(stack, metrics_stub, iot_pb2, dataset, name):
    fams, _ = dataset
    f = next(x for x in fams if x.name == name)
    want = expected_views(f)

    def rest_names():
        got = names_of(*[strip_time_twins(v) for v in rest_views(stack, f)])
        return got if got == want else None

    got = wait_until(rest_names, 90, 1.0)
    assert got == want, (names_of(*[strip_time_twins(v) for v in rest_views(stack, f)]), want)
    grpc_got = names_of(*[message_to_dict(v) for v in grpc_views(metrics_stub, iot_pb2, f)])
    assert grpc_got == want
    # byte for byte: the names in the answers are the stored ones, whole
    assert got["temperature"][0]["zone"].encode() == f.stored_zone.encode()
    assert got["silent"][0]["device_id"].encode() == f.stored_device.encode()
    assert got["codes"][0]["code"].encode() == f.code.encode()
    assert got["firmware"][0]["firmware"].encode() == f.firmware.encode()
    fw = rest_json(stack, "/v1/metrics/firmware/status", zone=f.stored_zone)
    assert fw["newest"] == f.firmware and fw["total_devices"] == 1 and fw["outdated_devices"] == 0
    trend = rest_json(stack, "/v1/metrics/activity/trend", zone=f.stored_zone)
    assert sum(d["readings"] for d in trend["days"]) == 2
    assert sum(d["alerts"] for d in trend["days"]) == 1
    assert max(d["active_devices"] for d in trend["days"]) == 1
    grpc_trend = message_to_dict(metrics_stub.ActivityTrend(
        iot_pb2.metrics_pb2.ActivityTrendRequest(zone=f.stored_zone), timeout=30))
    assert grpc_trend == strip_time_twins(trend)


def test_unfiltered_views_list_the_names_whole(stack, dataset):
    fams, _ = dataset
    zones = {f.stored_zone for f in fams}

    def listed():
        got = {z["zone"] for z in rest_json(stack, "/v1/metrics/temperature/zones")["zones"]}
        return zones <= got

    assert wait_until(listed, 90, 1.0), "the zones at their limit are not listed whole"


# The dashboard polls these exact URLs (src/metrics/www/app.js, VIEWS) with ?zone=.
DASHBOARD_QUERIES = [
    ("/v1/metrics/temperature/zones", {"window_hours": 24}),
    ("/v1/metrics/alerts/breakdown", {"window_hours": 168, "top": 6}),
    ("/v1/metrics/activity/trend", {}),
    ("/v1/metrics/firmware/status", {}),
    ("/v1/metrics/devices/health", {"silent_minutes": 10, "limit": 100}),
]


@pytest.mark.parametrize("name", ["latin1", "cjk", "emoji"])
def test_dashboard_json_carries_the_names_whole(stack, dataset, name):
    fams, _ = dataset
    f = next(x for x in fams if x.name == name)
    z = f.stored_zone

    def answers():
        out = [rest_json(stack, path, zone=z, **q) for path, q in DASHBOARD_QUERIES]
        temp, alerts, trend, fw, health = out
        ok = [zz["zone"] for zz in temp["zones"]] == [z] and \
            [c["code"] for c in alerts["top_codes"]] == [f.code] and \
            sum(d["readings"] + d["alerts"] for d in trend["days"]) == 3 and \
            [v["firmware"] for v in fw["versions"]] == [f.firmware] and \
            [(s["device_id"], s["zone"]) for s in health["silent"]] == [(f.stored_device, z)]
        return out if ok else None

    assert wait_until(answers, 90, 1.0), "the dashboard's JSON does not carry the names whole"


def test_dashboard_in_headless_chromium_shows_the_names_whole(stack, dataset):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    import shutil
    import tempfile

    fams, _ = dataset
    browser, driver = chromium_paths()
    assert browser and driver, "chromium and chromedriver are required (Debian chromium chromium-driver)"
    profile = tempfile.mkdtemp(prefix="pw-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1400,1200"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    panels = ["panel-temperature", "panel-alerts", "panel-activity", "panel-firmware",
              "panel-health"]
    try:
        for f in fams:
            z = f.stored_zone
            drv.get(stack.metrics_url + "/?" + requests.compat.urlencode({"zone": z}))

            def all_ok(d):
                states = [d.find_element(By.ID, p).get_attribute("data-state") for p in panels]
                return all(s == "ok" for s in states)

            WebDriverWait(drv, 90, poll_frequency=0.25).until(all_ok)
            # tables show device, zone and firmware whole
            health = drv.find_elements(By.CSS_SELECTOR, "#panel-health tbody tr td")
            assert [c.get_attribute("textContent") for c in health[:2]] == [f.stored_device, z]
            fw = drv.find_element(By.CSS_SELECTOR, "#panel-firmware tbody tr td")
            assert fw.get_attribute("textContent") == f.firmware
            # chart labels are shortened on screen by characters, never mid-character,
            # and carry the whole name as their tooltip
            label = drv.find_element(By.CSS_SELECTOR, "#panel-temperature svg text title")
            assert label.get_attribute("textContent") == z
            shown = drv.execute_script("return document.querySelector("
                                       "'#panel-temperature svg text:not(.muted)').firstChild.data")
            assert shown == z[:17] + "…"
            code = drv.find_element(By.CSS_SELECTOR, "#panel-alerts svg text title")
            assert code.get_attribute("textContent") == f.code
            shown = drv.execute_script("return document.querySelector("
                                       "'#panel-alerts svg text:not(.muted)').firstChild.data")
            assert shown == f.code[:47] + "…"
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


# ---- one character over the limit ------------------------------------------------


def over_limit_cases(now_ms):
    sfx = uuid.uuid4().hex[:8]
    base_r = {"device_id": f"over-{sfx}", "zone": f"over-{sfx}", "type": "humidity",
              "value": 1.0, "unit": "%", "ts": now_ms, "firmware": "1.0.0"}
    base_a = {"device_id": f"over-{sfx}", "zone": f"over-{sfx}", "severity": "info",
              "code": "C", "message": "m", "ts": now_ms, "firmware": "1.0.0"}
    cases = []
    for pad in ("é", "炉", "🔥"):
        for field in ("device_id", "zone", "type", "unit", "firmware"):
            cases.append(("/v1/telemetry", "readings", base_r, field, pad))
        for field in ("device_id", "zone", "code", "message", "firmware"):
            cases.append(("/v1/alerts", "alerts", base_a, field, pad))
    return cases


def test_one_character_over_the_limit_is_refused_naming_the_field(stack):
    now_ms = int(time.time() * 1000)
    for path, _, base, field, pad in over_limit_cases(now_ms):
        n = LIMITS[field]
        for count, status in ((n, 202), (n + 1, 400)):
            body = dict(base, **{field: fill("x", pad, count)})
            r = post(stack, path, body)
            assert r.status_code == status, (field, pad, count, r.text)
            if status == 202:
                continue
            err = r.json()["error"]
            assert err["code"] == "validation_failed"
            assert err["details"] == [{"field": field,
                                       "message": f"must be at most {n} characters"}]
            assert f"{field}: must be at most {n} characters" in err["message"]


def test_one_character_over_the_limit_is_refused_over_grpc(stack, iot_pb2):
    now_ms = int(time.time() * 1000)
    for _, kind, base, field, pad in over_limit_cases(now_ms):
        n = LIMITS[field]
        body = dict(base, **{field: fill("x", pad, n + 1)})
        if kind == "readings":
            req = iot_pb2.ingest_pb2.PublishRequest(readings=[pb_reading(iot_pb2, body)])
        else:
            req = iot_pb2.ingest_pb2.PublishRequest(alerts=[pb_alert(iot_pb2, body)])
        resp, err = grpc_publish(stack, iot_pb2, req)
        assert resp is None, (field, pad)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"{kind}[0].{field}: must be at most {n} characters" in err.details(), \
            err.details()
