"""Hardening of the producer's parsers, table-driven: every malformed request
gets its exact status and error code, nothing reaches Kafka (partition high
watermarks of both topics unchanged), and the producer stays healthy.
REST cases go to the producer directly (the subject under test); gRPC cases
send raw bytes so the server's own protobuf decoding is exercised."""
import json
import os
import time
import types
import uuid

import grpc
import pytest
import requests
from confluent_kafka import Consumer, TopicPartition

from conftest import trusted_channel, trusted_headers

TOPICS = ("sensor-telemetry", "sensor-alerts")


@pytest.fixture(scope="module")
def target(request):
    url = os.environ.get("PW_TEST_PRODUCER_URL")
    if url:
        return types.SimpleNamespace(rest=url, grpc=os.environ["PW_TEST_PRODUCER_GRPC"])
    s = request.getfixturevalue("stack")
    return types.SimpleNamespace(rest=s.producer_urls[0], grpc=s.producer_grpc[0])


@pytest.fixture(scope="module")
def marks(kafka_config):
    c = Consumer(kafka_config("admin", **{"group.id": f"pw-test-hardening-{uuid.uuid4()}"}))

    def snapshot():
        out = {}
        for t in TOPICS:
            for p in c.list_topics(t, timeout=10).topics[t].partitions:
                out[(t, p)] = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
        return out

    def ours_between(before, after):
        """Keys of records written in [before, after): only consulted when other
        clients of the shared cluster moved a watermark meanwhile."""
        keys = []
        for (t, p), start in before.items():
            end = after[(t, p)]
            if end <= start:
                continue
            c.assign([TopicPartition(t, p, start)])
            while start < end:
                msgs = c.consume(min(500, end - start), timeout=5)
                if not msgs:
                    break
                for m in msgs:
                    if not m.error():
                        keys.append(m.key())
                        start = m.offset() + 1
            c.unassign()
        return [k for k in keys if k and k.startswith(b"dev-hard")]

    snapshot.ours_between = ours_between
    yield snapshot
    c.close()


def assert_nothing_reached_kafka(marks, before, name):
    after = marks()
    if after != before:
        assert marks.ours_between(before, after) == [], f"{name}: a record reached Kafka"


NOW_MS = int(time.time() * 1000)
GOOD = {"device_id": "dev-hard", "zone": "zone-h", "type": "temperature", "value": 20.5,
        "unit": "C", "firmware": "1.0"}
ALERT = {"device_id": "dev-hard", "zone": "zone-h", "severity": "warning", "code": "X1",
         "message": "m", "firmware": "1.0"}


def js(obj):
    return json.dumps(obj).encode()


def with_(base=GOOD, **over):
    d = dict(base)
    for k, v in over.items():
        if v is DROP:
            d.pop(k)
        else:
            d[k] = v
    return d


DROP = object()
JSONCT = {"Content-Type": "application/json"}
T, A = "/v1/telemetry", "/v1/alerts"
IJ, VF = "invalid_json", "validation_failed"
GOOD_TEXT = json.dumps(GOOD)

