#!/usr/bin/env python3
"""Consumer benchmark (on demand, not a test) against the local stack's
store (FerretDB on the stack's PostgreSQL, authenticated) and Kafka.

Everything runs on private resources: bench topics (bench-<run>-telemetry 3
partitions, -alerts 2, -dlq 1; deleted at the end), a private consumer group
and private databases (dropped at the end, also on errors). The consumers
are copies of the built plantwatch-consumer, started by this script with
PW_MONGO_URI_FILE = the consumer role's URI (.plantwatch/secrets/
consumer-mongodb.uri) and ops ports 18201.., logging to
/tmp/pw-bench-consumer-<i>.log (and /tmp/pw-bench-consumer-preload-<i>.log).
Benchmark data (ceilings, preload) is written with the same consumer URI.
Records are produced with an explicit partition, CRC-32 of the device id mod
the partition count (librdkafka's consistent partitioner).

Phases:
 1. Throughput, empty store: --messages envelopes (90 % readings in 4 unit
    flavours, 10 % alerts, --devices devices in 5 zones) are written to the
    topics first, then --consumers consumers drain them into an empty
    database: messages/s from the first stored batch to the last.
 2. Ceilings: the same records' documents bulk inserted straight into fresh
    databases on the same store with pymongo (insert_many, unordered,
    --ceiling-batch per call, --consumers threads, BSON encoded before
    timing, collections laid out as the consumer's), twice: (a) the raw
    documents only (telemetry + alerts); (b) the raw documents plus the
    ingest_tokens gate document the consumer also inserts for every reading.
    The ratio that counts is throughput / (raw + gate) ceiling, which is
    what the consumer writes per record besides its rollups (target ≥ 80 %);
    throughput / raw ceiling is shown too.
 3. Latency at offered rates (--rate, default 2,500, 5,000 and 10,000 msg/s,
    --seconds each, into the empty-store database while the consumers run):
    end-to-end p50/p99 from the record's receive stamp (set when produced)
    to the store's acknowledgement of its batch, from the consumers'
    pw_consumer_end_to_end_seconds histograms (interpolated within buckets);
    and whether the backlog (records produced by this script minus records
    the consumers report stored) stayed flat: at the end of the phase at most
    --flat-tolerance-s seconds of offered records above its value at the
    middle of the phase. Reports the highest rate with a flat backlog; target
    p99 ≤ 1 s at --target-rate (5,000 msg/s).
 4. Resources: every 0.5 s, VmRSS summed over the PostgreSQL postmaster and
    all its children plus FerretDB, and their CPU time (pids from
    .plantwatch/pids); peak and CPU seconds per phase, the --target-rate phase
    being the one the figures are for. The stack's own consumers and any
    other client share these processes.
 5. --preload (also implied by --preload-readings/--preload-devices): a
    second database is filled (bench/store/preload.py, --preload-procs
    processes, insert_many 1000 unordered, progress with an ETA every few
    seconds) with a store "already holding" --preload-readings readings from
    --preload-devices devices over the 30 days before today (raw telemetry,
    the gate tokens of the last 8 days, hour and day rollup buckets,
    presence per device-day, census shards), for second bench topics; then
    the same throughput phase runs against it, the live records' --devices
    devices drawn from the preloaded fleet. Reports throughput as a ratio of
    the empty-store throughput of the same run (target ≥ 80 %), the largest
    batch write time seen (highest non-empty bucket of the consumers'
    pw_consumer_write_seconds) and the failed batch writes
    (pw_consumer_store_errors_total): no find or write near the 30 s socket
    timeout.

Before consumers start, their database gets the retention marks a running
stack keeps (consumer_progress "retention|<collection>"), so the consumers'
first hourly sweep finds nothing to do instead of walking 30 days of hours,
in both the empty and the preloaded store.

Prints the tables and replaces the "## Consumer" section of
docs/performance.md (other sections are kept), one table per scenario, with
the previous store's (FerretDB/SQLite) figures of 2026-12-01 in a labelled
sub-table.

Options (defaults in brackets):
  --messages N            records of each throughput phase [60000]
  --devices N             devices of the throughput and latency records [200]
  --rate R1,R2,..         offered rates of the latency phases, msg/s [2500,5000,10000]
  --seconds S             length of each latency phase [30]
  --target-rate R         rate the p99 target and the resource figures apply to [5000]
  --flat-tolerance-s S    backlog growth from the middle to the end of a phase still called flat,
                          in seconds of offered records [1.0]
  --consumers K           consumer processes, and ceiling threads [3]
  --ceiling-batch B       documents per insert_many call of the ceilings [1000]
  --preload               run the preloaded-store phase
  --preload-readings N    preloaded readings [10000000]
  --preload-devices N     preloaded fleet [100000]
  --preload-days D        days before today the preload covers [30]
  --preload-procs P       loading processes [4]
  --settle-seconds S      longest wait for PostgreSQL's autovacuum to go quiet after the preload [600]
  --mongo-uri URI         store URI for the consumers and the bench data
                          [contents of .plantwatch/secrets/consumer-mongodb.uri; the consumers then
                          get PW_MONGO_URI_FILE pointing at that file]
  --binary PATH           plantwatch-consumer [build/src/consumer/plantwatch-consumer]
  --no-verify             skip counting the stored raw documents in the store (uses the consumers'
                          counters only)
  --no-doc                print only; leave docs/performance.md alone
  --doc PATH              write the section into PATH instead of docs/performance.md

  bench/consumer/bench.py [--messages 60000] [--rate 2500,5000,10000] [--seconds 30] [--preload]
"""
import argparse
import atexit
import datetime
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "store"))
import storelib as sl  # noqa: E402

