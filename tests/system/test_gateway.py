"""The local edge gateway behaves like Kong for clients (issue: gateway).

Against the running stack: key-auth answers with Kong's 401s before any producer
sees the request; rate-limiting holds each consumer to Kong's per-second window
(a burst of 5) without touching other consumers; valid traffic is spread
round-robin over the two producers; the key is stripped, taken only from the
header (the query string only where kong.yaml enables it), and the consumer name
forwarded with the gateway secret; gRPC on 9080 authenticates from metadata and answers with gRPC status
codes. The renderer is checked for determinism, and a private nginx rendered from
a modified copy of kong/kong.yaml (the real one is never edited) proves that the
policy file drives the behaviour.
"""
import concurrent.futures
import hashlib
import http.server
import os
import pathlib
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

import pytest
import requests
import yaml

from conftest import ROOT, gateway_secret, wait_until

RENDER = ROOT / "scripts" / "gateway" / "render.py"
KONG_YAML = ROOT / "kong" / "kong.yaml"
INGEST_ROUTES = ("/v1/telemetry", "/v1/alerts")
METRIC_RE = re.compile(r'^(\w+)\{([^}]*)\}\s+([0-9.eE+-]+)$')


# ---------------------------------------------------------------- helpers


def producer_samples(url, name):
    """{labels-dict-as-tuple: value} of one metric family on a producer's /metrics."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        m = METRIC_RE.match(line.strip())
        if m and m.group(1) == name:
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2))))
            out[labels] = float(m.group(3))
    return out


def ingest_requests(stack):
    """Requests the producers answered on the ingest routes (all methods and statuses)."""
    total = 0.0
    for url in stack.producer_urls:
        for labels, value in producer_samples(url, "pw_http_requests_total").items():
            if dict(labels).get("route") in INGEST_ROUTES:
                total += value
    return total


def grpc_calls(stack):
    total = 0.0
    for url in stack.producer_urls:
        total += sum(producer_samples(url, "pw_grpc_requests_total").values())
    return total


def accepted_telemetry(url):
    samples = producer_samples(url, "pw_http_requests_total")
    return sum(v for labels, v in samples.items()
               if dict(labels) == {"route": "/v1/telemetry", "method": "POST", "status": "202"})


def reading(device="gw-test", zone="gw-zone"):
    return {"device_id": device, "zone": zone, "type": "temperature", "value": 21.5, "unit": "C"}


def start_of_next_second(offset=0.02):
    """Sleeps until just after the next whole second, where Kong's window starts."""
    now = time.time()
    time.sleep(int(now) + 1 + offset - now)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plantwatch_keys(stack, *args):
    res = subprocess.run([str(stack.root / "plantwatch"), "keys", *args],
                         capture_output=True, text=True, env=dict(os.environ, PW_STATE=str(stack.state)))
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def fresh_keys(stack):
    """22 consumers added through `./plantwatch keys add` (gateway reloaded each
    time), revoked afterwards: no other test shares their rate-limit windows."""
    run = uuid.uuid4().hex[:6]
    keys = {}
    for i in range(22):
        name, key = f"gwtest-{run}-{i:02d}", secrets.token_hex(20)
        out = plantwatch_keys(stack, "add", name, key)
        assert out.strip().splitlines()[-1] == key, "keys add prints the key"
        keys[name] = key
    listed = plantwatch_keys(stack, "list")
    for name, key in keys.items():
        assert name in listed and key not in listed, "list shows names, never full keys"
    yield keys
    for name in keys:
        plantwatch_keys(stack, "revoke", name)


def take(keys, n, start=0):
    return list(keys.items())[start:start + n]


# ---------------------------------------------------------------- key-auth


@pytest.mark.parametrize("headers,params,message", [
    ({}, {}, "No API key found in request"),
    ({"apikey": "wrong-key-0123456789"}, {}, "Invalid authentication credentials"),
    # keys in the query string are off by default (key_in_query: false)
    ({}, {"apikey": "wrong-key-0123456789"}, "No API key found in request"),
])
def test_without_a_valid_key_kong_401_and_no_producer_sees_it(stack, headers, params, message):
    before = ingest_requests(stack)
    for route in INGEST_ROUTES:
        r = requests.post(f"{stack.gateway_url}{route}", json=reading(), headers=headers,
                          params=params, timeout=10)
        assert r.status_code == 401
        assert r.json() == {"message": message}
        assert r.headers["WWW-Authenticate"] == 'Key realm="kong"'
    assert ingest_requests(stack) == before


