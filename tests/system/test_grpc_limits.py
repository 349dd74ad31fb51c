"""gRPC server limits, health and reflection of the producer and the metrics
service, against the running stack (direct, not through the gateway).

The stack runs both with PW_GRPC_IDLE_TIMEOUT_MS=3000 (scripts/stack/30-services.sh):
64 streams that never send a message must not keep a concurrent unary call
from being answered within 1 s, and each ends with DEADLINE_EXCEEDED and the
reason once the idle timeout has passed. grpc.health.v1 answers SERVING, and
grpcurl works from server reflection alone (no -proto), directly and through
the gateway (which routes health and reflection to the producers, behind a
sensor key)."""
import json
import os
import pathlib
import subprocess
import threading
import time

import grpc
import pytest
from conftest import trusted_channel

IDLE_STREAMS = 64
IDLE_MS = 3000
IDLE_DETAILS = f"no message for {IDLE_MS} ms (PW_GRPC_IDLE_TIMEOUT_MS)"
BUILTIN = ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
           "grpc.reflection.v1alpha.ServerReflection"]
SERVICES = {"producer": sorted(BUILTIN + ["iot.v1.IngestService"]),
            "metrics": sorted(BUILTIN + ["iot.v1.MetricsService"])}
HEALTH_SERVING = b"\x08\x01"  # HealthCheckResponse{status: SERVING}


def grpcurl_bin():
    cache = pathlib.Path(os.environ.get("PW_CACHE", pathlib.Path.home() / ".cache" / "plantwatch"))
    path = cache / "bin" / "grpcurl"
    assert path.exists(), f"{path} missing: ./plantwatch setup installs it"
    return str(path)


