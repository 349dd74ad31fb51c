"""Producer ingest, end to end through real Kafka: a posted reading or alert is
in its topic with the right key, headers and envelope fields before the 202;
batches, idempotency keys, gRPC unary and streaming, metrics and readiness.

The producer is addressed directly (127.0.0.1:8081 / :50051) where the test is
about the producer itself, and through the gateway where the consumer name
must come from the API key."""
import calendar
import hashlib
import os
import time
import types
import uuid

import pytest
import requests
from confluent_kafka import Consumer, TopicPartition

from conftest import trusted_channel, trusted_headers

TELEMETRY = "sensor-telemetry"
ALERTS = "sensor-alerts"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def target(request):
    """The producer under test (PW_TEST_PRODUCER_URL/_GRPC override the stack's)."""
    url = os.environ.get("PW_TEST_PRODUCER_URL")
    if url:
        return types.SimpleNamespace(rest=url, grpc=os.environ["PW_TEST_PRODUCER_GRPC"],
                                     gateway=None, keys={})
    s = request.getfixturevalue("stack")
    return types.SimpleNamespace(rest=s.producer_urls[0], grpc=s.producer_grpc[0],
                                 gateway=s.gateway_url, keys=s.keys)


@pytest.fixture(scope="module")
def kafka(kafka_config):
    c = Consumer(kafka_config("admin", **{"group.id": f"pw-test-producer-{uuid.uuid4()}",
                                           "enable.auto.commit": False}))
    yield c
    c.close()


def highs(consumer, topic):
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.partitions}


def records_since(consumer, topic, start, tokens):
    """Reads topic from the offsets in start until every token was seen;
    returns {token: message}."""
    want = set(tokens)
    found = {}
    consumer.assign([TopicPartition(topic, p, off) for p, off in start.items()])
    deadline = time.time() + 30
    while want - found.keys() and time.time() < deadline:
        for msg in consumer.consume(500, timeout=1.0):
            if msg.error():
                continue
            hdrs = dict(msg.headers() or [])
            tok = hdrs.get("pw-token", b"").decode()
            if tok in want:
                found[tok] = msg
    consumer.unassign()
    return found


def reading(device="dev-sys-1", **over):
    r = {"device_id": device, "zone": "zone-sys", "type": "temperature", "value": 21.25,
         "unit": "C", "firmware": "1.4.2"}
    r.update(over)
    return r


def post(url, body, headers=None, path="/v1/telemetry"):
    return requests.post(url + path, json=body, headers=trusted_headers({**JSON, **(headers or {})}),
                         timeout=30)