def test_key_in_header_is_accepted_and_in_the_query_refused(stack, fresh_keys):
    (_, key), = take(fresh_keys, 1, 21)
    before = ingest_requests(stack)
    r = requests.post(f"{stack.gateway_url}/v1/telemetry", json=reading(), params={"apikey": key}, timeout=30)
    assert r.status_code == 401
    assert r.json() == {"message": "No API key found in request"}
    assert ingest_requests(stack) == before
    r = requests.post(f"{stack.gateway_url}/v1/telemetry", json=reading(), headers={"apikey": key}, timeout=30)
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 1
    assert r.headers["X-RateLimit-Limit-Second"] == "5"


def test_unknown_path_is_kong_404(stack):
    r = requests.get(f"{stack.gateway_url}/v2/nothing", timeout=10)
    assert r.status_code == 404
    assert r.json() == {"message": "no Route matched with those values"}


def test_keys_add_and_revoke_take_effect_at_once_without_dropping_requests(stack, fresh_keys):
    """`./plantwatch keys add|revoke` re-render and reload nginx while another
    client keeps sending: every one of its requests is answered."""
    (_, steady_key), = take(fresh_keys, 1, 6)
    stop = threading.Event()
    answered, failures = [], []

    def steady_client():
        while not stop.is_set():
            try:  # a new connection each time, as a sensor reconnecting would
                r = requests.post(f"{stack.gateway_url}/v1/telemetry", json=reading(),
                                  headers={"apikey": steady_key, "Connection": "close"}, timeout=30)
                answered.append(r.status_code)
            except requests.RequestException as e:
                failures.append(repr(e))
            time.sleep(0.25)  # 4 per second: under the limit

    client = threading.Thread(target=steady_client)
    client.start()
    try:
        for i in range(3):
            name, key = f"gwtest-reload-{uuid.uuid4().hex[:6]}", secrets.token_hex(20)
            plantwatch_keys(stack, "add", name, key)
            r = requests.post(f"{stack.gateway_url}/v1/telemetry", json=reading(), headers={"apikey": key}, timeout=30)
            assert r.status_code == 202, r.text
            plantwatch_keys(stack, "revoke", name)
            r = requests.post(f"{stack.gateway_url}/v1/telemetry", json=reading(), headers={"apikey": key}, timeout=30)
            assert r.status_code == 401
            assert r.json() == {"message": "Invalid authentication credentials"}
            assert name not in plantwatch_keys(stack, "list")
    finally:
        stop.set()
        client.join()
    assert failures == []
    assert len(answered) >= 2 and set(answered) == {202}, answered


# ---------------------------------------------------------------- rate-limiting


def burst(stack, jobs):
    """Sends all (key, count) jobs at once; returns {key: [responses]} and whether
    every request was answered inside one wall-clock second (one Kong window)."""
    start_of_next_second()
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        futures = {}
        for key, count in jobs:
            for _ in range(count):
                f = pool.submit(requests.post, f"{stack.gateway_url}/v1/telemetry", json=reading(),
                                headers={"apikey": key}, timeout=30)
                futures[f] = key
        out = {}
        for f in concurrent.futures.as_completed(futures):
            out.setdefault(futures[f], []).append(f.result())
    return out, int(time.time()) == int(t0)


def test_burst_of_20_gets_5_or_6_through_and_other_consumers_are_unaffected(stack, fresh_keys):
    (_, key_a), (_, key_b) = take(fresh_keys, 2)
    for _ in range(5):
        results, one_window = burst(stack, [(key_a, 20), (key_b, 4)])
        if one_window:
            break
    assert one_window, "could not fit the burst into one second on this machine"
    codes_a = sorted(r.status_code for r in results[key_a])
    accepted = codes_a.count(202)
    assert 5 <= accepted <= 6, codes_a
    assert codes_a.count(429) == 20 - accepted, codes_a
    for r in results[key_a]:
        assert r.headers["X-RateLimit-Limit-Second"] == "5"
        if r.status_code == 429:
            assert r.json() == {"message": "API rate limit exceeded"}
            assert int(r.headers["Retry-After"]) >= 1
            assert r.headers["X-RateLimit-Remaining-Second"] == "0"
            assert (r.headers["RateLimit-Limit"], r.headers["RateLimit-Remaining"]) == ("5", "0")
    assert [r.status_code for r in results[key_b]] == [202] * 4

    start_of_next_second()
    r = requests.post(f"{stack.gateway_url}/v1/telemetry", json=reading(), headers={"apikey": key_a}, timeout=30)
    assert r.status_code == 202, r.text
    assert r.headers["X-RateLimit-Remaining-Second"] == "4"