STATE, SECRETS = sl.STATE, sl.SECRETS
PORT0 = 18201
TELEMETRY_PARTITIONS, ALERT_PARTITIONS = 3, 2

# The Consumer table of docs/performance.md as measured on 2026-12-01 against
# FerretDB v1.24.0 on SQLite (60,000 records, 3 consumers, ceiling: raw
# documents, 500 per call, 3 threads); kept as the previous store's reference.
PREVIOUS_SQLITE = [
    ("consumer throughput into the store", "8,698 msg/s"),
    ("ceiling: bulk insert of the raw documents (500 per call)", "10,997 msg/s"),
    ("throughput / ceiling", "79 % (target ≥ 70 %: met)"),
    ("end-to-end p50 / p99 at 2,500 msg/s", "910 ms / 3,447 ms"),
    ("end-to-end p50 / p99 at 5,000 msg/s", "6,760 ms / 28,993 ms (target p99 ≤ 1,000 ms: NOT met)"),
    ("CPU per million messages (all consumers)", "15 s"),
    ("peak RSS of one consumer", "37.7 MiB"),
    ("stored == produced", "285,000 / 285,000"),
]


def kafka_conf(user):
    env = dict(line.split("=", 1) for line in (SECRETS / "kafka-users.env").read_text().split())
    return {"bootstrap.servers": "127.0.0.1:9093", "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": user,
            "sasl.password": env[f"PW_KAFKA_{user.upper()}_PASSWORD"],
            "ssl.ca.location": str(SECRETS / "ca.pem")}


class Dataset:
    """Readings (90 %) and alerts (10 %). devices: [(device, zone, firmware)]
    (default: `ndev` bench devices in 5 zones, firmware 1.0.0)."""
    UNITS = [("temperature", "C", 1.0), ("temperature", "F", 1.0), ("pressure", "Pa", 100.0),
             ("humidity", "%", 1.0)]

    def __init__(self, pb, n, seed=7, devices=None, ndev=200):
        self.pb = pb
        rnd = random.Random(seed)
        if devices is None:
            devices = [(f"bench-dev-{i:03d}", f"zone-{sl.fnv1a32(f'bench-dev-{i:03d}') % 5}",
                        "1.0.0") for i in range(ndev)]
        now = int(time.time() * 1000)
        self.items = []
        for i in range(n):
            dev, zone, fw = devices[rnd.randrange(len(devices))]
            ts = now - rnd.randrange(600_000)
            if i % 10 == 9:
                self.items.append(("alert", sl.token(rnd), dev, zone, ts, fw,
                                   rnd.choice(["warning", "critical"]),
                                   rnd.choice(["OVERHEAT", "DOOR", "VIBRATION"])))
            else:
                t, u, scale = self.UNITS[i % 4]
                self.items.append(("reading", sl.token(rnd), dev, zone, ts, fw, t, u,
                                   round(rnd.uniform(10, 40) * scale, 3)))

    def envelope(self, item, received_ms):
        pb = self.pb
        env = pb.Envelope(token=item[1], received_ms=received_ms, consumer="bench",
                          source=pb.SOURCE_REST, schema_version=1)
        if item[0] == "alert":
            sev = pb.SEVERITY_WARNING if item[6] == "warning" else pb.SEVERITY_CRITICAL
            env.alert.CopyFrom(pb.Alert(device_id=item[2], zone=item[3], severity=sev,
                                        code=item[7], message="bench", ts_ms=item[4],
                                        firmware=item[5]))
        else:
            env.reading.CopyFrom(pb.Reading(device_id=item[2], zone=item[3], type=item[6],
                                            unit=item[7], value=item[8], ts_ms=item[4],
                                            firmware=item[5]))
        return env.SerializeToString()

    @staticmethod
    def docs(item, received_ms, origin):
        """[(collection, document)] the consumer inserts for item: the raw
        document, and for a reading also its ingest_tokens gate document."""
        if item[0] == "alert":
            return [("alerts", sl.raw_alert_doc(item[1], item[4], item[2], item[3], item[6],
                                                item[7], "bench", item[5], received_ms, "bench",
                                                "rest", origin))]
        value, unit = item[8], item[7]
        if unit == "F":
            value, unit = (value - 32) * 5 / 9, "C"
        elif unit == "Pa":
            value, unit = value / 100, "hPa"
        return [("telemetry", sl.raw_reading_doc(item[1], item[4], item[2], item[3], item[6],
                                                 value, unit, item[8], item[7], item[5],
                                                 received_ms, "bench", "rest", origin)),
                ("ingest_tokens", sl.gate_doc(item[1], origin, received_ms))]


def partition(item):
    return sl.partition_of(item[2], ALERT_PARTITIONS if item[0] == "alert" else TELEMETRY_PARTITIONS)


