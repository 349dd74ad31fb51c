"""The DLQ tool (`./plantwatch dlq`): `list` shows exactly the dead letters the
consumer wrote, with their reason and origin; `replay` publishes a dead letter
back to its source topic byte for byte, the consumer stores it once, and a
second replay stores nothing more (the envelope token dedupes it); targets
other than the telemetry and alerts topics are refused; bad arguments, an
unreachable Kafka and SIGINT end with clear messages and exit codes."""
import datetime
import json
import os
import re
import signal
import subprocess
import time
import uuid

from confluent_kafka import (Consumer, ConsumerGroupTopicPartitions, KafkaError,
                             TopicPartition)
from confluent_kafka.admin import AdminClient

from conftest import wait_until
from test_consumer_storage import envelope
from test_consumer_storage import produce as storage_produce

TELEMETRY = "sensor-telemetry"
DLQ = "sensor-dlq"
GROUP = "plantwatch-consumers"
UTC = datetime.timezone.utc


def dlq(stack, *args, timeout=120):
    """Runs ./plantwatch dlq ARGS; returns the CompletedProcess (text)."""
    return subprocess.run([str(stack.root / "plantwatch"), "dlq", *args], capture_output=True,
                          text=True, timeout=timeout)


def dlq_json(stack, *args):
    proc = dlq(stack, "list", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def produce(kafka_config, user, topic, partition, key, value, headers=()):
    return storage_produce(kafka_config, topic, partition, key, value, headers, user=user)


def high_watermark(kafka_config, topic, partition):
    c = Consumer(kafka_config("admin", **{"group.id": "pw-test-dlq-tool-marks"}))
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
    finally:
        c.close()


def records_from(kafka_config, topic, partition, start, key):
    """The records with this key in one partition from offset start to its end."""
    c = Consumer(kafka_config("admin", **{"group.id": f"pw-test-dlq-tool-{uuid.uuid4().hex[:6]}",
                                          "enable.auto.commit": False,
                                          "enable.partition.eof": True}))
    c.assign([TopicPartition(topic, partition, start)])
    out = []
    try:
        while True:
            m = c.poll(10)
            if m is None or (m.error() and m.error().code() == KafkaError._PARTITION_EOF):
                break
            if not m.error() and m.key() == key:
                out.append(m)
    finally:
        c.close()
    return out


def committed(kafka_config, topic, partition):
    admin = AdminClient(kafka_config("admin"))
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(GROUP)])[GROUP].result()
    return {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions}.get(
        (topic, partition), -1)


def dead_letter_headers(reason, topic, partition, offset, original=()):
    """The headers the consumer puts on a dead letter (see src/consumer/dlq.c)."""
    return [*original, ("pw-dlq-reason", reason), ("pw-dlq-detail", "store timed out"),
            ("pw-source-topic", topic), ("pw-source-partition", str(partition)),
            ("pw-source-offset", str(offset))]


def test_list_shows_exactly_the_dead_letters_with_reason_and_origin(
        stack, mongo_db, kafka_config, iot_pb2):
    tag = uuid.uuid4().hex[:8]
    bad_key, good_key = f"dlqtool-bad-{tag}".encode(), f"dlqtool-good-{tag}".encode()
    zone = f"dlqtool-{tag}"
    corrupt = [b"\x08\x96\x01 not an envelope %d \xff\xff" % i for i in range(3)]
    bad = {produce(kafka_config, "producer", TELEMETRY, 0, bad_key, v): v for v in corrupt}
    now_ms = int(time.time() * 1000)
    tokens = [str(uuid.uuid4()) for _ in range(2)]
    good = [produce(kafka_config, "producer", TELEMETRY, 0, good_key, envelope(
        iot_pb2, t, device_id=good_key.decode(), zone=zone, type="temperature", value=20.0 + i,
        unit="C", ts_ms=now_ms, firmware="1.0.0")) for i, t in enumerate(tokens)]

    def ours():
        found = [d for d in dlq_json(stack, "--reason", "undecodable", "--topic", TELEMETRY)
                 if d["key"] == bad_key.decode()]
        return found if len(found) >= len(bad) else None

    found = wait_until(ours, 120, 2.0)
    assert found, "the undecodable records did not show up in `dlq list`"
    assert len(found) == len(bad)
    assert {d["origin"] for d in found} == {f"{TELEMETRY}:0:{o}" for o in bad}
    for d in found:
        assert d["reason"] == "undecodable"
        assert d["detail"]
        assert d["source_topic"] == TELEMETRY and d["source_partition"] == 0
        assert d["value_bytes"] == len(bad[d["source_offset"]])
        assert d["dlq_partition"] == 0 and d["dlq_offset"] >= 0
        when = datetime.datetime.fromisoformat(d["time"].replace("Z", "+00:00"))
        assert abs((datetime.datetime.now(UTC) - when).total_seconds()) < 600

    # the valid records were stored, not dead-lettered
    assert wait_until(lambda: mongo_db.telemetry.count_documents({"zone": zone}) == 2, 120)
    everything = dlq_json(stack)
    origins = {d["origin"] for d in everything}
    assert not origins & {f"{TELEMETRY}:0:{o}" for o in good}
    assert not [d for d in everything if d["key"] == good_key.decode()]

    # the text form: one line per dead letter with partition:offset, origin and key, then a count
    proc = dlq(stack, "list", "--reason", "undecodable", "--topic", TELEMETRY)
    assert proc.returncode == 0, proc.stderr
    for d in found:
        line = next(ln for ln in proc.stdout.splitlines()
                    if ln.startswith(f"{d['dlq_partition']}:{d['dlq_offset']} "))
        assert " undecodable " in line and f" {d['origin']} " in line
        assert line.endswith(f'key="{bad_key.decode()}"')
    assert "by reason:" in proc.stdout
    assert re.search(r"^\s+undecodable\s+\d+$", proc.stdout, re.M)

    assert len(dlq_json(stack, "--limit", "1")) == 1


