#!/usr/bin/env python3
"""Metrics benchmark (on demand, not a test): p50/p99 latency of each view
over REST and gRPC with 1,000,000 readings from 10,000 devices stored, and
again with 10× the readings.

Each scale is loaded by loader.py (hour and day rollup buckets per Kafka
partition with packed state, census shards of 10,000 devices over the 3
telemetry and 2 alerts partitions, 20 zones, 7 days) into its own database
with the consumer's store URI (the tables are then the consumer role's, as
the consumer's own are), and served by its own plantwatch-metrics process
(the built binary) on spare ports, authenticated with the metrics role's
read-only URI (PW_MONGO_URI) — once with the default answer cache and once
with PW_METRICS_CACHE_MS=0 (every request reads the store). The temperature
view is measured at window_hours 24 (its default) and 720, the alerts view at
168 (its default) and 720, as separate rows.

Targets: served as configured, p99 ≤ 50 ms at both scales and growing by at
most 2× with 10× the readings; uncached, p99 ≤ 50 ms at 1× and the 10× p99 at
most 2× the 1× p99.

Prints a table and replaces the "## Metrics" section of docs/performance.md
(other sections are left as they are). The bench databases are dropped at
the end unless --keep (or --reuse) is given.

Options (defaults in brackets):
  --mongo-uri URI          loads the data [contents of .plantwatch/secrets/consumer-mongodb.uri]
  --metrics-uri URI        the metrics processes' PW_MONGO_URI [contents of .plantwatch/secrets/metrics-mongodb.uri]
  --readings N             readings at 1× (10× loads 10 N) [1000000]
  --requests N             requests per view and protocol, cached [300]
  --requests-uncached N    requests per view and protocol, PW_METRICS_CACHE_MS=0 [10]
  --cache-ms MS            PW_METRICS_CACHE_MS of the cached run [1000]
  --binary PATH            plantwatch-metrics [$PW_BUILD/src/metrics/plantwatch-metrics, PW_BUILD=build]
  --keep                   keep the bench databases (for --reuse)
  --reuse                  reuse already loaded bench databases of the same size (implies --keep)
  --no-write               print only; leave docs/performance.md alone
  --doc PATH               write the section into PATH instead of docs/performance.md

  python bench/metrics/run.py [--readings 1000000] [--requests 300] [--no-write]
"""
import argparse
import os
import pathlib
import platform
import signal
import statistics
import subprocess
import sys
import time

import grpc
import pymongo
import requests

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "store"))
import loader  # noqa: E402
import storelib as sl  # noqa: E402

# (row label, REST path, RPC, request message, parameters)
VIEWS = [
    ("temperature 24 h", "/v1/metrics/temperature/zones", "TemperatureByZone",
     "ZoneTemperatureRequest", {"window_hours": 24}),
    ("temperature 720 h", "/v1/metrics/temperature/zones", "TemperatureByZone",
     "ZoneTemperatureRequest", {"window_hours": 720}),
    ("alerts 168 h", "/v1/metrics/alerts/breakdown", "AlertBreakdown", "AlertBreakdownRequest",
     {"window_hours": 168}),
    ("alerts 720 h", "/v1/metrics/alerts/breakdown", "AlertBreakdown", "AlertBreakdownRequest",
     {"window_hours": 720}),
    ("activity", "/v1/metrics/activity/trend", "ActivityTrend", "ActivityTrendRequest", {}),
    ("firmware", "/v1/metrics/firmware/status", "FirmwareStatus", "FirmwareStatusRequest", {}),
    ("health", "/v1/metrics/devices/health", "DeviceHealth", "DeviceHealthRequest", {}),
]
TARGET_P99_MS = 50.0
TARGET_GROWTH = 2.0
COUNT_ROWS = [("rollup_readings (hour)", "rollup_readings_hour"),
              ("rollup_readings (day)", "rollup_readings_day"),
              ("rollup_alerts (hour)", "rollup_alerts_hour"),
              ("rollup_alerts (day)", "rollup_alerts_day"),
              ("rollup_devices (census shards)", "rollup_devices")]


