"""Consumer: one bad record, one flooding sensor or one unwritable DLQ must
not stop anyone else's data.

- A record the store refuses for good (forced with the test-only
  PW_TEST_FAULT=refuse_device switch: that device's documents carry a field
  name the store refuses) is isolated from its batch, goes to sensor-dlq with
  reason store_refused, and the records after it in its partition are stored.
- A dead-letter topic that cannot be written pauses the consumer (visible in
  /readyz and /metrics); a rebalance and a SIGTERM in that state crash
  nothing and lose nothing, and the new owner writes the dead letter once.
- One device flooding distinct zones through one API key at the gateway's
  rate limit: no bucket document grows past its bound, the flood fills only
  its key's share of a bucket, another key's sensor on the same partition is
  counted in its established zone and in a zone new after the flood, and
  the lag returns to 0.
- After a rebalance no consumer exports lag for a partition it does not own.

The private consumers run the stack's consumer binary (the sanitizer build
under ./plantwatch test); their logs are checked for sanitizer reports."""
import contextlib
import datetime
import os
import re
import signal
import socket
import subprocess
import time
import uuid
import zlib

import bson
import pytest
import requests

from conftest import find_devices, find_ids, post_accepted, wait_until
from test_consumer_storage import dlq_end, dlq_records, envelope, produce

CONSUMERS = ("consumer-1", "consumer-2", "consumer-3")
STORE_TIMEOUT_S = 120
DOC_BOUND = 1024 * 1024  # PWC_ROLLUP_DOC_BOUND
STATE_BUDGET = 768 * 1024  # PWC_ROLLUP_STATE_BUDGET
KEY_SHARE = STATE_BUDGET // 4  # PWC_ROLLUP_KEY_SHARE
TELEMETRY_PARTITIONS = 3
SANITIZER = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def partition_of(key, partitions=TELEMETRY_PARTITIONS):
    """librdkafka's default partitioner for a keyed record: CRC-32 mod count."""
    return zlib.crc32(key.encode()) % partitions


def device_on(partition, prefix):
    for i in range(10_000):
        dev = f"{prefix}-{i}"
        if partition_of(dev) == partition:
            return dev
    raise AssertionError("no device id for the partition")


class PrivateConsumer:
    """A copy of the stack's consumer in the stack's group, with extra env."""

    def __init__(self, stack, tmp_path, name, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"{name}.log"
        full = dict(stack.service_env("consumer-1"), PATH=os.environ["PATH"], PW_INSTANCE=name,
                    PW_HTTP_PORT=str(self.port), **env)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([str(stack.consumer_binary)], env=full, stdout=out,
                                         stderr=subprocess.STDOUT)

    def metrics(self):
        try:
            return requests.get(f"{self.url}/metrics", timeout=5).text
        except requests.RequestException:
            return ""

    def metric(self, name, **labels):
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            series, value = line.rsplit(" ", 1)
            if series.split("{")[0] != name:
                continue
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
        return total

    def ready(self):
        try:
            r = requests.get(f"{self.url}/readyz", timeout=5)
            return r.status_code, r.text
        except requests.RequestException as e:
            return 0, str(e)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"did not stop on {sig}: {self.log.read_text()[-3000:]}")
        return self.proc.returncode

    def sanitizer_reports(self):
        return [line for line in self.log.read_text(errors="replace").splitlines()
                if SANITIZER.search(line)]


@contextlib.contextmanager
def stack_consumers_stopped(stack):
    for name in CONSUMERS:
        stack.stop_service(name)
    try:
        yield
    finally:
        for name in CONSUMERS:
            stack.start(name)


def dlq_letters(kafka_config, start, topic, partition):
    """sensor-dlq records from offset start whose source is (topic, partition),
    by source offset."""
    out = {}
    for m in dlq_records(kafka_config, start):
        h = {k: v.decode() for k, v in (m.headers() or [])}
        if h.get("pw-source-topic") == topic and h.get("pw-source-partition") == str(partition):
            out.setdefault(int(h["pw-source-offset"]), []).append((h, m.value()))
    return out


def now_ms():
    return int(time.time() * 1000)


