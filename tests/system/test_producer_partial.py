"""Honest partial failure and idempotency, against the real cluster and store.
A producer of our own (spare ports, the stack's Kafka credentials) gets a local
queue of 100 records, a long linger and no enqueue wait: a batch of 150 then
fails deterministically after its 100th record. The answer must name exactly
the accepted items; retrying only the rest with the same Idempotency-Key must
leave every item stored once. The same key with a different body is stored
as new (documented in docs/producer.md), never dropped."""
import os
import pathlib
import socket
import subprocess
import time
import uuid

import grpc
import pytest
import requests

from conftest import trusted_channel, trusted_headers, wait_until

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUEUE = 100
TRAILER = "pw-publish-response-bin"


def producer_binary():
    build = os.environ.get("PW_BUILD", str(ROOT / "build"))
    path = os.environ.get("PW_PRODUCER_BIN") or os.path.join(
        build, "src/producer/plantwatch-producer")
    assert os.access(path, os.X_OK), f"{path} is not built"
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tight_producer(stack, tmp_path_factory):
    http, grpc_port = free_port(), free_port()
    env = dict(os.environ, **stack.service_env("producer-1"))
    env.update(PW_HTTP_PORT=str(http), PW_GRPC_PORT=str(grpc_port),
               PW_INSTANCE="producer-partial-test", PW_QUEUE_MAX_MESSAGES=str(QUEUE),
               PW_LINGER_MS="1500", PW_ENQUEUE_TIMEOUT_MS="0", PW_DELIVERY_TIMEOUT_MS="20000",
               PW_GRPC_STREAM_MAX_RECORDS="250")
    log = open(tmp_path_factory.mktemp("partial") / "producer.log", "wb")
    proc = subprocess.Popen([producer_binary()], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{http}"

    def ready():
        assert proc.poll() is None, "the test producer exited"
        try:
            return requests.get(url + "/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    assert wait_until(ready, 60)
    yield url, f"127.0.0.1:{grpc_port}"
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def readings(zone, n, device="dev-partial"):
    return [{"device_id": f"{device}-{i % 7}", "zone": zone, "type": "temperature",
             "value": float(i), "unit": "C", "ts": int(time.time() * 1000) - 1000 - i}
            for i in range(n)]


def post(url, body, key, consumer="partial-test"):
    return requests.post(url + "/v1/telemetry", json=body, timeout=60,
                         headers=trusted_headers({"Idempotency-Key": key,
                                                  "X-Consumer-Username": consumer}))


def stored(mongo_db, zone):
    return [d["_id"] for d in mongo_db["telemetry"].find({"zone": zone}, {"_id": 1})]


def test_rest_partial_failure_names_accepted_items_and_retry_stores_once(tight_producer,
                                                                         mongo_db):
    url, _ = tight_producer
    zone = f"partial-{uuid.uuid4().hex[:8]}"
    key = f"k-{uuid.uuid4()}"
    body = readings(zone, 150)
    r = post(url, body, key)
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) >= 1
    ans = r.json()
    assert ans["accepted"] == QUEUE and ans["failed"] == 50
    ids = ans["ids"]
    assert len(ids) == 150
    assert all(isinstance(t, str) and len(t) == 36 for t in ids[:QUEUE])
    assert ids[QUEUE:] == [None] * 50
    err = ans["error"]
    assert err["code"] == "kafka_unavailable"
    assert err["details_total"] == 50 and len(err["details"]) == 20
    assert err["details"][0] == {"index": QUEUE, "reason": "not enqueued: local queue full"}
    assert [d["index"] for d in err["details"]] == list(range(QUEUE, QUEUE + 20))
    assert all(d["reason"].startswith("not sent") for d in err["details"][1:])

    # retry only the rest, same key: accepted as a whole
    rest = [body[i] for i, t in enumerate(ids) if t is None]
    r2 = post(url, rest, key)
    assert r2.status_code == 202, r2.text
    assert r2.json()["accepted"] == 50
    tokens = set(ids[:QUEUE]) | set(r2.json()["ids"])
    assert len(tokens) == 150

    # the accepted part again, same key: the same tokens, nothing stored twice
    r3 = post(url, body[:QUEUE], key)
    assert r3.status_code == 202, r3.text
    assert r3.json()["ids"] == ids[:QUEUE]

    assert wait_until(lambda: len(stored(mongo_db, zone)) >= 150, 120)
    time.sleep(5)  # let the resent duplicates reach the consumers
    got = stored(mongo_db, zone)
    assert len(got) == 150 and set(got) == tokens  # stored == sent, 0 duplicates


def test_grpc_partial_failure_in_trailer(tight_producer, iot_pb2, mongo_db):
    _, target = tight_producer
    tp = iot_pb2.telemetry_pb2
    zone = f"partial-g-{uuid.uuid4().hex[:8]}"
    now = int(time.time() * 1000)
    rs = [tp.Reading(device_id=f"dev-pg-{i % 5}", zone=zone, type="temperature",
                     value=float(i), unit="C", ts_ms=now - i) for i in range(150)]
    key = f"kg-{uuid.uuid4()}"
    req = iot_pb2.ingest_pb2.PublishRequest(readings=rs, idempotency_key=key)
    with trusted_channel(target) as ch:
        stub = iot_pb2.ingest_pb2_grpc.IngestServiceStub(ch)
        md = [("x-consumer-username", "partial-test")]
        with pytest.raises(grpc.RpcError) as exc:
            stub.Publish(req, metadata=md, timeout=60)
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "acknowledged 100 of 150 records" in exc.value.details()
        trailer = dict(exc.value.trailing_metadata())[TRAILER]
        res = iot_pb2.ingest_pb2.PublishResponse.FromString(trailer)
        assert res.accepted == 100 and res.failed == 50
        assert len(res.ids) == 150 and all(res.ids[:100]) and list(res.ids[100:]) == [""] * 50
        assert len(res.failures) == 20
        assert (res.failures[0].kind, res.failures[0].index) == ("reading", 100)
        assert res.failures[0].reason == "not enqueued: local queue full"
        rest = iot_pb2.ingest_pb2.PublishRequest(readings=rs[100:], idempotency_key=key)
        ok = stub.Publish(rest, metadata=md, timeout=60)
        assert ok.accepted == 50 and len(ok.ids) == 50 and ok.failed == 0
    tokens = set(res.ids[:100]) | set(ok.ids)
    assert len(tokens) == 150
    assert wait_until(lambda: len(stored(mongo_db, zone)) >= 150, 120)
    assert set(stored(mongo_db, zone)) == tokens


def test_stream_cap_reports_what_was_taken(tight_producer, iot_pb2):
    _, target = tight_producer
    tp = iot_pb2.telemetry_pb2
    zone = f"partial-s-{uuid.uuid4().hex[:8]}"
    now = int(time.time() * 1000)
    msgs = [iot_pb2.ingest_pb2.PublishRequest(readings=[
        tp.Reading(device_id="dev-ps", zone=zone, type="temperature", value=float(j),
                   unit="C", ts_ms=now - 100 * m - j) for j in range(100)]) for m in range(3)]
    with trusted_channel(target) as ch:
        stub = iot_pb2.ingest_pb2_grpc.IngestServiceStub(ch)
        with pytest.raises(grpc.RpcError) as exc:
            stub.PublishStream(iter(msgs), timeout=120)
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert exc.value.details().startswith("message 2: stream exceeds 250 records")
    res = iot_pb2.ingest_pb2.PublishResponse.FromString(
        dict(exc.value.trailing_metadata())[TRAILER])
    assert (res.messages, res.accepted, res.failed, len(res.ids)) == (2, 200, 0, 0)
    assert len(res.digest) == 64


def test_same_key_different_body_is_stored_as_new(stack, mongo_db):
    zone = f"idem-{uuid.uuid4().hex[:8]}"
    key = f"reuse-{uuid.uuid4()}"
    first = {"device_id": "dev-idem", "zone": zone, "type": "temperature", "value": 1.0,
             "unit": "C"}
    second = dict(first, value=2.0)
    keyhdr = sorted(stack.keys.values())[0]

    def send(body):
        for _ in range(100):
            r = requests.post(stack.gateway_url + "/v1/telemetry", json=body, timeout=60,
                              headers={"apikey": keyhdr, "Idempotency-Key": key})
            if r.status_code != 429:
                return r
            time.sleep(0.3)
        raise AssertionError("rate limited throughout")

    r1, r1b, r2 = send(first), send(first), send(second)
    assert [r.status_code for r in (r1, r1b, r2)] == [202, 202, 202]
    t1, t1b, t2 = r1.json()["ids"][0], r1b.json()["ids"][0], r2.json()["ids"][0]
    assert t1 == t1b  # an identical retry: same token, stored once
    assert t2 != t1   # a different body: a new token, stored as new
    assert wait_until(lambda: len(stored(mongo_db, zone)) >= 2, 120)
    time.sleep(3)
    docs = {d["_id"]: d["value"] for d in mongo_db["telemetry"].find({"zone": zone})}
    assert docs == {t1: 1.0, t2: 2.0}
