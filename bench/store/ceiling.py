#!/usr/bin/env python3
"""Store bulk-insert ceiling (on demand, not a test): FerretDB on the stack's
PostgreSQL against FerretDB on SQLite, the same documents in the same run.

The documents are the consumer's: --docs raw reading documents in the shape
of pwc_raw_reading_doc (src/consumer/raw.c; _id = token, ts, day, hour, meta,
device, zone, type, value, unit, raw_value, raw_unit, firmware, received,
consumer, source, origin) and, as a separate measurement, the same readings'
ingest_tokens gate documents ({_id: token, origin, at}). Each set is bulk
inserted with pymongo insert_many(ordered=False), --batch documents per call,
from --threads threads, into a fresh database laid out as the consumer lays
out its own on FerretDB (telemetry with an index on hour, ingest_tokens with
an index on at; on PostgreSQL each also gets its GIN twin from the stack's
DDL trigger). Documents are BSON-encoded before the clock starts.

Stores:
  * FerretDB/PostgreSQL: the local stack's store (127.0.0.1:27017),
    authenticated with the consumer's URI (.plantwatch/secrets/
    consumer-mongodb.uri, PLAIN; the database and its tables are the
    consumer role's, as the consumer's own are).
  * FerretDB/SQLite: a throwaway instance of the same FerretDB binary
    (~/.cache/plantwatch/bin/ferretdb, --handler=sqlite) that this script
    starts on a spare port in a temporary directory and stops and removes at
    the end.

Reports docs/s per store and the PostgreSQL/SQLite ratio, prints a table and
replaces the "## Store" section of docs/performance.md (inserted before
"## Consumer" when missing; other sections are kept). Both bench databases are
dropped at the end, also on errors.

Options (defaults in brackets):
  --docs N          raw reading documents, and as many gate documents [100000]
  --threads K       inserting threads per store [2]
  --batch B         documents per insert_many call [1000]
  --mongo-uri URI   the stack's store [contents of .plantwatch/secrets/consumer-mongodb.uri]
  --ferretdb PATH   FerretDB binary for the SQLite instance [~/.cache/plantwatch/bin/ferretdb]
  --order ORDER     which store goes first: pg-first or sqlite-first [pg-first]
  --no-write        print only; leave docs/performance.md alone
  --doc PATH        write the section into PATH instead of docs/performance.md

  python bench/store/ceiling.py [--docs 100000] [--threads 2] [--no-write]
"""
import argparse
import datetime
import pathlib
import random
import sys
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import storelib as sl  # noqa: E402

TYPES = [("temperature", "C", 21.0, 6.0), ("pressure", "hPa", 1013.0, 8.0),
         ("humidity", "%", 45.0, 12.0)]


def reading_docs(n, seed=5, devices=200, zones=5, topic="bench-ceiling-telemetry"):
    """n raw reading documents and their n gate documents, as the consumer
    would write them for records received in the last 10 minutes."""
    rnd = random.Random(seed)
    now = int(time.time() * 1000)
    raw, gate, offsets = [], [], [0, 0, 0]
    for i in range(n):
        dev = f"bench-dev-{rnd.randrange(devices):03d}"
        zone = f"zone-{sl.fnv1a32(dev) % zones}"
        typ, unit, mean, sd = TYPES[i % 3]
        ts = now - rnd.randrange(600_000)
        received = ts + rnd.randrange(5, 200)
        p = sl.partition_of(dev, 3)
        org = sl.origin(topic, p, offsets[p])
        offsets[p] += 1
        tok = sl.token(rnd)
        value = round(rnd.gauss(mean, sd), 3)
        raw.append(sl.raw_reading_doc(tok, ts, dev, zone, typ, value, unit, value, unit, "1.0.0",
                                      received, "bench", "rest", org))
        gate.append(sl.gate_doc(tok, org, received))
    return raw, gate


def measure(client, dbname, chunks_by_kind, threads, log):
    """{kind: (docs/s, docs, seconds)} for one store; the database is dropped after."""
    db = client[dbname]
    out = {}
    try:
        client.drop_database(dbname)
        sl.create_layout(db, ["telemetry", "ingest_tokens"])
        for kind, (coll, chunks) in chunks_by_kind.items():
            took, n = sl.insert_parallel(db, chunks, threads)
            out[kind] = (n / took, n, took)
            log(f"  {kind}: {n:,} documents into {coll} in {took:.1f} s = {n / took:,.0f} docs/s")
    finally:
        sl.drop_databases(client, [dbname], log)
    return out


