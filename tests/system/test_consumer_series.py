"""Consumer: the minute series of readings (series_readings). Two devices of
one zone send ten minutes of readings with their own timestamps through the
gateway; the device series then hold, per minute of each reading's own ts,
exactly the count, sum, min, max, first and last time of what was sent, the
zone series the sum over both devices, and redeliveries — after every
consumer is killed mid-stream, and of every record of the test once the
group's committed offsets are moved back to before them — count nothing
twice.

Series documents are read as the history views read them: one {sk} equality
query per UTC day."""
import datetime
import math
import signal
import struct
import uuid
import zlib

import bson
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import post_accepted, wait_until

GROUP = "plantwatch-consumers"
NAMES = ("consumer-1", "consumer-2", "consumer-3")
TOPIC = "sensor-telemetry"
SEP = "\x1f"
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
STORE_TIMEOUT_S = 300
DOC_BOUND = 4096  # 60 minute cells and the fixed fields, deflated


def series_state(storage_pb2, doc):
    raw = bytes(doc["state"])
    assert doc["state"].subtype == 0x80
    n = struct.unpack("<I", raw[:4])[0]
    raw = zlib.decompress(raw[4:])
    assert len(raw) == n
    st = storage_pb2.SeriesState()
    st.ParseFromString(raw)
    return st


def days_of(start_ms, end_ms):
    first = start_ms - start_ms % 86_400_000
    return [datetime.datetime.fromtimestamp(d / 1000, datetime.timezone.utc).strftime("%Y-%m-%d")
            for d in range(first, end_ms + 1, 86_400_000)]


class Series:
    """The minute cells of one series over a time range, merged over its hour
    and partition documents: {minute_start_ms: (count, sum, min, max, first, last)}."""

    def __init__(self, mongo_db, storage_pb2, kind, key, type_, start_ms, end_ms):
        self.docs = []
        for day in days_of(start_ms, end_ms):
            self.docs += list(mongo_db.series_readings.find({"sk": SEP.join([kind, key, type_,
                                                                             day])}))
        self.cells, self.units = {}, set()
        for d in self.docs:
            st = series_state(storage_pb2, d)
            self.units.add(st.unit)
            hour = int(d["hour"].replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
            for i, m in enumerate(st.minute):
                t = hour + m * MINUTE_MS
                c = (st.count[i], st.sum[i], st.min[i], st.max[i], st.first_ms[i], st.last_ms[i])
                old = self.cells.get(t)
                self.cells[t] = c if old is None else (
                    old[0] + c[0], old[1] + c[1], min(old[2], c[2]), max(old[3], c[3]),
                    min(old[4], c[4]), max(old[5], c[5]))

    def total(self):
        return sum(c[0] for c in self.cells.values())


def expected_cells(readings):
    """readings: [(ts_ms, value)] -> the cells the series must hold."""
    out = {}
    for ts, v in readings:
        t = ts - ts % MINUTE_MS
        c = out.get(t)
        out[t] = (1, v, v, v, ts, ts) if c is None else (
            c[0] + 1, c[1] + v, min(c[2], v), max(c[3], v), min(c[4], ts), max(c[5], ts))
    return out


def assert_cells_equal(got, want):
    assert sorted(got) == sorted(want)
    for t in want:
        g, w = got[t], want[t]
        assert (g[0], g[2], g[3], g[4], g[5]) == (w[0], w[2], w[3], w[4], w[5]), t
        assert math.isclose(g[1], w[1], rel_tol=1e-12, abs_tol=1e-9), t


def telemetry_marks(kafka_config):
    from confluent_kafka import Consumer
    c = Consumer(kafka_config("admin", **{"group.id": "pw-test-series-watermarks"}))
    try:
        meta = c.list_topics(TOPIC, timeout=10).topics[TOPIC]
        return {p: c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1]
                for p in meta.partitions}
    finally:
        c.close()


def committed(admin):
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(GROUP)])[GROUP].result()
    return {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == TOPIC}