def test_single_reading_reaches_kafka_before_202(target, kafka, iot_pb2):
    start = highs(kafka, TELEMETRY)
    before_ms = int(time.time() * 1000)
    ts_ms = before_ms - 5000
    r = post(target.rest, reading(ts=ts_ms), {"X-Consumer-Username": "sensor-direct"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 1 and len(body["ids"]) == 1
    token = body["ids"][0]
    assert str(uuid.UUID(token)) == token
    # the broker already has it: the high watermark moved before we looked
    assert sum(highs(kafka, TELEMETRY).values()) >= sum(start.values()) + 1
    msg = records_since(kafka, TELEMETRY, start, [token])[token]
    assert msg.key() == b"dev-sys-1"
    hdrs = dict(msg.headers())
    assert hdrs["pw-token"] == token.encode()
    assert hdrs["pw-schema"] == b"1"
    assert hdrs["content-type"] == b"application/x-protobuf"
    env = iot_pb2.telemetry_pb2.Envelope()
    env.ParseFromString(msg.value())
    assert env.token == token
    assert env.consumer == "sensor-direct"
    assert env.source == iot_pb2.telemetry_pb2.SOURCE_REST
    assert env.schema_version == 1
    assert env.received_ms >= before_ms - 1000
    assert env.WhichOneof("payload") == "reading"
    assert env.reading.device_id == "dev-sys-1"
    assert env.reading.zone == "zone-sys"
    assert env.reading.type == "temperature"
    assert env.reading.value == 21.25
    assert env.reading.unit == "C"
    assert env.reading.firmware == "1.4.2"
    assert env.reading.ts_ms == ts_ms


def test_rfc3339_timestamp_and_default_consumer(target, kafka, iot_pb2):
    start = highs(kafka, TELEMETRY)
    now = time.gmtime(time.time() - 60)
    ts = time.strftime("%Y-%m-%dT%H:%M:%S.250Z", now)
    r = post(target.rest, reading(device="dev-ts", ts=ts))
    assert r.status_code == 202, r.text
    token = r.json()["ids"][0]
    env = iot_pb2.telemetry_pb2.Envelope()
    env.ParseFromString(records_since(kafka, TELEMETRY, start, [token])[token].value())
    assert env.consumer == "anonymous"
    assert env.reading.ts_ms == calendar.timegm(now) * 1000 + 250


def test_alert_goes_to_alerts_topic(target, kafka, iot_pb2):
    start = highs(kafka, ALERTS)
    alert = {"device_id": "dev-alert-1", "zone": "zone-sys", "severity": "critical",
             "code": "OVERTEMP", "message": "bearing too hot", "firmware": "2.0.0"}
    r = post(target.rest, [alert, dict(alert, severity="info")], path="/v1/alerts")
    assert r.status_code == 202, r.text
    ids = r.json()["ids"]
    assert r.json()["accepted"] == 2 and len(set(ids)) == 2
    found = records_since(kafka, ALERTS, start, ids)
    assert set(found) == set(ids)
    env = iot_pb2.telemetry_pb2.Envelope()
    env.ParseFromString(found[ids[0]].value())
    assert env.WhichOneof("payload") == "alert"
    assert env.alert.severity == iot_pb2.telemetry_pb2.SEVERITY_CRITICAL
    assert env.alert.code == "OVERTEMP"
    assert found[ids[0]].key() == b"dev-alert-1"


def test_batch_of_1000(target, kafka):
    start = highs(kafka, TELEMETRY)
    batch = [reading(device=f"dev-batch-{i % 37}", value=float(i)) for i in range(1000)]
    r = post(target.rest, batch)
    assert r.status_code == 202, r.text
    ids = r.json()["ids"]
    assert r.json()["accepted"] == 1000 and len(set(ids)) == 1000
    assert sum(highs(kafka, TELEMETRY).values()) - sum(start.values()) >= 1000
    found = records_since(kafka, TELEMETRY, start, ids)
    assert len(found) == 1000
    # per-device order: one device's records share one partition
    parts = {}
    for m in found.values():
        parts.setdefault(m.key(), set()).add(m.partition())
    assert all(len(p) == 1 for p in parts.values())


def test_idempotency_key_maps_retries_to_same_tokens(target):
    key = f"retry-{uuid.uuid4()}"
    body = [reading(device="dev-idem-1"), reading(device="dev-idem-2")]
    h = {"Idempotency-Key": key, "X-Consumer-Username": "sensor-a"}
    first = post(target.rest, body, h)
    second = post(target.rest, body, h)
    assert first.status_code == second.status_code == 202
    assert first.json()["ids"] == second.json()["ids"]
    assert len(set(first.json()["ids"])) == 2
    other_consumer = post(target.rest, body, {**h, "X-Consumer-Username": "sensor-b"})
    other_key = post(target.rest, body, {**h, "Idempotency-Key": key + "x"})
    no_key = post(target.rest, body, {"X-Consumer-Username": "sensor-a"})
    for r in (other_consumer, other_key, no_key):
        assert r.status_code == 202
        assert not set(r.json()["ids"]) & set(first.json()["ids"])
    assert uuid.UUID(first.json()["ids"][0]).version == 5


def test_through_gateway_consumer_name_from_key(target, kafka, iot_pb2):
    if not target.gateway:
        pytest.skip("no gateway in this run")
    name, key = sorted(target.keys.items())[0]
    start = highs(kafka, TELEMETRY)
    r = requests.post(target.gateway + "/v1/telemetry", json=reading(device="dev-gw"),
                      headers={**JSON, "apikey": key, "X-Consumer-Username": "spoofed"},
                      timeout=30)
    assert r.status_code == 202, r.text
    token = r.json()["ids"][0]
    env = iot_pb2.telemetry_pb2.Envelope()
    env.ParseFromString(records_since(kafka, TELEMETRY, start, [token])[token].value())
    assert env.consumer == name


def grpc_stub(target, iot_pb2):
    ch = trusted_channel(target.grpc)
    return ch, iot_pb2.ingest_pb2_grpc.IngestServiceStub(ch)


def pb_reading(iot_pb2, device, value=1.5, ts_ms=0):
    return iot_pb2.telemetry_pb2.Reading(device_id=device, zone="zone-grpc", type="pressure",
                                         value=value, unit="hPa", ts_ms=ts_ms, firmware="3.1")


def test_grpc_unary_publish(target, kafka, iot_pb2):
    ch, stub = grpc_stub(target, iot_pb2)
    start, astart = highs(kafka, TELEMETRY), highs(kafka, ALERTS)
    alert = iot_pb2.telemetry_pb2.Alert(device_id="dev-grpc-a", zone="zone-grpc",
                                        severity=iot_pb2.telemetry_pb2.SEVERITY_WARNING,
                                        code="LOW", message="low pressure")
    req = iot_pb2.ingest_pb2.PublishRequest(
        readings=[pb_reading(iot_pb2, "dev-grpc-1"), pb_reading(iot_pb2, "dev-grpc-2", 2.5)],
        alerts=[alert])
    before = int(time.time() * 1000)
    resp = stub.Publish(req, metadata=[("x-consumer-username", "sensor-grpc")], timeout=30)
    assert resp.accepted == 3 and len(resp.ids) == 3
    found = records_since(kafka, TELEMETRY, start, resp.ids[:2])
    assert set(found) == set(resp.ids[:2])
    env = iot_pb2.telemetry_pb2.Envelope()
    env.ParseFromString(found[resp.ids[1]].value())
    assert env.source == iot_pb2.telemetry_pb2.SOURCE_GRPC
    assert env.consumer == "sensor-grpc"
    assert env.reading.value == 2.5
    assert env.reading.ts_ms >= before - 1000  # ts 0 = receive time
    assert resp.ids[2] in records_since(kafka, ALERTS, astart, [resp.ids[2]])
    # idempotency key in the request: same tokens on retry
    req.idempotency_key = f"grpc-{uuid.uuid4()}"
    a = stub.Publish(req, timeout=30)
    b = stub.Publish(req, timeout=30)
    assert list(a.ids) == list(b.ids)
    ch.close()


TOKEN_NAMESPACE = uuid.UUID("09a89147-e267-4079-a5b6-ff85d2fed1ac")


def derived_token(consumer, key, item, kind="reading", occurrence=0, position=None):
    """The documented token of an item sent with an idempotency key (docs/producer.md)."""
    digest = hashlib.sha256(item.SerializeToString()).hexdigest()[:32]
    scoped = f"{key}\x1f{digest}" + (f"\x1fm{position}" if position is not None else "")
    return str(uuid.uuid5(TOKEN_NAMESPACE, "\x1f".join([consumer, scoped, kind,
                                                          str(occurrence)])))


def test_grpc_stream_publish(target, kafka, iot_pb2):
    ch, stub = grpc_stub(target, iot_pb2)
    start = highs(kafka, TELEMETRY)
    msgs = [iot_pb2.ingest_pb2.PublishRequest(
        readings=[pb_reading(iot_pb2, f"dev-stream-{j}", float(i)) for j in range(10)])
        for i in range(20)]

    key = f"stream-{uuid.uuid4()}"
    resp = stub.PublishStream(iter(msgs), metadata=[("idempotency-key", key)], timeout=60)
    # the answer does not grow with the stream: counts plus a digest of the tokens
    assert (resp.accepted, resp.failed, resp.messages, len(resp.ids)) == (200, 0, 20, 0)
    tokens = [derived_token("anonymous", key, r, position=i)
              for i, m in enumerate(msgs) for r in m.readings]
    assert len(set(tokens)) == 200
    assert resp.digest == hashlib.sha256("".join(t + "\n" for t in tokens).encode()).hexdigest()
    assert len(records_since(kafka, TELEMETRY, start, tokens)) == 200
    again = stub.PublishStream(iter(msgs), metadata=[("idempotency-key", key)], timeout=60)
    assert again.digest == resp.digest and again.accepted == 200
    ch.close()


def metric(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_and_probes(target):
    assert requests.get(target.rest + "/healthz", timeout=5).status_code == 200
    assert requests.get(target.rest + "/readyz", timeout=5).status_code == 200
    m0 = requests.get(target.rest + "/metrics", timeout=5).text
    assert post(target.rest, reading(device="dev-metrics")).status_code == 202
    assert post(target.rest, {"broken": True}).status_code == 400
    m1 = requests.get(target.rest + "/metrics", timeout=5).text
    route = {"route": "/v1/telemetry", "method": "POST"}
    assert metric(m1, "pw_http_requests_total", status="202", **route) == \
        metric(m0, "pw_http_requests_total", status="202", **route) + 1
    assert metric(m1, "pw_http_requests_total", status="400", **route) == \
        metric(m0, "pw_http_requests_total", status="400", **route) + 1
    assert metric(m1, "pw_messages_accepted_total", topic=TELEMETRY) >= \
        metric(m0, "pw_messages_accepted_total", topic=TELEMETRY) + 1
    assert metric(m1, "pw_delivery_latency_seconds_count") >= 1
    assert "pw_kafka_queue_depth" in m1
    r = requests.put(target.rest + "/metrics", timeout=5)
    assert r.status_code == 405 and "GET" in r.headers["Allow"]