def test_a_record_the_store_refuses_goes_to_the_dlq_and_its_partition_moves_on(
        stack, store_view, kafka_config, iot_pb2, tmp_path):
    db = store_view.db
    zone = f"refuse-{uuid.uuid4().hex[:8]}"
    bad_dev, good_dev, other_dev = f"{zone}-bad", f"{zone}-good", f"{zone}-other"
    start = dlq_end(kafka_config)

    def reading(dev, value):
        token = str(uuid.uuid4())
        return token, envelope(iot_pb2, token, device_id=dev, zone=zone, type="temperature",
                               value=value, unit="C", ts_ms=now_ms(), firmware="1.0.0")

    with stack_consumers_stopped(stack):
        good = []
        for i in range(5):  # before the bad one in partition 0
            token, value = reading(good_dev, float(i))
            produce(kafka_config, "sensor-telemetry", 0, good_dev.encode(), value)
            good.append(token)
        bad_token, value = reading(bad_dev, 99.0)
        bad_off = produce(kafka_config, "sensor-telemetry", 0, bad_dev.encode(), value)
        for i in range(20):  # after it, same partition
            token, value = reading(good_dev, float(10 + i))
            produce(kafka_config, "sensor-telemetry", 0, good_dev.encode(), value)
            good.append(token)
        for i in range(10):  # another partition, same batches
            token, value = reading(other_dev, float(50 + i))
            produce(kafka_config, "sensor-telemetry", 1, other_dev.encode(), value)
            good.append(token)
        pc = PrivateConsumer(stack, tmp_path, "consumer-refuse",
                             PW_TEST_FAULT=f"refuse_device:{bad_dev}")
        try:
            stored = wait_until(lambda: len(find_ids(db.telemetry, good)) == len(good) or None,
                                STORE_TIMEOUT_S, 1.0)
            assert stored, pc.log.read_text()[-3000:]
            letters = wait_until(
                lambda: dlq_letters(kafka_config, start, "sensor-telemetry", 0).get(bad_off),
                60, 2.0)
            assert letters and len(letters) == 1, letters
            headers, _ = letters[0]
            assert headers["pw-dlq-reason"] == "store_refused"
            assert "$refused" in headers["pw-dlq-detail"], headers
            assert pc.metric("pw_consumer_dead_lettered_total", reason="store_refused") == 1
            assert pc.metric("pw_consumer_isolation_writes_total") >= 2
            assert pc.metric("pw_consumer_paused") == 0
            # nothing of the refused record is stored
            assert db.telemetry.find_one({"_id": bad_token}) is None
            assert db.ingest_tokens.find_one({"_id": bad_token}) is None
            assert find_devices(db.telemetry, [bad_dev]) == []
            assert pc.stop() == 0
        finally:
            pc.stop(signal.SIGKILL)
        assert pc.sanitizer_reports() == []
    # each good reading once, the views agree with the raw documents
    docs = find_devices(db.telemetry, [good_dev, other_dev], {"_id": 1})
    assert sorted(d["_id"] for d in docs) == sorted(good)
    from test_consumer_faults import assert_views_match
    assert_views_match(stack, store_view, zone)