# (id, method, path, headers, body, status, code)
CASES = [
    # broken JSON
    ("open-brace", "POST", T, JSONCT, b"{", 400, IJ),
    ("truncated-object", "POST", T, JSONCT, GOOD_TEXT[:30].encode(), 400, IJ),
    ("truncated-array", "POST", T, JSONCT, ("[" + GOOD_TEXT).encode(), 400, IJ),
    ("trailing-comma", "POST", T, JSONCT, ("[" + GOOD_TEXT + ",]").encode(), 400, IJ),
    ("empty-body", "POST", T, JSONCT, b"", 400, IJ),
    ("whitespace-body", "POST", T, JSONCT, b"  \n\t ", 400, IJ),
    ("trailing-garbage", "POST", T, JSONCT, (GOOD_TEXT + " x").encode(), 400, IJ),
    ("two-documents", "POST", T, JSONCT, (GOOD_TEXT + GOOD_TEXT).encode(), 400, IJ),
    ("single-quotes", "POST", T, JSONCT, b"{'device_id': 'd'}", 400, IJ),
    ("nan", "POST", T, JSONCT, GOOD_TEXT.replace("20.5", "NaN").encode(), 400, IJ),
    ("infinity", "POST", T, JSONCT, GOOD_TEXT.replace("20.5", "Infinity").encode(), 400, IJ),
    ("minus-infinity", "POST", T, JSONCT, GOOD_TEXT.replace("20.5", "-Infinity").encode(), 400,
     IJ),
    ("huge-real", "POST", T, JSONCT, GOOD_TEXT.replace("20.5", "1e999").encode(), 400, IJ),
    ("huge-integer", "POST", T, JSONCT,
     GOOD_TEXT.replace("20.5", "123456789012345678901234567890").encode(), 400, IJ),
    ("duplicate-key", "POST", T, JSONCT, GOOD_TEXT.replace('"zone"', '"device_id": "x", "zone"')
     .encode(), 400, IJ),
    ("duplicate-key-in-batch-item", "POST", T, JSONCT,
     ("[" + GOOD_TEXT + "," + GOOD_TEXT.replace('"unit"', '"value": 1, "unit"') + "]").encode(),
     400, IJ),
    ("invalid-utf8", "POST", T, JSONCT, GOOD_TEXT.replace("dev-hard", "dev-\xff").encode("latin-1"),
     400, IJ),
    ("overlong-utf8", "POST", T, JSONCT,
     GOOD_TEXT.encode().replace(b"dev-hard", b"dev-\xc0\xaf"), 400, IJ),
    ("lone-surrogate", "POST", T, JSONCT, GOOD_TEXT.replace("dev-hard", "dev-\\ud800").encode(),
     400, IJ),
    ("nul-escape", "POST", T, JSONCT, GOOD_TEXT.replace("dev-hard", "dev\\u0000x").encode(), 400,
     IJ),
    ("deep-nesting", "POST", T, JSONCT, b"[" * 5000 + b"]" * 5000, 400, IJ),
    # valid JSON, wrong shape or types
    ("value-string", "POST", T, JSONCT, js(with_(value="20.5")), 400, VF),
    ("value-bool", "POST", T, JSONCT, js(with_(value=True)), 400, VF),
    ("value-null", "POST", T, JSONCT, js(with_(value=None)), 400, VF),
    ("value-missing", "POST", T, JSONCT, js(with_(value=DROP)), 400, VF),
    ("device-empty", "POST", T, JSONCT, js(with_(device_id="")), 400, VF),
    ("device-blank", "POST", T, JSONCT, js(with_(device_id="   ")), 400, VF),
    ("device-too-long", "POST", T, JSONCT, js(with_(device_id="d" * 129)), 400, VF),
    ("device-number", "POST", T, JSONCT, js(with_(device_id=42)), 400, VF),
    ("device-object", "POST", T, JSONCT, js(with_(device_id={"a": [1, {"b": None}]})), 400, VF),
    ("device-control-char", "POST", T, JSONCT, js(with_(device_id="dev\u0007")), 400, VF),
    ("zone-too-long", "POST", T, JSONCT, js(with_(zone="z" * 65)), 400, VF),
    ("type-empty", "POST", T, JSONCT, js(with_(type="")), 400, VF),
    ("unit-too-long", "POST", T, JSONCT, js(with_(unit="u" * 17)), 400, VF),
    ("firmware-array", "POST", T, JSONCT, js(with_(firmware=["1", "0"])), 400, VF),
    ("ts-words", "POST", T, JSONCT, js(with_(ts="yesterday")), 400, VF),
    ("ts-impossible-date", "POST", T, JSONCT, js(with_(ts="2026-13-45T99:00:00Z")), 400, VF),
    ("ts-no-zone", "POST", T, JSONCT, js(with_(ts="2026-11-25T10:00:00")), 400, VF),
    ("ts-far-future", "POST", T, JSONCT, js(with_(ts=NOW_MS + 86400000)), 400, VF),
    ("ts-too-old", "POST", T, JSONCT, js(with_(ts=NOW_MS - 60 * 86400000)), 400, VF),
    ("ts-negative", "POST", T, JSONCT, js(with_(ts=-5)), 400, VF),
    ("ts-object", "POST", T, JSONCT, js(with_(ts={"ms": 1})), 400, VF),
    ("top-level-string", "POST", T, JSONCT, b'"reading"', 400, VF),
    ("top-level-number", "POST", T, JSONCT, b"42", 400, VF),
    ("top-level-null", "POST", T, JSONCT, b"null", 400, VF),
    ("empty-array", "POST", T, JSONCT, b"[]", 400, VF),
    ("array-1001", "POST", T, JSONCT, js([GOOD] * 1001), 400, VF),
    ("array-of-number", "POST", T, JSONCT, b"[1]", 400, VF),
    ("nested-array", "POST", T, JSONCT, js([[GOOD]]), 400, VF),
    ("one-bad-in-batch", "POST", T, JSONCT, js([GOOD] * 10 + [with_(value="x")] + [GOOD] * 10),
     400, VF),
    ("alert-bad-severity", "POST", A, JSONCT, js(with_(ALERT, severity="urgent")), 400, VF),
    ("alert-missing-code", "POST", A, JSONCT, js(with_(ALERT, code=DROP)), 400, VF),
    ("alert-message-too-long", "POST", A, JSONCT, js(with_(ALERT, message="m" * 1025)), 400, VF),
    ("alert-to-telemetry", "POST", T, JSONCT, js(ALERT), 400, VF),
    # media type, size, headers, routing
    ("content-type-text", "POST", T, {"Content-Type": "text/plain"}, js(GOOD), 415,
     "unsupported_media_type"),
    ("content-type-missing", "POST", T, {}, js(GOOD), 415, "unsupported_media_type"),
    ("content-type-form", "POST", T, {"Content-Type": "application/x-www-form-urlencoded"},
     js(GOOD), 415, "unsupported_media_type"),
    ("content-type-xml", "POST", A, {"Content-Type": "application/xml"}, js(ALERT), 415,
     "unsupported_media_type"),
    ("body-over-limit", "POST", T, JSONCT, b"[" + b" " * (1024 * 1024 + 10) + b"]", 413,
     "payload_too_large"),
    ("chunked-over-limit", "POST", T, JSONCT, "chunked", 413, "payload_too_large"),
    ("idem-key-too-long", "POST", T, {**JSONCT, "Idempotency-Key": "k" * 129}, js(GOOD), 400,
     "invalid_idempotency_key"),
    ("idem-key-space", "POST", T, {**JSONCT, "Idempotency-Key": "a b"}, js(GOOD), 400,
     "invalid_idempotency_key"),
    ("idem-key-non-ascii", "POST", T, {**JSONCT, "Idempotency-Key": "kä".encode()}, js(GOOD),
     400, "invalid_idempotency_key"),
    ("get-telemetry", "GET", T, {}, None, 405, "method_not_allowed"),
    ("put-alerts", "PUT", A, JSONCT, js(ALERT), 405, "method_not_allowed"),
    ("delete-telemetry", "DELETE", T, {}, None, 405, "method_not_allowed"),
    ("unknown-route", "POST", "/v1/readings", JSONCT, js(GOOD), 404, "not_found"),
    ("root", "POST", "/", JSONCT, js(GOOD), 404, "not_found"),
    ("trailing-slash", "POST", T + "/", JSONCT, js(GOOD), 404, "not_found"),
]