def produce_all(topics, data, items, rate=None, seconds=None, probe=None):
    """Produces items (paced to `rate` for at most `seconds` when given).
    probe() is called at the middle and at the end of a paced phase; returns
    (sent, seconds, [(sent, probe()) at the middle, at the end])."""
    from confluent_kafka import Producer
    p = Producer(dict(kafka_conf("producer"), **{"acks": "all", "enable.idempotence": True,
                                                  "linger.ms": 5, "compression.type": "lz4",
                                                  "queue.buffering.max.messages": 1000000}))
    t0 = time.time()
    sent, marks = 0, []
    for i, item in enumerate(items):
        if rate:
            due = t0 + i / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            elapsed = time.time() - t0
            if probe and not marks and elapsed >= seconds / 2:
                marks.append((sent, probe()))
            if seconds and elapsed > seconds:
                break
        topic = topics["alerts"] if item[0] == "alert" else topics["telemetry"]
        value = data.envelope(item, int(time.time() * 1000))
        while True:
            try:
                p.produce(topic, key=item[2].encode(), value=value, partition=partition(item),
                          headers=[("pw-token", item[1].encode()), ("pw-schema", b"1")])
                break
            except BufferError:
                p.poll(0.05)
        sent += 1
        p.poll(0)
    took = time.time() - t0
    if probe:
        marks.append((sent, probe()))
    left = p.flush(120)
    if left:
        raise SystemExit(f"{left} records were not acknowledged by Kafka")
    return sent, took, marks


def make_topics(run):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient(kafka_conf("admin"))
    topics = {"telemetry": f"bench-{run}-telemetry", "alerts": f"bench-{run}-alerts",
              "dlq": f"bench-{run}-dlq"}
    fs = admin.create_topics([NewTopic(topics["telemetry"], TELEMETRY_PARTITIONS, 3),
                              NewTopic(topics["alerts"], ALERT_PARTITIONS, 3),
                              NewTopic(topics["dlq"], 1, 3)])
    for f in fs.values():
        f.result()
    deadline = time.time() + 60  # wait until the brokers know the new topics
    while time.time() < deadline:
        meta = admin.list_topics(timeout=10).topics
        if all(t in meta and meta[t].partitions and not meta[t].error for t in topics.values()):
            break
        time.sleep(0.5)
    time.sleep(2)
    return admin, topics


def start_consumers(binary, k, topics, db, group, uri, uri_file, log_tag=""):
    env_users = dict(line.split("=", 1)
                     for line in (SECRETS / "kafka-users.env").read_text().split())
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="pw-bench-"))
    atexit.register(shutil.rmtree, tmp, True)  # holds a password: removed at exit
    pw_file = tmp / "consumer.password"
    pw_file.write_text(env_users["PW_KAFKA_CONSUMER_PASSWORD"])
    pw_file.chmod(0o600)
    if uri_file is None:  # an explicit --mongo-uri: handed over in a private file too
        uri_file = tmp / "mongodb.uri"
        uri_file.write_text(uri + "\n")
        uri_file.chmod(0o600)
    procs, logs = [], []
    for i in range(k):
        env = {key: v for key, v in os.environ.items() if key != "PW_MONGO_URI"}
        env.update(PW_HTTP_PORT=str(PORT0 + i), PW_INSTANCE=f"bench-consumer-{log_tag}{i + 1}",
                   PW_KAFKA_GROUP=group, PW_KAFKA_USERNAME="consumer",
                   PW_KAFKA_PASSWORD_FILE=str(pw_file), PW_KAFKA_CA_FILE=str(SECRETS / "ca.pem"),
                   PW_TOPIC_TELEMETRY=topics["telemetry"], PW_TOPIC_ALERTS=topics["alerts"],
                   PW_TOPIC_DLQ=topics["dlq"], PW_MONGO_URI_FILE=str(uri_file), PW_MONGO_DB=db,
                   PW_LOG_LEVEL=os.environ.get("PW_BENCH_LOG_LEVEL", "warn"))
        path = f"/tmp/pw-bench-consumer-{log_tag}{i + 1}.log"
        log = open(path, "w")
        logs.append(path)
        procs.append(subprocess.Popen([binary], env=env, stdout=log, stderr=log))
    return procs, logs


def stop_consumers(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(60))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait())
    return codes


def proc_stats(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = 0
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            rss = int(line.split()[1]) * 1024
    return cpu, rss


def scrape(ports):
    """{series: value} summed over the consumers' /metrics (series = the
    line's name with labels)."""
    import requests
    out = {}
    for port in ports:
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except requests.RequestException:
            continue
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, val = line.rpartition(" ")
                try:
                    out[key] = out.get(key, 0.0) + float(val)
                except ValueError:
                    pass
    return out


def family(snap, name):
    return sum(v for k, v in snap.items() if k == name or k.startswith(name + "{"))


def buckets(snap, name):
    out = {}
    for k, v in snap.items():
        if k.startswith(name + "_bucket"):
            le = k.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = v
    return out


def quantile(before, after, q):
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0) for b in bounds]
    total = counts[-1] if counts else 0
    if total <= 0:
        return float("nan")
    target, prev_b, prev_c = q * total, 0.0, 0.0
    for b, c in zip(bounds, counts):
        if c >= target:
            if b == float("inf"):
                return prev_b
            return prev_b + (b - prev_b) * (target - prev_c) / max(c - prev_c, 1e-9)
        prev_b, prev_c = b, c
    return bounds[-1]


def highest_bucket(before, after):
    """(lower, upper) bound of the highest non-empty histogram bucket between
    two scrapes, or None when nothing was observed."""
    bounds = sorted(after)
    cum = [after[b] - before.get(b, 0) for b in bounds]
    if not cum or cum[-1] <= 0:
        return None
    prev = 0.0
    for b, c in zip(bounds, cum):
        if c >= cum[-1]:
            return prev, b
        prev = b
    return prev, float("inf")