def start_metrics(binary, mongo_uri, db, cache_ms):
    http, grpc_port = sl.free_port(), sl.free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PW_MONGO_URI_FILE",)}
    env.update({"PW_HTTP_PORT": str(http), "PW_GRPC_PORT": str(grpc_port),
                "PW_MONGO_URI": mongo_uri, "PW_MONGO_DB": db,
                "PW_INSTANCE": f"metrics-bench-{db}", "PW_LOG_LEVEL": "warn",
                "PW_METRICS_CACHE_MS": str(cache_ms)})
    log = open(f"/tmp/pw-bench-metrics-{db}.log", "w")
    proc = subprocess.Popen([str(binary)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{http}"
    for _ in range(300):
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        raise SystemExit(f"metrics for {db} did not become ready (log: {log.name})")
    if proc.poll() is not None:
        raise SystemExit(f"metrics for {db} exited with {proc.returncode} (log: {log.name})")
    return proc, url, f"127.0.0.1:{grpc_port}"


def percentile(samples, p):
    s = sorted(samples)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def measure(url, grpc_addr, pb2, pb2_grpc, n):
    channel = grpc.insecure_channel(grpc_addr)
    stub = pb2_grpc.MetricsServiceStub(channel)
    session = requests.Session()
    results = {}
    for name, path, rpc, req_cls, params in VIEWS:
        req = getattr(pb2, req_cls)(**params)
        call = getattr(stub, rpc)
        for _ in range(10 if n >= 100 else 2):  # warm-up: connections, caches
            session.get(url + path, params=params, timeout=60).raise_for_status()
            call(req, timeout=60)
        for proto in ("rest", "grpc"):
            lat = []
            for _ in range(n):
                t0 = time.perf_counter()
                if proto == "rest":
                    r = session.get(url + path, params=params, timeout=60)
                    r.raise_for_status()
                    r.json()
                else:
                    call(req, timeout=60)
                lat.append((time.perf_counter() - t0) * 1000)
            results[(name, proto)] = (statistics.median(lat), percentile(lat, 99))
    channel.close()
    return results


def verdict(mode, p99a, p99b):
    ratio = p99b / p99a if p99a else float("inf")
    if mode == "cached":
        return max(p99a, p99b) <= TARGET_P99_MS and ratio <= TARGET_GROWTH, ratio
    return p99a <= TARGET_P99_MS and ratio <= TARGET_GROWTH, ratio


def render(scales, stats, counts, store, n, n_uncached, cache_ms, users):
    base, big = scales
    lines = ["## Metrics", "",
             f"Latency of each analytics view, measured by `bench/metrics/run.py`: sequential requests "
             f"after warm-up requests (10 cached, 2 uncached), client-side wall time including HTTP/JSON or "
             f"gRPC/protobuf, against {store} on {platform.machine()} / {os.cpu_count()} CPUs, on a machine "
             f"shared with the rest of the local stack. The data was loaded as {users[0]}; the metrics "
             f"processes read as {users[1]} (read-only role, PLAIN authentication through FerretDB).",
             "",
             f"Dataset: {base[1]:,} readings from 10,000 devices in 20 zones over 7 days "
             f"(and {big[1]:,} readings for the 10× run), 5 % as many alerts, each scale in its own "
             f"database (`{base[0]}`, `{big[0]}`), written by `bench/metrics/loader.py` in the consumer's "
             "shapes: per Kafka partition (3 telemetry, 2 alerts) one bucket per UTC hour and one per "
             "UTC day with the cells packed in `state`, and the device census (every device in a shard "
             "of its telemetry and of its alerts partition, 8 shards each). Raw documents, gate tokens "
             "and presence were not written because no view reads them. What a call reads depends on "
             "buckets and devices, not readings:",
             "",
             "| collection | documents at 1× | at 10× |", "|---|---:|---:|"]
    for label, key in COUNT_ROWS:
        lines.append(f"| {label} | {counts[base[0]][key]:,} | {counts[big[0]][key]:,} |")
    lines += ["", f"Targets: served as configured, p99 ≤ {TARGET_P99_MS:.0f} ms for every view at both "
              f"scales and growing by at most {TARGET_GROWTH:.0f}× when the stored readings grow 10×; "
              f"reading the store on every request, p99 ≤ {TARGET_P99_MS:.0f} ms at 1× and the 10× p99 at "
              f"most {TARGET_GROWTH:.0f}× the 1× p99. The temperature view is measured at `window_hours` "
              "24 (its default) and 720, the alerts view at 168 (its default) and 720.", ""]
    worst = []
    for mode, title, count in (("cached", f"Service as configured by default (answers reused for "
                                          f"`PW_METRICS_CACHE_MS`={cache_ms} ms, single flight, stale answers served "
                                          f"while a background refresh runs)", n),
                               ("uncached", "Every request reads the store (`PW_METRICS_CACHE_MS=0`)",
                                n_uncached)):
        lines += [f"{title}, {count} requests per view and protocol:", "",
                  "| view | protocol | p50 1× (ms) | p99 1× (ms) | p50 10× (ms) | p99 10× (ms) | p99 10×/1× | target |",
                  "|---|---|---:|---:|---:|---:|---:|---|"]
        for name, *_ in VIEWS:
            for proto in ("rest", "grpc"):
                p50a, p99a = stats[(base[0], mode)][(name, proto)]
                p50b, p99b = stats[(big[0], mode)][(name, proto)]
                ok, ratio = verdict(mode, p99a, p99b)
                if not ok:
                    worst.append(f"{name}/{proto} ({mode})")
                lines.append(f"| {name} | {proto} | {p50a:.1f} | {p99a:.1f} | {p50b:.1f} | {p99b:.1f} | "
                             f"{ratio:.2f}× | {'met' if ok else 'NOT met'} |")
        lines.append("")
    lines += ["All targets met." if not worst else f"Targets not met: {', '.join(worst)}.", "",
              "Every view reads documents by pushed-down equality filters: the hour buckets of the days "
              "a window covers in part (`{day, res: \"hour\"}`), the day buckets of the days it covers "
              "whole (`{day, res: \"day\"}`, or `{month}` for windows longer than a week), or the whole "
              "census (firmware, health). FerretDB hands these filters to PostgreSQL as JSONB "
              "containment, which the GIN twins of the consumer's indexes serve, so an uncached call "
              "costs the buckets of its window (or the census shards), not the stored readings.", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mongo-uri", default=None)
    ap.add_argument("--metrics-uri", default=None)
    ap.add_argument("--readings", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--requests-uncached", type=int, default=10)
    ap.add_argument("--cache-ms", type=int, default=1000)
    ap.add_argument("--binary", default=str(pathlib.Path(os.environ.get("PW_BUILD", ROOT / "build"))
                                              / "src/metrics/plantwatch-metrics"))
    ap.add_argument("--keep", action="store_true", help="keep the bench databases")
    ap.add_argument("--reuse", action="store_true", help="reuse already loaded bench databases")
    ap.add_argument("--no-write", action="store_true", help="do not touch docs/performance.md")
    ap.add_argument("--doc", default=None, help="write the section into this file instead")
    args = ap.parse_args()

    load_uri = args.mongo_uri or sl.uri_of("consumer")
    metrics_uri = args.metrics_uri or sl.uri_of("metrics")
    client = pymongo.MongoClient(load_uri)
    sl.wait_for_store(client)
    store = sl.store_name(client)
    mods = sl.proto_modules(grpc_too=True)
    pb2, pb2_grpc = mods["metrics_pb2"], mods["metrics_pb2_grpc"]
    scales = [("plantwatch_bench_metrics_1x", args.readings),
              ("plantwatch_bench_metrics_10x", 10 * args.readings)]
    stats, counts = {}, {}
    try:
        for db_name, readings in scales:
            db = client[db_name]
            marker = db.bench_info.find_one({"_id": "load"})
            if args.reuse and marker and marker["readings"] == readings and \
                    all(k in marker["counts"] for _, k in COUNT_ROWS):
                counts[db_name] = marker["counts"]
                print(f"{db_name}: reusing {readings:,} readings")
            else:
                t0 = time.time()
                print(f"{db_name}: loading rollups and census for {readings:,} readings …", flush=True)
                counts[db_name] = loader.load(db, readings, log=lambda m: print("  " + m, flush=True))
                db.bench_info.replace_one({"_id": "load"}, {"_id": "load", "readings": readings,
                                                            "counts": counts[db_name]}, upsert=True)
                print(f"  loaded in {time.time() - t0:.0f} s", flush=True)
            for mode, cache_ms, n in (("cached", args.cache_ms, args.requests),
                                      ("uncached", 0, args.requests_uncached)):
                proc, url, grpc_addr = start_metrics(args.binary, metrics_uri, db_name, cache_ms)
                try:
                    print(f"{db_name}: {mode}: measuring {n} requests per view and protocol …",
                          flush=True)
                    stats[(db_name, mode)] = measure(url, grpc_addr, pb2, pb2_grpc, n)
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=60)
    finally:
        if not (args.keep or args.reuse):
            if sl.drop_databases(client, [d for d, _ in scales]):
                print("dropped the bench databases", flush=True)
    text = render(scales, stats, counts, store, args.requests, args.requests_uncached,
                  args.cache_ms, (sl.user_of(load_uri), sl.user_of(metrics_uri)))
    print()
    print(text)
    if not args.no_write:
        doc = pathlib.Path(args.doc) if args.doc else sl.DOC
        sl.write_section("Metrics", text, path=doc)
        print(f"wrote the Metrics section of {doc}")


if __name__ == "__main__":
    main()
