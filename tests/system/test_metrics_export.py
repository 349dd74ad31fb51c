"""The streamed export of raw readings and alerts (GET /v1/export/readings,
/v1/export/alerts) and ./plantwatch export, against the running stack.

A known dataset is written straight into the store in the consumer's raw
layout (2,000 readings and 200 alerts over 3 hours, two devices and two zones
with non-ASCII names, values with many decimals, a message with a comma, a
quote and a newline), plus readings sent through the gateway and stored by
the consumers. Every export must parse (Python's csv / json) into exactly the
stored rows; filters and the window's edges are exact; bad parameters are a
400 before any row; a 100,000-row export keeps the service's RSS within
32 MiB of where it started; the export tool writes the same bytes as curl."""
import csv
import datetime
import io
import json
import random
import subprocess
import threading
import time
import uuid

import pytest
import requests

from conftest import post_accepted, wait_until

HOUR = 3_600_000
TAG = uuid.uuid4().hex[:6]
DEVICES = [f"öfen-{TAG}", f"presse-ß-{TAG}"]
ZONES = [f"halle-ä-{TAG}", f"zone-東-{TAG}"]
MESSAGE = 'overheat, "fan" stuck\nsecond line'


def rfc3339(ms):
    t = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def to_dt(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)


def base_hour():
    now = int(time.time() * 1000)
    return now - now % HOUR - 4 * HOUR


def reading_doc(ts, device, zone, rtype, value, i):
    hour = ts - ts % HOUR
    unit = "C" if rtype == "temperature" else "%"
    return {
        "_id": str(uuid.uuid4()), "ts": to_dt(ts), "day": to_dt(ts).strftime("%Y-%m-%d"),
        "hour": to_dt(hour), "meta": {"device": device, "zone": zone, "type": rtype},
        "device": device, "zone": zone, "type": rtype, "value": value, "unit": unit,
        "raw_value": value * 1.8 + 32 if rtype == "temperature" else value,
        "raw_unit": "F" if rtype == "temperature" else "%", "firmware": f"2.{i % 3}.0",
        "received": to_dt(ts + 250), "consumer": "test", "source": "rest",
        "origin": f"sensor-telemetry:0:{i}",
    }


def alert_doc(ts, device, zone, i):
    return {
        "_id": str(uuid.uuid4()), "ts": to_dt(ts), "day": to_dt(ts).strftime("%Y-%m-%d"),
        "hour": to_dt(ts - ts % HOUR), "device": device, "zone": zone,
        "severity": ["info", "warning", "critical"][i % 3], "code": f"E{i % 7}",
        "message": MESSAGE if i % 10 == 0 else f"alert {i}, ok", "firmware": "1.0.0",
        "received": to_dt(ts + 100), "consumer": "test", "source": "grpc",
        "origin": f"sensor-alerts:0:{i}",
    }