def test_replay_stores_a_dead_letter_once_and_a_second_replay_adds_nothing(
        stack, mongo_db, kafka_config, iot_pb2):
    tag = uuid.uuid4().hex[:8]
    reason = f"transient-{tag}"
    zone, device, token = f"replay-{tag}", f"replay-dev-{tag}", str(uuid.uuid4())
    key = device.encode()
    value = envelope(iot_pb2, token, device_id=device, zone=zone, type="temperature", value=42.5,
                     unit="C", ts_ms=int(time.time() * 1000), firmware="2.0.0")
    # as the consumer would have written it after a transient failure (the source offset is
    # made up: the original never reached the store)
    dlq_off = produce(kafka_config, "consumer", DLQ, 0, key, value, dead_letter_headers(
        reason, TELEMETRY, 1, 987654321, original=[("x-test", b"kept"), ("pw-token", b"t")]))
    mark = high_watermark(kafka_config, TELEMETRY, 1)

    dry = dlq(stack, "replay", "--reason", reason, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would replay 0:{dlq_off} to {TELEMETRY} [1]" in dry.stdout
    assert "dry run: 1 would be replayed, 0 skipped" in dry.stdout

    first = dlq(stack, "replay", "--reason", reason)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "replayed 1, failed 0, skipped 0 (1 selected" in first.stdout
    assert "replay: " in first.stderr  # progress line

    stored = wait_until(lambda: mongo_db.telemetry.find_one({"_id": token}), 120)
    assert stored, "the replayed dead letter was not stored"
    assert stored["value"] == 42.5
    assert mongo_db.telemetry.count_documents({"zone": zone}) == 1

    # byte for byte: same partition, key and value; the original headers without the
    # DLQ's own, plus where it came from (the dry run published nothing)
    replayed = records_from(kafka_config, TELEMETRY, 1, mark, key)
    assert len(replayed) == 1
    rec = replayed[0]
    assert rec.value() == value
    assert rec.headers() == [("x-test", b"kept"), ("pw-token", b"t"),
                             ("pw-dlq-replayed-from", f"0:{dlq_off}".encode())]
    assert stored["origin"] == f"{TELEMETRY}:1:{rec.offset()}"

    second = dlq(stack, "replay", "--reason", reason)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "replayed 1, failed 0, skipped 0" in second.stdout
    replayed = records_from(kafka_config, TELEMETRY, 1, mark, key)
    assert len(replayed) == 2
    last = replayed[-1].offset()
    assert wait_until(lambda: committed(kafka_config, TELEMETRY, 1) > last, 120, 1.0), \
        "the consumers did not get past the second replay"
    # the envelope token made the second delivery a duplicate
    assert mongo_db.telemetry.count_documents({"zone": zone}) == 1
    assert mongo_db.telemetry.find_one({"_id": token})["origin"] == stored["origin"]

    listed = dlq_json(stack, "--reason", reason)
    assert [(d["dlq_offset"], d["origin"]) for d in listed] == \
        [(dlq_off, f"{TELEMETRY}:1:987654321")]


def test_replay_refuses_targets_other_than_the_source_topics(stack, kafka_config):
    reason = f"foreign-{uuid.uuid4().hex[:8]}"
    key = reason.encode()
    off = produce(kafka_config, "consumer", DLQ, 0, key, b"payload",
                  dead_letter_headers(reason, DLQ, 0, 1))
    mark = high_watermark(kafka_config, DLQ, 0)
    proc = dlq(stack, "replay", "--reason", reason)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"refusing to replay 0:{off}" in proc.stderr
    assert f'source topic "{DLQ}" is not a replay target' in proc.stderr
    assert "replayed 0, failed 0, skipped 1" in proc.stdout
    assert records_from(kafka_config, DLQ, 0, mark, key) == []


def test_bad_arguments_and_help(stack):
    cases = [(["list", "--limit", "0"], "--limit: expected a positive integer"),
             (["list", "--dry-run"], "--dry-run is not an option of list"),
             (["replay", "--json"], "--json is not an option of replay"),
             (["list", "--reason"], "--reason needs a value"),
             (["purge"], 'unknown subcommand "purge"'),
             ([], "a subcommand is required")]
    for args, message in cases:
        proc = dlq(stack, *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
    for sub in ("list", "replay"):
        proc = dlq(stack, sub, "--help")
        assert proc.returncode == 0
        assert proc.stdout.startswith(f"usage: plantwatch-dlq {sub}")
    assert "list" in dlq(stack, "--help").stdout


def _tool(stack, **overrides):
    env = {**os.environ, **stack.service_env("dlq"), **overrides}
    build = os.environ.get("PW_BUILD", str(stack.root / "build"))
    return [os.path.join(build, "src", "dlq", "plantwatch-dlq")], env


def test_unreachable_kafka_is_a_clear_error(stack):
    cmd, env = _tool(stack, PW_KAFKA_BOOTSTRAP="127.0.0.1:1")
    t0 = time.time()
    proc = subprocess.run([*cmd, "list"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "cannot reach Kafka" in proc.stderr
    assert time.time() - t0 < 40


def test_sigint_stops_gracefully(stack):
    cmd, env = _tool(stack, PW_KAFKA_BOOTSTRAP="127.0.0.1:1")  # waits for metadata
    proc = subprocess.Popen([*cmd, "list"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert "stopped by a signal" in err
    assert "interrupted" in out
    assert time.time() - t0 < 5