def test_a_record_refused_after_its_gate_insert_leaves_nothing_and_replays_once(
        stack, store_view, kafka_config, iot_pb2, tmp_path):
    """The store takes the gate entry but refuses the raw reading: the consumer
    removes the gate entry again, so the dead letter, once replayed with the
    cause gone, is stored exactly once."""
    from test_dlq_tool import dlq
    db = store_view.db
    zone = f"refraw-{uuid.uuid4().hex[:8]}"
    bad_dev, good_dev = f"{zone}-bad", f"{zone}-good"
    start = dlq_end(kafka_config)
    tokens = {}
    with stack_consumers_stopped(stack):
        for dev, n in ((good_dev, 3), (bad_dev, 1), (good_dev, 3)):
            for _ in range(n):
                token = str(uuid.uuid4())
                off = produce(kafka_config, "sensor-telemetry", 2, dev.encode(), envelope(
                    iot_pb2, token, device_id=dev, zone=zone, type="temperature",
                    value=float(len(tokens)), unit="C", ts_ms=now_ms(), firmware="1.0.0"))
                tokens[token] = (dev, off)
        bad_token, (_, bad_off) = next((t, v) for t, v in tokens.items() if v[0] == bad_dev)
        good = [t for t, v in tokens.items() if v[0] == good_dev]
        pc = PrivateConsumer(stack, tmp_path, "consumer-refuse-raw",
                             PW_TEST_FAULT=f"refuse_raw_device:{bad_dev}")
        try:
            assert wait_until(lambda: len(find_ids(db.telemetry, good)) == len(good) or None,
                              STORE_TIMEOUT_S, 1.0), pc.log.read_text()[-3000:]
            letters = wait_until(
                lambda: dlq_letters(kafka_config, start, "sensor-telemetry", 2).get(bad_off),
                60, 2.0)
            assert letters and len(letters) == 1, letters
            assert letters[0][0]["pw-dlq-reason"] == "store_refused"
            # the gate entry the store took is gone again, no raw reading
            assert db.ingest_tokens.find_one({"_id": bad_token}) is None
            assert db.telemetry.find_one({"_id": bad_token}) is None
            assert pc.stop() == 0
        finally:
            pc.stop(signal.SIGKILL)
        assert pc.sanitizer_reports() == []
    # the cause is gone (the stack's consumers do not refuse it): replay it
    for _ in range(2):  # twice: the second replay stores nothing new
        r = dlq(stack, "replay", "--reason", "store_refused", "--topic", "sensor-telemetry")
        assert r.returncode == 0, r.stdout + r.stderr
        assert wait_until(lambda: db.telemetry.find_one({"_id": bad_token}), STORE_TIMEOUT_S, 1.0)
        time.sleep(3)
        assert db.telemetry.count_documents({"_id": bad_token}) == 1
        assert db.ingest_tokens.count_documents({"_id": bad_token}) == 1
    docs = find_devices(db.telemetry, [good_dev, bad_dev], {"_id": 1})
    assert sorted(d["_id"] for d in docs) == sorted(tokens)
    from test_consumer_faults import assert_views_match
    assert_views_match(stack, store_view, zone)


def test_an_unwritable_dlq_pauses_the_consumer_and_loses_nothing_on_rebalance_and_sigterm(
        stack, store_view, kafka_config, iot_pb2, tmp_path):
    db = store_view.db
    zone = f"dlqdown-{uuid.uuid4().hex[:8]}"
    dev = f"{zone}-d"
    start = dlq_end(kafka_config)
    with stack_consumers_stopped(stack):
        before = str(uuid.uuid4())
        produce(kafka_config, "sensor-telemetry", 1, dev.encode(), envelope(
            iot_pb2, before, device_id=dev, zone=zone, type="temperature", value=1.0, unit="C",
            ts_ms=now_ms(), firmware="1.0.0"))
        poison = b"\x08\x96\x01 not an envelope \xff"
        bad_off = produce(kafka_config, "sensor-telemetry", 1, dev.encode(), poison)
        after = str(uuid.uuid4())
        produce(kafka_config, "sensor-telemetry", 1, dev.encode(), envelope(
            iot_pb2, after, device_id=dev, zone=zone, type="temperature", value=2.0, unit="C",
            ts_ms=now_ms(), firmware="1.0.0"))
        # a DLQ topic that does not exist (topics are not created on demand)
        a = PrivateConsumer(stack, tmp_path, "consumer-dlq-down",
                            PW_TOPIC_DLQ=f"sensor-dlq-missing-{uuid.uuid4().hex[:6]}")
        b = None
        try:
            assert wait_until(lambda: a.metric("pw_consumer_dlq_unavailable") == 1, 90, 1.0), \
                a.log.read_text()[-3000:]
            status, text = a.ready()
            assert status == 503 and "dead letters" in text, (status, text)
            assert a.metric("pw_consumer_paused") == 1
            # storing does not wait for the DLQ: both good readings are stored
            assert len(find_ids(db.telemetry, [before, after])) == 2
            # a rebalance while the DLQ is down: a healthy consumer joins
            b = PrivateConsumer(stack, tmp_path, "consumer-dlq-up")
            assert wait_until(lambda: b.metric("pw_consumer_stored_total") >= 0 and
                              b.ready()[0] == 200, 60, 1.0), b.log.read_text()[-3000:]
            time.sleep(5)
            assert a.proc.poll() is None, a.log.read_text()[-3000:]
            # SIGTERM while paused: a clean exit, then b owns everything
            assert a.stop(signal.SIGTERM, timeout=90) == 0, a.log.read_text()[-3000:]
            letters = wait_until(
                lambda: dlq_letters(kafka_config, start, "sensor-telemetry", 1).get(bad_off),
                STORE_TIMEOUT_S, 2.0)
            assert letters and len(letters) == 1, letters
            assert letters[0][0]["pw-dlq-reason"] == "undecodable"
            assert letters[0][1] == poison
            assert wait_until(lambda: b.metric("pw_consumer_lag") == 0, 60, 1.0)
            assert b.stop() == 0
        finally:
            a.stop(signal.SIGKILL)
            if b is not None:
                b.stop(signal.SIGKILL)
        assert a.sanitizer_reports() == [] and b.sanitizer_reports() == []
    for token in (before, after):
        assert db.telemetry.count_documents({"_id": token}) == 1
    assert len(find_devices(db.telemetry, [dev])) == 2


