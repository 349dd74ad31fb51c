#!/usr/bin/env python3
"""Metrics benchmark (on demand): p50/p99 latency of each view over REST and
gRPC with 1,000,000 readings from 10,000 devices stored, and again with 10×
the readings. Each scale is loaded by loader.py into its own database and
served by its own plantwatch-metrics process (the built binary) on spare
ports. Prints a table and replaces the "## Metrics" section of
docs/performance.md (other sections are left as they are).

  python bench/metrics/run.py [--mongo-uri URI] [--requests N] [--no-write]
"""
import argparse
import os
import pathlib
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import grpc
import pymongo
import requests

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import loader  # noqa: E402

VIEWS = [
    ("temperature", "/v1/metrics/temperature/zones", "TemperatureByZone", "ZoneTemperatureRequest", {}),
    ("alerts", "/v1/metrics/alerts/breakdown", "AlertBreakdown", "AlertBreakdownRequest", {}),
    ("activity", "/v1/metrics/activity/trend", "ActivityTrend", "ActivityTrendRequest", {}),
    ("firmware", "/v1/metrics/firmware/status", "FirmwareStatus", "FirmwareStatusRequest", {}),
    ("health", "/v1/metrics/devices/health", "DeviceHealth", "DeviceHealthRequest", {}),
]
TARGET_P99_MS = 50.0
TARGET_GROWTH = 2.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proto_modules():
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix="pw-bench-pb2-")
    include = str(pathlib.Path(protoc.__file__).parent / "_proto")
    rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}",
                      f"--grpc_python_out={out}", "iot/v1/metrics.proto"])
    assert rc == 0
    sys.path.insert(0, out)
    from iot.v1 import metrics_pb2, metrics_pb2_grpc
    return metrics_pb2, metrics_pb2_grpc


def start_metrics(binary, mongo_uri, db, cache_ms):
    http, grpc_port = free_port(), free_port()
    env = {**os.environ, "PW_HTTP_PORT": str(http), "PW_GRPC_PORT": str(grpc_port),
           "PW_MONGO_URI": mongo_uri, "PW_MONGO_DB": db, "PW_INSTANCE": f"metrics-bench-{db}",
           "PW_LOG_LEVEL": "warn", "PW_METRICS_CACHE_MS": str(cache_ms)}
    proc = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{http}"
    for _ in range(300):
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.1)
    else:
        proc.kill()
        raise SystemExit(f"metrics for {db} did not become ready")
    return proc, url, f"127.0.0.1:{grpc_port}"


def percentile(samples, p):
    s = sorted(samples)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def measure(url, grpc_addr, pb2, pb2_grpc, n):
    stub = pb2_grpc.MetricsServiceStub(grpc.insecure_channel(grpc_addr))
    session = requests.Session()
    results = {}
    for name, path, rpc, req_cls, params in VIEWS:
        req = getattr(pb2, req_cls)(**params)
        call = getattr(stub, rpc)
        for _ in range(10 if n >= 100 else 2):  # warm-up: connections, caches
            session.get(url + path, params=params, timeout=30).raise_for_status()
            call(req, timeout=30)
        for proto in ("rest", "grpc"):
            lat = []
            for _ in range(n):
                t0 = time.perf_counter()
                if proto == "rest":
                    r = session.get(url + path, params=params, timeout=30)
                    r.raise_for_status()
                    r.json()
                else:
                    call(req, timeout=30)
                lat.append((time.perf_counter() - t0) * 1000)
            results[(name, proto)] = (statistics.median(lat), percentile(lat, 99))
    return results


def ferret_or_mongo(client):
    info = client.admin.command("buildInfo")
    if "ferretdbVersion" in info:
        return f"FerretDB {info['ferretdbVersion']} (SQLite backend, MongoDB wire {info.get('version')})"
    return f"MongoDB {info.get('version')}"


