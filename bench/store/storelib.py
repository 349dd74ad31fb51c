"""Shared pieces of the store benchmarks (bench/store/ceiling.py,
bench/consumer/bench.py, bench/metrics/run.py): the stack's store URIs and
name, a throwaway FerretDB/SQLite instance, the consumer's document shapes
(raw readings and alerts, ingest_tokens gate, presence, rollup buckets and
census shards with their packed iot.v1 storage state), the consumer's
collection layout, parallel bulk inserts, resource sampling of the store's
processes and the section writer for docs/performance.md.

Nothing here is a test; nothing here starts or stops a stack process."""
import datetime as dt
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zlib

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STATE = pathlib.Path(os.environ.get("PW_STATE", ROOT / ".plantwatch"))
SECRETS = STATE / "secrets"
CACHE = pathlib.Path(os.environ.get("PW_CACHE", pathlib.Path.home() / ".cache/plantwatch"))
FERRETDB_BIN = pathlib.Path(os.environ.get("PW_FERRETDB_BIN", CACHE / "bin" / "ferretdb"))
DOC = ROOT / "docs" / "performance.md"

HOUR = 3_600_000
DAY = 86_400_000
CENSUS_SHARDS = 8           # PW_CENSUS_SHARDS (src/common/pw_schema.h)
TOKEN_TTL_S = 8 * 86400     # PWC_TOKEN_TTL_S (src/consumer/store_int.h)


# ---- the stack's store -------------------------------------------------------------------

def uri_file(role):
    """.plantwatch/secrets/<role>-mongodb.uri (admin, consumer, metrics)."""
    return SECRETS / f"{role}-mongodb.uri"


def uri_of(role):
    return uri_file(role).read_text().strip()


def user_of(uri):
    m = re.match(r"mongodb://([^:@/]+)[:@]", uri)
    return urllib.request.unquote(m.group(1)) if m else "(none)"


