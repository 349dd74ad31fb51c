"""Producer behaviour when Kafka cannot take records: a producer of our own,
pointed at a bootstrap address where nothing listens, must answer 503 with
Retry-After (REST) / UNAVAILABLE (gRPC) once the delivery timeout passes,
never 202; report not-ready; and on SIGTERM answer in-flight requests and exit
0 within its shutdown bound. (The shared cluster is never disturbed.)"""
import os
import pathlib
import signal
import socket
import subprocess
import threading
import time

import grpc
import pytest
import requests

from conftest import trusted_channel, trusted_headers

ROOT = pathlib.Path(__file__).resolve().parents[2]
STATE = pathlib.Path(os.environ.get("PW_STATE", ROOT / ".plantwatch"))
READING = {"device_id": "dev-unavail", "zone": "z", "type": "temperature", "value": 1.0,
           "unit": "C"}


def producer_binary():
    candidates = [os.environ.get("PW_PRODUCER_BIN"),
                  os.path.join(os.environ.get("PW_BUILD", str(ROOT / "build")),
                               "src/producer/plantwatch-producer")]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    pytest.skip("plantwatch-producer is not built (set PW_PRODUCER_BIN or PW_BUILD)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def isolated_producer(tmp_path):
    http, grpc_port = free_port(), free_port()
    env = dict(os.environ, PW_HTTP_PORT=str(http), PW_GRPC_PORT=str(grpc_port),
               PW_INSTANCE="producer-unavailable-test", PW_KAFKA_BOOTSTRAP="127.0.0.1:1",
               PW_KAFKA_USERNAME="producer", PW_KAFKA_PASSWORD="not-used",
               PW_DELIVERY_TIMEOUT_MS="2000", PW_SHUTDOWN_TIMEOUT_MS="8000",
               PW_GATEWAY_SECRET_FILE=str(STATE / "secrets" / "gateway-secret"))
    ca = STATE / "secrets" / "ca.pem"
    if ca.exists():
        env["PW_KAFKA_CA_FILE"] = str(ca)
    log = open(tmp_path / "producer.log", "wb")
    proc = subprocess.Popen([producer_binary()], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{http}"
    for _ in range(100):
        try:
            requests.get(url + "/healthz", timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.1)
    yield proc, url, f"127.0.0.1:{grpc_port}"
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def test_rest_503_with_retry_after_and_not_ready(isolated_producer):
    _, url, _ = isolated_producer
    assert requests.get(url + "/readyz", timeout=5).status_code == 503
    started = time.time()
    r = requests.post(url + "/v1/telemetry", json=[READING, READING], headers=trusted_headers(), timeout=30)
    assert r.status_code == 503
    assert int(r.headers["Retry-After"]) >= 1
    err = r.json()["error"]
    assert err["code"] == "kafka_unavailable"
    assert r.json()["accepted"] == 0 and r.json()["ids"] == [None, None]  # nothing accepted
    assert [d["index"] for d in err["details"]] == [0, 1]
    assert time.time() - started >= 1.5  # answered from the delivery timeout, not before
    assert requests.get(url + "/healthz", timeout=5).status_code == 200


def test_grpc_unavailable(isolated_producer, iot_pb2):
    _, _, target = isolated_producer
    with trusted_channel(target) as ch:
        stub = iot_pb2.ingest_pb2_grpc.IngestServiceStub(ch)
        req = iot_pb2.ingest_pb2.PublishRequest(readings=[iot_pb2.telemetry_pb2.Reading(
            device_id="dev-unavail", zone="z", type="temperature", value=1.0, unit="C")])
        with pytest.raises(grpc.RpcError) as exc:
            stub.Publish(req, timeout=30)
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


def test_sigterm_answers_in_flight_and_exits_0(isolated_producer):
    proc, url, _ = isolated_producer
    result = {}

    def post():
        result["r"] = requests.post(url + "/v1/telemetry", json=READING, headers=trusted_headers(), timeout=30)

    t = threading.Thread(target=post)
    t.start()
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    t.join()
    assert proc.wait(timeout=20) == 0
    assert result["r"].status_code == 503  # answered honestly, not dropped
    with pytest.raises(requests.RequestException):
        requests.get(url + "/healthz", timeout=2)
