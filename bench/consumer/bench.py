#!/usr/bin/env python3
"""Consumer benchmark (on demand, not a test).

1. Throughput: N envelopes are written to private bench topics first, then K
   plantwatch-consumer processes drain them into a private database on the
   stack's store; messages/s from the first stored batch to the last.
2. Ceiling: the same raw documents (same fields as the consumer writes) bulk
   inserted straight into the same store with pymongo
   (insert_many, unordered, 500 per call, K threads).
3. Lag: records produced at a fixed rate (default 5,000/s) while the consumers
   run; end-to-end latency from the record's receive stamp (set when it is
   produced) to the store acknowledgement, read from the consumers'
   pw_consumer_end_to_end_seconds histograms.

Writes a table to stdout and the "## Consumer" section of docs/performance.md
(other sections are left as they are).
Usage: bench/consumer/bench.py [--messages 60000] [--rate 5000] [--seconds 30]
"""
import argparse
import datetime
import os
import pathlib
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
STATE = pathlib.Path(os.environ.get("PW_STATE", ROOT / ".plantwatch"))
SECRETS = STATE / "secrets"


def kafka_conf(user):
    env = dict(line.split("=", 1) for line in (SECRETS / "kafka-users.env").read_text().split())
    return {"bootstrap.servers": "127.0.0.1:9093", "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": user,
            "sasl.password": env[f"PW_KAFKA_{user.upper()}_PASSWORD"],
            "ssl.ca.location": str(SECRETS / "ca.pem")}


def load_pb2():
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix="pw-bench-pb2-")
    include = str(pathlib.Path(protoc.__file__).parent / "_proto")
    assert protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}",
                        "iot/v1/telemetry.proto"]) == 0
    sys.path.insert(0, out)
    from iot.v1 import telemetry_pb2
    return telemetry_pb2


class Dataset:
    """Readings (90 %) and alerts (10 %) from 200 devices in 5 zones."""
    UNITS = [("temperature", "C", 1.0), ("temperature", "F", 1.0), ("pressure", "Pa", 100.0),
             ("humidity", "%", 1.0)]

    def __init__(self, pb, n, seed=7):
        self.pb = pb
        rnd = random.Random(seed)
        now = int(time.time() * 1000)
        self.items = []
        for i in range(n):
            dev = f"bench-dev-{rnd.randrange(200):03d}"
            zone = f"zone-{hash(dev) % 5}"
            ts = now - rnd.randrange(600_000)
            if i % 10 == 9:
                self.items.append(("alert", str(uuid.uuid4()), dev, zone, ts,
                                   rnd.choice(["warning", "critical"]),
                                   rnd.choice(["OVERHEAT", "DOOR", "VIBRATION"])))
            else:
                t, u, scale = self.UNITS[i % 4]
                self.items.append(("reading", str(uuid.uuid4()), dev, zone, ts, t, u,
                                   round(rnd.uniform(10, 40) * scale, 3)))

    def envelope(self, item, received_ms):
        pb = self.pb
        env = pb.Envelope(token=item[1], received_ms=received_ms, consumer="bench",
                          source=pb.SOURCE_REST, schema_version=1)
        if item[0] == "alert":
            sev = pb.SEVERITY_WARNING if item[5] == "warning" else pb.SEVERITY_CRITICAL
            env.alert.CopyFrom(pb.Alert(device_id=item[2], zone=item[3], severity=sev,
                                        code=item[6], message="bench", ts_ms=item[4],
                                        firmware="1.0.0"))
        else:
            env.reading.CopyFrom(pb.Reading(device_id=item[2], zone=item[3], type=item[5],
                                            unit=item[6], value=item[7], ts_ms=item[4],
                                            firmware="1.0.0"))
        return env.SerializeToString()

    def raw_doc(self, item, received_ms, origin):
        """The document the consumer writes for item (see the storage schema)."""
        ts = datetime.datetime.fromtimestamp(item[4] / 1000, datetime.timezone.utc)
        hour = ts.replace(minute=0, second=0, microsecond=0)
        common = {"_id": item[1], "ts": ts, "day": ts.strftime("%Y-%m-%d"), "hour": hour,
                  "device": item[2], "zone": item[3], "firmware": "1.0.0",
                  "received": datetime.datetime.fromtimestamp(received_ms / 1000,
                                                              datetime.timezone.utc),
                  "consumer": "bench", "source": "rest", "origin": origin}
        if item[0] == "alert":
            return "alerts", dict(common, severity=item[5], code=item[6], message="bench")
        value, unit = item[7], item[6]
        if unit == "F":
            value, unit = (value - 32) * 5 / 9, "C"
        elif unit == "Pa":
            value, unit = value / 100, "hPa"
        return "telemetry", dict(common, meta={"device": item[2], "zone": item[3],
                                               "type": item[5]},
                                 type=item[5], value=value, unit=unit, raw_value=item[7],
                                 raw_unit=item[6])


