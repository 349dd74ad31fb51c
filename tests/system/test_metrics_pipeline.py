"""The pipeline view (GET /v1/metrics/pipeline, gRPC Pipeline) against the
real stack: after records accepted through the gateway, every partition is
accepted == counted == committed (the end offsets an independent Kafka
client reads) with lag 0 and difference 0, "in sync"; with the consumers
stopped, records sent meanwhile show up as lag exactly their number and the
partitions as "stalled" (after the local stack's PW_METRICS_STALL_SECONDS of
10 s); once restarted, "in sync" again. Dead letters are counted by reason
and source partition exactly as they were dead-lettered; the latency
histogram counts one sample per stored record; REST equals gRPC; a bad
window_minutes is a 400 / INVALID_ARGUMENT; a metrics service that cannot
reach Kafka still answers from the store and says so."""
import os
import pathlib
import socket
import subprocess
import time
import uuid

import grpc
import pytest
import requests
from confluent_kafka import Consumer, TopicPartition

from conftest import ROOT, post_accepted, wait_until
from test_consumer_storage import envelope
from test_consumer_storage import produce as produce_record
from test_metrics_views import message_to_dict, strip_time_twins

CONSUMERS = ("consumer-1", "consumer-2", "consumer-3")
TOPICS = ("sensor-alerts", "sensor-telemetry")
PATH = "/v1/metrics/pipeline"
STALL_S = 10  # PW_METRICS_STALL_SECONDS of the local stack
SETTLE_S = 120


