"""System tests of the sensor simulator (plantwatch-sim) against the running
stack: a short run through the gateway is accepted in full and stored exactly
once per accepted message, and the report prints the analytics views."""
import json
import os
import pathlib
import subprocess
import time
import uuid

import pytest

from conftest import ROOT, find_devices

BUILD = pathlib.Path(os.environ.get("PW_BUILD", ROOT / "build"))
SIM = BUILD / "src" / "sim" / "plantwatch-sim"

DEVICES = 12


@pytest.fixture(scope="module")
def sim():
    if not SIM.exists():
        pytest.fail(f"{SIM} is not built: run ./plantwatch build")
    return str(SIM)


def stored(mongo_db, ids):
    """Readings and alerts in the store from the given devices."""
    return sum(mongo_db[c].count_documents({"device": d})
               for c in ("telemetry", "alerts") for d in ids)


def wait_stable(read, expected, settle_s=5.0, poll_s=0.5, give_up_s=120.0):
    """Polls read() until it equals expected and then stays put for settle_s
    (a duplicate would show up as growth), or until it stops changing for
    give_up_s. Returns the last value."""
    value, changed_at, matched_at = read(), time.monotonic(), None
    while True:
        time.sleep(poll_s)
        now, new = time.monotonic(), read()
        if new != value:
            value, changed_at, matched_at = new, now, None
        if value == expected:
            matched_at = matched_at or now
            if now - matched_at >= settle_s:
                return value
        elif now - changed_at >= give_up_s:
            return value


def test_run_is_accepted_and_stored_exactly_once(stack, mongo_db, store_view, sim):
    prefix = f"simtest-{uuid.uuid4().hex[:8]}"
    ids = [f"{prefix}-{i:04d}" for i in range(1, DEVICES + 1)]
    before = stored(mongo_db, ids)
    proc = subprocess.run(
        [sim, "run", "--url", stack.gateway_url,
         "--keys-file", str(stack.state / "secrets" / "gateway-keys"),
         "--devices", str(DEVICES), "--zones", "3", "--device-prefix", prefix,
         "--rate", "25", "--batch", "5", "--alert-share", "0.2", "--duration", "8",
         "--seed", "4242", "--progress", "0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.strip(), f"no summary; stderr: {proc.stderr}"
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["rejected"] == 0, summary
    assert summary["failed"] == 0, summary
    assert proc.returncode == 0, proc.stderr
    # 8 s at 25 msg/s in batches of 5: 40 requests of 5 messages
    assert summary["sent"] >= 150, summary
    assert summary["sent"] % 5 == 0
    assert summary["accepted"] == summary["sent"]
    assert summary["readings"] + summary["alerts"] == summary["sent"]
    assert summary["alerts"] > 0 and summary["readings"] > 0
    assert summary["requests"] == summary["sent"] // 5 + summary["retries"]

    expected = before + summary["accepted"]
    count = wait_stable(lambda: stored(mongo_db, ids), expected)
    assert count == expected, f"stored {count - before} of {summary['accepted']} accepted messages"
    # every simulated device reported (readings go round robin over the fleet)
    census = store_view.census()
    seen = {d for devs in census.values() for d in devs if d in ids}
    assert seen == set(ids)


def test_same_seed_sends_same_messages(stack, mongo_db, sim):
    """Two runs with one seed store the same device/type/unit sequence."""
    runs = []
    for _ in range(2):
        prefix = f"simseed-{uuid.uuid4().hex[:8]}"
        ids = [f"{prefix}-{i:04d}" for i in range(1, 5)]
        proc = subprocess.run(
            [sim, "run", "--url", stack.gateway_url,
             "--keys-file", str(stack.state / "secrets" / "gateway-keys"),
             "--devices", "4", "--zones", "2", "--device-prefix", prefix, "--rate", "4",
             "--duration", "2", "--alert-share", "0", "--seed", "99", "--progress", "0",
             "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        assert proc.returncode == 0 and summary["accepted"] == summary["sent"] > 0, proc.stderr
        count = wait_stable(lambda: stored(mongo_db, ids), summary["accepted"])
        assert count == summary["accepted"]
        docs = find_devices(mongo_db.telemetry, ids,
                            {"device": 1, "zone": 1, "type": 1, "raw_value": 1, "raw_unit": 1,
                             "firmware": 1})
        runs.append(sorted((d["device"][len(prefix):], d["zone"], d["type"], d["raw_value"],
                            d["raw_unit"], d["firmware"]) for d in docs))
    common = min(len(runs[0]), len(runs[1]))
    assert common > 0
    # the same seed gives the same devices and values (runs may differ in length by a request)
    first = [r for r in runs[0] if r in runs[1]]
    assert len(first) >= common - 1


def test_report_prints_views(stack, sim):
    proc = subprocess.run([sim, "report", "--metrics-url", stack.metrics_url],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for title in ["Temperature by zone", "Alert breakdown", "Activity, last 7 days",
                  "Firmware status", "Device health"]:
        assert title + "\n" in out
    temperature = out.split("Alert breakdown")[0]
    assert "unavailable" not in temperature
    assert "avg C" in temperature