def chunks():
    for _ in range(40):
        yield b" " * 65536


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_rest_request(target, marks, case):
    name, method, path, headers, body, status, code = case
    before = marks()
    data = chunks() if body == "chunked" else body
    r = requests.request(method, target.rest + path, data=data, headers=trusted_headers(headers), timeout=30)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["details"], list)
    if status == 405:
        assert r.headers["Allow"] == "POST"
    if code == IJ and name not in ("empty-body", "whitespace-body"):
        assert {"line", "column"} <= set(err["details"][0])
    assert_nothing_reached_kafka(marks, before, name)


def test_batch_errors_name_every_bad_item(target):
    body = [GOOD, with_(value="x"), GOOD, with_(device_id="", ts="never")]
    r = requests.post(target.rest + T, data=js(body), headers=trusted_headers(JSONCT), timeout=30)
    assert r.status_code == 400
    details = r.json()["error"]["details"]
    assert {(d["index"], d["field"]) for d in details} == {(1, "value"), (3, "device_id"),
                                                          (3, "ts")}


def raw_publish(target, method="Publish"):
    ch = trusted_channel(target.grpc)
    path = f"/iot.v1.IngestService/{method}"
    if method == "Publish":
        return ch, ch.unary_unary(path)
    return ch, ch.stream_unary(path)


