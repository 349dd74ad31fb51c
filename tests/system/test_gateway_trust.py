"""Trust only the gateway, analytics behind the edge, key hygiene (issue 13).

Against the running stack: a producer addressed directly with a forged
X-Consumer-Username and no (or a wrong) gateway secret answers 401 /
UNAUTHENTICATED, produces nothing and counts the refusal; through the gateway
the same request is accepted. The metrics REST and gRPC APIs through the
gateway need a read key (401 without a key, 403 with a sensor key, 200 with a
read key); the dashboard's page and assets come through without one. Keys in
the query string are refused, `keys add` generates keys of at least 128 bits
and refuses shorter ones, failed authentication is throttled per client
address (on a private gateway, so the shared one's counters stay untouched),
and neither the gateway's credentials file nor its rendered configuration
holds a key.
"""
import hashlib
import http.server
import os
import re
import secrets
import stat
import subprocess
import threading
import time
import uuid

import grpc
import pytest
import requests

from conftest import trusted_channel, trusted_headers, wait_until
from test_gateway import PrivateGateway, high_watermarks, producer_samples

FORGED = {"X-Consumer-Username": "sensor-a"}
UNTRUSTED_MESSAGE = "request did not come through the gateway (X-Gateway-Token missing or wrong)"
METRICS_VIEW = "/v1/metrics/temperature/zones"
DASHBOARD_ASSETS = {"/index.html": "text/html", "/app.js": "javascript", "/style.css": "text/css",
                    "/openapi.json": "application/json"}


def reading(device):
    return {"device_id": device, "zone": "trust-zone", "type": "temperature", "value": 20.5, "unit": "C"}


def untrusted(stack, api):
    """pw_untrusted_requests_total{api} summed over both producers."""
    return sum(v for url in stack.producer_urls
               for labels, v in producer_samples(url, "pw_untrusted_requests_total").items()
               if dict(labels) == {"api": api})


def keys_cmd(stack, *args):
    return subprocess.run([str(stack.root / "plantwatch"), "keys", *args], capture_output=True, text=True,
                          env=dict(os.environ, PW_STATE=str(stack.state)))


def sensor_key(stack):
    return stack.keys["sensor-c"]


def read_key(stack):
    keys = stack.read_keys
    assert keys, "the stack keeps a read key for the dashboard in secrets/read-keys"
    return keys["dashboard"]


def post_through_gateway(stack, body, key, path="/v1/telemetry", **kw):
    """POST through the gateway, waiting out the per-second limit."""
    for _ in range(50):
        r = requests.post(stack.gateway_url + path, json=body, headers={"apikey": key}, timeout=30, **kw)
        if r.status_code != 429:
            return r
        time.sleep(0.3)
    return r


def get_through_gateway(stack, path, headers=None, **kw):
    for _ in range(50):
        r = requests.get(stack.gateway_url + path, headers=headers or {}, timeout=30, **kw)
        if r.status_code != 429:
            return r
        time.sleep(0.3)
    return r


# ---------------------------------------------------------------- trust only the gateway


@pytest.mark.parametrize("token", [None, "wrong-" + "0" * 58])
def test_direct_rest_with_a_forged_consumer_and_no_secret_is_401_and_nothing_is_produced(
        stack, kafka_config, token):
    device = f"forged-{uuid.uuid4().hex[:8]}"
    before_count = untrusted(stack, "rest")
    before = high_watermarks(kafka_config, "sensor-telemetry")
    headers = dict(FORGED)
    if token:
        headers["X-Gateway-Token"] = token
    for url in stack.producer_urls:
        for body in (reading(device), [reading(device)] * 3):
            r = requests.post(url + "/v1/telemetry", json=body, headers=headers, timeout=30)
            assert r.status_code == 401, r.text
            assert r.json() == {"error": {"code": "unauthenticated", "message": UNTRUSTED_MESSAGE,
                                          "details": []}}
        r = requests.post(url + "/v1/alerts", json={"device_id": device, "zone": "z", "severity": "info",
                                                     "code": "X", "message": "forged"},
                          headers=headers, timeout=30)
        assert r.status_code == 401
    assert untrusted(stack, "rest") == before_count + 6
    assert high_watermarks(kafka_config, "sensor-telemetry") == before
    # probes and metrics stay open to the kubelet and Prometheus
    for url in stack.producer_urls:
        assert requests.get(url + "/healthz", timeout=5).status_code == 200
        assert requests.get(url + "/readyz", timeout=5).status_code == 200


