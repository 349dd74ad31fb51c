"""The real plantwatch-metrics binary against an empty database: every view
answers validly and empty (7 zero days for the trend) through REST and gRPC,
and the binary's operational surface works — probes, Prometheus metrics,
JSON logs, the dashboard and /openapi.json, graceful SIGTERM. The instance is
started here on free ports and pointed at a fresh database name; the shared
stack's store serves it."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import time
import uuid

import grpc
import pytest
import requests

from conftest import ROOT, wait_until

DAY = 86_400_000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def empty_metrics(stack, mongo_client, tmp_path_factory):
    binary = pathlib.Path(os.environ.get("PW_ROOT", ROOT)) / "build/src/metrics/plantwatch-metrics"
    assert binary.exists(), f"{binary} is missing: run ./plantwatch build"
    db_name = f"plantwatch_empty_{uuid.uuid4().hex[:10]}"
    http_port, grpc_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("metrics-empty") / "metrics.log"
    env = {**os.environ, "PW_BIND_ADDR": "127.0.0.1", "PW_HTTP_PORT": str(http_port),
           "PW_GRPC_PORT": str(grpc_port), "PW_MONGO_URI": stack.mongo_uri_of("metrics"), "PW_MONGO_DB": db_name,
           "PW_INSTANCE": "metrics-empty-test", "PW_LOG_LEVEL": "info"}
    env.pop("PW_WWW_DIR", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(binary)], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{http_port}"

    def ready():
        try:
            return requests.get(url + "/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return proc.poll() is not None
    wait_until(ready, timeout_s=30)
    assert proc.poll() is None, log.read_text()
    try:
        yield type("Instance", (), {"url": url, "grpc": f"127.0.0.1:{grpc_port}", "proc": proc,
                                    "log": log, "db": db_name})
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        mongo_client.drop_database(db_name)


def get(inst, path, **params):
    r = requests.get(inst.url + path, params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_empty_views_over_rest(empty_metrics):
    t = get(empty_metrics, "/v1/metrics/temperature/zones")
    assert t["zones"] == [] and t["window_hours"] == 24
    assert t["to_ms"] - t["from_ms"] == 25 * 3_600_000

    a = get(empty_metrics, "/v1/metrics/alerts/breakdown")
    assert a["by_severity"] == [{"severity": s, "count": 0} for s in ("critical", "warning", "info")]
    assert a["top_codes"] == [] and a["total"] == 0 and a["window_hours"] == 168

    before = int(time.time() * 1000)
    days = get(empty_metrics, "/v1/metrics/activity/trend")["days"]
    assert len(days) == 7
    today = before - before % DAY
    expect = [time.strftime("%Y-%m-%d", time.gmtime((today - (6 - i) * DAY) // 1000)) for i in range(7)]
    assert [d["day"] for d in days] == expect or days[0]["day"] == expect[1]  # midnight passed
    assert all(d["readings"] == 0 and d["alerts"] == 0 and d["active_devices"] == 0 for d in days)

    f = get(empty_metrics, "/v1/metrics/firmware/status")
    assert f == {"versions": [], "newest": "", "total_devices": 0, "outdated_devices": 0}

    h = get(empty_metrics, "/v1/metrics/devices/health")
    assert h["silent"] == [] and h["total_devices"] == 0 and h["silent_devices"] == 0
    assert h["as_of_ms"] - h["threshold_ms"] == 600_000


def test_empty_views_over_grpc(empty_metrics, iot_pb2):
    m = iot_pb2.metrics_pb2
    channel = grpc.insecure_channel(empty_metrics.grpc)
    stub = iot_pb2.metrics_pb2_grpc.MetricsServiceStub(channel)
    try:
        assert len(stub.TemperatureByZone(m.ZoneTemperatureRequest(), timeout=30).zones) == 0
        a = stub.AlertBreakdown(m.AlertBreakdownRequest(top=5), timeout=30)
        assert [(s.severity, s.count) for s in a.by_severity] == \
            [("critical", 0), ("warning", 0), ("info", 0)]
        assert a.total == 0 and len(a.top_codes) == 0
        t = stub.ActivityTrend(m.ActivityTrendRequest(), timeout=30)
        assert len(t.days) == 7
        assert [(d.readings, d.alerts, d.active_devices) for d in t.days] == [(0, 0, 0)] * 7
        rest_days = [d["day"] for d in get(empty_metrics, "/v1/metrics/activity/trend")["days"]]
        assert [d.day for d in t.days] == rest_days
        f = stub.FirmwareStatus(m.FirmwareStatusRequest(), timeout=30)
        assert len(f.versions) == 0 and f.newest == "" and f.total_devices == 0
        h = stub.DeviceHealth(m.DeviceHealthRequest(), timeout=30)
        assert len(h.silent) == 0 and h.total_devices == 0
    finally:
        channel.close()


def test_probes_dashboard_and_openapi(empty_metrics):
    assert requests.get(empty_metrics.url + "/healthz", timeout=10).status_code == 200
    assert requests.get(empty_metrics.url + "/readyz", timeout=10).status_code == 200
    page = requests.get(empty_metrics.url + "/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    for panel in ("panel-temperature", "panel-alerts", "panel-activity", "panel-firmware",
                  "panel-health"):
        assert f'id="{panel}"' in page.text
    assert "http://" not in page.text.replace("http://www.w3.org", "")  # nothing external
    for asset, ctype in (("/app.js", "text/javascript"), ("/style.css", "text/css")):
        r = requests.get(empty_metrics.url + asset, timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(ctype)
        assert "https://" not in r.text
    spec = requests.get(empty_metrics.url + "/openapi.json", timeout=10)
    assert spec.status_code == 200
    assert spec.content == (ROOT / "docs" / "openapi.json").read_bytes()
    doc = spec.json()
    assert doc["openapi"].startswith("3.")
    for path in ("/v1/metrics/temperature/zones", "/v1/metrics/alerts/breakdown",
                 "/v1/metrics/activity/trend", "/v1/metrics/firmware/status",
                 "/v1/metrics/devices/health"):
        assert "400" in doc["paths"][path]["get"]["responses"]


def test_prometheus_metrics_count_requests(empty_metrics):
    for _ in range(3):
        get(empty_metrics, "/v1/metrics/firmware/status")
    requests.get(empty_metrics.url + "/v1/metrics/firmware/status?x=1", timeout=10)
    text = requests.get(empty_metrics.url + "/metrics", timeout=10).text
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines()
                   if line and not line.startswith("#"))
    key = 'plantwatch_metrics_requests_total{view="firmware",protocol="rest",outcome="ok"}'
    assert float(samples[key]) >= 3
    assert float(samples['plantwatch_metrics_requests_total{view="firmware",protocol="rest",'
                         'outcome="invalid_argument"}']) == 1
    count = 'plantwatch_metrics_view_duration_seconds_count{view="firmware",protocol="rest"}'
    assert float(samples[count]) >= 3


def test_sigterm_stops_gracefully_with_json_logs(empty_metrics):
    proc = empty_metrics.proc
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    lines = [json.loads(line) for line in empty_metrics.log.read_text().splitlines() if line.strip()]
    events = [line["event"] for line in lines]
    assert "started" in events and events[-1] == "stopped" and "stopping" in events
    assert all(line["service"] == "metrics" and line["instance"] == "metrics-empty-test"
               for line in lines)
