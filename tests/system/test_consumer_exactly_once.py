"""Consumer: every 202-accepted message is stored exactly once, and the
rollups the metrics views read equal the raw documents. Each test breaks
something for real: a consumer is killed with SIGKILL, FerretDB is stopped,
a Kafka node is stopped, or the whole group re-reads from the earliest offset.

Traffic goes through the gateway (5 requests/s per key), 100 readings per
request, spread over all keys. Each test uses its own zone, so its documents
can be counted apart from everything else in the store."""
import datetime
import math
import signal
import threading
import time
import uuid

import pytest
import requests
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import post_accepted, wait_until

TOPICS = ("sensor-telemetry", "sensor-alerts")
GROUP = "plantwatch-consumers"
PER_REQUEST = 100
REQUEST_INTERVAL_S = 0.22  # under the gateway's 5 requests/s per key
STORE_TIMEOUT_S = 600


class Stream:
    """Sends `total` readings for one zone through the gateway from every key
    in parallel. Each request has its own Idempotency-Key, so a retry after
    an ambiguous failure maps to the same tokens."""

    def __init__(self, stack, zone, total, devices=40):
        self.stack, self.zone, self.total, self.devices = stack, zone, total, devices
        self.accepted = set()
        self.values = {}
        self.lock = threading.Lock()
        self.sent = 0
        self.errors = []
        self.threads = []

    def _body(self, start):
        n = min(PER_REQUEST, self.total - start)
        return [{"device_id": f"{self.zone}-d{(start + i) % self.devices}", "zone": self.zone,
                 "type": "temperature", "value": float((start + i) % 50), "unit": "C",
                 "firmware": "1.0.0"} for i in range(n)]

    def _post(self, key, body):
        headers = {"apikey": key, "Idempotency-Key": uuid.uuid4().hex}
        for _ in range(200):
            try:
                r = requests.post(f"{self.stack.gateway_url}/v1/telemetry", json=body,
                                  headers=headers, timeout=60)
            except requests.RequestException:
                time.sleep(0.5)
                continue
            if r.status_code == 202:
                return r.json()["ids"]
            if r.status_code in (429, 502, 503, 504):
                time.sleep(0.5)
                continue
            raise AssertionError(f"unexpected {r.status_code}: {r.text}")
        raise AssertionError("a request was never accepted")

    def _worker(self, key, starts):
        for start in starts:
            t0 = time.time()
            body = self._body(start)
            try:
                ids = self._post(key, body)
            except AssertionError as e:
                self.errors.append(str(e))
                return
            assert len(ids) == len(body)
            with self.lock:
                self.accepted.update(ids)
                for token, reading in zip(ids, body):
                    self.values[token] = reading["value"]
                self.sent += len(body)
            time.sleep(max(0.0, REQUEST_INTERVAL_S - (time.time() - t0)))

    def start(self):
        keys = sorted(self.stack.keys.values())
        starts = list(range(0, self.total, PER_REQUEST))
        for i, key in enumerate(keys):
            t = threading.Thread(target=self._worker, args=(key, starts[i::len(keys)]),
                                 daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def wait_sent(self, fraction):
        wait_until(lambda: self.sent >= self.total * fraction or self.errors, STORE_TIMEOUT_S)

    def join(self):
        for t in self.threads:
            t.join()
        assert not self.errors, self.errors
        assert len(self.accepted) == self.total


def stored_ids(mongo_db, collection, zone):
    return [d["_id"] for d in mongo_db[collection].find({"zone": zone}, {"_id": 1})]


def wait_stored(mongo_db, collection, zone, expected):
    wait_until(lambda: mongo_db[collection].count_documents({"zone": zone}) >= expected,
               STORE_TIMEOUT_S, 1.0)
    time.sleep(2)  # anything beyond the expected count would be a duplicate: let it show
    return stored_ids(mongo_db, collection, zone)


def assert_exactly_once(store_view, stream):
    mongo_db = store_view.db
    ids = wait_stored(mongo_db, "telemetry", stream.zone, len(stream.accepted))
    assert len(ids) == len(stream.accepted), "stored count differs from accepted count"
    assert len(set(ids)) == len(ids), "a token is stored twice"
    assert set(ids) == stream.accepted
    assert_rollups_match(store_view, stream.zone)


def assert_cells_match(cells, raw):
    assert sum(c.count for c in cells) == len(raw)
    assert math.isclose(sum(c.sum for c in cells), sum(d["value"] for d in raw),
                        rel_tol=1e-9, abs_tol=1e-6)
    if raw:
        assert min(c.min for c in cells) == pytest.approx(min(d["value"] for d in raw))
        assert max(c.max for c in cells) == pytest.approx(max(d["value"] for d in raw))


def assert_rollups_match(store_view, zone):
    """The rollups of a zone — hour and day buckets alike — equal what its raw
    documents say, and every device of the zone is in the census."""
    mongo_db = store_view.db
    raw = list(mongo_db.telemetry.find({"zone": zone}, {"value": 1, "device": 1, "day": 1,
                                                        "ts": 1}))
    raw_alerts = list(mongo_db.alerts.find({"zone": zone}, {"device": 1, "day": 1, "ts": 1}))

    def settled():
        counts = [sum(c.count for c in store_view.cells("rollup_readings", zone, res))
                  for res in ("hour", "day")]
        return counts == [len(raw), len(raw)]

    assert wait_until(settled, 120, 1.0), "rollup_readings never reached the raw count"
    for res in ("hour", "day"):
        assert_cells_match(store_view.cells("rollup_readings", zone, res), raw)
        assert sum(c.count for c in store_view.cells("rollup_alerts", zone, res)) == len(raw_alerts)
    days = list(mongo_db.rollup_device_day.find({"zone": zone}))
    active = {(d["day"], d["device"]) for d in raw + raw_alerts}
    assert sorted((d["day"], d["device"]) for d in days) == sorted(active)
    assert all(d["_id"] == f'{d["day"]}|{d["device"]}' for d in days)
    assert all(len(d["origin"].split(":")) == 3 for d in days)
    # each (day, device) adds exactly one active device to one hour and one day bucket
    for res in ("hour", "day"):
        assert store_view.became_active(zone, res) == len(active)
    # the census knows every device with its newest record
    newest = {}
    for d in raw + raw_alerts:
        ms = int(d["ts"].replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
        newest[d["device"]] = max(newest.get(d["device"], ms), ms)
    for device, last in newest.items():
        got = store_view.device(device)
        assert got is not None and got["zone"] == zone, device
        assert abs(got["last_seen_ms"] - last) < 10_000, device  # census resolution: 10 s


def post_alert(stack, key, alert):
    return post_accepted(stack, "/v1/alerts", alert, key)


def consumer_metric(stack, name):
    total = 0.0
    for url in stack.consumer_urls:
        try:
            text = requests.get(f"{url}/metrics", timeout=5).text
        except requests.RequestException:
            continue
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_sigkill_of_a_consumer_mid_stream_loses_and_duplicates_nothing(stack, store_view):
    stream = Stream(stack, f"crash-{uuid.uuid4().hex[:8]}", 20_000).start()
    stream.wait_sent(0.3)
    stack.kill("consumer-2", signal.SIGKILL)
    time.sleep(2)
    stack.start("consumer-2")
    stream.join()
    assert_exactly_once(store_view, stream)


@pytest.mark.parametrize("part", ["ferretdb", "postgres"])
def test_store_stopped_for_ten_seconds_mid_stream(stack, store_view, part):
    stream = Stream(stack, f"{part}-{uuid.uuid4().hex[:8]}", 20_000).start()
    stream.wait_sent(0.3)
    stack.stop_service(part)
    time.sleep(10)
    stack.start_service(part)
    stream.join()
    assert_exactly_once(store_view, stream)
    assert wait_until(lambda: consumer_metric(stack, "pw_consumer_paused") == 0, 120)


def test_kafka_node_stopped_mid_stream_alerts_still_accepted(stack, store_view):
    mongo_db = store_view.db
    zone = f"broker-{uuid.uuid4().hex[:8]}"
    stream = Stream(stack, zone, 20_000).start()
    stream.wait_sent(0.3)
    stack.stop_service("kafka-2")
    try:
        key = sorted(stack.keys.values())[0]
        alert_ids = []
        for i in range(5):
            alert_ids += post_alert(stack, key, {
                "device_id": f"{zone}-d{i}", "zone": zone, "severity": "critical",
                "code": "NODE_DOWN", "message": "raised while a broker is down",
                "firmware": "1.0.0"})
        time.sleep(5)
    finally:
        stack.start_service("kafka-2")
    stream.join()
    assert_exactly_once(store_view, stream)
    alerts = wait_stored(mongo_db, "alerts", zone, len(alert_ids))
    assert sorted(alerts) == sorted(alert_ids)
    assert_rollups_match(store_view, zone)


def _offsets(kafka_config):
    """(low, high) watermarks of every partition of both topics."""
    from confluent_kafka import Consumer
    c = Consumer(kafka_config("admin", **{"group.id": "pw-test-consumer-watermarks"}))
    try:
        out = {}
        for topic in TOPICS:
            meta = c.list_topics(topic, timeout=10).topics[topic]
            for p in meta.partitions:
                out[(topic, p)] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        return out
    finally:
        c.close()


def _committed(admin):
    fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(GROUP)])
    res = fut[GROUP].result()
    return {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions}