def fmt_bucket(b):
    if b is None:
        return "none observed"
    lo, hi = b
    return f"> {lo:g} s" if hi == float("inf") else f"{lo:g}–{hi:g} s"


def stored_total(ports):
    """Records stored or found already stored, summed over the consumers'
    /metrics (polling the store itself would add load to what is measured)."""
    s = scrape(ports)
    return family(s, "pw_consumer_stored_total") + family(s, "pw_consumer_duplicates_total")


def wait_count(ports, n, timeout=1800):
    series = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        c = stored_total(ports)
        series.append((time.time(), c))
        if c >= n:
            break
        time.sleep(0.25)
    return series


def log_events(paths):
    """{(level, event): count} of the warn/error lines of the consumers' logs."""
    out = {}
    for p in paths:
        try:
            lines = pathlib.Path(p).read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                j = json.loads(line)
            except ValueError:
                out[("raw", line[:80])] = out.get(("raw", line[:80]), 0) + 1
                continue
            if j.get("level") in ("warn", "error"):
                k = (j["level"], j.get("event", "?"))
                out[k] = out.get(k, 0) + 1
    return out


def drain_phase(name, ports, procs, n, sampler):
    """Waits until the consumers report n records stored; the phase's figures."""
    before = scrape(ports)
    sampler.begin(name)
    series = wait_count(ports, n)
    res = sampler.end(name)
    after = scrape(ports)
    started = next(((t, c) for t, c in series if c > 0), series[-1])
    done = series[-1]
    res.update(
        throughput=(done[1] - started[1]) / max(done[0] - started[0], 1e-6),
        complete=done[1] >= n, stored=done[1],
        cpu_consumers=sum(proc_stats(p.pid)[0] for p in procs),
        write_max=highest_bucket(buckets(before, "pw_consumer_write_seconds"),
                                 buckets(after, "pw_consumer_write_seconds")),
        store_errors=family(after, "pw_consumer_store_errors_total")
        - family(before, "pw_consumer_store_errors_total"),
        conflicts=family(after, "pw_consumer_write_conflicts_total"),
        bucket_reads=family(after, "pw_consumer_bucket_reads_total"),
        duplicates=family(after, "pw_consumer_duplicates_total"))
    return res


def ceilings(client, run, items, threads, batch, log):
    """msg/s of bulk inserting the raw documents, and the raw + gate documents."""
    now = int(time.time() * 1000)
    raw, gate = {"telemetry": [], "alerts": []}, {"ingest_tokens": []}
    offsets = {}
    for item in items:
        p = partition(item)
        o = offsets.get((item[0], p), 0)
        offsets[(item[0], p)] = o + 1
        for coll, doc in Dataset.docs(item, now, sl.origin(f"bench-ceiling-{item[0]}", p, o)):
            (gate if coll == "ingest_tokens" else raw)[coll].append(doc)
    out = {}
    for kind, sets in (("raw", raw), ("raw+gate", {**raw, **gate})):
        dbname = f"bench_ceiling_{run}_{kind.replace('+', '_')}"
        db = client[dbname]
        try:
            client.drop_database(dbname)
            sl.create_layout(db, list(sets))
            chunks = sl.interleave(sl.encode_chunks(sets, batch))
            took, ndocs = sl.insert_parallel(db, chunks, threads)
        finally:
            sl.drop_databases(client, [dbname], log)
        out[kind] = len(items) / took
        log(f"[bench] ceiling, {kind}: {ndocs:,} documents for {len(items):,} records in "
            f"{took:.1f} s = {out[kind]:,.0f} msg/s")
    return out


def count_raw(db, hours, preloaded=None):
    """Raw documents stored (telemetry of the given hours, found with the
    pushed-down {hour} filter, minus what the preload put there; all alerts)."""
    n = 0
    for h in sorted(hours):
        n += sum(1 for _ in db.telemetry.find({"hour": sl.date(h)}, {"_id": 1}))
        if preloaded:
            n -= preloaded.get(h, 0)
    return n + sum(1 for _ in db.alerts.find({}, {"_id": 1}))


def verdict(ok):
    return "met" if ok else "NOT met"