def stack_pid(name):
    try:
        return int((STATE / "pids" / f"{name}.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def ferretdb_backend(debug_addr="127.0.0.1:27018"):
    """(backend name, backend version) of the stack's FerretDB: from its debug
    metrics (ferretdb_up{backend_name, backend_version}), else from the
    --handler flag of its command line; (None, None) when unknown."""
    try:
        with urllib.request.urlopen(f"http://{debug_addr}/debug/metrics", timeout=3) as r:
            text = r.read().decode()
        m = re.search(r'ferretdb_up\{[^}]*backend_name="([^"]*)",backend_version="([^"]*)"', text)
        if m:
            version = m.group(2).split(" on ")[0].split(" (")[0]
            return m.group(1), version
    except OSError:
        pass
    pid = stack_pid("ferretdb")
    try:
        cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        for a in cmd:
            if a.startswith(b"--handler="):
                h = a.split(b"=", 1)[1].decode()
                return {"postgresql": "PostgreSQL", "sqlite": "SQLite"}.get(h, h), None
    except (OSError, TypeError):
        pass
    return None, None


def store_name(client, backend=None):
    """E.g. "FerretDB v1.24.2 (PostgreSQL 15.18 backend, MongoDB wire 7.0.42)".
    backend: (name, version) when known (a throwaway instance); else the
    stack's FerretDB is asked."""
    info = client.admin.command("buildInfo")
    if "ferretdbVersion" not in info:
        return f"MongoDB {info.get('version')}"
    name, version = backend or ferretdb_backend()
    be = f"{name} {version} backend" if name and version else \
        f"{name} backend" if name else "unknown backend"
    return f"FerretDB {info['ferretdbVersion']} ({be}, MongoDB wire {info.get('version')})"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SqliteFerret:
    """A throwaway FerretDB on SQLite (no authentication) in a temporary
    directory on a spare port; stopped and removed on exit."""

    def __init__(self, binary=FERRETDB_BIN, log=print):
        self.binary, self.log = pathlib.Path(binary), log
        self.proc = self.dir = None

    def __enter__(self):
        if not self.binary.exists():
            raise SystemExit(f"{self.binary}: FerretDB binary not found (./plantwatch setup builds it)")
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="pw-bench-sqlite-"))
        (self.dir / "data").mkdir()
        (self.dir / "state").mkdir()
        self.port = free_port()
        self.logfile = open(self.dir / "ferretdb.log", "w")
        self.proc = subprocess.Popen(
            [str(self.binary), "--handler=sqlite", f"--sqlite-url=file:{self.dir / 'data'}/",
             f"--state-dir={self.dir / 'state'}", f"--listen-addr=127.0.0.1:{self.port}",
             "--debug-addr=-", "--telemetry=disable", "--log-level=warn"],
            stdout=self.logfile, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"FerretDB/SQLite exited: {(self.dir / 'ferretdb.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
        self.uri = f"mongodb://127.0.0.1:{self.port}/"
        self.log(f"[store] throwaway FerretDB/SQLite pid {self.proc.pid} on 127.0.0.1:{self.port} "
                 f"({self.dir})")
        return self

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.logfile:
            self.logfile.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.log("[store] throwaway FerretDB/SQLite stopped and removed")


# ---- protobuf modules --------------------------------------------------------------------

_PB = {}


def proto_modules(grpc_too=False):
    """iot.v1 telemetry/storage/metrics modules generated from proto/ with
    grpc_tools.protoc into a temporary directory (once per process)."""
    if "mods" in _PB and (_PB["grpc"] or not grpc_too):
        return _PB["mods"]
    import atexit
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix="pw-bench-pb2-")
    atexit.register(shutil.rmtree, out, True)
    include = str(pathlib.Path(protoc.__file__).parent / "_proto")
    protos = ["iot/v1/telemetry.proto", "iot/v1/storage.proto", "iot/v1/metrics.proto"]
    argv = ["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}"]
    if grpc_too:
        argv.append(f"--grpc_python_out={out}")
    assert protoc.main(argv + protos) == 0, "grpc_tools.protoc failed on proto/"
    sys.path.insert(0, out)
    import importlib
    mods = {p.rsplit("/", 1)[1][:-6] + "_pb2": importlib.import_module(
        p[:-6].replace("/", ".") + "_pb2") for p in protos}
    if grpc_too:
        mods["metrics_pb2_grpc"] = importlib.import_module("iot.v1.metrics_pb2_grpc")
    _PB.update(mods=mods, grpc=grpc_too)
    return mods


# ---- keys and hashes the consumer uses -------------------------------------------------

def fnv1a32(s):
    h = 2166136261
    for b in s.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def census_shard(device):
    """pwc_census_shard: FNV-1a-32 of the device id mod 16."""
    return fnv1a32(device) % CENSUS_SHARDS


def partition_of(key, partitions):
    """librdkafka's consistent partitioner (CRC-32 of the key mod the
    partition count); the benchmarks produce with it explicitly, so a
    preloaded store's per-partition documents match the live records."""
    return zlib.crc32(key.encode()) % partitions


def date(ms):
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)


def utc_day(ms):
    return date(ms).strftime("%Y-%m-%d")


def hour_start(ms):
    return ms - ms % HOUR


def day_start(ms):
    return ms - ms % DAY


def token(rnd):
    """A random UUID string like the producer's tokens, from rnd (repeatable)."""
    return str(uuid.UUID(int=rnd.getrandbits(128), version=4))


# ---- document shapes (src/consumer/raw.c, presence.c, rollup.c, census.c) ----------------

def raw_reading_doc(tok, ts_ms, device, zone, typ, value, unit, raw_value, raw_unit, firmware,
                    received_ms, consumer, source, origin):
    """pwc_raw_reading_doc: the telemetry document, fields in the consumer's order."""
    return {"_id": tok, "ts": date(ts_ms), "day": utc_day(ts_ms), "hour": date(hour_start(ts_ms)),
            "meta": {"device": device, "zone": zone, "type": typ},
            "device": device, "zone": zone, "type": typ, "value": float(value), "unit": unit,
            "raw_value": float(raw_value), "raw_unit": raw_unit, "firmware": firmware,
            "received": date(received_ms), "consumer": consumer, "source": source,
            "origin": origin}


