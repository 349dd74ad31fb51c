"""Producer benchmark: plantwatch-producer vs the Flask + confluent-kafka
baseline vs Kafka's own ProducerPerformance (the ceiling), one run, one machine.

Scenarios: single-reading REST with keep-alive (wrk), batched REST (100
readings per request, wrk), gRPC unary and streaming (Python grpc.aio load
client, bench/producer/grpc_load.py), p99 of single POSTs at half the maximum
single-reading rate (wrk with per-connection pacing), peak RSS (VmHWM) and CPU
seconds per million messages of each server. Records go to dedicated topics
(bench-telemetry / bench-alerts, same settings as the real ones), so the
platform's consumers never see benchmark traffic.

Prints a table and writes it into docs/performance.md (producer section).
  bench/producer/run.sh [--duration S] [--bin PATH] [--no-baseline] [--no-ceiling]"""
import argparse
import datetime
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time

import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from gateway import BenchGateway  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STATE = pathlib.Path(os.environ.get("PW_STATE", ROOT / ".plantwatch"))
# The bench producer takes ingest only with the stack's gateway secret, which the
# load generators send as the gateway would (X-Gateway-Token, env PW_BENCH_GATEWAY_TOKEN).
GATEWAY_SECRET = STATE / "secrets" / "gateway-secret"
CACHE = pathlib.Path(os.environ.get("PW_CACHE", pathlib.Path.home() / ".cache/plantwatch"))
TOPIC, ATOPIC = "bench-telemetry", "bench-alerts"
HTTP, GRPC, BASE_HTTP = 18281, 15281, 18381
CLK = os.sysconf("SC_CLK_TCK")


def secrets():
    vals = {}
    for line in (STATE / "secrets" / "kafka-users.env").read_text().splitlines():
        k, _, v = line.strip().partition("=")
        if k:
            vals[k] = v
    return vals


def kafka_env(sec):
    return {"PW_KAFKA_BOOTSTRAP": "127.0.0.1:9093", "PW_KAFKA_USERNAME": "producer",
            "PW_KAFKA_PASSWORD": sec["PW_KAFKA_PRODUCER_PASSWORD"],
            "PW_KAFKA_CA_FILE": str(STATE / "secrets" / "ca.pem"),
            "PW_TOPIC_TELEMETRY": TOPIC, "PW_TOPIC_ALERTS": ATOPIC}


def ensure_topics(sec):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": "127.0.0.1:9093", "security.protocol": "SASL_SSL",
                         "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "admin",
                         "sasl.password": sec["PW_KAFKA_ADMIN_PASSWORD"],
                         "ssl.ca.location": str(STATE / "secrets" / "ca.pem")})
    existing = admin.list_topics(timeout=10).topics
    new = [NewTopic(TOPIC, 3, 3, config={"compression.type": "lz4", "retention.ms": "3600000"}),
           NewTopic(ATOPIC, 2, 3, config={"min.insync.replicas": "2",
                                          "retention.ms": "3600000"})]
    new = [t for t in new if t.topic not in existing]
    for f in admin.create_topics(new).values() if new else []:
        f.result()


def cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        try:
            fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK
        except (FileNotFoundError, IndexError):
            pass
    return total