def produce_all(topics, data, items, rate=None, seconds=None):
    from confluent_kafka import Producer
    p = Producer(dict(kafka_conf("producer"), **{"acks": "all", "enable.idempotence": True,
                                                  "linger.ms": 5, "compression.type": "lz4",
                                                  "queue.buffering.max.messages": 1000000}))
    t0 = time.time()
    sent = 0
    for i, item in enumerate(items):
        if rate:
            due = t0 + i / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            if seconds and time.time() - t0 > seconds:
                break
        topic = topics["alerts"] if item[0] == "alert" else topics["telemetry"]
        value = data.envelope(item, int(time.time() * 1000))
        while True:
            try:
                p.produce(topic, key=item[2].encode(), value=value,
                          headers=[("pw-token", item[1].encode()), ("pw-schema", b"1")])
                break
            except BufferError:
                p.poll(0.05)
        sent += 1
        p.poll(0)
    took = time.time() - t0
    p.flush(120)
    return sent, took


def make_topics(run):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient(kafka_conf("admin"))
    topics = {"telemetry": f"bench-{run}-telemetry", "alerts": f"bench-{run}-alerts",
              "dlq": f"bench-{run}-dlq"}
    fs = admin.create_topics([NewTopic(topics["telemetry"], 3, 3),
                              NewTopic(topics["alerts"], 2, 3), NewTopic(topics["dlq"], 1, 3)])
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


def start_consumers(binary, k, topics, db, run, mongo_uri):
    env_users = dict(line.split("=", 1)
                     for line in (SECRETS / "kafka-users.env").read_text().split())
    pw_file = pathlib.Path(tempfile.mkdtemp(prefix="pw-bench-")) / "consumer.password"
    pw_file.write_text(env_users["PW_KAFKA_CONSUMER_PASSWORD"])
    pw_file.chmod(0o600)
    procs = []
    for i in range(k):
        env = dict(os.environ, PW_HTTP_PORT=str(18201 + i), PW_INSTANCE=f"bench-consumer-{i + 1}",
                   PW_KAFKA_GROUP=f"bench-{run}", PW_KAFKA_USERNAME="consumer",
                   PW_KAFKA_PASSWORD_FILE=str(pw_file), PW_KAFKA_CA_FILE=str(SECRETS / "ca.pem"),
                   PW_TOPIC_TELEMETRY=topics["telemetry"], PW_TOPIC_ALERTS=topics["alerts"],
                   PW_TOPIC_DLQ=topics["dlq"], PW_MONGO_URI=mongo_uri, PW_MONGO_DB=db,
                   PW_LOG_LEVEL=os.environ.get("PW_BENCH_LOG_LEVEL", "warn"))
        log = open(f"/tmp/pw-bench-consumer-{i + 1}.log", "w")
        procs.append(subprocess.Popen([binary], env=env, stdout=log, stderr=log))
    return procs