def lag_series(url):
    try:
        text = requests.get(f"{url}/metrics", timeout=5).text
    except requests.RequestException:
        return None
    return [(m.group(1), int(m.group(2))) for m in
            re.finditer(r'^pw_consumer_lag\{topic="([^"]+)",partition="(\d+)"\}', text, re.M)]


def owned_lag_series(stack, urls):
    """(topic, partition) -> the consumers exporting its lag, when every
    consumer answers."""
    out = {}
    for url in urls:
        series = lag_series(url)
        if series is None:
            return None
        for tp in series:
            out.setdefault(tp, []).append(url)
    return out


def all_partitions():
    return {("sensor-telemetry", p) for p in range(3)} | {("sensor-alerts", p) for p in range(2)}


def test_after_a_rebalance_each_partition_lag_is_exported_by_its_owner_only(stack):
    urls = stack.consumer_urls

    def settled(live):
        owned = owned_lag_series(stack, live)
        if owned is None or set(owned) != all_partitions():
            return None
        return owned if all(len(v) == 1 for v in owned.values()) else None

    assert wait_until(lambda: settled(urls), 60, 1.0), owned_lag_series(stack, urls)
    stack.stop_service("consumer-3")
    try:
        got = wait_until(lambda: settled(urls[:2]), 60, 1.0)
        assert got, owned_lag_series(stack, urls[:2])
    finally:
        stack.start("consumer-3")
    got = wait_until(lambda: (o := settled(urls)) and
                     any(urls[2] in v for v in o.values()) and o, 90, 1.0)
    assert got, owned_lag_series(stack, urls)


def packed_len(doc):
    """Length of a bucket's packed state before deflating (its prefix)."""
    state = doc.get("state") if doc else None
    if state is None or getattr(state, "subtype", 0) != 0x80:
        return 0  # absent, or an undeflated state of an older version
    return int.from_bytes(bytes(state)[:4], "little")