def test_rejected_by_the_limit_never_reaches_a_producer(stack, fresh_keys):
    (_, key), = take(fresh_keys, 1, 2)
    for _ in range(5):
        start_of_next_second()
        t0 = time.time()
        for _ in range(5):
            assert requests.post(f"{stack.gateway_url}/v1/alerts", headers={"apikey": key}, json={
                "device_id": "gw-test", "zone": "gw-zone", "severity": "info", "code": "GW",
                "message": "limit"}, timeout=30).status_code == 202
        before = ingest_requests(stack)
        rejected = requests.post(f"{stack.gateway_url}/v1/alerts", headers={"apikey": key}, json={}, timeout=30)
        if int(time.time()) == int(t0):
            break
    assert rejected.status_code == 429
    assert ingest_requests(stack) == before


# ---------------------------------------------------------------- round-robin


def test_100_requests_are_split_round_robin_over_both_producers(stack, fresh_keys):
    before = [accepted_telemetry(u) for u in stack.producer_urls]
    keys = take(fresh_keys, 20)
    session = requests.Session()
    codes = []
    start_of_next_second()  # earlier tests' windows of these keys are over
    for i in range(100):
        _, key = keys[i % 20]  # each key sends 5 in total: never over its limit
        r = session.post(f"{stack.gateway_url}/v1/telemetry", json=reading(device=f"rr-{i}"),
                         headers={"apikey": key}, timeout=30)
        codes.append(r.status_code)
    assert codes == [202] * 100
    after = [accepted_telemetry(u) for u in stack.producer_urls]
    served = [a - b for a, b in zip(after, before)]
    assert sum(served) == 100, served
    assert max(served) <= 60, served
    assert min(served) >= 40, served


# ---------------------------------------------------------------- forwarded headers


def find_envelope(kafka_config, iot_pb2, topic, token, start_offsets):
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer(kafka_config("admin", **{"group.id": f"gw-test-{uuid.uuid4().hex}",
                                                 "enable.auto.commit": False}))
    try:
        consumer.assign([TopicPartition(topic, p, o) for p, o in start_offsets.items()])
        deadline = time.time() + 60
        while time.time() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            headers = dict(msg.headers() or [])
            if headers.get("pw-token", b"").decode() == token:
                env = iot_pb2.telemetry_pb2.Envelope()
                env.ParseFromString(msg.value())
                return env, headers
        return None, None
    finally:
        consumer.close()


def high_watermarks(kafka_config, topic):
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer(kafka_config("admin", **{"group.id": "gw-test-watermarks"}))
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    finally:
        consumer.close()


def test_consumer_name_reaches_kafka_and_the_key_does_not(stack, fresh_keys, kafka_config, iot_pb2):
    (name, key), = take(fresh_keys, 1, 20)
    offsets = high_watermarks(kafka_config, "sensor-telemetry")
    r = requests.post(f"{stack.gateway_url}/v1/telemetry", json=reading(device=f"hdr-{name}"),
                      headers={"apikey": key, "X-Consumer-Username": "spoofed"}, timeout=30)
    assert r.status_code == 202, r.text
    token = r.json()["ids"][0]
    env, headers = find_envelope(kafka_config, iot_pb2, "sensor-telemetry", token, offsets)
    assert env is not None, "the accepted reading never appeared in sensor-telemetry"
    assert env.consumer == name  # X-Consumer-Username set by the gateway, not the client's
    assert env.reading.device_id == f"hdr-{name}"
    assert key.encode() not in env.SerializeToString()
    assert all(key.encode() not in v for v in headers.values())
    logs = "".join((stack.state / "logs" / f"producer-{i}.log").read_text(errors="replace") for i in (1, 2)
                   if (stack.state / "logs" / f"producer-{i}.log").exists())
    assert token in logs and key not in logs