def vmhwm_mib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def wrk(url, script, duration, conns, threads=2, delay_ms=0, apikey=""):
    env = dict(os.environ, PW_BENCH_DELAY_MS=str(delay_ms), PW_BENCH_APIKEY=apikey)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--timeout", "30s",
                          "-s", str(HERE / script), url], capture_output=True, text=True, env=env)
    m = re.search(r"PWBENCH (.*)", out.stdout)
    if not m:
        raise RuntimeError("wrk failed: " + out.stdout + out.stderr)
    r = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def grpc_load(mode, duration, **kw):
    args = [sys.executable, str(HERE / "grpc_load.py"), "--target", f"127.0.0.1:{GRPC}",
            "--mode", mode, "--duration", str(duration)]
    for k, v in kw.items():
        args += [f"--{k}", str(v)]
    out = subprocess.run(args, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


class Measured:
    """CPU seconds of a set of processes across one scenario."""

    def __init__(self, pids):
        self.pids = pids

    def __enter__(self):
        self.c0 = cpu_seconds(self.pids)
        return self

    def __exit__(self, *exc):
        self.cpu = cpu_seconds(self.pids) - self.c0


def row(name, msgs, seconds, p50, p99, cpu, errors=0):
    rate = msgs / seconds if seconds else 0
    return {"name": name, "rate": rate, "p50": p50, "p99": p99,
            "cpu_per_m": cpu / msgs * 1e6 if msgs else 0, "errors": errors}


SINGLE_CONNS = 256
BATCH_CONNS = 32
PACED_CONNS = 128


def paced_delay(url, single):
    """The per-connection delay that offers about half the measured maximum
    single-reading rate with PACED_CONNS connections, calibrated from short
    runs (rate = conns / (delay + latency)). (target rate, delay ms)"""
    target = single["rate"] / 2
    delay = max(0.0, PACED_CONNS / target * 1000 - single["p50"] / 2)
    for _ in range(4):
        cal = wrk(url, "single.lua", 4, PACED_CONNS, delay_ms=int(round(delay)))
        if abs(cal["rps"] - target) / target < 0.08:
            break
        latency_ms = PACED_CONNS / cal["rps"] * 1000 - delay
        delay = max(0.0, PACED_CONNS / target * 1000 - latency_ms)
    return target, int(round(delay))


def paced(url, proc, target, delay, duration, apikey="", label=""):
    """p99 of single POSTs from PACED_CONNS connections waiting `delay` ms
    between requests."""
    with Measured([proc.pid]) as m:
        h = wrk(url, "single.lua", duration, PACED_CONNS, delay_ms=delay, apikey=apikey)
    return row(f"REST, 1 reading/request, paced{label} (target {target:,.0f}/s)", h["requests"],
               h["duration_us"] / 1e6, h["p50_us"] / 1e3, h["p99_us"] / 1e3, m.cpu, h["non2xx"])


def bench_producer(args, env):
    log = open(tempfile.gettempdir() + "/pw-bench-producer.log", "wb")
    penv = dict(os.environ, **env, PW_HTTP_PORT=str(HTTP), PW_GRPC_PORT=str(GRPC),
                PW_INSTANCE="producer-bench", PW_GATEWAY_SECRET_FILE=str(GATEWAY_SECRET),
                # the unary load keeps 2 x 64 calls open: above the default
                # PW_GRPC_MAX_CALLS (128), which would refuse some of them
                PW_GRPC_MAX_CALLS="256")
    proc = subprocess.Popen([args.bin], env=penv, stdout=log, stderr=log)
    rows = {}
    try:
        wait_http(f"http://127.0.0.1:{HTTP}/readyz")
        url = f"http://127.0.0.1:{HTTP}"
        wrk(url, "single.lua", 3, 16)  # warm-up
        d = args.duration
        with Measured([proc.pid]) as m:
            r = wrk(url, "single.lua", d, SINGLE_CONNS)
        rows["rest_single"] = row("REST, 1 reading/request", r["requests"], r["duration_us"] / 1e6,
                                  r["p50_us"] / 1e3, r["p99_us"] / 1e3, m.cpu, r["non2xx"])
        target, delay = paced_delay(url, rows["rest_single"])
        rows["rest_half"] = paced(url, proc, target, delay, d)
        gw = BenchGateway(HTTP, GATEWAY_SECRET.read_text().strip())
        try:  # the same connections and delay through the gateway: its added latency
            rows["rest_half_gw"] = paced(gw.url, proc, target, delay, d, gw.key,
                                         " through the gateway")
        finally:
            gw.close()
        rows["rss_single"] = vmhwm_mib(proc.pid)
        with Measured([proc.pid]) as m:
            b = wrk(url, "batch.lua", d, BATCH_CONNS)
        rows["rest_batch"] = row("REST, 100 readings/request", b["requests"] * 100,
                                 b["duration_us"] / 1e6, b["p50_us"] / 1e3, b["p99_us"] / 1e3,
                                 m.cpu, b["non2xx"])
        with Measured([proc.pid]) as m:
            g = grpc_load("unary", d, processes=2, concurrency=64, batch=1)
        rows["grpc_unary"] = row("gRPC Publish, 1 reading/call", g["records"], g["seconds"],
                                 g["p50_ms"], g["p99_ms"], m.cpu, g["errors"])
        with Measured([proc.pid]) as m:
            g = grpc_load("stream", d, processes=2, concurrency=2, batch=100, messages=100)
        rows["grpc_stream"] = row("gRPC PublishStream, 100 readings/message", g["records"],
                                  g["seconds"], g["p50_ms"], g["p99_ms"], m.cpu, g["errors"])
        rows["rss"] = vmhwm_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        rows["exit"] = proc.wait(timeout=60)
        log.close()
    return rows


def bench_baseline(args, env):
    log = open(tempfile.gettempdir() + "/pw-bench-baseline.log", "wb")
    benv = dict(os.environ, **env)
    workers = os.cpu_count() or 2
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "gthread",
                             "--threads", "16", "-b", f"127.0.0.1:{BASE_HTTP}", "--log-level",
                             "warning", "app:app"], cwd=HERE.parent / "baseline", env=benv,
                            stdout=log, stderr=log)
    rows = {}
    try:
        wait_http(f"http://127.0.0.1:{BASE_HTTP}/healthz", 60)
        url = f"http://127.0.0.1:{BASE_HTTP}"
        wrk(url, "single.lua", 3, 16)
        pids = [proc.pid] + children(proc.pid)
        with Measured(pids) as m:
            r = wrk(url, "single.lua", args.duration, SINGLE_CONNS)
        rows["rest_single"] = row("baseline REST, 1 reading/request", r["requests"],
                                  r["duration_us"] / 1e6, r["p50_us"] / 1e3, r["p99_us"] / 1e3,
                                  m.cpu, r["non2xx"])
        with Measured(pids) as m:
            b = wrk(url, "batch.lua", args.duration, BATCH_CONNS)
        rows["rest_batch"] = row("baseline REST, 100 readings/request", b["requests"] * 100,
                                 b["duration_us"] / 1e6, b["p50_us"] / 1e3, b["p99_us"] / 1e3,
                                 m.cpu, b["non2xx"])
        rows["rss"] = sum(vmhwm_mib(p) for p in pids)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
    return rows