def test_minute_series_per_device_and_zone_exact_and_redelivery_counts_once(
        stack, mongo_db, iot_pb2, kafka_config):
    pb = iot_pb2.storage_pb2
    tag = uuid.uuid4().hex[:8]
    zone = f"series-{tag}"
    dev_a, dev_b = f"press-{tag}-a", f"press-{tag}-b"
    now = int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000)
    start = now - now % MINUTE_MS - 15 * MINUTE_MS
    end = start + 10 * MINUTE_MS - 1
    # device a: 600 readings one per second, sent as " Press-…-A " in "Series-…" (normalized)
    a = [(start + i * 1000, round(20.0 + (i % 37) * 0.25 - (i // 60) * 0.5, 2))
         for i in range(600)]
    # device b: 300 readings every 2 s in °F, stored in °C
    b = [(start + 500 + i * 2000, float(50 + (i % 11))) for i in range(300)]

    def iso(ms):
        return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")

    marks = telemetry_marks(kafka_config)
    body_a = [{"device_id": f" {dev_a.title()} ", "zone": zone.upper(), "type": "temperature",
               "value": v, "unit": "C", "ts": iso(ts), "firmware": "1.0.0"} for ts, v in a]
    body_b = [{"device_id": dev_b, "zone": zone, "type": "temperature", "value": v, "unit": "F",
               "ts": ts, "firmware": "1.0.0"} for ts, v in b]
    # device a in six requests; every consumer is killed (SIGKILL) after the
    # third, so batches stored but not committed are delivered again
    for i in range(0, 600, 100):
        assert len(post_accepted(stack, "/v1/telemetry", body_a[i:i + 100])) == 100
        if i == 200:
            for name in NAMES:
                stack.kill(name, signal.SIGKILL)
            for name in NAMES:
                stack.start(name)
    assert len(post_accepted(stack, "/v1/telemetry", body_b)) == 300

    def series(kind, key):
        return Series(mongo_db, pb, kind, key, "temperature", start, end)

    assert wait_until(lambda: series("z", zone).total() >= 900, STORE_TIMEOUT_S, 1.0)
    assert wait_until(lambda: series("d", dev_a).total() >= 600 and
                      series("d", dev_b).total() >= 300, STORE_TIMEOUT_S, 1.0)

    # device a: exact cells, one per minute of the readings' own timestamps
    sa = series("d", dev_a)
    assert len(sa.cells) == 10
    assert all(c[0] == 60 for c in sa.cells.values())
    assert_cells_equal(sa.cells, expected_cells(a))
    assert sa.units == {"C"}
    hours = {ts - ts % HOUR_MS for ts, _ in a}
    assert len(sa.docs) == len(hours)  # one partition: one document per hour
    for d in sa.docs:
        assert d["_id"].startswith(SEP.join(["d", dev_a, "temperature", ""]))
        assert d["tp"].startswith(TOPIC.replace(".", "_") + ":")
        assert d["start"] == d["hour"]
        assert d["_v"] >= d["hw"] >= 0
        assert len(bson.encode(d)) < DOC_BOUND

    # device b: the stored (converted) values, as the raw documents hold them
    raw_b = sorted(
        (int(r["ts"].replace(tzinfo=datetime.timezone.utc).timestamp() * 1000), r["value"])
        for r in mongo_db.telemetry.find({"device": dev_b}, {"ts": 1, "value": 1}))
    assert [ts for ts, _ in raw_b] == [ts for ts, _ in b]
    assert [v for _, v in raw_b] == pytest.approx([(v - 32) * 5 / 9 for _, v in b])
    sb = series("d", dev_b)
    assert_cells_equal(sb.cells, expected_cells(raw_b))
    assert sb.units == {"C"}

    # zone series: the sum over its two devices, minute by minute
    sz = series("z", zone)
    assert_cells_equal(sz.cells, expected_cells(a + raw_b))
    assert sz.total() == 900
    assert sz.units == {"C"}
    assert all(len(bson.encode(d)) < DOC_BOUND for d in sz.docs)
    # the readers' sk query finds series documents only (no admission document)
    assert all(d["_id"][0] in "dz" for d in sz.docs + sa.docs)

    before = {(k, key): sorted((d["_id"], d["hw"], bytes(d["state"])) for d in
                               series(k, key).docs)
              for k, key in (("d", dev_a), ("d", dev_b), ("z", zone))}

    # redelivery: every record of the test read again by a restarted group
    admin = AdminClient(kafka_config("admin"))
    highs = telemetry_marks(kafka_config)
    assert sum(highs.values()) - sum(marks.values()) >= 900
    assert wait_until(lambda: all(committed(admin).get(p, -1) >= hi
                                  for p, hi in highs.items() if hi > 0), STORE_TIMEOUT_S, 1.0)
    for name in NAMES:
        stack.stop_service(name)
    try:
        back = [TopicPartition(TOPIC, p, lo) for p, lo in marks.items()]
        admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(GROUP, back)])[
            GROUP].result()
        assert all(committed(admin)[p] == lo for p, lo in marks.items())
    finally:
        for name in NAMES:
            stack.start(name)
    assert wait_until(lambda: all(committed(admin).get(p, -1) >= hi
                                  for p, hi in highs.items() if hi > 0), STORE_TIMEOUT_S, 1.0)
    after = {(k, key): sorted((d["_id"], d["hw"], bytes(d["state"])) for d in
                              series(k, key).docs)
             for k, key in (("d", dev_a), ("d", dev_b), ("z", zone))}
    assert after == before
    assert series("d", dev_a).total() == 600
    assert series("z", zone).total() == 900