@pytest.fixture(scope="module")
def dataset(stack, mongo_db):
    rng = random.Random(7)
    base = base_hour()
    readings, alerts = [], []
    for i in range(2000):
        ts = base + rng.randrange(3 * HOUR)
        if i == 0:
            ts = base + HOUR  # exactly on an hour edge
        readings.append(reading_doc(ts, DEVICES[i % 2], ZONES[(i // 2) % 2],
                                    ["temperature", "humidity"][(i // 4) % 2],
                                    rng.uniform(-40, 120) / 7.0, i))
    for i in range(200):
        alerts.append(alert_doc(base + rng.randrange(3 * HOUR), DEVICES[i % 2], ZONES[i % 2], i))
    mongo_db.telemetry.insert_many(readings, ordered=False)
    mongo_db.alerts.insert_many(alerts, ordered=False)
    yield {"base": base, "readings": readings, "alerts": alerts}
    for d in DEVICES:
        mongo_db.telemetry.delete_many({"device": d})
        mongo_db.alerts.delete_many({"device": d})


def ms(dt):
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return int(dt.timestamp() * 1000)


def reading_row(d):
    return {"ts": rfc3339(ms(d["ts"])), "device_id": d["device"], "zone": d["zone"],
            "type": d["type"], "value": d["value"], "unit": d["unit"], "raw_value": d["raw_value"],
            "raw_unit": d["raw_unit"], "firmware": d["firmware"], "token": d["_id"],
            "received": rfc3339(ms(d["received"]))}


def alert_row(d):
    return {"ts": rfc3339(ms(d["ts"])), "device_id": d["device"], "zone": d["zone"],
            "severity": d["severity"], "code": d["code"], "message": d["message"],
            "firmware": d["firmware"], "token": d["_id"], "received": rfc3339(ms(d["received"]))}


def expected(docs, row, **want):
    lo, hi = want.pop("window")
    out = [d for d in docs if lo <= ms(d["ts"]) < hi and all(d[k] == v for k, v in want.items())]
    out.sort(key=lambda d: (ms(d["ts"]), d["_id"]))
    return [row(d) for d in out]


def export(stack, kind, **params):
    return requests.get(f"{stack.metrics_url}/v1/export/{kind}", params=params, timeout=120)


def parse_csv(text, numeric=("value", "raw_value")):
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    for r in rows:
        for k in numeric:
            if k in r:
                r[k] = float(r[k])
    return rows


def window(base, lo_h=0, hi_h=3):
    return base + lo_h * HOUR, base + hi_h * HOUR


def test_readings_csv_is_exactly_the_stored_rows(stack, dataset):
    lo, hi = window(dataset["base"])
    for zone in ZONES:
        r = export(stack, "readings", zone=zone, **{"from": lo, "to": hi})
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert r.headers.get("Transfer-Encoding") == "chunked"
        disp = r.headers["Content-Disposition"]
        assert disp.startswith('attachment; filename="plantwatch-readings-halle') or \
            disp.startswith('attachment; filename="plantwatch-readings-zone')
        assert "filename*=UTF-8''" in disp and disp.isascii()
        text = r.content.decode("utf-8")
        assert text.startswith("ts,device_id,zone,type,value,unit,raw_value,raw_unit,firmware,"
                               "token,received\r\n")
        assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
        want = expected(dataset["readings"], reading_row, zone=zone, window=(lo, hi))
        assert len(want) == 1000
        assert parse_csv(text) == want


def test_readings_ndjson_by_device_and_type(stack, dataset):
    lo, hi = window(dataset["base"])
    r = export(stack, "readings", format="ndjson", device=" " + DEVICES[1].replace("presse", "PRESSE") + " ", type="Humidity",
               **{"from": rfc3339(lo), "to": rfc3339(hi)})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/x-ndjson"
    lines = r.content.decode("utf-8").split("\n")
    assert lines[-1] == ""
    got = [json.loads(x) for x in lines[:-1]]
    want = expected(dataset["readings"], reading_row, device=DEVICES[1], type="humidity",
                    window=(lo, hi))
    assert len(want) == 500 and got == want
    assert DEVICES[1].encode() in r.content  # UTF-8 as is, not \u escapes


def test_window_edges_from_inclusive_to_exclusive(stack, dataset):
    edge = dataset["base"] + HOUR
    doc = dataset["readings"][0]
    assert ms(doc["ts"]) == edge
    before = export(stack, "readings", device=doc["device"], **{"from": edge - HOUR, "to": edge})
    after = export(stack, "readings", device=doc["device"], **{"from": edge, "to": edge + HOUR})
    tokens_before = {r["token"] for r in parse_csv(before.text)}
    rows_after = parse_csv(after.text)
    assert doc["_id"] not in tokens_before and rows_after[0]["token"] == doc["_id"]
    for lo, hi, rows in [(edge - HOUR, edge, parse_csv(before.text)), (edge, edge + HOUR, rows_after)]:
        assert rows == expected(dataset["readings"], reading_row, device=doc["device"],
                                window=(lo, hi))
    # an offset and a window inside one hour
    lo, hi = edge + 600_000, edge + 1_800_000
    local = to_dt(lo).astimezone(datetime.timezone(datetime.timedelta(hours=2))).isoformat()
    r = export(stack, "readings", zone=ZONES[0], **{"from": local, "to": hi})
    assert parse_csv(r.text) == expected(dataset["readings"], reading_row, zone=ZONES[0],
                                         window=(lo, hi))


def test_alerts_csv_and_ndjson_with_severity(stack, dataset):
    lo, hi = window(dataset["base"])
    r = export(stack, "alerts", device=DEVICES[0], **{"from": lo, "to": hi})
    assert r.status_code == 200
    text = r.content.decode("utf-8")
    assert text.startswith("ts,device_id,zone,severity,code,message,firmware,token,received\r\n")
    want = expected(dataset["alerts"], alert_row, device=DEVICES[0], window=(lo, hi))
    assert len(want) == 100 and parse_csv(text, numeric=()) == want
    assert any(w["message"] == MESSAGE for w in want)
    assert '"overheat, ""fan"" stuck\nsecond line"' in text
    r = export(stack, "alerts", format="ndjson", zone=ZONES[1], severity="critical",
               **{"from": lo, "to": hi})
    got = [json.loads(x) for x in r.text.splitlines()]
    want = expected(dataset["alerts"], alert_row, zone=ZONES[1], severity="critical",
                    window=(lo, hi))
    assert len(want) == 33 and got == want


def test_readings_stored_by_the_consumers(stack, mongo_db):
    device = f"export-gw-{TAG}"
    now = int(time.time() * 1000)
    body = [{"device_id": device.upper(), "zone": "Export-Zone", "type": "temperature",
             "value": 70 + i / 3, "unit": "F", "ts": now - 60_000 + i * 1000, "firmware": "3.0.1"}
            for i in range(5)]
    tokens = post_accepted(stack, "/v1/telemetry", body)
    assert wait_until(lambda: mongo_db.telemetry.count_documents({"device": device}) == 5)
    stored = sorted(mongo_db.telemetry.find({"device": device}), key=lambda d: (d["ts"], d["_id"]))
    r = export(stack, "readings", device=device, **{"from": now - 120_000, "to": now + 60_000})
    rows = parse_csv(r.text)
    assert rows == [reading_row(d) for d in stored]
    assert sorted(x["token"] for x in rows) == sorted(tokens)
    assert {x["unit"] for x in rows} == {"C"} and {x["raw_unit"] for x in rows} == {"F"}
    assert rows[0]["zone"] == "export-zone"


BAD = [
    ("readings", "format=xml", "format", "must be csv or ndjson"),
    ("readings", "from=yesterday", "from", "RFC 3339"),
    ("readings", "to=2026-12-01T10:00:00", "to", "RFC 3339"),
    ("readings", "from=2026-12-01T10:00:00Z&to=2026-12-01T10:00:00Z", "from", "must be before to"),
    ("readings", "from=1000&to=999", "from", "must be before to"),
    ("readings", "from=0&to=2678400001", "to", "at most 31 days"),
    ("readings", "severity=info", "severity", "unknown parameter"),
    ("alerts", "type=temperature", "type", "unknown parameter"),
    ("alerts", "severity=fatal", "severity", "info, warning or critical"),
    ("readings", "zone=a&zone=b", "zone", "given more than once"),
    ("readings", "zone=" + "z" * 65, "zone", "at most 64 characters"),
    ("readings", "device=a%0Ab", "device", "control characters"),
    ("readings", "device=%FF", "device", "valid UTF-8"),
    ("alerts", "limit=10", "limit", "unknown parameter"),
    ("readings", "to", "to", "requires a value"),
]


@pytest.mark.parametrize("kind,query,param,reason", BAD)
def test_bad_parameters_are_400_before_any_row(stack, kind, query, param, reason):
    r = requests.get(f"{stack.metrics_url}/v1/export/{kind}?{query}", timeout=10)
    assert r.status_code == 400, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert "Content-Disposition" not in r.headers
    err = r.json()["error"]
    assert err["code"] == "invalid_parameter"
    assert err["message"].startswith("invalid parameter: ") and reason in err["message"]
    assert [d["param"] for d in err["details"]] == [param]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture(scope="module")
def big(stack, mongo_db):
    device = f"bulk-{TAG}"
    hours = 10  # 10,000 rows per hour: each hour's sorted find stays small
    now = int(time.time() * 1000)
    base = now - now % HOUR - (hours + 2) * HOUR
    n = 100_000
    batch = []
    for i in range(n):
        batch.append(reading_doc(base + (i * hours * HOUR) // n, device, f"bulk-zone-{TAG}",
                                 "temperature", 20 + (i % 1000) / 1000, i))
        if len(batch) == 10_000:
            mongo_db.telemetry.insert_many(batch, ordered=False)
            batch = []
    yield {"device": device, "base": base, "n": n, "hours": hours}
    for h in range(hours):  # FerretDB deletes at most 65,535 documents per command
        mongo_db.telemetry.delete_many({"hour": to_dt(base + h * HOUR), "device": device})


def test_export_of_100k_rows_keeps_memory_bounded(stack, big):
    pid = stack.pid("metrics")
    start = rss_kb(pid)
    peak = [start]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kb(pid))
            time.sleep(0.05)

    t = threading.Thread(target=sample)
    t.start()
    lo, hi = big["base"], big["base"] + big["hours"] * HOUR
    rows = 0
    try:
        with requests.get(f"{stack.metrics_url}/v1/export/readings", stream=True, timeout=120,
                          params={"device": big["device"], "from": lo, "to": hi}) as r:
            assert r.status_code == 200
            tail = b""
            for chunk in r.iter_content(1 << 16):
                rows += chunk.count(b"\n")
                tail = (tail + chunk)[-200:]
    finally:
        stop.set()
        t.join()
    assert rows == big["n"] + 1  # and the header
    assert (peak[0] - start) < 32 * 1024, f"RSS grew {peak[0] - start} KiB"


def test_third_concurrent_export_is_busy(stack, big):
    url = f"{stack.metrics_url}/v1/export/readings"
    params = {"device": big["device"], "from": big["base"], "to": big["base"] + big["hours"] * HOUR}
    held = [requests.get(url, params=params, stream=True, timeout=120) for _ in range(2)]
    try:
        assert [h.status_code for h in held] == [200, 200]
        r = requests.get(url, params=params, timeout=30)
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "5"
        assert r.json()["error"]["message"].startswith("busy: all 2 exports are running")
    finally:
        for h in held:
            h.close()
    # the slots come back once the streams end
    assert wait_until(lambda: export(stack, "alerts", device="nobody").status_code == 200, 60)


def gateway_exports(stack):
    key = sorted(stack.read_keys.values())[0]
    r = requests.get(f"{stack.gateway_url}/v1/export/alerts?device=nobody",
                     headers={"apikey": key}, timeout=30)
    return r.status_code == 200


def test_plantwatch_export_writes_the_same_bytes_as_curl(stack, dataset, tmp_path):
    lo, hi = window(dataset["base"])
    base_url = stack.gateway_url if gateway_exports(stack) else stack.metrics_url
    key = sorted(stack.read_keys.values())[0]
    for kind, extra in [("readings", ["--zone", ZONES[1]]),
                        ("alerts", ["--device", DEVICES[0], "--format", "ndjson"])]:
        out = tmp_path / f"{kind}.out"
        p = subprocess.run([str(stack.root / "plantwatch"), "export", kind, *extra, "--from",
                            str(lo), "--to", rfc3339(hi), "-o", str(out)],
                           env={**__import__("os").environ, "PW_METRICS_URL": base_url},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        assert p.returncode == 0, p.stderr
        assert b"rows" in p.stderr
        query = {"readings": f"zone={requests.utils.quote(ZONES[1])}&format=csv",
                 "alerts": f"device={requests.utils.quote(DEVICES[0])}&format=ndjson"}[kind]
        url = f"{base_url}/v1/export/{kind}?{query}&from={lo}&to={hi}"
        c = subprocess.run(["curl", "-sS", "--fail", "-H", f"apikey: {key}", url],
                           stdout=subprocess.PIPE, timeout=120, check=True)
        assert out.read_bytes() == c.stdout and len(c.stdout) > 10_000
    bad = subprocess.run([str(stack.root / "plantwatch"), "export", "alerts", "--from", "x"],
                         env={**__import__("os").environ, "PW_METRICS_URL": base_url},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert bad.returncode == 1 and b"HTTP 400" in bad.stderr and bad.stdout == b""