def test_the_same_reading_through_the_gateway_or_with_the_secret_is_accepted(stack, kafka_config, mongo_db):
    device = f"trusted-{uuid.uuid4().hex[:8]}"
    r = post_through_gateway(stack, reading(device), sensor_key(stack))
    assert r.status_code == 202, r.text
    direct = requests.post(stack.producer_urls[1] + "/v1/telemetry", json=reading(device),
                           headers=trusted_headers({"X-Consumer-Username": "sensor-b"}), timeout=30)
    assert direct.status_code == 202, direct.text
    ids = r.json()["ids"] + direct.json()["ids"]
    assert len(ids) == 2
    wait_until(lambda: all(mongo_db.telemetry.find_one({"_id": i}) for i in ids), 90)
    docs = [mongo_db.telemetry.find_one({"_id": i}) for i in ids]
    assert all(docs), "both readings are stored"
    assert sorted(d["consumer"] for d in docs) == ["sensor-b", "sensor-c"]


@pytest.mark.parametrize("token", [None, "wrong-" + "0" * 58])
def test_direct_grpc_without_the_secret_is_unauthenticated_and_nothing_is_produced(
        stack, iot_pb2, kafka_config, token):
    tel = iot_pb2.telemetry_pb2
    req = iot_pb2.ingest_pb2.PublishRequest(readings=[tel.Reading(
        device_id=f"forged-grpc-{uuid.uuid4().hex[:6]}", zone="z", type="temperature", value=1.0, unit="C")])
    metadata = [("x-consumer-username", "sensor-a")]
    if token:
        metadata.append(("x-gateway-token", token))
    before_count = untrusted(stack, "grpc")
    before = high_watermarks(kafka_config, "sensor-telemetry")
    for target in stack.producer_grpc:
        with grpc.insecure_channel(target) as channel:
            stub = iot_pb2.ingest_pb2_grpc.IngestServiceStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.Publish(req, metadata=metadata, timeout=30)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert err.value.details() == UNTRUSTED_MESSAGE
            with pytest.raises(grpc.RpcError) as err:
                stub.PublishStream(iter([req, req]), metadata=metadata, timeout=30)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert untrusted(stack, "grpc") == before_count + 4
    assert high_watermarks(kafka_config, "sensor-telemetry") == before


def test_direct_grpc_with_the_secret_is_accepted(stack, iot_pb2):
    tel = iot_pb2.telemetry_pb2
    req = iot_pb2.ingest_pb2.PublishRequest(readings=[tel.Reading(
        device_id=f"trusted-grpc-{uuid.uuid4().hex[:6]}", zone="z", type="temperature", value=1.0, unit="C")])
    with trusted_channel(stack.producer_grpc[0]) as channel:
        resp = iot_pb2.ingest_pb2_grpc.IngestServiceStub(channel).Publish(req, timeout=30)
    assert resp.accepted == 1 and len(resp.ids) == 1


# ---------------------------------------------------------------- analytics behind the edge


def test_metrics_rest_through_the_gateway_needs_a_read_key(stack):
    r = get_through_gateway(stack, METRICS_VIEW, params={"window_hours": 24})
    assert r.status_code == 401
    assert r.json() == {"message": "No API key found in request"}
    r = get_through_gateway(stack, METRICS_VIEW, headers={"apikey": "not-a-key-" + "0" * 30})
    assert r.status_code == 401
    assert r.json() == {"message": "Invalid authentication credentials"}
    r = get_through_gateway(stack, METRICS_VIEW, headers={"apikey": sensor_key(stack)})
    assert r.status_code == 403
    assert r.json() == {"message": "You cannot consume this service"}
    r = get_through_gateway(stack, METRICS_VIEW, headers={"apikey": read_key(stack)}, params={"window_hours": 24})
    assert r.status_code == 200, r.text
    direct = requests.get(stack.metrics_url + METRICS_VIEW, params={"window_hours": 24}, timeout=30)
    assert set(r.json()) == set(direct.json())
    assert r.headers["X-RateLimit-Limit-Second"] == "20"


def test_a_read_key_cannot_ingest(stack):
    r = post_through_gateway(stack, reading("read-key-device"), read_key(stack))
    assert r.status_code == 403
    assert r.json() == {"message": "You cannot consume this service"}


def test_metrics_grpc_through_the_gateway_needs_a_read_key(stack, iot_pb2):
    m = iot_pb2.metrics_pb2
    with grpc.insecure_channel(stack.gateway_grpc) as channel:
        stub = iot_pb2.metrics_pb2_grpc.MetricsServiceStub(channel)
        for metadata, code in ((None, grpc.StatusCode.UNAUTHENTICATED),
                               ([("apikey", sensor_key(stack))], grpc.StatusCode.PERMISSION_DENIED)):
            with pytest.raises(grpc.RpcError) as err:
                stub.TemperatureByZone(m.ZoneTemperatureRequest(), metadata=metadata, timeout=30)
            assert err.value.code() == code
        resp = stub.TemperatureByZone(m.ZoneTemperatureRequest(), metadata=[("apikey", read_key(stack))], timeout=30)
    assert resp.window_hours == 24