def mib(kib):
    return f"{kib / 1024:,.0f} MiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=60000)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--rate", default="2500,5000,10000",
                    help="comma-separated offered rates (msg/s) of the latency phases")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--target-rate", type=int, default=5000)
    ap.add_argument("--flat-tolerance-s", type=float, default=1.0)
    ap.add_argument("--consumers", type=int, default=3)
    ap.add_argument("--ceiling-batch", type=int, default=1000)
    ap.add_argument("--preload", action="store_true")
    ap.add_argument("--preload-readings", type=int, default=None)
    ap.add_argument("--preload-devices", type=int, default=None)
    ap.add_argument("--preload-days", type=int, default=30)
    ap.add_argument("--preload-procs", type=int, default=4)
    ap.add_argument("--settle-seconds", type=int, default=600)
    ap.add_argument("--mongo-uri", default=None)
    ap.add_argument("--binary", default=str(ROOT / "build/src/consumer/plantwatch-consumer"))
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--no-doc", action="store_true")
    ap.add_argument("--doc", default=None)
    args = ap.parse_args()
    if args.preload_readings is not None or args.preload_devices is not None:
        args.preload = True
    args.preload_readings = args.preload_readings or 10_000_000
    args.preload_devices = args.preload_devices or 100_000
    rates = [int(r) for r in args.rate.split(",") if r.strip()]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # still clean up below
    import pymongo
    import preload as preload_mod

    pb = sl.proto_modules()["telemetry_pb2"]
    uri_file = None if args.mongo_uri else sl.uri_file("consumer")
    uri = args.mongo_uri or sl.uri_of("consumer")
    client = pymongo.MongoClient(uri)
    sl.wait_for_store(client)
    server_name = sl.store_name(client)
    user = sl.user_of(uri)
    run = uuid.uuid4().hex[:8]
    dbname, pdbname = f"bench_consumer_{run}", f"bench_consumer_{run}_preloaded"
    admin, topics = make_topics(run)
    ptopics = None
    procs, logs, all_logs = [], [], []
    sampler = sl.StoreSampler(0.5).start()
    ports = [PORT0 + i for i in range(args.consumers)]
    log = lambda m: print(m, flush=True)  # noqa: E731
    R = {"lags": []}
    try:
        # 1. throughput into the empty store
        log(f"[bench] store: {server_name}, as {user}; run {run}")
        log(f"[bench] producing {args.messages:,} records into {topics['telemetry']}/"
            f"{topics['alerts']}")
        data = Dataset(pb, args.messages, ndev=args.devices)
        produce_all(topics, data, data.items)
        sl.create_layout(client[dbname], ["consumer_progress"], indexes=False)
        sl.retention_marks(client[dbname])
        log(f"[bench] starting {args.consumers} consumers on {dbname}")
        procs, logs = start_consumers(args.binary, args.consumers, topics, dbname, f"bench-{run}",
                                      uri, uri_file)
        all_logs += logs
        R["empty"] = drain_phase("throughput-empty", ports, procs, args.messages, sampler)
        log(f"[bench] consumer throughput (empty store) {R['empty']['throughput']:,.0f} msg/s")
        raw_hours = {sl.hour_start(it[4]) for it in data.items}

        # 2. ceilings
        R["ceil"] = ceilings(client, run, data.items, args.consumers, args.ceiling_batch, log)

        # 3. latency at offered rates
        sent_total = args.messages
        for k, rate in enumerate(rates):
            log(f"[bench] latency at {rate:,} msg/s offered for {args.seconds} s")
            before = scrape(ports)
            base = stored_total(ports)
            lag_data = Dataset(pb, rate * args.seconds, seed=11 + k, ndev=args.devices)
            raw_hours |= {sl.hour_start(it[4]) for it in lag_data.items}
            name = f"rate-{rate}"
            sampler.begin(name)
            sent, took, marks = produce_all(topics, lag_data, lag_data.items, rate, args.seconds,
                                            probe=lambda: stored_total(ports))
            sent_total += sent
            wait_count(ports, sent_total, 900)
            time.sleep(2)
            res = sampler.end(name)
            after = scrape(ports)
            e2e_b, e2e_a = (buckets(s, "pw_consumer_end_to_end_seconds") for s in (before, after))
            (mid_sent, mid_stored), (end_sent, end_stored) = marks[0], marks[-1]
            backlog_mid = mid_sent - (mid_stored - base)
            backlog_end = end_sent - (end_stored - base)
            res.update(rate=rate, achieved=sent / took, sent=sent,
                       p50=quantile(e2e_b, e2e_a, 0.5), p99=quantile(e2e_b, e2e_a, 0.99),
                       backlog_mid=backlog_mid, backlog_end=backlog_end,
                       flat=backlog_end - backlog_mid <= rate * args.flat_tolerance_s,
                       write_max=highest_bucket(buckets(before, "pw_consumer_write_seconds"),
                                                buckets(after, "pw_consumer_write_seconds")),
                       store_errors=family(after, "pw_consumer_store_errors_total")
                       - family(before, "pw_consumer_store_errors_total"))
            R["lags"].append(res)
            log(f"[bench]   achieved {res['achieved']:,.0f} msg/s, p50 {res['p50'] * 1000:,.0f} ms, "
                f"p99 {res['p99'] * 1000:,.0f} ms, backlog {backlog_mid:,.0f} (middle) -> "
                f"{backlog_end:,.0f} (end): {'flat' if res['flat'] else 'GROWING'}")
        stats = [proc_stats(p.pid) for p in procs]
        R["cpu_consumers"] = sum(s[0] for s in stats)
        R["rss_consumer"] = max(s[1] for s in stats)
        R["total_msgs"] = sent_total
        R["stored_counters"] = stored_total(ports)
        R["exit"] = stop_consumers(procs)
        procs = []
        if not args.no_verify:
            log("[bench] counting the stored raw documents")
            R["stored_db"] = count_raw(client[dbname], raw_hours)

        # 5. the preloaded store
        if args.preload:
            admin, ptopics = make_topics(run + "p")
            R["pre"] = preload_mod.preload(uri, pdbname, ptopics["telemetry"],
                                           args.preload_readings, args.preload_devices,
                                           days=args.preload_days, procs=args.preload_procs,
                                           log=log, settle_s=args.settle_seconds)
            plan = R["pre"]["plan"]
            fleet = random.Random(3).sample(plan.fleet, min(args.devices, len(plan.fleet)))
            pdata = Dataset(pb, args.messages, seed=7, devices=fleet)
            log(f"[bench] producing {args.messages:,} records of {len(fleet)} preloaded devices "
                f"into {ptopics['telemetry']}/{ptopics['alerts']}")
            produce_all(ptopics, pdata, pdata.items)
            sl.retention_marks(client[pdbname])
            log(f"[bench] starting {args.consumers} consumers on {pdbname}")
            procs, logs = start_consumers(args.binary, args.consumers, ptopics, pdbname,
                                          f"bench-{run}p", uri, uri_file, log_tag="preload-")
            all_logs += logs
            R["preloaded"] = drain_phase("throughput-preloaded", ports, procs, args.messages,
                                         sampler)
            log(f"[bench] consumer throughput (preloaded store) "
                f"{R['preloaded']['throughput']:,.0f} msg/s")
            R["pre_exit"] = stop_consumers(procs)
            procs = []
            if not args.no_verify:
                per_hour = {}
                for (p, h), n in plan.counts.items():
                    per_hour[h] = per_hour.get(h, 0) + n
                R["pre_stored_db"] = count_raw(client[pdbname],
                                               {sl.hour_start(it[4]) for it in pdata.items},
                                               per_hour)
    finally:
        stop_consumers(procs)
        sampler.stop()
        dropped = sl.drop_databases(client, [dbname, pdbname], log)
        names = list(topics.values()) + (list(ptopics.values()) if ptopics else [])
        for f in admin.delete_topics(names).values():
            try:
                f.result()
            except Exception as e:  # noqa: BLE001 - reported, cleanup goes on
                print(f"[bench] deleting a topic: {e}", flush=True)
        log(f"[bench] {'dropped' if dropped else 'tried to drop'} {dbname}"
            f"{', ' + pdbname if args.preload else ''}; deleted the bench topics")
    events = log_events(all_logs)
    if events:
        log("[bench] consumer log warnings/errors: " + ", ".join(
            f"{lvl}/{ev} ×{n}" for (lvl, ev), n in sorted(events.items())))
    R["events"] = events
    tables, notes = render(args, R, rates, server_name, user)
    print()
    for title, rows in tables:
        print(f"-- {title}")
        width = max(len(str(r[0])) for r in rows)
        for r in rows:
            print("  " + "  ".join([f"{r[0]:<{width}}"] + [str(c) for c in r[1:]]))
    if not args.no_doc:
        doc = pathlib.Path(args.doc) if args.doc else sl.DOC
        write_doc(tables, notes, doc)
        print(f"\n[bench] wrote the Consumer section of {doc}")