def raw_alert_doc(tok, ts_ms, device, zone, severity, code, message, firmware, received_ms,
                  consumer, source, origin):
    """pwc_raw_alert_doc (alerts are their own dedupe gate)."""
    return {"_id": tok, "ts": date(ts_ms), "day": utc_day(ts_ms), "hour": date(hour_start(ts_ms)),
            "device": device, "zone": zone, "severity": severity, "code": code,
            "message": message, "firmware": firmware, "received": date(received_ms),
            "consumer": consumer, "source": source, "origin": origin}


def gate_doc(tok, origin, received_ms):
    """ingest_tokens: {_id: token, origin, at: UTC hour start of receipt}."""
    return {"_id": tok, "origin": origin, "at": date(hour_start(received_ms))}


def presence_doc(day, device, zone, origin, ts_ms):
    """rollup_device_day: {_id "<day>|<device>", day, start, device, zone, origin}."""
    return {"_id": f"{day}|{device}", "day": day, "start": date(day_start(ts_ms)),
            "device": device, "zone": zone, "origin": origin}


def origin(topic, partition, offset):
    return f"{topic}:{partition}:{offset}"


def packed(msg):
    """A packed state field as pw_store_append_packed writes it: BSON binary of
    subtype 0x80, a little-endian uint32 with the message's length, then the
    message deflated with zlib."""
    import struct
    import zlib
    from bson.binary import Binary
    raw = msg.SerializeToString()
    return Binary(struct.pack("<I", len(raw)) + zlib.compress(raw, 1), 0x80)


def unpacked(pb_cls, value):
    """The message in a packed state field (subtype 0x80 or 0)."""
    import struct
    import zlib
    raw = bytes(value)
    if getattr(value, "subtype", 0) == 0x80:
        n = struct.unpack("<I", raw[:4])[0]
        raw = zlib.decompress(raw[4:])
        assert len(raw) == n
    msg = pb_cls()
    msg.ParseFromString(raw)
    return msg


def census_message(pb, entries):
    """iot.v1.DeviceCensus in its columns (as pwc_census_doc writes it).
    entries: (device_id, zone, firmware, first_seen_ms, last_seen_ms)."""
    m = pb.DeviceCensus()
    rows = sorted(entries, key=lambda e: (e[4], e[0]))
    zones = sorted({e[1] for e in rows})
    firmwares = sorted({e[2] for e in rows})
    zi = {z: i for i, z in enumerate(zones)}
    fi = {f: i for i, f in enumerate(firmwares)}
    m.zones.extend(zones)
    m.firmwares.extend(firmwares)
    prev = 0
    for dev, zone, fw, first, last in rows:
        m.device_ids.append(dev)
        m.zone.append(zi[zone])
        m.firmware.append(fi[fw])
        m.last_seen_delta_ms.append(last - prev)
        m.seen_for_ms.append(last - first)
        prev = last
    return m


def census_entries(m):
    """(device_id, zone, firmware, first_seen_ms, last_seen_ms) of a DeviceCensus."""
    out, last = [], 0
    for i, dev in enumerate(m.device_ids):
        last += m.last_seen_delta_ms[i]
        out.append((dev, m.zones[m.zone[i]], m.firmwares[m.firmware[i]],
                    last - m.seen_for_ms[i], last))
    return out


def rollup_state(pb, cells, devices):
    """Packed iot.v1.RollupState. cells: (zone, label, code, count, sum, min, max);
    devices: {zone: count}."""
    st = pb.RollupState()
    for zone, label, code, count, s, lo, hi in cells:
        st.cells.add(zone=zone, label=label, code=code, count=count, sum=s, min=lo, max=hi)
    for zone, count in sorted(devices.items()):
        st.devices.add(zone=zone, count=count)
    return packed(st)