def record_size():
    sys.path.insert(0, str(HERE))
    from grpc_load import pb2
    _, tp = pb2()
    env = tp.Envelope(token="0b9f8c2e-6f4e-4a8e-9a43-6f1d2b7c1a10",
                      received_ms=int(time.time() * 1000), consumer="bench", source=1,
                      schema_version=1,
                      reading=tp.Reading(device_id="bench-123", zone="zone-3", type="temperature",
                                         value=42.5, unit="C", ts_ms=int(time.time() * 1000),
                                         firmware="1.0.0"))
    return len(env.SerializeToString())


def ceiling(sec, size, records, throughput=-1):
    conf = tempfile.NamedTemporaryFile("w", suffix=".properties", delete=False)
    conf.write("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
               f"ssl.truststore.type=PEM\nssl.truststore.location={STATE / 'secrets' / 'ca.pem'}\n"
               "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
               f"username=\"producer\" password=\"{sec['PW_KAFKA_PRODUCER_PASSWORD']}\";\n")
    conf.close()
    out = subprocess.run(
        ["java", "-Xmx512m", "-cp", str(CACHE / "kafka-3.9.1" / "libs") + "/*",
         "org.apache.kafka.tools.ProducerPerformance", "--topic", TOPIC, "--num-records",
         str(records), "--record-size", str(size), "--throughput", str(throughput), "--producer-props",
         "bootstrap.servers=127.0.0.1:9093", "acks=all", "compression.type=lz4", "linger.ms=5",
         "enable.idempotence=true", "batch.size=1048576", "buffer.memory=67108864", "--producer.config", conf.name],
        capture_output=True, text=True)
    os.unlink(conf.name)
    m = re.search(r"(\d+) records sent, ([\d.]+) records/sec .*?([\d.]+) ms avg latency, "
                  r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th",
                  out.stdout)
    if not m:
        raise RuntimeError("ProducerPerformance failed: " + out.stdout[-2000:] + out.stderr[-2000:])
    return {"rate": float(m.group(2)), "p50": float(m.group(5)), "p99": float(m.group(7))}