def test_the_dashboard_comes_through_the_gateway_and_asks_for_a_read_key(stack):
    for path, kind in DASHBOARD_ASSETS.items():
        r = get_through_gateway(stack, path)
        assert r.status_code == 200, path
        assert kind in r.headers["Content-Type"], (path, r.headers["Content-Type"])
        assert r.content == requests.get(stack.metrics_url + path, timeout=10).content
    app = get_through_gateway(stack, "/app.js").text
    assert "sessionStorage" in app and "apikey" in app
    # only those exact paths and methods: nothing else of the metrics service without a key
    assert requests.post(stack.gateway_url + "/index.html", timeout=10).status_code == 404
    assert requests.get(stack.gateway_url + "/index.html/../v1/metrics/devices/health", timeout=10).status_code == 401
    assert requests.get(stack.gateway_url + "/metrics", timeout=10).status_code == 404
    assert requests.get(stack.gateway_url + "/", timeout=10).json() == {"message": "no Route matched with those values"}


def test_the_dashboard_works_in_a_browser_through_the_gateway_with_a_read_key(stack):
    """Headless Chromium on http://127.0.0.1:8000/index.html: the page asks for
    a key once; a sensor key is refused (403) and asked for again; with the
    read key every panel loads, and the key stays in sessionStorage only."""
    import shutil
    import tempfile

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    assert browser and driver, "chromium and chromedriver are required (Debian chromium chromium-driver)"
    profile = tempfile.mkdtemp(prefix="pw-chromium-gw-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("unhandledPromptBehavior", "ignore")
    drv = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    panels = ["panel-temperature", "panel-alerts", "panel-activity", "panel-firmware", "panel-health"]
    try:
        drv.get(stack.gateway_url + "/index.html")  # the page asks at once (its views get 401)

        def answer_prompt(key):
            alert = WebDriverWait(drv, 30, poll_frequency=0.1).until(lambda d: _alert(d))
            assert "read key" in alert.text
            alert.send_keys(key)
            alert.accept()

        answer_prompt(sensor_key(stack))  # the wrong kind of key: 403, asked again
        answer_prompt(read_key(stack))

        def all_ok(d):
            states = {p: d.find_element(By.ID, p).get_attribute("data-state") for p in panels}
            return states if all(st == "ok" for st in states.values()) else False

        WebDriverWait(drv, 60, poll_frequency=0.25).until(all_ok)
        assert drv.title.startswith("plantwatch")
        assert drv.execute_script("return sessionStorage.getItem('plantwatch.readKey')") == read_key(stack)
        assert drv.execute_script("return document.cookie") == ""
        assert read_key(stack) not in drv.current_url
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _alert(drv):
    from selenium.common.exceptions import NoAlertPresentException
    try:
        alert = drv.switch_to.alert
        alert.text  # noqa: B018 (raises when there is none)
        return alert
    except NoAlertPresentException:
        return False


@pytest.mark.parametrize("path", ["/grpc.health.v1.Health/Check", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                  "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"])
def test_grpc_health_and_reflection_are_routed_to_the_producers_behind_a_sensor_key(stack, path):
    """The routes exist (a path without one is Kong's 'no Route matched') and
    take the ingest plugins: no key 401, a read key 403."""
    ident = lambda b: b  # noqa: E731
    with grpc.insecure_channel(stack.gateway_grpc) as channel:
        call = channel.unary_unary(path, request_serializer=ident, response_deserializer=ident)
        for metadata, code, message in (
                (None, grpc.StatusCode.UNAUTHENTICATED, "No API key found in request"),
                ([("apikey", read_key(stack))], grpc.StatusCode.PERMISSION_DENIED, "You cannot consume this service")):
            with pytest.raises(grpc.RpcError) as err:
                call(b"", metadata=metadata, timeout=10)
            assert (err.value.code(), err.value.details()) == (code, message)
        other = channel.unary_unary("/grpc.health.v2.Health/Check", request_serializer=ident,
                                    response_deserializer=ident)
        with pytest.raises(grpc.RpcError) as err:
            other(b"", metadata=[("apikey", sensor_key(stack))], timeout=10)
        assert err.value.details() == "no Route matched with those values"
    conf = (stack.state / "nginx" / "nginx.conf").read_text()
    prefix = path.rsplit("/", 1)[0] + "/"
    block = conf[conf.index("location %s {" % prefix):]
    assert block[:block.index("\n        }\n")].count("grpc_pass grpc://pw_producer_grpc_upstream;") == 1


# ---------------------------------------------------------------- key hygiene


def test_a_key_in_the_query_string_is_refused_by_default(stack):
    r = requests.post(stack.gateway_url + "/v1/telemetry", json=reading("query-key"),
                      params={"apikey": sensor_key(stack)}, timeout=30)
    assert r.status_code == 401
    assert r.json() == {"message": "No API key found in request"}
    r = requests.get(stack.gateway_url + METRICS_VIEW, params={"apikey": read_key(stack)}, timeout=30)
    assert r.status_code == 401


@pytest.mark.parametrize("key", ["0123456789abcdef", "a" * 31, "has space in it but is long enough ok"])
def test_keys_add_refuses_a_short_or_malformed_key(stack, key):
    name = f"short-{uuid.uuid4().hex[:6]}"
    res = keys_cmd(stack, "add", name, key)
    assert res.returncode != 0
    assert "at least 128 bits" in res.stderr or "usage" in res.stderr, res.stderr
    assert name not in keys_cmd(stack, "list").stdout


def test_keys_add_generates_a_key_of_at_least_128_bits_that_works_and_revoke_ends_it(stack):
    name = f"gen-{uuid.uuid4().hex[:6]}"
    res = keys_cmd(stack, "add", name)
    assert res.returncode == 0, res.stderr
    key = res.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f]{48}", key), key  # 192 random bits
    try:
        r = post_through_gateway(stack, reading("generated-key"), key)
        assert r.status_code == 202, r.text
        listed = keys_cmd(stack, "list").stdout
        assert name in listed and key not in listed
    finally:
        assert keys_cmd(stack, "revoke", name).returncode == 0
    r = requests.post(stack.gateway_url + "/v1/telemetry", json=reading("generated-key"),
                      headers={"apikey": key}, timeout=30)
    assert r.status_code == 401