def render(args, R, rates, server_name, user):
    """[(title, rows)] and the section's introduction."""
    e, c = R["empty"], R["ceil"]
    r_gate, r_raw = e["throughput"] / c["raw+gate"], e["throughput"] / c["raw"]
    stored = R.get("stored_db")
    t_empty = [
        ("consumer throughput into the store (empty store)", f"{e['throughput']:,.0f} msg/s"
         + ("" if e["complete"] else f" (INCOMPLETE: {e['stored']:,.0f} of {args.messages:,} stored)"),
         "", ""),
        ("ceiling: bulk insert of the raw documents", f"{c['raw']:,.0f} msg/s", "", ""),
        ("ceiling: bulk insert of the raw + gate documents", f"{c['raw+gate']:,.0f} msg/s", "", ""),
        ("throughput / (raw + gate) ceiling", f"{r_gate:.0%}", "≥ 80%", verdict(r_gate >= 0.8)),
        ("throughput / raw ceiling", f"{r_raw:.0%}", "", ""),
        ("largest batch write (pw_consumer_write_seconds)", fmt_bucket(e["write_max"]), "", ""),
        ("failed batch writes (pw_consumer_store_errors_total)", f"{e['store_errors']:,.0f}", "0",
         verdict(e["store_errors"] == 0)),
        ("CPU per million messages while draining (consumers)",
         f"{e['cpu_consumers'] / args.messages * 1e6:,.0f} s", "", ""),
    ]
    tables = [("Throughput, empty store", t_empty)]
    if "preloaded" in R:
        p, pre = R["preloaded"], R["pre"]
        plan = pre["plan"]
        ratio = p["throughput"] / e["throughput"]
        wm = p["write_max"]
        near = wm is not None and wm[1] > 10
        counts = pre["counts"]
        t_pre = [
            ("preloaded", f"{plan.readings:,} readings from {args.preload_devices:,} devices over "
                          f"{args.preload_days} days: ≈ {counts['telemetry']:,} telemetry, "
                          f"≈ {counts['ingest_tokens']:,} ingest_tokens, "
                          f"≈ {counts['rollup_device_day']:,} rollup_device_day, "
                          f"{counts['rollup_readings']:,} rollup_readings, "
                          f"{pre['census_shards']} rollup_devices "
                          f"({pre['census_devices']:,} devices)", "", ""),
            ("preload time (load; with indexes, compaction, settling)",
             f"{pre['load_s'] / 60:,.1f} min ({pre['docs'] / pre['load_s']:,.0f} docs/s); "
             f"{pre['total_s'] / 60:,.1f} min", "", ""),
            ("consumer throughput into the preloaded store", f"{p['throughput']:,.0f} msg/s"
             + ("" if p["complete"] else f" (INCOMPLETE: {p['stored']:,.0f} of {args.messages:,} stored)"),
             "", ""),
            ("throughput preloaded / empty store", f"{ratio:.0%}", "≥ 80%", verdict(ratio >= 0.8)),
            ("largest batch write (pw_consumer_write_seconds)", fmt_bucket(wm),
             "far below the 30 s socket timeout", verdict(not near)),
            ("failed batch writes (pw_consumer_store_errors_total)", f"{p['store_errors']:,.0f}", "0",
             verdict(p["store_errors"] == 0)),
            ("bucket and census reads before writing (pw_consumer_bucket_reads_total)",
             f"{p['bucket_reads']:,.0f} (empty store: {e['bucket_reads']:,.0f})", "", ""),
        ]
        if "pre_stored_db" in R:
            t_pre.append(("stored == produced (live records)",
                          f"{R['pre_stored_db']:,} / {args.messages:,}", "equal",
                          verdict(R["pre_stored_db"] == args.messages)))
        tables.append(("Throughput, preloaded store", t_pre))
    t_lag = []
    flat = [x["rate"] for x in R["lags"] if x["flat"]]
    for x in R["lags"]:
        target = x["rate"] == args.target_rate
        t_lag.append((f"{x['rate']:,}", f"{x['achieved']:,.0f}", f"{x['sent']:,}",
                      f"{x['p50'] * 1000:,.0f}", f"{x['p99'] * 1000:,.0f}",
                      f"{x['backlog_mid']:,.0f} → {x['backlog_end']:,.0f}",
                      "yes" if x["flat"] else "**no**", fmt_bucket(x["write_max"]),
                      f"{x['store_errors']:,.0f}",
                      "p99 ≤ 1,000 ms" if target else "",
                      verdict(x["p99"] <= 1.0) if target else ""))
    tables.append(("Latency at offered rates", t_lag))
    t_res = []
    phases = [("throughput, empty store", e, args.messages)]
    phases += [(f"{x['rate']:,} msg/s", x, x["sent"]) for x in R["lags"]]
    if "preloaded" in R:
        phases.append(("throughput, preloaded store", R["preloaded"], args.messages))
    for label, w, n in phases:
        cpu = w["pg_cpu"] + w["fe_cpu"]
        t_res.append((label + (" (target rate)" if w.get("rate") == args.target_rate else ""),
                      mib(w["peak"]), mib(w["peak_pg"]), mib(w["peak_fe"]), mib(w["peak_pss"]),
                      f"{w['peak_procs']}",
                      f"{w['pg_cpu']:,.1f}", f"{w['fe_cpu']:,.1f}", f"{w['seconds']:,.0f}",
                      f"{cpu / n * 1e6:,.0f}" + (" (restarted!)" if w["restarted"] else "")))
    tables.append(("Store resources", t_res))
    t_total = [
        ("CPU per million messages (all consumers, empty store run)",
         f"{R['cpu_consumers'] / R['total_msgs'] * 1e6:,.0f} s", "", ""),
        ("peak RSS of one consumer", f"{R['rss_consumer'] / 2**20:,.1f} MiB", "", ""),
    ]
    if stored is not None:
        t_total.append(("stored == produced (empty store, all phases)",
                        f"{stored:,} / {R['total_msgs']:,}", "equal",
                        verdict(stored == R["total_msgs"])))
    else:
        t_total.append(("stored == produced (consumers' counters)",
                        f"{R['stored_counters']:,.0f} / {R['total_msgs']:,}", "equal",
                        verdict(R["stored_counters"] == R["total_msgs"])))
    tables.append(("Consumers", t_total))
    tables.append(("Previous store (FerretDB v1.24.0 on SQLite, 2026-12-01)",
                   [(a, b) for a, b in PREVIOUS_SQLITE]))
    flat_txt = f"{max(flat):,} msg/s offered" if flat else "none of the rates"
    target_rows = [x for x in R["lags"] if x["rate"] == args.target_rate]
    res_phase = target_rows[0] if target_rows else None
    events = R.get("events") or {}
    notes = {
        "intro": [
            f"Measured by `bench/consumer/bench.py` on {datetime.date.today()} against the local"
            f" stack's store, {server_name}, authenticated as {user}, and the stack's 3-node Kafka; "
            f"{args.consumers} consumer processes, PW_BATCH_MAX {os.environ.get('PW_BATCH_MAX', 2000)},"
            f" PW_BATCH_MS {os.environ.get('PW_BATCH_MS', 200)}; {sl.machine()}, shared with the "
            "rest of the stack and whatever else uses it.",
            f"Throughput: {args.messages:,} records (90 % readings in 4 unit flavours, 10 % alerts,"
            f" {args.devices} devices, 5 zones) written to the topics first, then drained: "
            "messages/s from the first stored batch to the last. Per batch, besides the raw and gate"
            " inserts, the consumer reads and writes the hour and day rollup buckets and census"
            " shards of the partitions it touches (guarded writes), inserts presence per device and"
            " day and updates its progress mark.",
            "Ceilings: the same records' documents bulk inserted straight into the same store with "
            f"pymongo (insert_many, unordered, {args.ceiling_batch} per call, {args.consumers} "
            "threads, BSON encoded before timing) into collections laid out as the consumer's; "
            "\"raw\" is the telemetry and alerts documents, \"raw + gate\" adds the ingest_tokens "
            "document the consumer inserts for every reading. The ratio with the target is "
            "throughput / (raw + gate) ceiling: it is what the consumer writes per record.",
        ],
        "pre": [
            f"Preloaded store: a second database filled by `bench/store/preload.py` "
            f"({args.preload_procs} processes, insert_many 1000 unordered) with what the consumer "
            f"would have stored for {args.preload_readings:,} readings from "
            f"{args.preload_devices:,} devices over the {args.preload_days} days before the run "
            "(raw telemetry, the gate tokens of the last 8 days, hour and day buckets, presence per "
            "device and day, the census shards; no alerts), in the partitions of a second pair of "
            "bench topics and below their offset 0, then indexed and compacted; then the same "
            f"throughput phase with {args.devices} devices drawn from that fleet. The largest batch "
            "write is the highest non-empty bucket of the consumers' pw_consumer_write_seconds "
            "(bounds up to 10 s); the store socket timeout is 30 s."] if "pre" in R else [],
        "lag": [
            f"Latency: records produced at fixed rates ({args.rate} msg/s offered, {args.seconds} s"
            " each, into the empty-store database) while the consumers ran; latency from the"
            " record's receive stamp (set when produced) to the store's acknowledgement of its"
            " batch, from the consumers' pw_consumer_end_to_end_seconds histograms (interpolated"
            " within buckets). Backlog: records produced minus records the consumers report"
            " stored, at the middle and at the end of the phase; flat = it grew by at most"
            f" {args.flat_tolerance_s:g} s of offered records in between. Highest rate with a flat"
            f" backlog: {flat_txt}.",
        ],
        "res": [
            "Store resources: every 0.5 s, VmRSS summed over the PostgreSQL postmaster and all its"
            " children (backends, autovacuum, checkpointer, …) plus FerretDB — shared buffers"
            " count once per process that touched them; the Pss column (sampled every 5 s)"
            " splits shared pages between the processes instead — and their CPU time (living processes plus what"
            " they reaped), from the start of a phase until its records were stored;"
            " the stack's own consumers and other clients of the store are included."
            + (f" The figures for the {args.target_rate:,} msg/s phase: peak {mib(res_phase['peak'])},"
               f" {res_phase['pg_cpu'] + res_phase['fe_cpu']:,.1f} CPU-seconds." if res_phase else
               f" No phase ran at the target rate {args.target_rate:,} msg/s."),
        ],
        "events": ", ".join(f"{lvl}/{ev} ×{n}" for (lvl, ev), n in sorted(events.items())),
    }
    return tables, notes