def fmt_table(p, base, ceil, size, args):
    def ms(v):
        return f"{v:.1f}"

    single_ratio = p["rest_single"]["rate"] / base["rest_single"]["rate"] if base else None
    lines = [
        "| scenario | server | msgs/s | p50 ms | p99 ms | CPU s / 1M msgs | ratio | target | met |",
        "|---|---|---:|---:|---:|---:|---:|---|---|"]

    def add(r, server, ratio="", target="", met=""):
        lines.append(f"| {r['name']} | {server} | {r['rate']:,.0f} | {ms(r['p50'])} | "
                     f"{ms(r['p99'])} | {r['cpu_per_m']:,.0f} | {ratio} | {target} | {met} |")

    def yn(ok):
        return "yes" if ok else "**no**"

    add(p["rest_single"], "plantwatch-producer",
        f"{single_ratio:.1f}× baseline" if single_ratio else "", "≥ 15× baseline",
        yn(single_ratio >= 15) if single_ratio else "")
    for key in ("rest_batch", "grpc_stream"):
        ratio = p[key]["rate"] / ceil["rate"] if ceil else None
        add(p[key], "plantwatch-producer", f"{ratio:.0%} of ceiling" if ratio else "",
            "≥ 50% of ceiling", yn(ratio >= 0.5) if ratio else "")
    ratio = p["grpc_unary"]["rate"] / ceil["rate"] if ceil else None
    add(p["grpc_unary"], "plantwatch-producer", f"{ratio:.0%} of ceiling" if ratio else "")
    add(p["rest_half"], "plantwatch-producer", "", "p99 ≤ 20 ms", yn(p["rest_half"]["p99"] <= 20))
    if "rest_half_gw" in p:
        g, d = p["rest_half_gw"], p["rest_half"]
        add(g, "gateway → plantwatch-producer",
            f"{g['p50'] - d['p50']:+.1f} ms p50, {g['p99'] - d['p99']:+.1f} ms p99 vs direct")
    if base:
        add(base["rest_single"], "Flask + confluent-kafka (gunicorn)")
        add(base["rest_batch"], "Flask + confluent-kafka (gunicorn)")
    if ceil:
        lines.append(f"| ProducerPerformance, {size}-byte records, lz4, acks=all (mean of "
                     f"{ceil['before']:,.0f} before and {ceil['after']:,.0f} after the producer "
                     f"scenarios) | Kafka tools (Java) | {ceil['rate']:,.0f} | {ms(ceil['p50'])} | "
                     f"{ms(ceil['p99'])} | | ceiling | | |")
    if ceil and "paced" in ceil:
        k = ceil["paced"]
        lines.append(f"| ProducerPerformance paced to {k['target']:,}/s (same rate as the p99 row) "
                     f"| Kafka tools (Java) | {k['rate']:,.0f} | {ms(k['p50'])} | {ms(k['p99'])} "
                     "| | broker-side reference | | |")
    lines.append("")
    lines.append(f"Peak RSS (VmHWM) of plantwatch-producer after the single-reading scenarios "
                 f"(maximum and half-rate load): **{p['rss_single']:.1f} MiB** (target ≤ 32 MiB: "
                 f"{yn(p['rss_single'] <= 32)}); over all scenarios including gRPC streaming: "
                 f"{p['rss']:.1f} MiB"
                 + (f"; baseline (gunicorn master + workers): {base['rss']:.1f} MiB." if base
                    else "."))
    lines.append(f"Producer exit status after SIGTERM at the end of the run: {p['exit']}.")
    errs = sum(p[k]["errors"] for k in ("rest_single", "rest_batch", "grpc_unary", "grpc_stream",
                                         "rest_half", "rest_half_gw") if k in p)
    lines.append(f"Non-2xx answers / failed calls during the producer scenarios: {errs}.")
    return "\n".join(lines)


def write_doc(table, args):
    doc = ROOT / "docs" / "performance.md"
    begin, end = "<!-- producer-bench:begin -->", "<!-- producer-bench:end -->"
    host = f"{os.cpu_count()} CPUs, {os.uname().sysname} {os.uname().release}"
    section = (f"{begin}\n## Producer ingest\n\nMeasured by `bench/producer/run.sh` on "
               f"{datetime.date.today().isoformat()} ({host}; the 3-node Kafka cluster, the "
               f"load generators and the server under test share the machine), "
               f"{args.duration} s per scenario.\n\n{table}\n\n{METHOD}\n{end}")
    text = doc.read_text() if doc.exists() else "# Performance\n\n"
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: section, text,
                      flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.write_text(text)