def test_replay_from_earliest_adds_no_documents_and_leaves_rollups_unchanged(
        stack, store_view, kafka_config):
    mongo_db = store_view.db
    # some traffic of our own first, so the replay covers fresh records too
    stream = Stream(stack, f"replay-{uuid.uuid4().hex[:8]}", 2_000).start()
    stream.join()
    assert_exactly_once(store_view, stream)
    admin = AdminClient(kafka_config("admin"))
    marks = _offsets(kafka_config)
    assert wait_until(lambda: all(_committed(admin).get(tp, -1) >= hi
                                  for tp, (_, hi) in marks.items() if hi > 0), 300, 1.0)

    def buckets(coll):
        return sorted(
            (d["_id"], d["hw"], d["count"],
             sorted((c.zone, c.label, c.code, c.count, round(c.sum, 6)) for c in st.cells),
             sorted((z.zone, z.count) for z in st.devices))
            for res in ("hour", "day") for d, st in store_view.buckets(coll, res))

    def snapshot():
        return {
            "telemetry": mongo_db.telemetry.estimated_document_count(),
            "alerts": mongo_db.alerts.estimated_document_count(),
            "ingest_tokens": mongo_db.ingest_tokens.estimated_document_count(),
            "rollup_readings": buckets("rollup_readings"),
            "rollup_alerts": buckets("rollup_alerts"),
            "rollup_device_day": sorted(b["_id"] for b in mongo_db.rollup_device_day.find()),
            "census": sorted((tp, dev, e.zone, e.firmware, e.first_seen_ms, e.last_seen_ms)
                             for tp, devs in store_view.census().items()
                             for dev, e in devs.items()),
        }

    before = snapshot()
    for name in ("consumer-1", "consumer-2", "consumer-3"):
        stack.stop_service(name)
    try:
        earliest = [TopicPartition(t, p, lo) for (t, p), (lo, _) in marks.items()]
        fut = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(GROUP, earliest)])
        fut[GROUP].result()
        committed = _committed(admin)
        assert all(committed[(t, p)] == lo for (t, p), (lo, _) in marks.items())
    finally:
        for name in ("consumer-1", "consumer-2", "consumer-3"):
            stack.start(name)
    assert wait_until(lambda: all(_committed(admin).get(tp, -1) >= hi
                                  for tp, (_, hi) in marks.items() if hi > 0),
                      STORE_TIMEOUT_S, 2.0), "the group did not re-consume everything"
    replayed = sum(hi - lo for lo, hi in marks.values())
    assert replayed > 0
    # restarted consumers count from zero: every replayed record hit the dedupe gate
    assert consumer_metric(stack, "pw_consumer_duplicates_total") > 0
    assert snapshot() == before