HEADERS = {
    "Throughput, empty store": ["measure", "value", "target", "ratio / verdict"],
    "Throughput, preloaded store": ["measure (preloaded store)", "value", "target", "ratio / verdict"],
    "Latency at offered rates": ["offered msg/s", "achieved msg/s", "records", "p50 ms", "p99 ms",
                                 "backlog middle → end", "flat", "largest batch write",
                                 "failed writes", "target", "verdict"],
    "Store resources": ["phase", "peak RSS PG + FerretDB", "of which PostgreSQL", "FerretDB",
                        "peak Pss PG + FerretDB (every 5 s)", "PG processes", "CPU s PostgreSQL", "CPU s FerretDB", "phase s",
                        "store CPU s / 1M msgs"],
    "Consumers": ["measure (consumers)", "value", "target", "verdict"],
    "Previous store (FerretDB v1.24.0 on SQLite, 2026-12-01)":
        ["measure (previous store: FerretDB v1.24.0 / SQLite)", "value"],
}


NUMERIC = {"value", "achieved msg/s", "records", "p50 ms", "p99 ms", "backlog middle → end",
           "failed writes", "peak RSS PG + FerretDB", "of which PostgreSQL", "FerretDB",
           "peak Pss PG + FerretDB (every 5 s)", "PG processes", "CPU s PostgreSQL",
           "CPU s FerretDB", "phase s", "store CPU s / 1M msgs", "offered msg/s"}