METHOD = """How it is measured: every scenario sends to the same producer process
(`PW_*` defaults, topics `bench-telemetry`/`bench-alerts` with the production
settings) and counts only answers that came after the broker acknowledgement
(202 / OK). REST load comes from `wrk` with keep-alive (256 connections for
single readings, 32 for batches, the same for the baseline; Lua scripts in
`bench/producer/`); gRPC load
from `bench/producer/grpc_load.py`, a Python `grpc.aio` client in two processes
with pre-serialized requests (a C client would push harder; the Python client
is likely the limit for unary calls). The p99 row paces 128 connections with
wrk's per-request delay so that the offered rate is about half of the measured
single-reading maximum; ProducerPerformance paced to the rate that row achieved
shows the broker's own latency at that load for comparison. The gateway row
runs the same paced connections (same delay) through a private gateway rendered from `kong/kong.yaml`
(key-auth, ACL, the gateway secret; the rate limit lifted, the upstream the
bench producer; `bench/producer/gateway.py`): its p50/p99 minus the direct
row's is the latency the gateway adds. The baseline is `bench/baseline/app.py` (Flask +
confluent-kafka under gunicorn, one gthread worker per core, same validation,
envelope and acks). The ceiling is Kafka's `ProducerPerformance` with the
envelope's record size, lz4, acks=all and idempotence over SASL_SSL, linger.ms=5
and batch.size=1 MiB (librdkafka's default batch limit, so both clients may
build equally large batches). CPU is
utime+stime of the server process(es) during the scenario.

Reading the figures: the three Kafka brokers, the load generators and the
server under test share the same cores, so every throughput here is a share of
one machine, and ratios move by ±10 % between runs. REST throughput is bound by
the acknowledgement round trip (`acks=all` across three replicas) times the
number of connections, and by the CPU left over from the brokers; the
producer's own cost is the CPU column (tens of microseconds per single-reading
request, under ten per batched reading). The p99 of single POSTs at half load
is dominated by broker-side stalls: compare it with the paced
ProducerPerformance row, which sees the same spikes without any HTTP in the
path. gRPC unary figures are limited by the Python load client."""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--bin", default=os.environ.get("PW_PRODUCER_BIN", str(
        pathlib.Path(os.environ.get("PW_BUILD", ROOT / "build")) / "src/producer/plantwatch-producer")))
    ap.add_argument("--ceiling-records", type=int, default=1000000)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--no-ceiling", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    os.environ["PW_BENCH_GATEWAY_TOKEN"] = GATEWAY_SECRET.read_text().strip()
    sec = secrets()
    ensure_topics(sec)
    env = kafka_env(sec)
    size = record_size()
    print(f"record size {size} bytes; producer {args.bin}", flush=True)
    # The ceiling runs right before and right after the producer's scenarios
    # (the machine is shared, load drifts); ratios use the mean of the two.
    before = None if args.no_ceiling else ceiling(sec, size, args.ceiling_records)
    p = bench_producer(args, env)
    print(json.dumps(p, indent=1), flush=True)
    after = None if args.no_ceiling else ceiling(sec, size, args.ceiling_records)
    ceil = None
    if before and after:
        ceil = {"rate": (before["rate"] + after["rate"]) / 2, "p50": max(before["p50"], after["p50"]),
                "p99": max(before["p99"], after["p99"]), "before": before["rate"],
                "after": after["rate"]}
    print(json.dumps(ceil), flush=True)
    base = None if args.no_baseline else bench_baseline(args, env)
    print(json.dumps(base, indent=1), flush=True)
    if ceil:  # Kafka's own latency at the paced scenario's rate, same settings
        rate = int(p["rest_half"]["rate"])
        ceil["paced"] = ceiling(sec, size, rate * args.duration, rate)
        ceil["paced"]["target"] = rate
        print(json.dumps(ceil["paced"]), flush=True)
    table = fmt_table(p, base, ceil, size, args)
    print(table)
    if not args.no_write:
        write_doc(table, args)
        print("written to docs/performance.md")


if __name__ == "__main__":
    main()