def bucket_doc(pb, res, start_ms, tp, hw, count, cells, devices):
    """pwc_rollup_doc: an hour bucket (_id "h|<hour_ms>|<tp>") or a day bucket
    (_id "d|<day>|<tp>") of one partition; _v = hw."""
    from bson.int64 import Int64
    day = utc_day(start_ms)
    if res == "hour":
        doc = {"_id": f"h|{start_ms}|{tp}", "res": "hour", "start": date(start_ms), "day": day,
               "hour": date(start_ms)}
    else:
        doc = {"_id": f"d|{day}|{tp}", "res": "day", "start": date(day_start(start_ms)),
               "day": day, "month": day[:7]}
    doc.update(tp=tp, hw=Int64(hw), _v=Int64(hw), count=Int64(count),
               state=rollup_state(pb, cells, devices))
    return doc


def census_doc(pb, tp, shard, hw, entries):
    """pwc_census_doc: one (partition, shard) census, _id "<tp>|<shard>".
    entries: (device_id, zone, firmware, first_seen_ms, last_seen_ms)."""
    from bson.int64 import Int64
    m = census_message(pb, entries)
    return {"_id": f"{tp}|{shard}", "tp": tp, "shard": shard, "hw": Int64(hw), "_v": Int64(hw),
            "count": Int64(len(entries)), "state": packed(m)}


# ---- the consumer's layout (src/consumer/layout.c, FerretDB branch) ---------------------

LAYOUT_INDEXES = {  # collection -> index keys ("a,b" = compound)
    "telemetry": ["hour"],
    "alerts": ["hour"],
    "ingest_tokens": ["at"],
    "rollup_readings": ["start", "day,res", "month"],
    "rollup_alerts": ["start", "day,res", "month"],
    "rollup_device_day": ["start"],
    "rollup_devices": [],
    "consumer_progress": [],
}


def create_layout(db, collections=None, indexes=True):
    """Creates collections (and, with indexes, their secondary indexes) as the
    consumer's pwc_store_prepare does on FerretDB; idempotent."""
    from pymongo.errors import CollectionInvalid, OperationFailure
    for coll in collections or LAYOUT_INDEXES:
        try:
            db.create_collection(coll)
        except (CollectionInvalid, OperationFailure) as e:
            if getattr(e, "code", 48) != 48 and "already exists" not in str(e):
                raise
        if indexes:
            create_indexes(db, coll)


def create_indexes(db, coll):
    for keys in LAYOUT_INDEXES.get(coll, []):
        fields = keys.split(",")
        db[coll].create_index([(f, 1) for f in fields], name="_".join(f"{f}_1" for f in fields))


def retention_marks(db, now_ms=None):
    """The consumer_progress marks "retention|<collection>" a running stack's
    sweep keeps (src/consumer/retention.c), at the cutoffs of now: with them
    the bench consumers' first sweep has nothing to do, as on a stack that has
    been running, instead of walking 30 days of empty hours per collection."""
    from bson.int64 import Int64
    now_ms = now_ms or int(time.time() * 1000)
    tel = int(os.environ.get("PW_TELEMETRY_TTL_SECONDS", 2592000)) * 1000
    alr = int(os.environ.get("PW_ALERTS_TTL_SECONDS", 2592000)) * 1000
    ttl = {"telemetry": tel, "alerts": alr, "ingest_tokens": TOKEN_TTL_S * 1000,
           "rollup_readings": tel + DAY, "rollup_alerts": alr + DAY,
           "rollup_device_day": max(tel, alr) + DAY}
    for coll, t in ttl.items():
        db.consumer_progress.update_one({"_id": f"retention|{coll}"},
                                        {"$max": {"until": Int64(hour_start(now_ms - t))}},
                                        upsert=True)


def wait_for_store(client, log=print, timeout=600):
    """Waits until the store answers a command that needs its backend (the
    stack is shared: its tests stop and start PostgreSQL and FerretDB)."""
    from pymongo.errors import PyMongoError
    t0, said = time.time(), False
    while True:
        try:
            client["admin"].command("listDatabases", nameOnly=True)
            client["bench_probe"].list_collection_names()
            return
        except PyMongoError as e:
            if time.time() - t0 > timeout:
                raise
            if not said:
                log(f"[store] the store does not answer yet ({str(e)[:120]}); waiting")
                said = True
            time.sleep(2)