def test_keys_add_read_makes_a_read_key(stack):
    name = f"reader-{uuid.uuid4().hex[:6]}"
    res = keys_cmd(stack, "add", name, "--read")
    assert res.returncode == 0, res.stderr
    key = res.stdout.strip().splitlines()[-1]
    try:
        assert get_through_gateway(stack, METRICS_VIEW, headers={"apikey": key}).status_code == 200
        assert post_through_gateway(stack, reading("reader"), key).status_code == 403
    finally:
        keys_cmd(stack, "revoke", name)


def test_the_gateway_keeps_no_plaintext_key(stack):
    secrets_dir = stack.state / "secrets"
    creds = (secrets_dir / "gateway-credentials").read_text()
    conf = (stack.state / "nginx" / "nginx.conf").read_text()
    keys = {**stack.keys, **stack.read_keys}
    assert len(keys) >= 4
    for name, key in keys.items():
        assert key not in creds and key not in conf, name
        digest = hashlib.sha256(key.encode()).hexdigest()
        assert re.search(rf"^{re.escape(name)} (ingest|read) sha256:{digest}$", creds, re.M), name
        assert digest in conf
    for path in (secrets_dir / "gateway-credentials", secrets_dir / "gateway-secret",
                 stack.state / "nginx" / "nginx.conf"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    assert "auth_throttle = {failures = 20, window = 10}" in conf


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"accepted": 1, "ids": ["x"]}'
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_repeated_failed_authentication_is_throttled_with_429_and_recovers(stack):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def to_upstream(doc):
        for up in doc["upstreams"]:
            if up["name"] == "producer-rest.upstream":
                up["targets"] = [{"target": f"127.0.0.1:{server.server_address[1]}", "weight": 100}]

    key = secrets.token_hex(16)
    gw = PrivateGateway(stack, to_upstream, {"probe": key}, extra_args=("--auth-failures", "4", "--auth-window", "3"))
    try:
        url = gw.url + "/v1/telemetry"
        for _ in range(20):  # start right after a window boundary, so all 6 fall into one window
            if time.time() % 3 < 1:
                break
            time.sleep(0.1)
        codes = [requests.post(url, json={}, headers={"apikey": "wrong-" + "1" * 30}, timeout=10).status_code
                 for _ in range(4)]
        assert codes == [401] * 4
        for headers in ({"apikey": "wrong-" + "1" * 30}, {"apikey": key}, {}):
            r = requests.post(url, json={}, headers=headers, timeout=10)
            assert r.status_code == 429, headers
            assert r.json() == {"message": "Too many failed authentication attempts"}
            assert 1 <= int(r.headers["Retry-After"]) <= 3
        time.sleep(int(r.headers["Retry-After"]) + 0.2)
        r = requests.post(url, json={}, headers={"apikey": key}, timeout=10)
        assert r.status_code == 202, r.text
    finally:
        gw.close()
        server.shutdown()