def render(scales, stats, counts, store, n, n_uncached, cache_ms):
    base, big = scales
    lines = ["## Metrics", "",
             f"Latency of each analytics view, measured by `bench/metrics/run.py`: sequential requests "
             f"after warm-up requests (10 cached, 2 uncached), client-side wall time including HTTP/JSON or gRPC/protobuf, "
             f"against {store} on {platform.machine()} / {os.cpu_count()} CPUs, on a machine shared "
             f"with the rest of the local stack.",
             "",
             f"Dataset: {base[1]:,} readings from 10,000 devices in 20 zones over 7 days "
             f"(and {big[1]:,} readings for the 10× run), 5 % as many alerts. The rollups and devices "
             f"were written directly by `bench/metrics/loader.py` in the consumer's document shapes, "
             f"each scale into its own database (`{base[0]}`, `{big[0]}`); raw `telemetry` documents "
             f"were not written because no view reads them. Every view reads hour/day rollups or the "
             f"devices collection, so what a call reads depends on buckets and devices, not readings:",
             "",
             "| collection | documents at 1× | at 10× |", "|---|---:|---:|"]
    for c in ("rollup_readings", "rollup_alerts", "rollup_device_day", "devices"):
        lines.append(f"| {c} | {counts[base[0]][c]:,} | {counts[big[0]][c]:,} |")
    lines += ["", f"Targets: p99 ≤ {TARGET_P99_MS:.0f} ms for every view; p99 growing by at most "
              f"{TARGET_GROWTH:.0f}× when the stored readings grow 10×.", ""]
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
                ratio = p99b / p99a if p99a else float("inf")
                ok = max(p99a, p99b) <= TARGET_P99_MS and ratio <= TARGET_GROWTH
                if not ok:
                    worst.append(f"{name}/{proto} ({mode})")
                lines.append(f"| {name} | {proto} | {p50a:.1f} | {p99a:.1f} | {p50b:.1f} | {p99b:.1f} | "
                             f"{ratio:.2f}× | {'met' if ok else 'NOT met'} |")
        lines.append("")
    lines += ["All targets met." if not worst else f"Targets not met: {', '.join(worst)}.", "",
              "FerretDB 1.24 with the SQLite backend hands SQLite only filters of exactly "
              "`{_id: <string>}`; every other `find` reads and decodes the whole collection in "
              "FerretDB, so an uncached view costs time proportional to the size of the collection "
              "it reads: hourly rollup documents (retention × partitions, independent of the number "
              "of readings) or the devices (the fleet). On MongoDB the same queries use the indexes "
              "on `hour`, `day` and `last_seen`.", ""]
    return "\n".join(lines)


def write_section(text):
    doc = ROOT / "docs" / "performance.md"
    old = doc.read_text() if doc.exists() else "# Performance\n"
    out, skipping = [], False
    for line in old.splitlines():
        if line.startswith("## "):
            skipping = line.strip() == "## Metrics"
            if skipping:
                continue
        if not skipping:
            out.append(line)
    body = "\n".join(out).rstrip() + "\n\n" + text
    doc.write_text(body if body.endswith("\n") else body + "\n")
    print(f"wrote the Metrics section of {doc}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mongo-uri", default=os.environ.get("PW_MONGO_URI", "mongodb://127.0.0.1:27017"))
    ap.add_argument("--readings", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--requests-uncached", type=int, default=10)
    ap.add_argument("--cache-ms", type=int, default=1000)
    ap.add_argument("--binary", default=str(pathlib.Path(os.environ.get("PW_BUILD", ROOT / "build"))
                                              / "src/metrics/plantwatch-metrics"))
    ap.add_argument("--reuse", action="store_true", help="keep already loaded bench databases")
    ap.add_argument("--no-write", action="store_true", help="do not touch docs/performance.md")
    args = ap.parse_args()

    client = pymongo.MongoClient(args.mongo_uri)
    store = ferret_or_mongo(client)
    pb2, pb2_grpc = proto_modules()
    scales = [("plantwatch_bench_metrics_1x", args.readings), ("plantwatch_bench_metrics_10x", 10 * args.readings)]
    stats, counts = {}, {}
    for db_name, readings in scales:
        db = client[db_name]
        marker = db.bench_info.find_one({"_id": "load"})
        if args.reuse and marker and marker["readings"] == readings:
            counts[db_name] = marker["counts"]
            print(f"{db_name}: reusing {readings:,} readings")
        else:
            t0 = time.time()
            print(f"{db_name}: loading rollups for {readings:,} readings …")
            counts[db_name] = loader.load(db, readings, log=lambda m: print("  " + m))
            db.bench_info.replace_one({"_id": "load"}, {"_id": "load", "readings": readings,
                                                        "counts": counts[db_name]}, upsert=True)
            print(f"  loaded in {time.time() - t0:.0f} s")
        for mode, cache_ms, n in (("cached", args.cache_ms, args.requests),
                                  ("uncached", 0, args.requests_uncached)):
            proc, url, grpc_addr = start_metrics(args.binary, args.mongo_uri, db_name, cache_ms)
            try:
                print(f"{db_name}: {mode}: measuring {n} requests per view and protocol …")
                stats[(db_name, mode)] = measure(url, grpc_addr, pb2, pb2_grpc, n)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    text = render(scales, stats, counts, store, args.requests, args.requests_uncached, args.cache_ms)
    print()
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
