"""Every query the services send to the store is served by the store's own
filter (FerretDB pushes it down to PostgreSQL), so no query scans a growing
collection. The local stack runs the consumers and the metrics service with
PW_STORE_EXPLAIN=1: each explains the first query of every shape it issues
and logs the plan as a store_query_plan line. This test drives every view
with every kind of window and a fresh stream through the consumers, then
reads those lines from all service logs of the run: no shape may scan, the
only whole-collection read is the device census (by design), and the shapes
of the write path and the views are all there."""
import json
import time
import uuid

import pytest
import requests

from conftest import post_accepted, run_log, wait_until

LOGS = ["consumer-1", "consumer-2", "consumer-3", "metrics"]

# (collection, shape) every run issues: the write path's reads and guarded
# writes, the retention sweep, and the views' bucket and census reads
EXPECTED = {
    ("rollup_readings", "{_id}"), ("rollup_readings", "{_id,_v}"),
    ("rollup_alerts", "{_id}"), ("rollup_alerts", "{_id,_v}"),
    ("rollup_devices", "{_id}"), ("rollup_devices", "{_id,_v}"),
    ("rollup_readings", "{day,res}"), ("rollup_readings", "{month}"),
    ("rollup_alerts", "{day,res}"), ("rollup_alerts", "{month}"),
    ("rollup_devices", "{}"),
    ("telemetry", "{hour}"), ("alerts", "{hour}"), ("ingest_tokens", "{at}"),
    ("rollup_readings", "{start}"), ("rollup_alerts", "{start}"),
    ("rollup_device_day", "{start}"), ("consumer_progress", "{_id}"),
    ("series_readings", "{_id}"), ("series_readings", "{_id,_v}"),
}


def plans(stack):
    out = {}
    for name in LOGS:
        for line in run_log(name, since_start=True).splitlines():
            if '"store_query_plan"' not in line:
                continue
            d = json.loads(line)
            out.setdefault((d["collection"], d["shape"]), set()).add((d["plan"], d["whole"]))
    return out


def drive(stack):
    zone = f"plans-{uuid.uuid4().hex[:8]}"
    now = int(time.time() * 1000)
    for path, body in (
            ("/v1/telemetry", [{"device_id": f"{zone}-d{i}", "zone": zone, "type": "temperature",
                                "value": 20.0 + i, "unit": "C", "firmware": "1.0.0",
                                "ts": now - i * 3_600_000} for i in range(30)]),
            ("/v1/alerts", [{"device_id": f"{zone}-d1", "zone": zone, "severity": "warning",
                             "code": "PLAN", "message": "plan check", "firmware": "1.0.0"}])):
        post_accepted(stack, path, body)

    def stored():
        r = requests.get(stack.metrics_url + "/v1/metrics/activity/trend",
                         params={"zone": zone}, timeout=30).json()
        return sum(d["readings"] for d in r["days"]) >= 7
    assert wait_until(stored, 120, 1.0)
    views = [("/v1/metrics/temperature/zones", {"window_hours": h}) for h in (1, 24, 168, 720)]
    views += [("/v1/metrics/alerts/breakdown", {"window_hours": h}) for h in (1, 24, 168, 720)]
    views += [("/v1/metrics/activity/trend", {}), ("/v1/metrics/firmware/status", {}),
              ("/v1/metrics/devices/health", {"silent_minutes": 1})]
    for path, params in views:
        for p in (params, dict(params, zone=zone)):
            assert requests.get(stack.metrics_url + path, params=p, timeout=30).status_code == 200


@pytest.mark.last
def test_no_query_scans_a_collection(stack):
    drive(stack)
    seen = plans(stack)
    assert seen, "no store_query_plan lines: is PW_STORE_EXPLAIN on in the stack?"
    scans = {k: v for k, v in seen.items() if ("scan", False) in v or ("unknown", False) in v}
    assert not scans, f"queries the store does not serve by its filter: {scans}"
    whole = {k for k, v in seen.items() if any(w for _, w in v)}
    assert whole == {("rollup_devices", "{}")}, whole
    missing = EXPECTED - set(seen)
    assert not missing, f"shapes never explained: {sorted(missing)}"


SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                     "SUMMARY: UndefinedBehaviorSanitizer")


@pytest.mark.last
def test_no_sanitizer_report_in_the_consumer_logs(stack):
    """Under ./plantwatch test the consumers run from the sanitizer build
    through every fault test (kills, SIGSTOP, store and broker outages, lost
    races): none may have reported a memory error or undefined behaviour."""
    found = []
    for name in ("consumer-1", "consumer-2", "consumer-3"):
        for line in run_log(name).splitlines():
            if any(r in line for r in SANITIZER_REPORTS):
                found.append(f"{name}: {line.strip()[:200]}")
    assert not found, "\n".join(found[:20])