def partition_with_room(db):
    """A telemetry partition whose bucket of this hour has room for new cells."""
    hour_ms = int(time.time() // 3600 * 3600 * 1000)
    for p in range(TELEMETRY_PARTITIONS):
        doc = db.rollup_readings.find_one({"_id": f"h|{hour_ms}|sensor-telemetry:{p}"})
        if packed_len(doc) < STATE_BUDGET // 2:
            return p
    return None


def rollup_docs(db, partition, day):
    """The reading buckets of a telemetry partition for a UTC day (hour and day)."""
    tp = f"sensor-telemetry:{partition}"
    return [d for d in db.rollup_readings.find({"day": day}) if d.get("tp") == tp]


# last: once the flood has filled a partition's bucket of this hour, zones new
# to that bucket are counted in its overflow cell until the hour ends, which
# other tests' fresh zones would see
@pytest.mark.last
def test_one_sensor_flooding_zones_keeps_every_document_bounded(stack, store_view):
    db = store_view.db
    tag = uuid.uuid4().hex[:6]
    steady_zone, new_zone = f"steady-{tag}", f"new-after-flood-{tag}"
    # the flood comes through one API key, the steady sensor through another
    key, steady_key = stack.keys["sensor-c"], stack.keys["sensor-b"]
    # the whole test in one UTC hour (a new hour's bucket starts empty)
    into_hour = time.time() % 3600
    if into_hour > 3600 - 150:
        time.sleep(3600 - into_hour + 1)
    part = partition_with_room(db)
    if part is None:  # every bucket of this hour is full already (an earlier flood)
        time.sleep(3600 - time.time() % 3600 + 1)
        part = 0
    steady_dev = device_on(part, f"steady-{tag}")
    flood_dev = device_on(part, f"flood-{tag}")
    # the steady sensor's zone is in this hour's bucket before the flood
    first = post_accepted(stack, "/v1/telemetry", [
        {"device_id": steady_dev, "zone": steady_zone, "type": "temperature", "value": 20.0,
         "unit": "C"}], key=steady_key)
    assert wait_until(lambda: find_ids(db.telemetry, first), STORE_TIMEOUT_S, 0.5)

    accepted, n, started = [], 0, time.time()
    while time.time() - started < 60:
        body = [{"device_id": flood_dev, "type": "temperature", "value": float(i % 50),
                 "unit": "C",
                 "zone": f"Überflutung-炉-{tag}-{n + i:06d}-" + "😀" * 20} for i in range(100)]
        t0 = time.time()
        r = requests.post(f"{stack.gateway_url}/v1/telemetry", json=body,
                          headers={"apikey": key}, timeout=30)
        if r.status_code == 202:
            accepted += r.json()["ids"]
            n += 100
        else:
            assert r.status_code == 429, r.text
        time.sleep(max(0.0, 0.2 - (time.time() - t0)))  # 5 requests/s, the gateway's limit
    flood_end = time.time()
    assert len(accepted) >= 20_000, len(accepted)
    # after the flood: the established zone, and a zone new to the bucket
    last = post_accepted(stack, "/v1/telemetry", [
        {"device_id": steady_dev, "zone": steady_zone, "type": "temperature", "value": 40.0,
         "unit": "C"},
        {"device_id": steady_dev, "zone": new_zone, "type": "temperature", "value": 30.0,
         "unit": "C"}], key=steady_key)

    def zone_view(zone):
        r = requests.get(f"{stack.metrics_url}/v1/metrics/temperature/zones",
                         params={"zone": zone, "window_hours": 24}, timeout=10)
        zones = r.json().get("zones", []) if r.status_code == 200 else []
        return zones[0] if zones else None

    def steady_in_view():
        z, n = zone_view(steady_zone), zone_view(new_zone)
        return z and n and z["count"] == 2 and n["count"] == 1 and (z, n)

    got = wait_until(steady_in_view, 10, 0.25)
    seen_after = time.time() - flood_end
    assert got, (f"the other key's readings were not in the views {seen_after:.1f} s after the "
                 f"flood: {zone_view(steady_zone)}, {zone_view(new_zone)}")
    z, n = got
    assert z["max_c"] == 40.0 and z["min_c"] == 20.0
    assert n["max_c"] == 30.0 and n["min_c"] == 30.0
    assert len(find_ids(db.telemetry, last)) == 2
    # every flood reading is stored once
    assert wait_until(lambda: db.telemetry.count_documents({"device": flood_dev}) ==
                      len(accepted), STORE_TIMEOUT_S, 1.0)
    from test_consumer_exactly_once import consumer_metric
    assert wait_until(lambda: consumer_metric(stack, "pw_consumer_lag") == 0, 60, 1.0)
    assert consumer_metric(stack, "pw_consumer_rollup_overflow_total") > 0
    # no bucket of the partition exceeds the bound
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    docs = rollup_docs(db, part, day)
    assert docs
    sizes = sorted(len(bson.encode(d)) for d in docs)
    assert sizes[-1] <= DOC_BOUND, sizes[-3:]
    # the flood filled its key's share of the hour's bucket (a quarter of the
    # budget; cells are accounted above their packed size, so the packed
    # state ends a little below it)
    hour_ms = int(time.time() // 3600 * 3600 * 1000)
    hour = db.rollup_readings.find_one({"_id": f"h|{hour_ms}|sensor-telemetry:{part}"})
    assert KEY_SHARE // 2 < packed_len(hour) <= STATE_BUDGET, packed_len(hour)
    # its overflow shows as zone (other) in the view, with the flood's values
    r = requests.get(f"{stack.metrics_url}/v1/metrics/temperature/zones",
                     params={"window_hours": 1}, timeout=10)
    other = [z for z in r.json()["zones"] if z["zone"] == "(other)"]
    assert other and other[0]["count"] > 0 and other[0]["max_c"] <= 49.0, other