def view(stack, url=None, **params):
    r = requests.get((url or stack.metrics_url) + PATH, params=params, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def by_tp(v):
    return {(p["topic"], p["partition"]): p for p in v["partitions"]}


def reasons(v):
    return {d["reason"]: d["count"] for d in v["dead_letters"]}


def in_sync(stack, **params):
    """The view once it is in sync (fails after a generous wait)."""
    got = wait_until(lambda: (lambda v: v if v["in_sync"] else None)(view(stack, **params)),
                     SETTLE_S, 0.5)
    assert got, view(stack, **params)
    return got


def kafka_ends(kafka_config):
    """{(topic, partition): end offset} from an independent client."""
    c = Consumer(kafka_config("admin", **{"group.id": "pw-test-pipeline-marks"}))
    try:
        out = {}
        for topic in TOPICS:
            for p in c.list_topics(topic, timeout=10).topics[topic].partitions:
                out[(topic, p)] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return out
    finally:
        c.close()


def total(v, topic, field):
    return sum(p[field] for p in v["partitions"] if p["topic"] == topic)


def readings(zone, n):
    return [{"device_id": f"{zone}-d{i % 3}", "zone": zone, "type": "temperature",
             "value": 20.0 + i, "unit": "C", "firmware": "1.0.0"} for i in range(n)]


def alerts(zone, n):
    return [{"device_id": f"{zone}-d{i}", "zone": zone, "severity": "warning",
             "code": "PIPE", "message": "pipeline test"} for i in range(n)]


def assert_partitions_in_sync(v, ends):
    assert [(p["topic"], p["partition"]) for p in v["partitions"]] == sorted(ends)
    for p in v["partitions"]:
        end = ends[(p["topic"], p["partition"])]
        assert (p["accepted"], p["counted"], p["committed"]) == (end, end, end), p
        assert (p["lag"], p["difference"], p["verdict"]) == (0, 0, "in sync"), p
        assert p["stalled_since_ms"] == 0
    assert v["in_sync"] is True and v["verdict"] == "in sync"


def test_accepted_records_are_counted_and_in_sync(stack, kafka_config):
    zone = f"pipe-{uuid.uuid4().hex[:8]}"
    before = in_sync(stack, window_minutes=60)
    n_readings = sum(len(post_accepted(stack, "/v1/telemetry", readings(zone, 10)))
                     for _ in range(3))
    n_alerts = len(post_accepted(stack, "/v1/alerts", alerts(zone, 4)))
    assert (n_readings, n_alerts) == (30, 4)

    def settled():
        v = view(stack, window_minutes=60)
        ok = v["in_sync"] and total(v, "sensor-telemetry", "counted") == \
            total(before, "sensor-telemetry", "counted") + n_readings
        return v if ok else None
    after = wait_until(settled, SETTLE_S, 0.5)
    assert after, view(stack, window_minutes=60)
    assert_partitions_in_sync(after, kafka_ends(kafka_config))
    for topic, n in (("sensor-telemetry", n_readings), ("sensor-alerts", n_alerts)):
        assert total(after, topic, "accepted") - total(before, topic, "accepted") == n
        assert total(after, topic, "counted") - total(before, topic, "counted") == n
    # one latency sample per stored record, none for anything else
    assert after["latency_samples"] - before["latency_samples"] == n_readings + n_alerts
    assert 0 < after["latency_p50_ms"] <= after["latency_p99_ms"]
    assert after["window_minutes"] == 60
    assert reasons(after) == reasons(before)
    # through the gateway with a read key, the same view
    key = sorted(stack.read_keys.values())[0]
    r = requests.get(stack.gateway_url + PATH, headers={"apikey": key}, timeout=30)
    assert r.status_code == 200, r.text
    assert [(p["topic"], p["partition"], p["counted"]) for p in r.json()["partitions"]] == \
        [(p["topic"], p["partition"], p["counted"]) for p in after["partitions"]]


def test_stopped_consumers_show_the_lag_and_stall_then_catch_up(stack, kafka_config):
    zone = f"pipe-stall-{uuid.uuid4().hex[:8]}"
    before = in_sync(stack)
    for name in CONSUMERS:
        stack.stop_service(name)
    try:
        m = len(post_accepted(stack, "/v1/telemetry", readings(zone, 12)))
        m += len(post_accepted(stack, "/v1/alerts", alerts(zone, 2)))
        assert m == 14

        def stalled():
            v = view(stack)
            lagging = [p for p in v["partitions"] if p["lag"] > 0]
            ok = sum(p["lag"] for p in v["partitions"]) == m and \
                all(p["verdict"] == "stalled" for p in lagging)
            return v if ok else None
        v = wait_until(stalled, STALL_S + 60, 0.5)
        assert v, view(stack)
        old = by_tp(before)
        ends = kafka_ends(kafka_config)
        for tp, p in by_tp(v).items():
            # nothing was counted or committed while the consumers were down
            assert (p["counted"], p["committed"]) == (old[tp]["counted"], old[tp]["committed"])
            assert p["accepted"] == ends[tp]
            assert p["difference"] == 0
            assert p["lag"] == ends[tp] - old[tp]["accepted"]
            if p["lag"] > 0:
                assert p["stalled_since_ms"] == p["last_stored_ms"] == old[tp]["last_stored_ms"]
                assert v["as_of_ms"] - p["last_stored_ms"] >= STALL_S * 1000
            else:
                assert p["verdict"] == "in sync"
        assert v["in_sync"] is False
        assert v["verdict"].startswith("stalled: ") and f"have lag {m} " in v["verdict"], v
    finally:
        for name in CONSUMERS:
            stack.start(name)
    after = in_sync(stack)
    assert_partitions_in_sync(after, kafka_ends(kafka_config))
    assert sum(p["counted"] for p in after["partitions"]) - \
        sum(p["counted"] for p in before["partitions"]) == m
    for p in after["partitions"]:
        assert p["last_stored_ms"] >= by_tp(before)[(p["topic"], p["partition"])]["last_stored_ms"]


def test_dead_letters_are_counted_by_reason_and_partition(stack, kafka_config, iot_pb2):
    before = in_sync(stack, window_minutes=60)
    tag = uuid.uuid4().hex[:8]
    for i in range(3):
        produce_record(kafka_config, "sensor-telemetry", 0, f"pipe-bad-{tag}".encode(),
                       b"\x08\x96\x01 not an envelope %d \xff\xff" % i)
    for i in range(2):
        produce_record(kafka_config, "sensor-telemetry", 1, f"pipe-unit-{tag}".encode(),
                       envelope(iot_pb2, str(uuid.uuid4()), device_id=f"pipe-{tag}",
                                zone=f"pipe-{tag}", type="temperature", value=1.0 + i,
                                unit="furlong", ts_ms=int(time.time() * 1000), firmware="1.0"))

    def counted():
        v = view(stack, window_minutes=60)
        done = v["in_sync"] and total(v, "sensor-telemetry", "counted") == \
            total(before, "sensor-telemetry", "counted") + 5
        return v if done else None
    after = wait_until(counted, SETTLE_S, 0.5)
    assert after, view(stack, window_minutes=60)
    was, now = reasons(before), reasons(after)
    assert now.get("undecodable", 0) - was.get("undecodable", 0) == 3
    assert now.get("unknown_unit", 0) - was.get("unknown_unit", 0) == 2
    assert {r: c for r, c in now.items() if r not in ("undecodable", "unknown_unit")} == \
        {r: c for r, c in was.items() if r not in ("undecodable", "unknown_unit")}
    counts = [d["count"] for d in after["dead_letters"]]
    assert counts == sorted(counts, reverse=True)
    old, new = by_tp(before), by_tp(after)
    assert new[("sensor-telemetry", 0)]["dead_letters"] - \
        old[("sensor-telemetry", 0)]["dead_letters"] == 3
    assert new[("sensor-telemetry", 1)]["dead_letters"] - \
        old[("sensor-telemetry", 1)]["dead_letters"] == 2
    assert sum(p["dead_letters"] for p in after["partitions"]) == sum(now.values())
    # dead letters give no latency sample
    assert after["latency_samples"] == before["latency_samples"]


def test_rest_equals_grpc(stack, iot_pb2):
    in_sync(stack)
    channel = grpc.insecure_channel(stack.metrics_grpc)
    stub = iot_pb2.metrics_pb2_grpc.MetricsServiceStub(channel)
    try:
        for minutes in (0, 1, 60):
            params = {"window_minutes": minutes} if minutes else {}
            j = strip_time_twins(view(stack, **params))
            g = message_to_dict(stub.Pipeline(iot_pb2.metrics_pb2.PipelineRequest(
                window_minutes=minutes), timeout=30))
            assert g["window_minutes"] == j["window_minutes"] == (minutes or 5)
            assert 0 <= g["as_of_ms"] - j["as_of_ms"] < 60000
            j.pop("as_of_ms")
            g.pop("as_of_ms")
            assert j == g
    finally:
        channel.close()


@pytest.mark.parametrize("query,reason", [
    ("window_minutes=0", 'must be an integer between 1 and 60, got "0"'),
    ("window_minutes=61", 'must be an integer between 1 and 60, got "61"'),
    ("window_minutes=abc", 'must be an integer between 1 and 60, got "abc"'),
    ("window_minutes=5&window_minutes=6", "given more than once"),
    ("window=5", "unknown parameter (allowed: window_minutes)"),
])
def test_bad_parameters_are_400(stack, query, reason):
    r = requests.get(f"{stack.metrics_url}{PATH}?{query}", timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_parameter"
    assert err["message"].startswith("invalid parameter: ")
    assert len(err["details"]) == 1
    assert err["details"][0]["param"] == query.split("=")[0]
    assert err["details"][0]["reason"] == reason, err
    assert err["message"] == f"invalid parameter: {err['details'][0]['param']}: {reason}", err


def test_bad_window_is_invalid_argument_over_grpc(stack, iot_pb2):
    with grpc.insecure_channel(stack.metrics_grpc) as channel:
        stub = iot_pb2.metrics_pb2_grpc.MetricsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as e:
            stub.Pipeline(iot_pb2.metrics_pb2.PipelineRequest(window_minutes=61), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details() == "invalid parameter: window_minutes: must be an integer between " \
        "1 and 60, got 61"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_kafka_answers_from_the_store(stack, tmp_path):
    """A metrics service whose Kafka does not answer still shows what the
    consumers counted, with "unknown" verdicts and the reason."""
    binary = pathlib.Path(os.environ.get("PW_ROOT", ROOT)) / "build/src/metrics/plantwatch-metrics"
    http_port, grpc_port = free_port(), free_port()
    env = dict(stack.service_env("metrics"), PATH=os.environ["PATH"],
               PW_HTTP_PORT=str(http_port), PW_GRPC_PORT=str(grpc_port),
               PW_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}", PW_METRICS_KAFKA_TIMEOUT_MS="500",
               PW_INSTANCE="metrics-no-kafka", PW_STORE_EXPLAIN="0")
    log = tmp_path / "metrics.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(binary)], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{http_port}"
    try:
        def ready():
            try:
                return requests.get(url + "/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return proc.poll() is not None
        wait_until(ready, 30)
        assert proc.poll() is None, log.read_text()
        main = in_sync(stack)
        v = view(stack, url)
        assert requests.get(url + "/healthz", timeout=5).status_code == 200
        assert v["in_sync"] is False
        assert v["verdict"].startswith("Kafka is unreachable ("), v["verdict"]
        counted = sum(p["counted"] for p in main["partitions"])
        assert v["verdict"].endswith(
            f"the consumers counted {counted} records of {len(main['partitions'])} partitions")
        assert [(p["topic"], p["partition"], p["counted"], p["last_stored_ms"],
                 p["dead_letters"]) for p in v["partitions"]] == \
            [(p["topic"], p["partition"], p["counted"], p["last_stored_ms"], p["dead_letters"])
             for p in main["partitions"]]
        for p in v["partitions"]:
            assert (p["verdict"], p["accepted"], p["committed"], p["lag"], p["difference"]) == \
                ("unknown", 0, 0, 0, 0)
        assert v["dead_letters"] == main["dead_letters"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