def render(args, res, names, today):
    pg, lite = res["pg"], res["sqlite"]
    lines = [
        "## Store", "",
        f"Measured by `bench/store/ceiling.py` on {today} ({sl.machine()}; the local stack's "
        "Kafka, consumers and other clients share the machine): the bulk-insert ceiling of the "
        f"local stack's store, {names['pg']}, against {names['sqlite']} started by the script for "
        "the run, with the same documents in the same run. "
        f"Documents: {args.docs:,} raw readings in the consumer's shape (`telemetry`, _id = "
        "token, 17 fields) and, separately, the same readings' `ingest_tokens` gate documents "
        "({_id: token, origin, at}), which the consumer also inserts for every reading. "
        f"pymongo insert_many, unordered, {args.batch:,} per call, {args.threads} threads, into "
        "collections laid out as the consumer's (index on `hour` / `at`; on PostgreSQL each "
        "index also has its GIN twin), BSON encoded before timing. PostgreSQL is reached through "
        f"FerretDB with PLAIN authentication as {names['user']}; the SQLite instance has no "
        f"authentication. Order: {'PostgreSQL first' if args.order == 'pg-first' else 'SQLite first'} "
        "for each document kind.", "",
        "| documents | FerretDB/PostgreSQL docs/s | FerretDB/SQLite docs/s | PostgreSQL / SQLite |",
        "|---|---:|---:|---:|",
    ]
    for kind, label in (("raw", "raw readings (`telemetry`)"),
                        ("gate", "gate documents (`ingest_tokens`)")):
        ratio = pg[kind][0] / lite[kind][0]
        lines.append(f"| {label} | {pg[kind][0]:,.0f} | {lite[kind][0]:,.0f} | {ratio:.2f}× |")
    lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--mongo-uri", default=None)
    ap.add_argument("--ferretdb", default=str(sl.FERRETDB_BIN))
    ap.add_argument("--order", choices=["pg-first", "sqlite-first"], default="pg-first")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--doc", default=None)
    args = ap.parse_args()
    import pymongo

    uri = args.mongo_uri or sl.uri_of("consumer")
    run = uuid.uuid4().hex[:8]
    dbname = f"bench_store_ceiling_{run}"
    print(f"[store] {args.docs:,} raw reading documents and {args.docs:,} gate documents",
          flush=True)
    raw, gate = reading_docs(args.docs)
    chunks = {"raw": ("telemetry", sl.encode_chunks({"telemetry": raw}, args.batch)),
              "gate": ("ingest_tokens", sl.encode_chunks({"ingest_tokens": gate}, args.batch))}
    del raw, gate
    res, names = {}, {}
    pg_client = pymongo.MongoClient(uri, maxPoolSize=args.threads + 2)
    sl.wait_for_store(pg_client)
    names["pg"] = sl.store_name(pg_client)
    names["user"] = sl.user_of(uri)
    with sl.SqliteFerret(args.ferretdb) as lite:
        lite_client = pymongo.MongoClient(lite.uri, maxPoolSize=args.threads + 2)
        names["sqlite"] = sl.store_name(lite_client, backend=("SQLite", None))
        order = [("pg", pg_client), ("sqlite", lite_client)]
        if args.order == "sqlite-first":
            order.reverse()
        for kind in ("raw", "gate"):
            for key, client in order:
                print(f"[store] {kind} into {names[key]} (database {dbname})", flush=True)
                res.setdefault(key, {}).update(
                    measure(client, dbname, {kind: chunks[kind]}, args.threads,
                            lambda m: print(m, flush=True)))
        lite_client.close()
    pg_client.close()
    text = render(args, res, names, datetime.date.today())
    print()
    print(text)
    if not args.no_write:
        doc = pathlib.Path(args.doc) if args.doc else sl.DOC
        sl.write_section("Store", text, before="Consumer", path=doc)
        print(f"[store] wrote the Store section of {doc}")


if __name__ == "__main__":
    main()