def drop_databases(client, names, log=print, attempts=6):
    """Drops the bench databases, retrying through a store outage (the stack
    is shared: its tests stop and start the store); says which are left."""
    from pymongo.errors import PyMongoError
    left = list(names)
    for i in range(attempts):
        for name in list(left):
            try:
                client.drop_database(name)
                left.remove(name)
            except PyMongoError as e:
                log(f"[store] dropping {name} failed ({e.__class__.__name__}); retrying")
        if not left:
            return True
        time.sleep(10)
    log(f"[store] NOT DROPPED (store unreachable): {', '.join(left)}")
    return False


# ---- bulk inserts --------------------------------------------------------------------------

def encode_chunks(docs_by_coll, batch):
    """[(collection, [RawBSONDocument, ...]), ...]: BSON encoded once, before
    any timing, so the timed part is the store's (and the wire's) work."""
    import bson
    from bson.raw_bson import RawBSONDocument
    chunks = []
    for coll, docs in docs_by_coll.items():
        enc = [RawBSONDocument(bson.encode(d)) for d in docs]
        chunks += [(coll, enc[i:i + batch]) for i in range(0, len(enc), batch)]
    return chunks


def interleave(chunks):
    """Round-robin over the collections, so every thread writes all of them."""
    by = {}
    for c in chunks:
        by.setdefault(c[0], []).append(c)
    out, lists = [], list(by.values())
    for i in range(max((len(x) for x in lists), default=0)):
        out += [x[i] for x in lists if i < len(x)]
    return out


def insert_parallel(db, chunks, threads):
    """insert_many(ordered=False) of every chunk, spread over `threads`
    threads; returns (seconds, documents inserted). Duplicate keys or other
    write errors raise."""
    errors, done = [], [0] * threads

    def work(j):
        try:
            for coll, docs in chunks[j::threads]:
                db[coll].insert_many(docs, ordered=False)  # any write error raises
                done[j] += len(docs)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(j,)) for j in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return took, sum(done)


# ---- the store's processes: memory and CPU -------------------------------------------------

CLK = os.sysconf("SC_CLK_TCK")


def _stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # fields after the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15)
    return int(rest[1]), [int(x) / CLK for x in rest[11:15]]


