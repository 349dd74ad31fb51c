"""Consumer: poison records go to sensor-dlq with their reason and the
partition keeps flowing; what is stored is normalized (units, ids, UTC
times, precomputed buckets); devices track zone, firmware, first and last
seen; the ops endpoints answer."""
import datetime
import time
import uuid

import pytest
import requests
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import find_ids, post_accepted, wait_until

UTC = datetime.timezone.utc


def post(stack, path, body):
    return post_accepted(stack, path, body)


def produce(kafka_config, topic, partition, key, value, headers=None, user="producer"):
    """Writes one record straight into a partition as user; returns its offset."""
    p = Producer(kafka_config(user, **{"acks": "all"}))
    got = {}
    p.produce(topic, key=key, value=value, partition=partition, headers=list(headers or []),
              on_delivery=lambda err, msg: got.update(err=err, offset=msg.offset()))
    p.flush(30)
    assert got.get("err") is None, got
    return got["offset"]


def envelope(iot_pb2, token, **reading):
    env = iot_pb2.telemetry_pb2.Envelope(token=token, received_ms=int(time.time() * 1000),
                                         consumer="system-test", schema_version=1)
    env.reading.CopyFrom(iot_pb2.telemetry_pb2.Reading(**reading))
    return env.SerializeToString()


def dlq_records(kafka_config, start_offset):
    c = Consumer(kafka_config("admin", **{"group.id": f"pw-test-dlq-{uuid.uuid4().hex[:6]}",
                                          "enable.auto.commit": False}))
    c.assign([TopicPartition("sensor-dlq", 0, start_offset)])
    out = []
    try:
        while True:
            m = c.poll(5)
            if m is None:
                break
            if not m.error():
                out.append(m)
    finally:
        c.close()
    return out


def dlq_end(kafka_config):
    c = Consumer(kafka_config("admin", **{"group.id": "pw-test-dlq-marks"}))
    try:
        return c.get_watermark_offsets(TopicPartition("sensor-dlq", 0), timeout=10)[1]
    finally:
        c.close()


def test_corrupt_and_invalid_records_are_dead_lettered_and_the_partition_moves_on(
        stack, mongo_db, kafka_config, iot_pb2):
    zone = f"dlq-{uuid.uuid4().hex[:8]}"
    start = dlq_end(kafka_config)
    now_ms = int(time.time() * 1000)
    corrupt = b"\x08\x96\x01 definitely not an envelope \xff\xff"
    bad_off = produce(kafka_config, "sensor-telemetry", 0, b"dlq-dev", corrupt,
                      [("pw-token", b"corrupt")])
    bad_unit_token = str(uuid.uuid4())
    unit_off = produce(kafka_config, "sensor-telemetry", 0, b"dlq-dev", envelope(
        iot_pb2, bad_unit_token, device_id="dlq-dev", zone=zone, type="temperature",
        value=20.0, unit="furlongs", ts_ms=now_ms, firmware="1.0.0"))
    good_token = str(uuid.uuid4())
    produce(kafka_config, "sensor-telemetry", 0, b"dlq-dev", envelope(
        iot_pb2, good_token, device_id="dlq-dev", zone=zone, type="temperature", value=21.5,
        unit="C", ts_ms=now_ms, firmware="1.0.0"))

    stored = wait_until(lambda: mongo_db.telemetry.find_one({"_id": good_token}), 120)
    assert stored, "the record after the poison ones was not stored"
    assert stored["value"] == pytest.approx(21.5)
    assert mongo_db.telemetry.find_one({"_id": bad_unit_token}) is None

    def dead_letters():
        recs = dlq_records(kafka_config, start)
        found = {}
        for m in recs:
            h = {k: v.decode() for k, v in (m.headers() or [])}
            if h.get("pw-source-topic") == "sensor-telemetry" and \
                    h.get("pw-source-partition") == "0" and \
                    h.get("pw-source-offset") in (str(bad_off), str(unit_off)):
                found[int(h["pw-source-offset"])] = (h, m.value())
        return found if len(found) == 2 else None

    found = wait_until(dead_letters, 60, 2.0)
    assert found, "the poison records did not reach sensor-dlq"
    headers, value = found[bad_off]
    assert headers["pw-dlq-reason"] == "undecodable"
    assert value == corrupt
    assert headers["pw-token"] == "corrupt"  # original headers kept
    headers, _ = found[unit_off]
    assert headers["pw-dlq-reason"] == "unknown_unit"
    assert "furlongs" in headers["pw-dlq-detail"]