def pb_request(iot_pb2, readings=(), alerts=(), key=""):
    return iot_pb2.ingest_pb2.PublishRequest(readings=list(readings), alerts=list(alerts),
                                             idempotency_key=key).SerializeToString()


def grpc_cases(iot_pb2):
    tp = iot_pb2.telemetry_pb2
    good = tp.Reading(device_id="dev-hard-g", zone="z", type="temperature", value=1.0, unit="C")
    bad_value = tp.Reading(device_id="dev-hard-g", zone="z", type="temperature",
                           value=float("inf"), unit="C")
    no_sev = tp.Alert(device_id="d", zone="z", code="c", message="m")
    valid = pb_request(iot_pb2, [good])
    INV, RES = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED
    return [
        ("garbage", b"\xff\xff\xff\xff\x0f", INV, "PublishRequest"),
        ("truncated", valid[:-3], INV, "PublishRequest"),
        ("wrong-wire-type", b"\x0d\x00\x00\x00\x00", INV, "PublishRequest"),
        ("length-overflow", b"\x0a\xff\xff\xff\xff\x0f", INV, "PublishRequest"),
        ("empty-request", b"", INV, "no readings"),
        ("infinite-value", pb_request(iot_pb2, [bad_value]), INV, "readings[0].value"),
        ("alert-no-severity", pb_request(iot_pb2, alerts=[no_sev]), INV, "alerts[0].severity"),
        ("second-reading-bad", pb_request(iot_pb2, [good, tp.Reading(zone="z")]), INV,
         "readings[1].device_id"),
        ("too-many", pb_request(iot_pb2, [good] * 1001), INV, "at most 1000"),
        ("bad-idem-key", pb_request(iot_pb2, [good], key="a b"), INV, "idempotency_key"),
        # protobuf-c itself rejects invalid UTF-8 in string fields
        ("invalid-utf8-field", valid.replace(b"dev-hard-g", b"dev-hard\xff"), INV,
         "PublishRequest"),
        ("over-4-mib", b"\x1a\x80\x80\x80\x02" + b"k" * (4 * 1024 * 1024), RES, ""),
    ]


def test_malformed_grpc_requests(target, marks, iot_pb2):
    cases = grpc_cases(iot_pb2)
    assert len(cases) >= 10
    ch, call = raw_publish(target)
    for name, payload, code, fragment in cases:
        before = marks()
        with pytest.raises(grpc.RpcError) as exc:
            call(payload, timeout=30)
        assert exc.value.code() == code, f"{name}: {exc.value.code()} {exc.value.details()}"
        assert fragment in exc.value.details(), f"{name}: {exc.value.details()}"
        assert_nothing_reached_kafka(marks, before, name)
    ch.close()


def test_grpc_stream_with_garbage_message(target, marks):
    ch, call = raw_publish(target, "PublishStream")
    before = marks()
    with pytest.raises(grpc.RpcError) as exc:
        call(iter([b"\xff\xff\xff"]), timeout=30)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "message 0" in exc.value.details()
    with pytest.raises(grpc.RpcError) as exc:
        call(iter([]), timeout=30)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert_nothing_reached_kafka(marks, before, "stream")
    ch.close()


def test_producer_healthy_after_hardening(target):
    assert len(CASES) >= 40
    assert requests.get(target.rest + "/healthz", timeout=5).status_code == 200
    assert requests.get(target.rest + "/readyz", timeout=5).status_code == 200
    r = requests.post(target.rest + T, data=js(GOOD), headers=trusted_headers(JSONCT), timeout=30)
    assert r.status_code == 202 and r.json()["accepted"] == 1