def proc_stats(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = 0
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            rss = int(line.split()[1]) * 1024
    return cpu, rss


def histogram(ports, name):
    import requests
    buckets = {}
    for port in ports:
        for line in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
            if line.startswith(name + "_bucket"):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                le = float("inf") if le == "+Inf" else float(le)
                buckets[le] = buckets.get(le, 0) + float(line.rsplit(" ", 1)[1])
    return buckets


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


def stored_total(ports):
    """Records stored or found already stored, summed over the consumers' /metrics
    (polling the store itself would add load to what is measured)."""
    import requests
    total = 0.0
    for port in ports:
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except requests.RequestException:
            continue
        for line in text.splitlines():
            if line.startswith(("pw_consumer_stored_total", "pw_consumer_duplicates_total")):
                total += float(line.rsplit(" ", 1)[1])
    return total


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


def ceiling(client, dbname, data, items, k):
    db = client[dbname]
    docs = {"telemetry": [], "alerts": []}
    now = int(time.time() * 1000)
    for i, item in enumerate(items):
        coll, doc = data.raw_doc(item, now, f"bench:0:{i}")
        docs[coll].append(doc)
    chunks = [(c, docs[c][i:i + 500]) for c in docs for i in range(0, len(docs[c]), 500)]
    t0 = time.time()

    def work(part):
        for coll, chunk in part:
            db[coll].insert_many(chunk, ordered=False)

    threads = [threading.Thread(target=work, args=(chunks[j::k],)) for j in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(items) / (time.time() - t0)


def write_section(rows, notes):
    path = ROOT / "docs" / "performance.md"
    text = path.read_text() if path.exists() else "# plantwatch performance\n"
    lines = ["## Consumer", "", *notes, "", "| measure | value | target | ratio / verdict |",
             "|---|---|---|---|", *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows], ""]
    section = "\n".join(lines) + "\n"
    if "## Consumer" in text:
        head, rest = text.split("## Consumer", 1)
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1:] if nxt >= 0 else ""
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=60000)
    ap.add_argument("--rate", default="5000,2500",
                    help="comma-separated offered rates (msg/s) for the lag phases; the first is"
                         " the one the target applies to")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--consumers", type=int, default=3)
    ap.add_argument("--mongo-uri", default=os.environ.get("PW_MONGO_URI",
                                                          "mongodb://127.0.0.1:27017"))
    ap.add_argument("--binary", default=str(ROOT / "build/src/consumer/plantwatch-consumer"))
    ap.add_argument("--no-doc", action="store_true")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # still clean up below
    import pymongo
    pb = load_pb2()
    run = uuid.uuid4().hex[:8]
    client = pymongo.MongoClient(args.mongo_uri)
    server = client.admin.command("buildInfo")
    server_name = ("FerretDB " + server["ferretdbVersion"]) if "ferretdbVersion" in server \
        else "MongoDB " + server["version"]
    dbname, ceil_db = f"bench_consumer_{run}", f"bench_ceiling_{run}"
    admin, topics = make_topics(run)
    procs = []
    try:
        print(f"[bench] producing {args.messages} records into {topics['telemetry']}/"
              f"{topics['alerts']}", flush=True)
        data = Dataset(pb, args.messages)
        produce_all(topics, data, data.items)
        print(f"[bench] starting {args.consumers} consumers", flush=True)
        procs = start_consumers(args.binary, args.consumers, topics, dbname, run, args.mongo_uri)
        ports = [18201 + i for i in range(args.consumers)]
        series = wait_count(ports, args.messages)
        started = next((t, c) for t, c in series if c > 0)
        done = series[-1]
        throughput = (done[1] - started[1]) / max(done[0] - started[0], 1e-6)
        cpu_drain = sum(proc_stats(p.pid)[0] for p in procs)
        print(f"[bench] consumer throughput {throughput:.0f} msg/s", flush=True)

        print("[bench] ceiling: pymongo bulk insert of the same documents", flush=True)
        ceil = ceiling(client, ceil_db, data, data.items, args.consumers)
        print(f"[bench] ceiling {ceil:.0f} msg/s", flush=True)

        lags, sent_total = [], 0
        for k, rate in enumerate(int(r) for r in args.rate.split(",")):
            print(f"[bench] lag at {rate} msg/s for {args.seconds} s", flush=True)
            before = histogram(ports, "pw_consumer_end_to_end_seconds")
            lag_data = Dataset(pb, rate * args.seconds, seed=11 + k)
            sent, took = produce_all(topics, lag_data, lag_data.items, rate, args.seconds)
            sent_total += sent
            wait_count(ports, args.messages + sent_total, 600)
            time.sleep(2)
            after = histogram(ports, "pw_consumer_end_to_end_seconds")
            lags.append((sent / took, quantile(before, after, 0.5), quantile(before, after, 0.99),
                         sent))
        sent = sent_total
        stats = [proc_stats(p.pid) for p in procs]
        cpu_total = sum(s[0] for s in stats)
        rss = max(s[1] for s in stats)
        total_msgs = args.messages + sent
        db = client[dbname]
        stored = db.telemetry.estimated_document_count() + db.alerts.estimated_document_count()
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        client.drop_database(dbname)
        client.drop_database(ceil_db)
        admin.delete_topics(list(topics.values()))
    ratio = throughput / ceil
    rows = [
        ("consumer throughput into the store", f"{throughput:,.0f} msg/s", "", ""),
        ("ceiling: bulk insert of the same documents", f"{ceil:,.0f} msg/s", "", ""),
        ("throughput / ceiling", f"{ratio:.0%}", "≥ 70%", "met" if ratio >= 0.7 else "NOT met"),
    ]
    for k, (achieved, p50, p99, _) in enumerate(lags):
        rows += [
            (f"end-to-end p50 at {achieved:,.0f} msg/s", f"{p50 * 1000:,.0f} ms", "", ""),
            (f"end-to-end p99 at {achieved:,.0f} msg/s", f"{p99 * 1000:,.0f} ms",
             "≤ 1,000 ms" if k == 0 else "", ("met" if p99 <= 1.0 else "NOT met") if k == 0 else ""),
        ]
    rows += [
        ("CPU per million messages (all consumers)",
         f"{cpu_total / total_msgs * 1e6:,.0f} s", "", ""),
        ("CPU per million while draining", f"{cpu_drain / args.messages * 1e6:,.0f} s", "", ""),
        ("peak RSS of one consumer", f"{rss / 2**20:,.1f} MiB", "", ""),
        ("stored == produced", f"{stored:,} / {total_msgs:,}", "equal",
         "met" if stored == total_msgs else "NOT met"),
    ]
    notes = [
        f"Measured by `bench/consumer/bench.py` on {datetime.date.today()} against {server_name}"
        f" (the local stack's store) and the stack's 3-node Kafka; {args.consumers} consumer"
        f" processes, PW_BATCH_MAX {os.environ.get('PW_BATCH_MAX', 2000)},"
        f" PW_BATCH_MS {os.environ.get('PW_BATCH_MS', 200)}.",
        f"Throughput: {args.messages:,} records (90 % readings in 4 unit flavours, 10 % alerts,"
        " 200 devices, 5 zones) written to the topics first, then drained: messages/s from the"
        " first stored batch to the last. Besides its raw inserts, each batch costs the consumer"
        " one rollup update per hour and partition it touches, a device upsert per device at"
        " most every 10 s, a presence insert per device and day and a progress update per"
        " partition; consumers write in parallel (one writer per rollup document, no lock).",
        "Ceiling: the same raw documents bulk inserted straight into the same store with pymongo"
        f" (insert_many, unordered, 500 per call, {args.consumers} threads) into collections"
        " laid out as the consumer's (on FerretDB: the _id index only), no rollups.",
        f"Lag: {', '.join(f'{n:,}' for *_, n in lags)} records produced at fixed rates"
        f" ({args.rate} msg/s offered, {args.seconds} s each) while the consumers ran; latency from"
        " the record's receive stamp (set when produced) to the store's acknowledgement of its"
        " batch, from the consumers' pw_consumer_end_to_end_seconds histograms (interpolated"
        " within buckets).",
    ]
    width = max(len(r[0]) for r in rows)
    print()
    for r in rows:
        print(f"{r[0]:<{width}}  {r[1]:>18}  {r[2]:>10}  {r[3]}")
    if not args.no_doc:
        write_section(rows, notes)
        print("\n[bench] wrote the Consumer section of docs/performance.md")


if __name__ == "__main__":
    main()