def table(title, rows):
    h = HEADERS[title]
    out = ["| " + " | ".join(h) + " |",
           "|" + "|".join("---:" if x in NUMERIC else "---" for x in h) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def write_doc(tables, notes, path):
    t = dict(tables)
    lines = ["## Consumer", "", *notes["intro"], ""]
    lines += table("Throughput, empty store", t["Throughput, empty store"]) + [""]
    if "Throughput, preloaded store" in t:
        lines += notes["pre"] + [""]
        lines += table("Throughput, preloaded store", t["Throughput, preloaded store"]) + [""]
    lines += notes["lag"] + [""]
    lines += table("Latency at offered rates", t["Latency at offered rates"]) + [""]
    lines += notes["res"] + [""]
    lines += table("Store resources", t["Store resources"]) + [""]
    lines += table("Consumers", t["Consumers"]) + [""]
    if notes["events"]:
        lines += [f"Warnings and errors in the bench consumers' logs: {notes['events']}.", ""]
    lines += ["Previous store, for reference: the Consumer figures of 2026-12-01 against FerretDB "
              "v1.24.0 on SQLite (same benchmark then: 60,000 records, 3 consumers; ceiling = raw "
              "documents only, 500 per call; lag phases at 5,000 then 2,500 msg/s). Not comparable "
              "one to one: the store, the document layout and the ceiling have changed.", ""]
    lines += table("Previous store (FerretDB v1.24.0 on SQLite, 2026-12-01)",
                   t["Previous store (FerretDB v1.24.0 on SQLite, 2026-12-01)"]) + [""]
    sl.write_section("Consumer", "\n".join(lines), path=path)


if __name__ == "__main__":
    main()
