"""Bounded ingest memory: gRPC requests far beyond the item bound are refused
before they are decoded, so a producer's resident memory barely moves; strings
holding U+0000 are refused instead of being cut. RSS is read from
/proc/PID/status of the stack's producers."""
import grpc
import pytest
import requests

from conftest import trusted_channel, trusted_headers

MIB = 1024 * 1024


def rss_bytes(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def empty_readings(n):
    """A PublishRequest of n empty readings: two bytes each (tag 1, length 0)."""
    return b"\x0a\x00" * n


def publish_raw(target, payload, metadata=(), max_send=64 * MIB):
    opts = [("grpc.max_send_message_length", max_send),
            ("grpc.max_receive_message_length", 16 * MIB)]
    # direct calls stand in for the gateway (its secret); through the gateway
    # it is replaced by the gateway's own
    with trusted_channel(target, options=opts) as ch:
        call = ch.unary_unary("/iot.v1.IngestService/Publish")
        with pytest.raises(grpc.RpcError) as exc:
            call(payload, metadata=list(metadata), timeout=60)
    return exc.value


def healthy(stack):
    return all(requests.get(u + "/healthz", timeout=5).status_code == 200
               for u in stack.producer_urls)


def test_empty_readings_bomb_direct_is_refused_cheaply(stack):
    pid = stack.pid("producer-1")
    before = rss_bytes(pid)
    payload = empty_readings(1_500_000)
    assert len(payload) == 3_000_000
    for _ in range(3):
        err = publish_raw(stack.producer_grpc[0], payload)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
        assert err.details() == "readings/alerts: at most 1000 messages per request"
    grown = rss_bytes(pid) - before
    print(f"producer-1 RSS {before / MIB:.1f} MiB -> grew by {grown / MIB:.2f} MiB")
    assert grown < 16 * MIB, f"producer-1 RSS grew by {grown / MIB:.1f} MiB"
    assert healthy(stack)


def test_4_mib_request_through_the_gateway_is_refused_cheaply(stack):
    pids = [stack.pid("producer-1"), stack.pid("producer-2")]
    before = [rss_bytes(p) for p in pids]
    key = sorted(stack.keys.values())[0]
    payload = empty_readings(2 * MIB)  # 4 MiB
    assert len(payload) == 4 * MIB
    for _ in range(2):
        err = publish_raw(stack.gateway_grpc, payload, metadata=[("apikey", key)])
        assert err.code() in (grpc.StatusCode.INVALID_ARGUMENT,
                              grpc.StatusCode.RESOURCE_EXHAUSTED), err.details()
        assert err.details(), "the refusal names its reason"
    for pid, b in zip(pids, before):
        grown = rss_bytes(pid) - b
        print(f"producer pid {pid} RSS {b / MIB:.1f} MiB -> grew by {grown / MIB:.2f} MiB "
              f"({err.code().name}: {err.details()})")
        assert grown < 16 * MIB, f"producer {pid} RSS grew by {grown / MIB:.1f} MiB"
    assert healthy(stack)


def test_rest_json_bomb_is_refused_before_decoding(stack):
    """1 MiB of "{}," would be ~80 MiB as a jansson tree: counted and refused first."""
    pid = stack.pid("producer-2")
    before = rss_bytes(pid)
    body = b"[" + b",".join([b"{}"] * 349_000) + b"]"
    assert len(body) < 1024 * 1024
    for _ in range(3):
        r = requests.post(stack.producer_urls[1] + "/v1/telemetry", data=body, timeout=60,
                          headers=trusted_headers({"Content-Type": "application/json"}))
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "validation_failed"
        assert r.json()["error"]["message"] == "too many items (at most 1000)"
    grown = rss_bytes(pid) - before
    print(f"producer-2 RSS {before / MIB:.1f} MiB -> grew by {grown / MIB:.2f} MiB (REST)")
    assert grown < 16 * MIB, f"producer-2 RSS grew by {grown / MIB:.1f} MiB"
    assert healthy(stack)


def test_dense_reading_is_refused(stack):
    # one reading holding 100 000 empty zone fields: refused before decoding
    item = b"\x12\x00" * 100_000
    varint = bytearray()
    n = len(item)
    while True:
        b = n & 0x7F
        n >>= 7
        varint.append(b | (0x80 if n else 0))
        if not n:
            break
    err = publish_raw(stack.producer_grpc[1], b"\x0a" + bytes(varint) + item)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "readings[0]: more than 32 field occurrences"


@pytest.mark.parametrize("field", ["device_id", "zone", "type", "unit", "firmware"])
def test_nul_in_a_string_is_refused_not_cut(stack, iot_pb2, watermarks, field):
    tp = iot_pb2.telemetry_pb2
    values = dict(device_id="dev-nul", zone="z", type="temperature", unit="C", firmware="1")
    values[field] = values[field] + "\x00tail"
    req = iot_pb2.ingest_pb2.PublishRequest(readings=[tp.Reading(value=1.0, **values)])
    before = watermarks("sensor-telemetry")
    err = publish_raw(stack.producer_grpc[0], req.SerializeToString())
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == f"readings[0].{field}: must not contain U+0000"
    assert watermarks("sensor-telemetry") == before


def test_nul_in_an_alert_message_is_refused(stack, iot_pb2):
    tp = iot_pb2.telemetry_pb2
    req = iot_pb2.ingest_pb2.PublishRequest(alerts=[tp.Alert(
        device_id="dev-nul", zone="z", severity=2, code="c", message="before\x00after")])
    err = publish_raw(stack.producer_grpc[0], req.SerializeToString())
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "alerts[0].message: must not contain U+0000"
