"""History and alert pages of the metrics service, end to end.

A run posts, through the gateway, two devices of a fresh zone (named per run,
with non-ASCII characters and capitals the consumer normalizes): device A one
reading per second for 10 minutes, device B one every 2 s, timestamps set
here, minute aligned, a few minutes in the past; and alerts of device A. Then:
raw pages (limit 250) give every point once and in order; the zone's raw
history is the union of its devices'; alert pages are newest first, each
alert once; REST and gRPC (direct and through the gateway) answer the same;
bucketed answers over the consumer's minute series are exact (count 60 per
minute, avg, min, max, first/last ts); bad parameters of every endpoint give
400 with the error shape and INVALID_ARGUMENT. A read-side test stores minute
series documents of the contract itself (pymongo) for keys of its own and
checks the exact buckets for several steps."""
import time
import urllib.parse
import uuid
import zlib

import grpc
import pytest
import requests

from conftest import wait_until

MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000
SEP = "\x1f"


def q(s):
    return urllib.parse.quote(s, safe="")


def value_a(i):
    return 20.0 + (i % 60) * 0.25


def value_b(i):
    return 50.0 - (i % 30) * 0.5


class Run:
    def __init__(self):
        sfx = uuid.uuid4().hex[:8]
        self.zone_sent = f"Halle-Süd-{sfx.upper()}"
        self.zone = self.zone_sent.lower()  # only ASCII letters change
        self.dev_a_sent = f"Presse-Ä-{sfx}"
        self.dev_a = f"presse-Ä-{sfx}"
        self.dev_b = f"walze-ø-{sfx}"
        now = int(time.time() * 1000)
        self.t0 = (now // MIN) * MIN - 14 * MIN  # 10 minutes ending 4 minutes ago
        self.a = [(self.t0 + i * 1000, value_a(i)) for i in range(600)]
        self.b = [(self.t0 + i * 2000, value_b(i)) for i in range(300)]
        self.alerts = [(self.t0 + k * 37_000, f"H_{sfx.upper()}_{k}") for k in range(7)]
        self.alerts.append((self.alerts[3][0], f"H_{sfx.upper()}_TWIN"))  # a tie on ts


def post(stack, path, body):
    key = next(iter(stack.keys.values()))
    for _ in range(60):
        r = requests.post(stack.gateway_url + path, json=body, headers={"apikey": key}, timeout=60)
        if r.status_code != 429:
            break
        time.sleep(1.0)
    assert r.status_code == 202, r.text
    return r.json()["ids"]


def rest(stack, path, base=None, key=None, **params):
    headers = {"apikey": key} if key else {}
    r = requests.get((base or stack.metrics_url) + path, params=params, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def run(stack):
    ds = Run()
    readings = [{"device_id": ds.dev_a_sent, "zone": ds.zone_sent, "type": "temperature",
                 "value": v, "unit": "C", "ts": ts, "firmware": "1.0.0"} for ts, v in ds.a]
    readings += [{"device_id": ds.dev_b, "zone": ds.zone_sent, "type": "temperature",
                  "value": v, "unit": "C", "ts": ts, "firmware": "1.0.0"} for ts, v in ds.b]
    ds.tokens = {}
    for i in range(0, len(readings), 450):
        batch = readings[i:i + 450]
        for r, tok in zip(batch, post(stack, "/v1/telemetry", batch)):
            ds.tokens[(r["device_id"], r["ts"])] = tok
    alerts = [{"device_id": ds.dev_a_sent, "zone": ds.zone_sent, "severity": "warning",
               "code": code, "message": f"message {code}", "ts": ts, "firmware": "1.0.0"}
              for ts, code in ds.alerts]
    ds.alert_tokens = dict(zip([c for _, c in ds.alerts], post(stack, "/v1/alerts", alerts)))
    frm, to = ds.t0, ds.t0 + 10 * MIN

    def stored():
        a = rest(stack, f"/v1/devices/{q(ds.dev_a)}/readings", type="temperature", step="raw",
                 **{"from": frm, "to": to, "limit": 5000})
        z = rest(stack, f"/v1/devices/{q(ds.dev_a)}/alerts", **{"from": frm, "to": to})
        return a["history"]["count"] == 600 and len(z["page"]["alerts"]) == 8

    assert wait_until(stored, timeout_s=120, interval_s=1.0), "the readings never reached the store"
    return ds


def pages(stack, path, limit, field, **params):
    """Every page of a paginated answer: (items, number of pages)."""
    items, cursor, n = [], None, 0
    while True:
        extra = {"cursor": cursor} if cursor else {}
        body = rest(stack, path, limit=limit, **params, **extra)
        page = body["history"] if "history" in body else body["page"]
        items += page[field]
        n += 1
        cursor = page["next_cursor"]
        if not cursor:
            return items, n
        assert n < 100


def test_raw_pages_hold_every_point_once_in_order(stack, run):
    path = f"/v1/devices/{q(run.dev_a_sent)}/readings"  # the id as sent: normalized like the consumer
    pts, n = pages(stack, path, 250, "points", type="Temperature", step="raw",
                   **{"from": run.t0, "to": run.t0 + 10 * MIN})
    assert n == 3
    assert [(p["ts_ms"], p["value"]) for p in pts] == run.a
    assert [p["token"] for p in pts] == [run.tokens[(run.dev_a_sent, ts)] for ts, _ in run.a]
    assert {p["device_id"] for p in pts} == {run.dev_a}
    body = rest(stack, path, type="temperature", step="raw", limit=600,
                **{"from": run.t0, "to": run.t0 + 10 * MIN})
    assert body["device_id"] == run.dev_a
    h = body["history"]
    assert (h["type"], h["unit"], h["step"], h["step_ms"], h["count"], h["next_cursor"]) == \
        ("temperature", "C", "raw", 0, 600, "")
    assert (h["from_ms"], h["to_ms"], h["buckets"]) == (run.t0, run.t0 + 10 * MIN, [])


def test_zone_raw_history_is_the_union_of_its_devices(stack, run):
    path = f"/v1/zones/{q(run.zone_sent)}/readings"
    pts, n = pages(stack, path, 250, "points", type="temperature", step="raw",
                   **{"from": run.t0, "to": run.t0 + 10 * MIN})
    assert n == 4
    want = sorted([(ts, run.tokens[(run.dev_a_sent, ts)], run.dev_a, v) for ts, v in run.a] +
                  [(ts, run.tokens[(run.dev_b, ts)], run.dev_b, v) for ts, v in run.b])
    assert [(p["ts_ms"], p["token"], p["device_id"], p["value"]) for p in pts] == want


def test_alert_pages_are_newest_first_each_once(stack, run):
    path = f"/v1/devices/{q(run.dev_a)}/alerts"
    got, n = pages(stack, path, 3, "alerts", **{"from": run.t0, "to": run.t0 + 10 * MIN})
    assert n == 3
    want = sorted(((ts, run.alert_tokens[code], code) for ts, code in run.alerts),
                  key=lambda x: (-x[0], x[1]))
    assert [(a["ts_ms"], a["token"], a["code"]) for a in got] == want
    assert {(a["device_id"], a["zone"], a["severity"]) for a in got} == \
        {(run.dev_a, run.zone, "warning")}
    assert got[0]["message"] == f"message {want[0][2]}"
    zone = rest(stack, f"/v1/zones/{q(run.zone)}/alerts", **{"from": run.t0, "to": run.t0 + 10 * MIN})
    assert [a["token"] for a in zone["page"]["alerts"]] == [w[1] for w in want]
    assert (zone["zone"], zone["page"]["from_ms"], zone["page"]["to_ms"]) == \
        (run.zone, run.t0, run.t0 + 10 * MIN)


def strip_twins(x):
    """The REST JSON without the RFC 3339 twins of the *_ms fields."""
    if isinstance(x, dict):
        return {k: strip_twins(v) for k, v in x.items() if k + "_ms" not in x or k == "step"}
    if isinstance(x, list):
        return [strip_twins(v) for v in x]
    return x


def message_to_dict(msg):
    out = {}
    for f in msg.DESCRIPTOR.fields:
        v = getattr(msg, f.name)
        conv = message_to_dict if f.message_type is not None else (lambda x: x)
        repeated = getattr(f, "is_repeated", None)
        if repeated is None:
            repeated = f.label == f.LABEL_REPEATED
        out[f.name] = [conv(x) for x in v] if repeated else conv(v)
    return out


def test_rest_and_grpc_answer_the_same_direct_and_through_the_gateway(stack, run, iot_pb2):
    m = iot_pb2.metrics_pb2
    key = next(iter(stack.read_keys.values()))
    win = {"from": str(run.t0), "to": str(run.t0 + 10 * MIN)}
    cases = [
        (f"/v1/devices/{q(run.dev_a)}/readings", {"type": "temperature", "step": "raw", "limit": 100},
         "DeviceReadings", m.DeviceReadingsRequest(device_id=run.dev_a, type="temperature",
                                                   step="raw", limit=100, **win)),
        (f"/v1/zones/{q(run.zone)}/readings", {"type": "temperature", "step": "5m"},
         "ZoneReadings", m.ZoneReadingsRequest(zone=run.zone, type="temperature", step="5m", **win)),
        (f"/v1/devices/{q(run.dev_a)}/alerts", {"limit": 5},
         "DeviceAlerts", m.DeviceAlertsRequest(device_id=run.dev_a, limit=5, **win)),
        (f"/v1/zones/{q(run.zone)}/alerts", {},
         "ZoneAlerts", m.ZoneAlertsRequest(zone=run.zone, **win)),
    ]
    direct = grpc.insecure_channel(stack.metrics_grpc)
    gateway = grpc.insecure_channel(stack.gateway_grpc)
    try:
        for path, params, rpc, req in cases:
            via_rest = strip_twins(rest(stack, path, **params, **win))
            via_gw = strip_twins(rest(stack, path, base=stack.gateway_url, key=key, **params, **win))
            a = getattr(iot_pb2.metrics_pb2_grpc.MetricsServiceStub(direct), rpc)(req, timeout=30)
            b = getattr(iot_pb2.metrics_pb2_grpc.MetricsServiceStub(gateway), rpc)(
                req, timeout=30, metadata=[("apikey", key)])
            assert via_rest == via_gw == message_to_dict(a) == message_to_dict(b), rpc
        # the history routes need a read key at the gateway
        r = requests.get(stack.gateway_url + cases[0][0], params=cases[0][1], timeout=10)
        assert r.status_code == 401
        sensor = next(iter(stack.keys.values()))
        r = requests.get(stack.gateway_url + cases[0][0], params=cases[0][1],
                         headers={"apikey": sensor}, timeout=10)
        assert r.status_code == 403
    finally:
        direct.close()
        gateway.close()


def expected_minutes(points, t0, n):
    out = []
    for k in range(n):
        cell = [(ts, v) for ts, v in points if t0 + k * MIN <= ts < t0 + (k + 1) * MIN]
        vals = [v for _, v in cell]
        out.append({"start_ms": t0 + k * MIN, "count": len(cell), "avg": sum(vals) / len(vals),
                    "min": min(vals), "max": max(vals), "first_ts_ms": cell[0][0],
                    "last_ts_ms": cell[-1][0]})
    return out


def close_buckets(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        for k in ("start_ms", "count", "first_ts_ms", "last_ts_ms", "min", "max"):
            assert g[k] == w[k], (k, g, w)
        assert g["avg"] == pytest.approx(w["avg"], rel=1e-12)


def test_bucketed_history_from_the_consumers_minute_series(stack, run, mongo_db):
    frm, to = run.t0, run.t0 + 10 * MIN
    sk = SEP.join(["d", run.dev_a, "temperature", time.strftime("%Y-%m-%d", time.gmtime(frm // 1000))])
    if not wait_until(lambda: mongo_db.series_readings.find_one({"sk": sk}), timeout_s=20):
        pytest.skip("this consumer writes no minute series documents")
    path = f"/v1/devices/{q(run.dev_a)}/readings"

    def complete():
        h = rest(stack, path, type="temperature", step="1m", **{"from": frm, "to": to})["history"]
        return h if h["count"] == 600 else None

    h = wait_until(complete, timeout_s=60, interval_s=1.0)
    assert h, "the minute series never counted all 600 readings"
    assert (h["step"], h["step_ms"], h["from_ms"], h["to_ms"], h["unit"]) == ("1m", MIN, frm, to, "C")
    close_buckets(h["buckets"], expected_minutes(run.a, run.t0, 10))
    assert all(b["count"] == 60 for b in h["buckets"])
    zone = rest(stack, f"/v1/zones/{q(run.zone)}/readings", type="temperature", step="1m",
                **{"from": frm, "to": to})["history"]
    close_buckets(zone["buckets"], expected_minutes(sorted(run.a + run.b), run.t0, 10))
    assert zone["count"] == 900


# ---- read side over stored minute series documents of the contract ---------


def store_series(mongo_db, iot_pb2, kind, key, typ, hour_ms, tp, cells, unit):
    """One series document; cells: {minute: [(ts, value), ...]}."""
    st = iot_pb2.storage_pb2.SeriesState(unit=unit)
    for minute in sorted(cells):
        pts = cells[minute]
        vals = [v for _, v in pts]
        st.minute.append(minute)
        st.count.append(len(pts))
        st.sum.append(sum(vals))
        st.min.append(min(vals))
        st.max.append(max(vals))
        st.first_ms.append(min(t for t, _ in pts))
        st.last_ms.append(max(t for t, _ in pts))
    raw = st.SerializeToString()
    import bson
    import datetime
    packed = len(raw).to_bytes(4, "little") + zlib.compress(raw)
    day = time.strftime("%Y-%m-%d", time.gmtime(hour_ms // 1000))
    when = datetime.datetime.fromtimestamp(hour_ms / 1000, datetime.timezone.utc)
    doc = {"_id": SEP.join([kind, key, typ, str(hour_ms), tp]), "sk": SEP.join([kind, key, typ, day]),
           "hour": when, "start": when, "tp": tp, "hw": 1, "_v": 1,
           "state": bson.Binary(packed, 0x80)}
    mongo_db.series_readings.replace_one({"_id": doc["_id"]}, doc, upsert=True)


def test_bucketed_history_over_stored_minute_series(stack, mongo_db, iot_pb2):
    sfx = uuid.uuid4().hex[:8]
    dev, zone = f"series-é-{sfx}", f"zone-é-{sfx}"
    now = int(time.time() * 1000)
    h0 = (now // HOUR) * HOUR - 3 * HOUR  # three whole hours ago, crossing into the next hour
    pts = [(h0 + 30 * MIN + i * 1000, 10.0 + (i % 7)) for i in range(3600)]  # 1/s for 60 minutes
    by_hour = {}
    for ts, v in pts:
        by_hour.setdefault(ts // HOUR * HOUR, {}).setdefault(ts // MIN % 60, []).append((ts, v))
    for hour, cells in by_hour.items():
        # split every hour over two partitions: the service merges them
        even = {m: c[0::2] for m, c in cells.items()}
        odd = {m: c[1::2] for m, c in cells.items()}
        for k, key in (("d", dev), ("z", zone)):
            store_series(mongo_db, iot_pb2, k, key, "vibration", hour, "sensor-telemetry:0", even, "mm/s")
            store_series(mongo_db, iot_pb2, k, key, "vibration", hour, "sensor-telemetry:2", odd, "mm/s")
    frm, to = h0 + 30 * MIN, h0 + 90 * MIN
    for step, step_ms in (("1m", MIN), ("15m", 15 * MIN), ("1h", HOUR)):
        want = []
        start = frm // step_ms * step_ms
        while start < to:
            cell = [(t, v) for t, v in pts if start <= t < start + step_ms]
            if cell:
                vals = [v for _, v in cell]
                want.append({"start_ms": start, "count": len(cell), "avg": sum(vals) / len(vals),
                             "min": min(vals), "max": max(vals), "first_ts_ms": cell[0][0],
                             "last_ts_ms": cell[-1][0]})
            start += step_ms
        for path in (f"/v1/devices/{q(dev)}/readings", f"/v1/zones/{q(zone.replace('zone', 'ZONE'))}/readings"):
            h = rest(stack, path, type="vibration", step=step, **{"from": frm, "to": to})["history"]
            assert (h["step"], h["step_ms"], h["unit"], h["count"]) == (step, step_ms, "mm/s", 3600)
            close_buckets(h["buckets"], want)
            assert h["from_ms"] == frm // step_ms * step_ms
    # a window of part of the data: only its cells; auto picks 1m for 60 minutes
    h = rest(stack, f"/v1/devices/{q(dev)}/readings", type="vibration",
             **{"from": h0 + 40 * MIN + 5, "to": h0 + 50 * MIN})["history"]
    assert (h["step"], h["from_ms"], h["to_ms"], h["count"]) == ("1m", h0 + 40 * MIN, h0 + 50 * MIN, 600)
    # nothing stored: no buckets, the type's unit
    h = rest(stack, f"/v1/devices/{q(dev)}/readings", type="temperature",
             **{"from": frm, "to": to})["history"]
    assert (h["buckets"], h["count"], h["unit"]) == ([], 0, "C")


# ---- bad parameters ------------------------------------------------------------

DEV = "/v1/devices/d-1/readings"
ZONE = "/v1/zones/z-1/readings"
DAL = "/v1/devices/d-1/alerts"
ZAL = "/v1/zones/z-1/alerts"
BAD_REST = [
    (DEV, "", "type", "is required"),
    (DEV, "type=t&step=7s", "step", "must be auto, raw"),
    (DEV, "type=t&step=2d", "step", "must be auto, raw"),
    (DEV, "type=t&from=yesterday", "from", "RFC 3339"),
    (DEV, "type=t&to=2026-13-01T00:00:00Z", "to", "RFC 3339"),
    (DEV, "type=t&from=1764583200000&to=1764583200000", "from", "must be before to"),
    (DEV, "type=t&from=1764583200000&to=1764583100000", "from", "must be before to"),
    (DEV, "type=t&from=1761000000000&to=1764583200000", "from", "at most 31 days"),
    (DEV, "type=t&step=1m&from=1764400000000&to=1764583200000", "step", "more than 1500 buckets"),
    (DEV, "type=t&step=raw&from=1764500000000&to=1764583200000", "from", "at most 6 hours"),
    (DEV, "type=t&step=raw&from=1764580000000&to=1764583200000&limit=5001", "limit", "between 1 and 5000"),
    (DEV, "type=t&step=raw&from=1764580000000&to=1764583200000&limit=0", "limit", "between 1 and 5000"),
    (DEV, "type=t&step=raw&from=1764580000000&to=1764583200000&cursor=garbage", "cursor", "is not a cursor"),
    (DEV, "type=t&limit=10", "limit", "only for step=raw"),
    (DEV, "type=t&type=u", "type", "given more than once"),
    (DEV, "type=t&window_hours=3", "window_hours", "unknown parameter"),
    (ZONE, "type=" + "t" * 33, "type", "at most 32 characters"),
    ("/v1/zones/" + "z" * 65 + "/readings", "type=t", "zone", "at most 64 characters"),
    ("/v1/zones/a%0Ab/readings", "type=t", "zone", "control characters"),
    ("/v1/zones/%C3%28/readings", "type=t", "zone", "valid UTF-8"),
    ("/v1/devices/%20/alerts", "", "device_id", "is required"),
    (DAL, "limit=1001", "limit", "between 1 and 1000"),
    (DAL, "type=t", "type", "unknown parameter"),
    (DAL, "from=1761000000000&to=1764583200000", "from", "at most 31 days"),
    (ZAL, "cursor=MToxMjM6YWJj", "cursor", "does not belong to this window"),
    (ZAL, "to", "to", "requires a value"),
]


@pytest.mark.parametrize("path,query,param,reason", BAD_REST)
def test_rest_rejects_bad_parameter(stack, path, query, param, reason):
    r = requests.get(f"{stack.metrics_url}{path}?{query}", timeout=10)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_parameter"
    assert err["message"].startswith(f"invalid parameter: {param}: ")
    assert err["details"][0]["param"] == param
    assert reason in err["details"][0]["reason"]


BAD_GRPC = [
    ("DeviceReadings", "DeviceReadingsRequest", {"device_id": "d"}, "type: is required"),
    ("DeviceReadings", "DeviceReadingsRequest", {"type": "t"}, "device_id: is required"),
    ("ZoneReadings", "ZoneReadingsRequest", {"zone": "z", "type": "t", "step": "1s"},
     'step: must be auto, raw or a whole number of minutes from 1m to 1d (Nm, Nh, Nd), got "1s"'),
    ("ZoneReadings", "ZoneReadingsRequest", {"zone": "z", "type": "t", "step": "raw"},
     "from: with step=raw the window from..to must be at most 6 hours"),
    ("DeviceReadings", "DeviceReadingsRequest",
     {"device_id": "d", "type": "t", "from": "1764583200000", "to": "1764583200000"},
     'from: must be before to, got "1764583200000"'),
    ("DeviceAlerts", "DeviceAlertsRequest", {"device_id": "d", "limit": 1001},
     'limit: must be an integer between 1 and 1000, got "1001"'),
    ("ZoneAlerts", "ZoneAlertsRequest", {"zone": "z", "cursor": "!!"},
     "cursor: is not a cursor of this API (pass next_cursor unchanged)"),
    ("ZoneAlerts", "ZoneAlertsRequest", {"zone": "z", "from": "2020-01-01T00:00:00Z"},
     "from: the window from..to must be at most 31 days"),
]


@pytest.mark.parametrize("rpc,request_cls,fields,message", BAD_GRPC)
def test_grpc_rejects_bad_parameter(stack, iot_pb2, rpc, request_cls, fields, message):
    with grpc.insecure_channel(stack.metrics_grpc) as channel:
        stub = iot_pb2.metrics_pb2_grpc.MetricsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as exc:
            getattr(stub, rpc)(getattr(iot_pb2.metrics_pb2, request_cls)(**fields), timeout=10)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details() == "invalid parameter: " + message