def test_units_ids_and_times_are_normalized(stack, mongo_db):
    zone = f"Norm-{uuid.uuid4().hex[:8]}".upper()
    dev = f"{zone}-Dev"
    ts = "2026-11-25T01:30:15.250+02:00"  # 2026-11-24T23:30:15.250Z
    cases = [  # (type, value, unit, stored value, stored unit)
        ("temperature", 21.5, "C", 21.5, "C"),
        ("temperature", 212.0, "F", 100.0, "C"),
        ("temperature", 273.15, "K", 0.0, "C"),
        ("pressure", 101325.0, "Pa", 1013.25, "hPa"),
        ("pressure", 101.325, "kPa", 1013.25, "hPa"),
        ("pressure", 1013.25, "hPa", 1013.25, "hPa"),
        ("pressure", 1.01325, "bar", 1013.25, "hPa"),
        ("pressure", 14.6959488, "psi", 1013.25, "hPa"),
        ("Humidity", 45.0, "%", 45.0, "%"),
    ]
    now = datetime.datetime.now(UTC)
    use_fixed = now - datetime.datetime(2026, 11, 24, 23, 30, 15, 250000, tzinfo=UTC) < \
        datetime.timedelta(days=29)
    stamp = ts if use_fixed else now.isoformat(timespec="milliseconds")
    body = [{"device_id": dev, "zone": zone, "type": t, "value": v, "unit": u, "ts": stamp,
             "firmware": "3.1.0"} for t, v, u, _, _ in cases]
    ids = post(stack, "/v1/telemetry", body)
    docs = wait_until(lambda: len(find_ids(mongo_db.telemetry, ids)) == len(ids) and
                      find_ids(mongo_db.telemetry, ids), 120)
    assert docs
    by_id = {d["_id"]: d for d in docs}
    expected_ts = (datetime.datetime(2026, 11, 24, 23, 30, 15, 250000) if use_fixed else
                   datetime.datetime.fromisoformat(stamp).astimezone(UTC).replace(tzinfo=None))
    for token, (t, v, u, want, want_unit) in zip(ids, cases):
        d = by_id[token]
        assert d["value"] == pytest.approx(want, abs=1e-3), (t, u)
        assert d["unit"] == want_unit
        assert d["raw_value"] == pytest.approx(v)
        assert d["raw_unit"] == u
        assert d["type"] == t.lower()
        assert d["device"] == dev.lower()
        assert d["zone"] == zone.lower()
        assert d["meta"] == {"device": dev.lower(), "zone": zone.lower(), "type": t.lower()}
        assert abs((d["ts"] - expected_ts).total_seconds()) < 0.002
        assert d["day"] == expected_ts.strftime("%Y-%m-%d")
        assert d["hour"] == expected_ts.replace(minute=0, second=0, microsecond=0)
        assert d["origin"].startswith("sensor-telemetry:")


def test_devices_track_zone_firmware_first_and_last_seen(stack, mongo_db, store_view):
    zone = f"devices-{uuid.uuid4().hex[:8]}"
    dev = f"{zone}-d1"
    now_ms = int(time.time() * 1000)
    # the newest reading (firmware 2.0.0) arrives first, an older one after it
    post(stack, "/v1/telemetry", [{"device_id": dev, "zone": zone, "type": "temperature",
                                   "value": 20.0, "unit": "C", "ts": now_ms - 1000,
                                   "firmware": "2.0.0"}])
    post(stack, "/v1/telemetry", [{"device_id": dev, "zone": zone, "type": "temperature",
                                   "value": 19.0, "unit": "C", "ts": now_ms - 60_000,
                                   "firmware": "1.9.0"}])
    alert_ids = post(stack, "/v1/alerts", {"device_id": dev, "zone": zone, "severity": "warning",
                                           "code": "DOOR_OPEN", "message": "door",
                                           "ts": now_ms - 30_000, "firmware": "1.9.5"})

    def settled():
        d = store_view.device(dev)
        return d if d and d["first_seen_ms"] < d["last_seen_ms"] and \
            d["first_seen_ms"] == now_ms - 60_000 and \
            mongo_db.alerts.find_one({"_id": alert_ids[0]}) and \
            mongo_db.telemetry.count_documents({"zone": zone}) == 2 else None

    d = wait_until(settled, 120)
    assert d, "the census entry did not converge"
    last = datetime.datetime.fromtimestamp((now_ms - 1000) / 1000, UTC).replace(tzinfo=None)
    assert d["first_seen_ms"] == now_ms - 60_000
    assert d["last_seen_ms"] == now_ms - 1000
    assert d["firmware"] == "2.0.0"
    assert d["zone"] == zone
    day = mongo_db.rollup_device_day.find_one({"_id": f"{last:%Y-%m-%d}|{dev}"})
    assert day is not None and day["device"] == dev and day["zone"] == zone
    alert = mongo_db.alerts.find_one({"_id": alert_ids[0]})
    assert alert["severity"] == "warning" and alert["code"] == "DOOR_OPEN"
    for res in ("hour", "day"):
        cells = store_view.cells("rollup_alerts", zone, res)
        assert len(cells) == 1
        assert cells[0].count == 1 and cells[0].label == "warning"
        assert cells[0].code == "DOOR_OPEN"


def test_ops_endpoints(stack):
    for url in stack.consumer_urls:
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        assert requests.get(f"{url}/readyz", timeout=10).status_code == 200
        text = requests.get(f"{url}/metrics", timeout=5).text
        for family in ("pw_consumer_stored_total", "pw_consumer_duplicates_total",
                       "pw_consumer_dead_lettered_total", "pw_consumer_lag",
                       "pw_consumer_batch_size", "pw_consumer_write_seconds"):
            assert f"# TYPE {family}" in text, family
