#!/usr/bin/env python3
"""Export benchmark (on demand, not a test): rows/s of GET /v1/export/readings
against a plain pymongo find of the same rows in the same run, and the growth
of the metrics service's RSS during a 1,000,000-row export.

Loads N readings of one bench device (default 1,000,000, spread over 24 UTC
hours ending 2 h ago) straight into the store in the consumer's raw layout
(the consumer's URI), then, with the stack running:
  1. pymongo: the same hour-by-hour finds the service runs ({hour, device},
     sorted by ts, _id), every document decoded — the reference;
  2. the export (CSV, then NDJSON) read as a stream by requests from the
     metrics service (:8090), rows counted, VmRSS of plantwatch-metrics
     sampled every 50 ms.
Target: export rows/s ≥ 50 % of the pymongo find; RSS growth < 32 MiB.
Prints a table and replaces the "## Export" section of docs/performance.md
(--no-write: print only). The bench rows are deleted at the end (--keep).

  flock -o /tmp/plantwatch-stack.lock python bench/metrics/export.py [--rows 1000000]
"""
import argparse
import datetime
import pathlib
import re
import threading
import time
import uuid

import pymongo
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
STATE = ROOT / ".plantwatch"
HOUR = 3_600_000


def dt(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)


def load(coll, device, rows, base, hours):
    batch = []
    for i in range(rows):
        ts = base + (i * hours * HOUR) // rows
        batch.append({"_id": str(uuid.uuid4()), "ts": dt(ts), "day": dt(ts).strftime("%Y-%m-%d"),
                      "hour": dt(ts - ts % HOUR),
                      "meta": {"device": device, "zone": "bench-zone", "type": "temperature"},
                      "device": device, "zone": "bench-zone", "type": "temperature",
                      "value": 20 + (i % 1000) / 7, "unit": "C", "raw_value": 68 + (i % 1000) / 3,
                      "raw_unit": "F", "firmware": "2.1.0", "received": dt(ts + 200),
                      "consumer": "bench", "source": "rest", "origin": f"sensor-telemetry:0:{i}"})
        if len(batch) == 10_000:
            coll.insert_many(batch, ordered=False)
            batch = []
    if batch:
        coll.insert_many(batch, ordered=False)


def pymongo_rate(coll, device, base, hours):
    start, n = time.monotonic(), 0
    for h in range(hours):
        for _ in coll.find({"hour": dt(base + h * HOUR), "device": device},
                           sort=[("ts", 1), ("_id", 1)], batch_size=1000):
            n += 1
    return n, n / (time.monotonic() - start)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def export_rate(url, device, base, hours, fmt, pid):
    peak, stop = [rss_kb(pid)], threading.Event()
    start_rss = peak[0]

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kb(pid))
            time.sleep(0.05)

    t = threading.Thread(target=sample)
    t.start()
    start, lines = time.monotonic(), 0
    try:
        with requests.get(f"{url}/v1/export/readings", stream=True, timeout=600,
                          params={"device": device, "format": fmt, "from": base,
                                  "to": base + hours * HOUR}) as r:
            r.raise_for_status()
            for chunk in r.iter_content(1 << 16):
                lines += chunk.count(b"\n")
    finally:
        stop.set()
        t.join()
    rows = lines - 1 if fmt == "csv" else lines
    return rows, rows / (time.monotonic() - start), (peak[0] - start_rss) / 1024


def write_section(doc, text):
    body = doc.read_text()
    pat = re.compile(r"^## Export\n.*?(?=^## |\Z)", re.S | re.M)
    body = pat.sub(text, body) if pat.search(body) else body.rstrip("\n") + "\n\n" + text
    doc.write_text(body)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--metrics-url", default="http://127.0.0.1:8090")
    ap.add_argument("--mongo-uri", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    uri = a.mongo_uri or (STATE / "secrets" / "admin-mongodb.uri").read_text().strip()
    coll = pymongo.MongoClient(uri)["plantwatch"]["telemetry"]
    pid = int((STATE / "pids" / "metrics.pid").read_text())
    device = f"bench-export-{uuid.uuid4().hex[:6]}"
    now = int(time.time() * 1000)
    base = now - now % HOUR - (a.hours + 2) * HOUR
    t0 = time.monotonic()
    load(coll, device, a.rows, base, a.hours)
    print(f"loaded {a.rows} rows in {time.monotonic() - t0:.0f} s")
    try:
        n_ref, ref = pymongo_rate(coll, device, base, a.hours)
        out = [("pymongo find (reference)", n_ref, ref, None)]
        for fmt in ("csv", "ndjson"):
            n, rate, grew = export_rate(a.metrics_url, device, base, a.hours, fmt, pid)
            out.append((f"export {fmt}", n, rate, grew))
    finally:
        if not a.keep:
            coll.delete_many({"device": device})
    lines = ["## Export", "",
             f"`bench/metrics/export.py --rows {a.rows}` ({a.hours} UTC hours of one device, "
             "FerretDB on PostgreSQL, one run on this machine). Target: ≥ 50 % of the "
             "pymongo rate; RSS growth < 32 MiB.", "",
             "| reader | rows | rows/s | vs pymongo | RSS growth of plantwatch-metrics |",
             "|---|---:|---:|---:|---:|"]
    for name, n, rate, grew in out:
        lines.append(f"| {name} | {n:,} | {rate:,.0f} | {rate / ref:.0%} | "
                     f"{'' if grew is None else f'{grew:.1f} MiB'} |")
    text = "\n".join(lines) + "\n\n"
    print(text)
    if not a.no_write:
        write_section(ROOT / "docs" / "performance.md", text)


if __name__ == "__main__":
    main()