class CaptureHandler(http.server.BaseHTTPRequestHandler):
    """Records what an upstream receives: path with query and headers."""
    protocol_version = "HTTP/1.1"
    seen = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        CaptureHandler.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        body = b'{"accepted": 1, "ids": ["x"]}'
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class PrivateGateway:
    """An nginx rendered by render.py from a modified copy of kong/kong.yaml, on
    free ports and with its own state directory. Stopped with QUIT afterwards."""

    def __init__(self, stack, mutate, keys, groups=None, extra_args=(), secret=None):
        groups = groups or {}
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="pw-gw-test-"))
        doc = yaml.safe_load(KONG_YAML.read_text())
        mutate(doc)
        self.kong = self.dir / "kong.yaml"
        self.kong.write_text(yaml.safe_dump(doc, sort_keys=False))
        secrets_dir = self.dir / "secrets"
        secrets_dir.mkdir()
        (secrets_dir / "gateway-credentials").write_text("".join(
            f"{n} {groups.get(n, 'ingest')} sha256:{hashlib.sha256(k.encode()).hexdigest()}\n"
            for n, k in keys.items()))
        # its own secret, or the stack's where it fronts the real producers
        self.secret = secret or secrets.token_hex(32)
        (secrets_dir / "gateway-secret").write_text(self.secret + "\n")
        self.rest_port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.rest_port}"
        for d in ("nginx/logs", "nginx/tmp"):
            (self.dir / d).mkdir(parents=True)
        conf = self.dir / "nginx" / "nginx.conf"
        subprocess.run([sys.executable, str(RENDER), "--kong", str(self.kong), "--state", str(self.dir),
                        "--out", str(conf), "--rest-listen", f"127.0.0.1:{self.rest_port}",
                        "--grpc-listen", f"127.0.0.1:{self.grpc_port}", *extra_args], check=True)
        self.conf_text = conf.read_text()
        self.proc = subprocess.Popen(["nginx", "-p", str(self.dir / "nginx"), "-c", str(conf),
                                      "-e", str(self.dir / "nginx" / "logs" / "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(lambda: self._open(), 30), "private gateway did not start"

    def _open(self):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.rest_port)) == 0

    def close(self):
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_gateway_strips_the_key_and_sets_the_consumer_header_upstream(stack):
    """What exactly reaches an upstream: the real renderer and Lua in front of a
    recording HTTP server (the producers do not log headers)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CaptureHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    def to_capture(doc):
        for up in doc["upstreams"]:
            if up["name"] == "producer-rest.upstream":
                up["targets"] = [{"target": f"127.0.0.1:{port}", "weight": 100}]
        for svc in doc["services"]:  # the explicit option: keys in the query string too
            for p in svc.get("plugins", []):
                if p["name"] == "key-auth":
                    p["config"]["key_in_query"] = True

    key = secrets.token_hex(16)
    gw = PrivateGateway(stack, to_capture, {"probe": key})
    try:
        CaptureHandler.seen.clear()
        r1 = requests.post(f"{gw.url}/v1/telemetry", json=reading(), timeout=10,
                           headers={"apikey": key, "X-Consumer-Username": "spoofed",
                                    "X-Gateway-Token": "forged-by-the-client"})
        r2 = requests.post(f"{gw.url}/v1/alerts?zone=a&apikey={key}&b=2", json={}, timeout=10)
        assert (r1.status_code, r2.status_code) == (202, 202)
        (path1, h1), (path2, h2) = CaptureHandler.seen
        assert path1 == "/v1/telemetry"
        assert "apikey" not in h1
        assert h1["x-consumer-username"] == "probe"
        # the gateway's secret replaces whatever the client sent
        assert h1["x-gateway-token"] == gw.secret and h2["x-gateway-token"] == gw.secret
        route, _, query = path2.partition("?")
        assert route == "/v1/alerts"
        assert urllib.parse.parse_qs(query) == {"zone": ["a"], "b": ["2"]}
        assert "apikey" not in h2 and h2["x-consumer-username"] == "probe"
        assert all(key not in v for v in [*h1.values(), *h2.values(), path2])
    finally:
        gw.close()
        server.shutdown()


# ---------------------------------------------------------------- gRPC


def publish_request(iot_pb2, device):
    tel = iot_pb2.telemetry_pb2
    return iot_pb2.ingest_pb2.PublishRequest(readings=[tel.Reading(
        device_id=device, zone="gw-grpc", type="temperature", value=19.25, unit="C")])


def test_grpc_publish_with_a_key_is_accepted_for_its_consumer(stack, fresh_keys, iot_pb2, kafka_config):
    import grpc
    (name, key), = take(fresh_keys, 1, 7)
    device = f"grpc-{uuid.uuid4().hex[:8]}"
    offsets = high_watermarks(kafka_config, "sensor-telemetry")
    with grpc.insecure_channel(stack.gateway_grpc) as channel:
        stub = iot_pb2.ingest_pb2_grpc.IngestServiceStub(channel)
        resp, call = stub.Publish.with_call(publish_request(iot_pb2, device), metadata=[("apikey", key)], timeout=30)
    assert resp.accepted == 1 and len(resp.ids) == 1
    assert dict(call.initial_metadata())["x-ratelimit-limit-second"] == "5"
    env, _ = find_envelope(kafka_config, iot_pb2, "sensor-telemetry", resp.ids[0], offsets)
    assert env is not None, "the gRPC reading never appeared in sensor-telemetry"
    assert env.consumer == name
    assert env.source == iot_pb2.telemetry_pb2.SOURCE_GRPC
    assert env.reading.device_id == device


def test_grpc_publish_with_a_key_is_stored(stack, fresh_keys, iot_pb2, mongo_db):
    import grpc
    (name, key), = take(fresh_keys, 1, 3)
    device = f"grpc-{uuid.uuid4().hex[:8]}"
    with grpc.insecure_channel(stack.gateway_grpc) as channel:
        stub = iot_pb2.ingest_pb2_grpc.IngestServiceStub(channel)
        resp = stub.Publish(publish_request(iot_pb2, device), metadata=[("apikey", key)], timeout=30)
    assert resp.accepted == 1 and len(resp.ids) == 1
    doc = wait_until(lambda: mongo_db.telemetry.find_one({"_id": resp.ids[0]}), 90)
    assert doc, "the gRPC reading was not stored"
    assert doc["device"] == device
    assert doc["consumer"] == name


@pytest.mark.parametrize("metadata,message", [
    (None, "No API key found in request"),
    ([("apikey", "wrong-key-0123456789")], "Invalid authentication credentials"),
])
def test_grpc_without_a_valid_key_is_unauthenticated(stack, iot_pb2, metadata, message):
    import grpc
    before = grpc_calls(stack)
    with grpc.insecure_channel(stack.gateway_grpc) as channel:
        stub = iot_pb2.ingest_pb2_grpc.IngestServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Publish(publish_request(iot_pb2, "grpc-unauth"), metadata=metadata, timeout=30)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.value.details() == message
    assert grpc_calls(stack) == before


def test_grpc_over_the_limit_is_resource_exhausted(stack, fresh_keys, iot_pb2):
    import grpc
    (_, key), = take(fresh_keys, 1, 4)
    with grpc.insecure_channel(stack.gateway_grpc) as channel:
        stub = iot_pb2.ingest_pb2_grpc.IngestServiceStub(channel)
        for _ in range(5):
            start_of_next_second()
            t0 = time.time()
            codes = []
            for _ in range(8):
                try:
                    stub.Publish(publish_request(iot_pb2, "grpc-burst"), metadata=[("apikey", key)], timeout=30)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as e:
                    codes.append(e.code())
                    last = e
            if int(time.time()) == int(t0):
                break
    assert codes == [grpc.StatusCode.OK] * 5 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3
    assert last.details() == "API rate limit exceeded"


# ---------------------------------------------------------------- rendering


def render_to_stdout(kong, credentials, state):
    return subprocess.run([sys.executable, str(RENDER), "--kong", str(kong), "--credentials", str(credentials),
                           "--state", str(state), "--out", "-"], check=True, capture_output=True).stdout


def test_rendering_is_deterministic_and_follows_kong_yaml(stack, tmp_path):
    keys_file = stack.state / "secrets" / "gateway-credentials"
    first = render_to_stdout(KONG_YAML, keys_file, stack.state)
    second = render_to_stdout(KONG_YAML, keys_file, stack.state)
    assert first == second
    assert first == (stack.state / "nginx" / "nginx.conf").read_bytes(), "the running gateway uses this rendering"
    assert b'{"second", 5, 1}' in first

    copy = tmp_path / "kong.yaml"
    copy.write_text(KONG_YAML.read_text().replace("second: 5", "second: 2"))
    changed = render_to_stdout(copy, keys_file, stack.state)
    assert changed != first
    assert b'{"second", 2, 1}' in changed and b'{"second", 5, 1}' not in changed


def test_a_changed_limit_in_kong_yaml_changes_the_gateway_behaviour(stack, fresh_keys):
    """A gateway rendered from a copy of kong.yaml with second: 2, in front of the
    real producers, lets exactly 2 requests of a burst through."""
    (name, key), = take(fresh_keys, 1, 5)

    def limit_two(doc):
        for svc in doc["services"]:
            if svc["name"] != "producer-rest":
                continue
            for p in svc["plugins"]:
                if p["name"] == "rate-limiting":
                    p["config"]["second"] = 2

    gw = PrivateGateway(stack, limit_two, {name: key}, secret=gateway_secret())
    try:
        for _ in range(5):
            start_of_next_second()
            t0 = time.time()
            codes = [requests.post(f"{gw.url}/v1/telemetry", json=reading(), headers={"apikey": key},
                                   timeout=30).status_code for _ in range(5)]
            if int(time.time()) == int(t0):
                break
        assert codes == [202, 202, 429, 429, 429]
    finally:
        gw.close()
