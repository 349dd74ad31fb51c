"""Metrics parameter validation through both protocols: unknown, repeated,
non-integer and out-of-range parameters give 400 invalid_parameter (REST, in
the platform's error format) or INVALID_ARGUMENT (gRPC), each naming the
parameter and its allowed range."""
import grpc
import pytest
import requests

BAD_REST = [
    ("/v1/metrics/temperature/zones", "window_hours=0", "window_hours", "between 1 and 720"),
    ("/v1/metrics/temperature/zones", "window_hours=721", "window_hours", "between 1 and 720"),
    ("/v1/metrics/temperature/zones", "window_hours=abc", "window_hours", "must be an integer"),
    ("/v1/metrics/temperature/zones", "window_hours=1.5", "window_hours", "must be an integer"),
    ("/v1/metrics/temperature/zones", "window_hours=-3", "window_hours", "must be an integer"),
    ("/v1/metrics/temperature/zones", "window_hours=", "window_hours", "must be an integer"),
    ("/v1/metrics/temperature/zones", "window_hours", "window_hours", "requires a value"),
    ("/v1/metrics/temperature/zones", "window_hours=24&window_hours=48", "window_hours",
     "given more than once"),
    ("/v1/metrics/temperature/zones", "hours=24", "hours", "unknown parameter"),
    ("/v1/metrics/alerts/breakdown", "top=0", "top", "between 1 and 100"),
    ("/v1/metrics/alerts/breakdown", "top=101", "top", "between 1 and 100"),
    ("/v1/metrics/alerts/breakdown", "window_hours=99999999999", "window_hours", "must be an integer"),
    ("/v1/metrics/activity/trend", "window_hours=24", "window_hours", "unknown parameter (allowed: zone)"),
    ("/v1/metrics/firmware/status", "limit=5", "limit", "unknown parameter"),
    ("/v1/metrics/devices/health", "silent_minutes=0", "silent_minutes", "between 1 and 43200"),
    ("/v1/metrics/devices/health", "silent_minutes=43201", "silent_minutes", "between 1 and 43200"),
    ("/v1/metrics/devices/health", "limit=1001", "limit", "between 1 and 1000"),
    ("/v1/metrics/devices/health", "zone=" + "z" * 65, "zone", "at most 64 characters"),
    ("/v1/metrics/devices/health", "zone=" + "\u7089" * 65, "zone", "at most 64 characters"),
    ("/v1/metrics/devices/health", "zone=a%0Ab", "zone", "control characters"),
]


@pytest.mark.parametrize("path,query,param,reason", BAD_REST)
def test_rest_rejects_bad_parameter(stack, path, query, param, reason):
    r = requests.get(f"{stack.metrics_url}{path}?{query}", timeout=10)
    assert r.status_code == 400, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] == "invalid_parameter"
    assert param in err["message"] and reason in err["message"], err["message"]
    assert any(d["param"] == param and reason in d["reason"] for d in err["details"]), err


def test_rest_reports_every_bad_parameter(stack):
    r = requests.get(f"{stack.metrics_url}/v1/metrics/alerts/breakdown?window_hours=x&top=500&foo=1",
                     timeout=10)
    assert r.status_code == 400
    err = r.json()["error"]
    assert [d["param"] for d in err["details"]] == ["window_hours", "top", "foo"]
    assert err["message"] == ('invalid parameter: window_hours: must be an integer between 1 and 720, '
                              'got "x"; top: must be an integer between 1 and 100, got "500"; '
                              'foo: unknown parameter (allowed: window_hours, top, zone)')
    assert err["details"][1]["value"] == "500"