def grpcurl(*args):
    r = subprocess.run([grpcurl_bin(), "-plaintext", *args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def target(stack, name):
    return stack.producer_grpc[0] if name == "producer" else stack.metrics_grpc


class IdleStreams:
    """n client-streaming calls that send nothing until released."""

    def __init__(self, addr, path, n, trusted=False):
        self.release = threading.Event()
        # producers answer only calls that carry the gateway secret
        self.channel = trusted_channel(addr) if trusted else grpc.insecure_channel(addr)
        call = self.channel.stream_unary(path, request_serializer=None,
                                         response_deserializer=None)

        def never():
            self.release.wait()
            return
            yield  # a generator that yields nothing

        self.futures = [call.future(never(), timeout=120) for _ in range(n)]

    def outcomes(self):
        out = []
        for f in self.futures:
            try:
                f.result(timeout=60)
                out.append(("OK", ""))
            except grpc.RpcError as e:
                out.append((e.code().name, e.details()))
        return out

    def close(self):
        self.release.set()
        self.channel.close()


def publish_request(iot_pb2):
    reading = iot_pb2.telemetry_pb2.Reading(device_id="dev-grpc-limits", zone="zone-limits",
                                            type="pressure", value=1.25, unit="hPa",
                                            firmware="3.1")
    return iot_pb2.ingest_pb2.PublishRequest(readings=[reading])


def unary_ok_while_idle(stack, name, iot_pb2):
    """Opens the idle streams, makes one unary call; its elapsed seconds."""
    addr = target(stack, name)
    if name == "producer":
        idle_path = "/iot.v1.IngestService/PublishStream"
        path, body = "/iot.v1.IngestService/Publish", publish_request(iot_pb2).SerializeToString()
    else:
        idle_path = "/iot.v1.MetricsService/TemperatureByZone"
        path, body = "/iot.v1.MetricsService/TemperatureByZone", b""
    producer = name == "producer"
    idle = IdleStreams(addr, idle_path, IDLE_STREAMS, trusted=producer)
    try:
        time.sleep(0.5)  # the streams reach the server
        with (trusted_channel(addr) if producer else grpc.insecure_channel(addr)) as ch:
            call = ch.unary_unary(path, request_serializer=None, response_deserializer=None)
            t0 = time.monotonic()
            resp, info = call.with_call(body, timeout=10)
            elapsed = time.monotonic() - t0
        assert info.code() == grpc.StatusCode.OK
        open_after = sum(1 for f in idle.futures if not f.done())
        outcomes = idle.outcomes()
    finally:
        idle.close()
    return resp, elapsed, open_after, outcomes


@pytest.mark.parametrize("name", ["producer", "metrics"])
def test_idle_streams_do_not_starve_and_time_out(stack, iot_pb2, name):
    resp, elapsed, open_after, outcomes = unary_ok_while_idle(stack, name, iot_pb2)
    assert elapsed < 1.0, f"unary call took {elapsed:.3f} s with {IDLE_STREAMS} idle streams"
    if name == "producer":
        answer = iot_pb2.ingest_pb2.PublishResponse()
        answer.ParseFromString(resp)
        assert answer.accepted == 1 and len(answer.ids) == 1
    else:
        iot_pb2.metrics_pb2.ZoneTemperatureResponse().ParseFromString(resp)
    assert open_after == IDLE_STREAMS  # still held when the unary call was answered
    assert outcomes == [("DEADLINE_EXCEEDED", IDLE_DETAILS)] * IDLE_STREAMS


@pytest.mark.parametrize("name", ["producer", "metrics"])
def test_health_serving(stack, name):
    addr = target(stack, name)
    with grpc.insecure_channel(addr) as ch:
        check = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=None,
                               response_deserializer=None)
        assert check(b"", timeout=10) == HEALTH_SERVING
        service = SERVICES[name][-1].encode()
        assert check(b"\x0a" + bytes([len(service)]) + service, timeout=10) == HEALTH_SERVING
        with pytest.raises(grpc.RpcError) as e:
            check(b"\x0a\x04nope", timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert e.value.details() == 'unknown service "nope"'
    rc, out, err = grpcurl(addr, "grpc.health.v1.Health/Check")
    assert rc == 0, err
    assert json.loads(out) == {"status": "SERVING"}


@pytest.mark.parametrize("name", ["producer", "metrics"])
def test_grpcurl_list_from_reflection(stack, name):
    rc, out, err = grpcurl(target(stack, name), "list")
    assert rc == 0, err
    assert out.splitlines() == SERVICES[name]


def test_grpcurl_describe_and_call(stack):
    rc, out, err = grpcurl(stack.producer_grpc[1], "describe", "iot.v1.IngestService")
    assert rc == 0, err
    assert "rpc Publish ( .iot.v1.PublishRequest ) returns ( .iot.v1.PublishResponse );" in out
    assert ("rpc PublishStream ( stream .iot.v1.PublishRequest ) returns "
            "( .iot.v1.PublishResponse );") in out
    rc, out, err = grpcurl(stack.metrics_grpc, "describe", "iot.v1.ZoneTemperatureRequest")
    assert rc == 0, err
    assert "uint32 window_hours = 1;" in out
    rc, out, err = grpcurl("-d", '{"window_hours": 24}', stack.metrics_grpc,
                           "iot.v1.MetricsService/TemperatureByZone")
    assert rc == 0, err
    assert isinstance(json.loads(out), dict)
    rc, out, err = grpcurl("-d", '{"window_hours": 9999}', stack.metrics_grpc,
                           "iot.v1.MetricsService/TemperatureByZone")
    assert rc != 0
    assert "InvalidArgument" in err


def test_health_and_reflection_through_the_gateway(stack):
    key = stack.keys["sensor-a"]
    rc, out, err = grpcurl("-H", f"apikey: {key}", stack.gateway_grpc,
                           "grpc.health.v1.Health/Check")
    assert rc == 0, err
    assert json.loads(out) == {"status": "SERVING"}
    time.sleep(1)  # each call counts towards the key's 5 requests per second
    rc, out, err = grpcurl("-H", f"apikey: {key}", stack.gateway_grpc, "list")
    assert rc == 0, err
    assert out.splitlines() == SERVICES["producer"]
    time.sleep(1)
    rc, out, err = grpcurl("-H", f"apikey: {key}", stack.gateway_grpc, "describe",
                           "iot.v1.IngestService")
    assert rc == 0, err
    assert "rpc Publish ( .iot.v1.PublishRequest ) returns ( .iot.v1.PublishResponse );" in out
    rc, out, err = grpcurl(stack.gateway_grpc, "list")  # no key
    assert rc != 0
    assert "Unauthenticated" in err