def _status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(ppid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if _stat(int(d))[0] == ppid:
                out.append(int(d))
        except (OSError, IndexError, ValueError):
            continue
    return out


class StoreSampler:
    """Samples, every `interval` s, the resident memory (VmRSS) of the
    PostgreSQL postmaster and all its children (backends, autovacuum, ...)
    plus FerretDB's (and, for comparison, every pss_every-th sample, their
    Pss: shared pages split between the processes that map them), and their
    CPU time: utime+stime of the living processes
    plus the children's time the postmaster and FerretDB reaped
    (cutime+cstime), so backends that come and go within a window are counted.
    Windows (begin/end by name) report the peak sum and the CPU seconds."""

    def __init__(self, interval=0.5, pss_every=10):
        self.interval, self.pss_every = interval, pss_every
        self.lock = threading.Lock()
        self.windows, self.open = {}, {}
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def sample(self, pss=False):
        pg, fe = stack_pid("postgres"), stack_pid("ferretdb")
        out = {"pg_pid": pg, "fe_pid": fe, "pg_rss": 0, "fe_rss": 0, "pg_cpu": 0.0,
               "fe_cpu": 0.0, "pg_procs": 0, "pss": 0}
        try:
            _, t = _stat(pg)
            out["pg_cpu"] = sum(t)
            out["pg_rss"] = _status_kib(pg, "VmRSS:")
            out["pss"] += _pss_kib(pg) if pss else 0
            kids = _children(pg)
            out["pg_procs"] = 1 + len(kids)
            for k in kids:
                try:
                    _, t = _stat(k)
                    out["pg_cpu"] += t[0] + t[1]
                    out["pg_rss"] += _status_kib(k, "VmRSS:")
                    out["pss"] += _pss_kib(k) if pss else 0
                except (OSError, IndexError, ValueError):
                    pass
        except (OSError, TypeError, IndexError, ValueError):
            out["pg_pid"] = None
        try:
            _, t = _stat(fe)
            out["fe_cpu"] = sum(t)
            out["fe_rss"] = _status_kib(fe, "VmRSS:")
            out["pss"] += _pss_kib(fe) if pss else 0
        except (OSError, TypeError, IndexError, ValueError):
            out["fe_pid"] = None
        return out

    def _run(self):
        n = 0
        while not self.stop_ev.is_set():
            # Pss walks every page table entry (PostgreSQL's shared buffers):
            # ~2.5 ms per backend, so only every pss_every-th sample
            s = self.sample(pss=n % self.pss_every == 0)
            n += 1
            with self.lock:
                for w in self.open.values():
                    total = s["pg_rss"] + s["fe_rss"]
                    if total > w["peak"]:
                        w.update(peak=total, peak_pg=s["pg_rss"], peak_fe=s["fe_rss"],
                                 peak_procs=s["pg_procs"])
                    w["peak_pss"] = max(w["peak_pss"], s["pss"])
                    if (s["pg_pid"], s["fe_pid"]) != w["pids"]:
                        w["restarted"] = True
                    w["samples"] += 1
            self.stop_ev.wait(self.interval)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_ev.set()

    def begin(self, name):
        s = self.sample(pss=True)
        with self.lock:
            self.open[name] = {"t0": time.time(), "first": s, "peak": 0, "peak_pg": 0,
                               "peak_fe": 0, "peak_procs": 0, "peak_pss": s["pss"], "samples": 0,
                               "pids": (s["pg_pid"], s["fe_pid"]), "restarted": False}

    def end(self, name):
        s = self.sample(pss=True)
        with self.lock:
            w = self.open.pop(name)
        w["peak_pss"] = max(w["peak_pss"], s["pss"])
        w["seconds"] = time.time() - w["t0"]
        w["pg_cpu"] = s["pg_cpu"] - w["first"]["pg_cpu"]
        w["fe_cpu"] = s["fe_cpu"] - w["first"]["fe_cpu"]
        w["restarted"] |= (s["pg_pid"], s["fe_pid"]) != w["pids"]
        self.windows[name] = w
        return w


def autovacuum_workers():
    """Pids of PostgreSQL autovacuum workers running now (children of the postmaster)."""
    out = []
    for k in _children(stack_pid("postgres") or -1):
        try:
            if b"autovacuum worker" in pathlib.Path(f"/proc/{k}/cmdline").read_bytes():
                out.append(k)
        except OSError:
            pass
    return out


# ---- docs/performance.md ------------------------------------------------------------------

def write_section(heading, body, before=None, path=None):
    """Replaces the section that starts with the line "## <heading>" (up to the
    next "## " line) by body (which starts with that heading line); when
    missing, it is inserted before the "## <before>" line or appended. Other
    sections are left as they are."""
    path = path or DOC
    text = path.read_text() if path.exists() else "# Performance\n"
    lines = text.split("\n")
    head = f"## {heading}"
    body_lines = body.rstrip("\n").split("\n") + [""]
    try:
        i = next(k for k, line in enumerate(lines) if line.rstrip() == head)
        j = next((k for k in range(i + 1, len(lines)) if lines[k].startswith("## ")), len(lines))
        lines[i:j] = body_lines
    except StopIteration:
        k = next((k for k, line in enumerate(lines) if before and line.rstrip() == f"## {before}"),
                 None)
        if k is None:
            lines = "\n".join(lines).rstrip("\n").split("\n") + [""] + body_lines
        else:
            lines[k:k] = body_lines
    path.write_text("\n".join(lines).rstrip("\n") + "\n")


def machine():
    return f"{os.cpu_count()} CPUs, Linux {os.uname().release}"