def test_rest_bounds_are_accepted(stack):
    for path, query in [("/v1/metrics/temperature/zones", "window_hours=1"),
                        ("/v1/metrics/temperature/zones", "window_hours=720"),
                        ("/v1/metrics/alerts/breakdown", "window_hours=720&top=100"),
                        ("/v1/metrics/alerts/breakdown", "top=1"),
                        ("/v1/metrics/devices/health", "silent_minutes=43200&limit=1000"),
                        ("/v1/metrics/devices/health", "silent_minutes=1&limit=1&zone=")]:
        r = requests.get(f"{stack.metrics_url}{path}?{query}", timeout=30)
        assert r.status_code == 200, (path, query, r.text)


def test_rest_method_and_route_errors(stack):
    r = requests.post(stack.metrics_url + "/v1/metrics/temperature/zones", json={}, timeout=10)
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"
    r = requests.get(stack.metrics_url + "/v1/metrics/nothing", timeout=10)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


BAD_GRPC = [
    ("TemperatureByZone", "ZoneTemperatureRequest", {"window_hours": 721},
     "window_hours: must be an integer between 1 and 720, got 721"),
    ("AlertBreakdown", "AlertBreakdownRequest", {"top": 1000},
     "top: must be an integer between 1 and 100, got 1000"),
    ("AlertBreakdown", "AlertBreakdownRequest", {"window_hours": 100000, "top": 101},
     "window_hours: must be an integer between 1 and 720, got 100000; "
     "top: must be an integer between 1 and 100, got 101"),
    ("DeviceHealth", "DeviceHealthRequest", {"silent_minutes": 50000},
     "silent_minutes: must be an integer between 1 and 43200, got 50000"),
    ("DeviceHealth", "DeviceHealthRequest", {"limit": 1001},
     "limit: must be an integer between 1 and 1000, got 1001"),
    ("FirmwareStatus", "FirmwareStatusRequest", {"zone": "z" * 65},
     "zone: must be at most 64 characters"),
    ("FirmwareStatus", "FirmwareStatusRequest", {"zone": "\U0001F600" * 65},
     "zone: must be at most 64 characters"),
    ("ActivityTrend", "ActivityTrendRequest", {"zone": "a\tb"},
     "zone: must not contain control characters"),
]


@pytest.fixture(scope="module")
def stub(stack, iot_pb2):
    channel = grpc.insecure_channel(stack.metrics_grpc)
    yield iot_pb2.metrics_pb2_grpc.MetricsServiceStub(channel)
    channel.close()


@pytest.mark.parametrize("rpc,request_cls,fields,message", BAD_GRPC)
def test_grpc_rejects_bad_parameter(stub, iot_pb2, rpc, request_cls, fields, message):
    req = getattr(iot_pb2.metrics_pb2, request_cls)(**fields)
    with pytest.raises(grpc.RpcError) as exc:
        getattr(stub, rpc)(req, timeout=10)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details() == "invalid parameter: " + message


def test_grpc_zero_means_default(stub, iot_pb2):
    m = iot_pb2.metrics_pb2
    assert stub.TemperatureByZone(m.ZoneTemperatureRequest(), timeout=30).window_hours == 24
    assert stub.AlertBreakdown(m.AlertBreakdownRequest(), timeout=30).window_hours == 168
    h = stub.DeviceHealth(m.DeviceHealthRequest(), timeout=30)
    assert h.as_of_ms - h.threshold_ms == 10 * 60_000
    assert len(h.silent) <= 100


def test_grpc_malformed_request_message(stack):
    channel = grpc.insecure_channel(stack.metrics_grpc)
    try:
        call = channel.unary_unary("/iot.v1.MetricsService/TemperatureByZone",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as exc:
            call(b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", timeout=10)  # broken varint
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert exc.value.details() == "malformed request message"
    finally:
        channel.close()


def test_invalid_requests_are_counted(stack):
    requests.get(stack.metrics_url + "/v1/metrics/alerts/breakdown?top=0", timeout=10)
    text = requests.get(stack.metrics_url + "/metrics", timeout=10).text
    assert 'plantwatch_metrics_requests_total{view="alerts",protocol="rest",outcome="invalid_argument"}' in text
