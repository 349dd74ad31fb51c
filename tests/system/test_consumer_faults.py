"""Consumer faults that need more than a kill: a consumer frozen with SIGSTOP
past its session timeout while readings stream in (its partitions move on;
when it thaws, its late writes must not roll anything back), and a crash
between the gate insert and the raw insert (forced with the test-only
PW_TEST_FAULT switch), after which the redelivery must restore the reading.
Both end with exact counts: stored raw documents == accepted, and every view
that counts the zone's records or devices says the same as the raw
documents."""
import os
import signal
import socket
import subprocess
import time
import uuid

import requests

from conftest import find_ids, post_accepted, wait_until
from test_consumer_exactly_once import (STORE_TIMEOUT_S, Stream, assert_exactly_once,
                                        consumer_metric)

CONSUMERS = ("consumer-1", "consumer-2", "consumer-3")
SESSION_TIMEOUT_S = 10  # PW_KAFKA_SESSION_TIMEOUT_MS of the local stack


def metrics_view(stack, path, **params):
    r = requests.get(stack.metrics_url + path, params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def assert_views_match(stack, store_view, zone):
    """Every view that counts the zone says what its raw documents say."""
    db = store_view.db
    readings = db.telemetry.count_documents({"zone": zone})
    alerts = db.alerts.count_documents({"zone": zone})
    devices = len(set(d["device"] for d in db.telemetry.find({"zone": zone}, {"device": 1})) |
                  set(d["device"] for d in db.alerts.find({"zone": zone}, {"device": 1})))

    def views():
        temp = metrics_view(stack, "/v1/metrics/temperature/zones", zone=zone, window_hours=720)
        trend = metrics_view(stack, "/v1/metrics/activity/trend", zone=zone)
        breakdown = metrics_view(stack, "/v1/metrics/alerts/breakdown", zone=zone,
                                 window_hours=720)
        fw = metrics_view(stack, "/v1/metrics/firmware/status", zone=zone)
        health = metrics_view(stack, "/v1/metrics/devices/health", zone=zone)
        return {"temperature": sum(z["count"] for z in temp["zones"]),
                "trend_readings": sum(d["readings"] for d in trend["days"]),
                "trend_alerts": sum(d["alerts"] for d in trend["days"]),
                "alerts": breakdown["total"],
                "firmware_devices": fw["total_devices"],
                "health_devices": health["total_devices"]}

    want = {"temperature": readings, "trend_readings": readings, "trend_alerts": alerts,
            "alerts": alerts, "firmware_devices": devices, "health_devices": devices}
    got = wait_until(lambda: views() == want and views(), 60, 1.0)
    assert got == want, (views(), want)


def test_consumer_frozen_past_its_session_lands_no_stale_write(stack, store_view):
    zone = f"frozen-{uuid.uuid4().hex[:8]}"
    stream = Stream(stack, zone, 15_000).start()
    stream.wait_sent(0.25)
    pid = stack.pid("consumer-2")
    os.killpg(pid, signal.SIGSTOP)
    try:
        # its partitions move to the others while readings keep coming
        time.sleep(SESSION_TIMEOUT_S * 2)
    finally:
        os.killpg(pid, signal.SIGCONT)
    stream.join()
    # the thawed process finishes what it was doing (late writes) before it
    # learns that it lost its partitions
    time.sleep(SESSION_TIMEOUT_S)
    assert_exactly_once(store_view, stream)
    assert_views_match(stack, store_view, zone)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_crash_between_gate_and_raw_insert_is_restored_by_the_redelivery(stack, store_view,
                                                                           tmp_path):
    db = store_view.db
    zone = f"gate-{uuid.uuid4().hex[:8]}"
    for name in CONSUMERS:
        stack.stop_service(name)
    proc = None
    try:
        env = dict(stack.service_env("consumer-1"), PATH=os.environ["PATH"],
                   PW_INSTANCE="consumer-fault", PW_HTTP_PORT=str(free_port()),
                   PW_TEST_FAULT="after_gate")
        log = tmp_path / "consumer-fault.log"
        binary = stack.consumer_binary
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(binary)], env=env, stdout=out, stderr=subprocess.STDOUT)
        ids = post_accepted(stack, "/v1/telemetry", [
            {"device_id": f"{zone}-d{i % 5}", "zone": zone, "type": "temperature",
             "value": float(i), "unit": "C", "firmware": "1.0.0"} for i in range(50)])
        assert proc.wait(timeout=STORE_TIMEOUT_S) == 137, log.read_text()
        # the gate holds tokens of ours whose raw documents were never written
        gated = len(find_ids(db.ingest_tokens, ids))
        assert gated > 0, log.read_text()
        assert db.telemetry.count_documents({"zone": zone}) == 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        for name in CONSUMERS:
            stack.start(name)
    assert wait_until(lambda: db.telemetry.count_documents({"zone": zone}) == len(ids),
                      STORE_TIMEOUT_S, 1.0)
    time.sleep(2)
    stored = [d["_id"] for d in db.telemetry.find({"zone": zone}, {"_id": 1})]
    assert sorted(stored) == sorted(ids)
    # the restarted consumers restored every gated reading (their counters start at 0)
    assert consumer_metric(stack, "pw_consumer_restored_total") >= gated
    stream = type("Accepted", (), {"zone": zone, "accepted": set(ids)})
    assert_exactly_once(store_view, stream)
    assert_views_match(stack, store_view, zone)
