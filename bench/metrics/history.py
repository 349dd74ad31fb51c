#!/usr/bin/env python3
"""Metrics history benchmark (on demand, not a test): p50/p99 of uncached
history queries over the minute series, against a plain pymongo read of the
same documents measured in the same run.

Loads into its own database (plantwatch_bench_history), in the layout of the
minute series contract (series_readings: one document per key, type, UTC
hour and partition, sk = "<d|z>\\x1f<key>\\x1f<type>\\x1f<day>", state =
iot.v1.SeriesState packed and deflated), written directly: the consumer's own
writer would need a day of real time for a day of one reading per second.

- 1x: one device, one reading per second for 10 days (10 x 24 hour
  documents, 60 cells each: 864,000 readings), and a zone of 500 devices for
  7 days (7 x 24 x 3 partitions = 504 documents, 500 x 60 / 3 readings per
  cell: 302,400,000 readings);
- 10x: the same plus 9 other devices and 9 other zones in the same
  collection (10x the documents), and the device's window 10x longer (10 d).

Then it starts the built plantwatch-metrics on spare ports with
PW_METRICS_CACHE_MS=0 (every request reads the store) and measures, over REST,
device history 24 h step=auto (1,440 one-minute buckets) and zone history
7 d step=auto (1,008 ten-minute buckets); the reference is the same
find({sk}) queries with pymongo (documents fetched, not decoded).

Targets: device 24 h p99 <= 100 ms, zone 7 d p99 <= 200 ms.

Prints a table and replaces the "## Metrics history" section of
docs/performance.md (other sections are left alone) unless --no-write.
The bench database is dropped at the end unless --keep.

  python bench/metrics/history.py [--requests 50] [--no-write] [--keep]
"""
import argparse
import os
import pathlib
import platform
import statistics
import sys
import time

import pymongo
import requests

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "store"))
import run as mrun  # noqa: E402
import storelib as sl  # noqa: E402

DB = "plantwatch_bench_history"
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
SEP = "\x1f"
PARTITIONS = 3
ZONE_DEVICES = 500
TARGETS = {"device 24 h": 100.0, "zone 7 d": 200.0}


def series_doc(pb, kind, key, typ, hour_ms, tp, per_minute, value, unit):
    """An hour of 60 minute cells of per_minute readings each, spread evenly
    over the minute around value(minute start)."""
    st = pb.SeriesState(unit=unit)
    gap = max(1, MIN // per_minute)
    for m in range(60):
        start = hour_ms + m * MIN
        v = value(start)
        st.minute.append(m)
        st.count.append(per_minute)
        st.sum.append(per_minute * v)
        st.min.append(v - 1.0)
        st.max.append(v + 1.0)
        st.first_ms.append(start)
        st.last_ms.append(start + min(MIN - 1, (per_minute - 1) * gap))
    day = sl.utc_day(hour_ms)
    return {"_id": SEP.join([kind, key, typ, str(hour_ms), tp]), "sk": SEP.join([kind, key, typ, day]),
            "hour": sl.date(hour_ms), "start": sl.date(hour_ms), "tp": tp, "hw": 1, "_v": 1,
            "state": sl.packed(st)}


def load(db, pb, end_ms, scale_keys):
    """Series of devices dev-<i> (10 days, one partition) and zones zone-<i>
    (7 days, every partition) for i in scale_keys."""
    docs = []
    value = lambda ts: 20.0 + (ts // MIN) % 17 * 0.5  # noqa: E731
    for i in scale_keys:
        for h in range(10 * 24):
            hour = end_ms - (h + 1) * HOUR
            docs.append(series_doc(pb, "d", f"dev-{i}", "temperature", hour,
                                   f"sensor-telemetry:{i % PARTITIONS}", 60, value, "C"))
        for h in range(7 * 24):
            hour = end_ms - (h + 1) * HOUR
            for p in range(PARTITIONS):
                # the zone's readings of one partition: its devices' share, one per second each
                d = series_doc(pb, "z", f"zone-{i}", "temperature", hour, f"sensor-telemetry:{p}",
                               ZONE_DEVICES * 60 // PARTITIONS, value, "C")
                docs.append(d)
        if len(docs) >= 1000:
            db.series_readings.insert_many(docs, ordered=False)
            docs = []
    if docs:
        db.series_readings.insert_many(docs, ordered=False)


def days_of(frm, to):
    d = frm - frm % DAY
    while d < to:
        yield sl.utc_day(d)
        d += DAY


def reference(db, kind, key, frm, to):
    t0 = time.perf_counter()
    n = 0
    for day in days_of(frm, to):
        n += len(list(db.series_readings.find({"sk": SEP.join([kind, key, "temperature", day])},
                                              {"_id": 0, "hour": 1, "state": 1})))
    return (time.perf_counter() - t0) * 1000, n


def timed(session, url, path, params):
    t0 = time.perf_counter()
    r = session.get(url + path, params=params, timeout=60)
    r.raise_for_status()
    h = r.json()["history"]
    return (time.perf_counter() - t0) * 1000, h


def measure(url, db, rows, n):
    session = requests.Session()
    out = []
    for label, kind, key, frm, to in rows:
        path = f"/v1/{'devices' if kind == 'd' else 'zones'}/{key}/readings"
        params = {"type": "temperature", "from": frm, "to": to}
        for _ in range(3):
            timed(session, url, path, params)
            reference(db, kind, key, frm, to)
        lat, ref = [], []
        h = None
        for _ in range(n):
            ms, h = timed(session, url, path, params)
            lat.append(ms)
            rms, docs = reference(db, kind, key, frm, to)
            ref.append(rms)
        out.append({"label": label, "step": h["step"], "buckets": len(h["buckets"]),
                    "readings": h["count"], "docs": docs,
                    "p50": statistics.median(lat), "p99": mrun.percentile(lat, 99),
                    "ref_p50": statistics.median(ref), "ref_p99": mrun.percentile(ref, 99)})
    return out


def render(results, store, n):
    lines = ["## Metrics history", "",
             f"`python bench/metrics/history.py --requests {n}` on {platform.node() or 'this machine'} "
             f"({os.cpu_count()} CPUs), store {store}; uncached (`PW_METRICS_CACHE_MS=0`), REST, "
             f"{n} requests per row. Minute series documents written directly in the contract's "
             "layout (the consumer's writer would need a day of real time per day of data). "
             "Reference: the same `find({sk})` queries with pymongo, documents fetched and not "
             "decoded, in the same run. 10x: 10 devices' and 10 zones' series in the same "
             "collection; the last row also a 10x longer window.", "",
             "| query | data | step | buckets | readings | documents | p50 ms | p99 ms | "
             "reference p50 / p99 ms | p99 / reference p99 | target p99 |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for scale, rows in results:
        for r in rows:
            target = TARGETS.get(r["label"].split(" (")[0])
            ok = "" if target is None else (f"≤ {target:.0f} ms: " + ("met" if r["p99"] <= target else "MISSED"))
            lines.append(f"| {r['label']} | {scale} | {r['step']} | {r['buckets']:,} | {r['readings']:,} | "
                         f"{r['docs']:,} | {r['p50']:.1f} | {r['p99']:.1f} | {r['ref_p50']:.1f} / "
                         f"{r['ref_p99']:.1f} | {r['p99'] / r['ref_p99']:.2f} | {ok} |")
    lines += ["", "The service's time over the reference is the unpacking (inflate + protobuf "
              "decode of 60 cells per document), the folding into buckets and the JSON answer; "
              "the store's share is the reference's: about one command per UTC day of the "
              "window plus the documents returned. More data of other keys in the same "
              "collection leaves both unchanged (equality on `sk`); a 10x longer window costs "
              "its extra days.", ""]
    return "\n".join(lines)


def write_section(doc, text):
    p = pathlib.Path(doc)
    old = p.read_text() if p.exists() else ""
    head = "## Metrics history"
    if head in old:
        start = old.index(head)
        nxt = old.find("\n## ", start + len(head))
        old = old[:start] + text + (old[nxt + 1:] if nxt >= 0 else "")
    else:
        old = old.rstrip("\n") + "\n\n" + text
    p.write_text(old)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mongo-uri", default=None)
    ap.add_argument("--metrics-uri", default=None)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--binary", default=str(pathlib.Path(os.environ.get("PW_BUILD", ROOT / "build"))
                                              / "src/metrics/plantwatch-metrics"))
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--doc", default=str(ROOT / "docs" / "performance.md"))
    args = ap.parse_args()
    client = pymongo.MongoClient(args.mongo_uri or sl.uri_of("consumer"))
    sl.wait_for_store(client)
    store = sl.store_name(client)
    pb = sl.proto_modules()["storage_pb2"]
    db = client[DB]
    client.drop_database(DB)
    db.series_readings.create_index([("sk", 1)], name="sk_1")
    end = (int(time.time() * 1000) // DAY) * DAY  # today 00:00 UTC: whole days behind it
    dev_rows = lambda: [("device 24 h", "d", "dev-0", end - DAY, end),  # noqa: E731
                        ("zone 7 d", "z", "zone-0", end - 7 * DAY, end)]
    results = []
    proc = None
    try:
        t0 = time.time()
        load(db, pb, end, [0])
        print(f"1x loaded in {time.time() - t0:.1f} s", file=sys.stderr)
        proc, url, _ = mrun.start_metrics(args.binary, args.metrics_uri or sl.uri_of("metrics"), DB, 0)
        results.append(("1x", measure(url, db, dev_rows(), args.requests)))
        t0 = time.time()
        load(db, pb, end, range(1, 10))
        print(f"10x loaded in {time.time() - t0:.1f} s", file=sys.stderr)
        rows = dev_rows() + [("device 10 d (10x window)", "d", "dev-0", end - 10 * DAY, end)]
        results.append(("10x", measure(url, db, rows, args.requests)))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        if not args.keep:
            client.drop_database(DB)
    text = render(results, store, args.requests)
    print(text)
    if not args.no_write:
        write_section(args.doc, text)


if __name__ == "__main__":
    main()
