"""Preloads a private database with what the consumer would have stored for
a fleet over the days before today, fast (several processes, insert_many
unordered, 1000 per call), for bench/consumer/bench.py --preload.

What is written, in the consumer's shapes (see storelib and src/consumer/):

* telemetry: `readings` raw readings from `devices` devices (20 zones, 3
  reading types) spread evenly over the hours of the `days` UTC days before
  today (±10 % per hour), each from a random device of its partition;
* ingest_tokens: the gate documents of the readings received in the last 8
  days (the gate's retention);
* rollup_readings: per partition one hour bucket per hour and one day bucket
  per day, with the packed cells and the devices that became active;
* rollup_device_day: a presence document per device and day it reported on;
* rollup_devices: the census shards of the fleet's telemetry partitions.

Partitions are those of the live telemetry topic (its name is in every tp
and _id), chosen as the bench's producer chooses them (CRC-32 of the device
id mod 3), so the live records fold into these very documents. The
preloaded records sit at offsets below 0 of those partitions (in time order;
the newest is -1), so every bucket's and census shard's hw (and _v) is
negative and every live record (offset >= 0) is above it, as it would be for
records that came after the preloaded ones. No alerts are preloaded.

The raw, gate and presence collections get their secondary indexes after the
load (as the consumer's layout has them); every collection is then
compacted (FerretDB: VACUUM ANALYZE) so that PostgreSQL's autovacuum does not
start on the fresh tables during the measurement."""
import math
import multiprocessing as mp
import random
import time
from array import array

import storelib as sl

HOUR, DAY = sl.HOUR, sl.DAY
TYPES = [("temperature", "C", 21.0, 6.0), ("pressure", "hPa", 1013.0, 8.0),
         ("humidity", "%", 45.0, 12.0)]
FIRMWARE = [("2.1.0", 0.45), ("2.0.3", 0.25), ("1.10.2", 0.15), ("1.9.0", 0.1), ("2.2.0-rc.1", 0.05)]
PARTITIONS = 3
NONE = -(2 ** 62)


class Plan:
    """The fleet and how many readings each (partition, hour) gets."""

    def __init__(self, readings, devices, days, now_ms, topic, zones=20, seed=17):
        rnd = random.Random(seed)
        self.topic, self.now_ms, self.days = topic, now_ms, days
        self.end = sl.day_start(now_ms)
        self.start = self.end - days * DAY
        self.token_cutoff = sl.hour_start(now_ms - sl.TOKEN_TTL_S * 1000)
        versions, weights = zip(*FIRMWARE)
        self.fleet = []  # (device, zone, firmware)
        self.by_part = [[] for _ in range(PARTITIONS)]  # indices into fleet
        for i in range(devices):
            dev = f"fleet-{i:06d}"
            self.fleet.append((dev, f"zone-{i % zones:02d}", rnd.choices(versions, weights)[0]))
            self.by_part[sl.partition_of(dev, PARTITIONS)].append(i)
        hours = range(self.start, self.end, HOUR)
        self.counts = {}  # (p, hour) -> readings
        for p in range(PARTITIONS):
            share = readings * len(self.by_part[p]) / max(devices, 1) / len(hours)
            for h in hours:
                self.counts[(p, h)] = max(0, round(share * rnd.uniform(0.9, 1.1)))
        # offsets: in time order per partition, the newest at -1
        self.base = {}
        for p in range(PARTITIONS):
            total = sum(self.counts[(p, h)] for h in hours)
            o = -total
            for h in hours:
                self.base[(p, h)] = o
                o += self.counts[(p, h)]
        self.readings = sum(self.counts.values())
        self.tokens = sum(n for (p, h), n in self.counts.items() if h >= self.token_cutoff)
        self.presence_est = 0
        for p in range(PARTITIONS):
            nd = len(self.by_part[p])
            for d in range(days):
                n = sum(self.counts[(p, self.start + d * DAY + k * HOUR)] for k in range(24))
                self.presence_est += nd * (1 - math.exp(-n / nd)) if nd else 0
        self.buckets = PARTITIONS * days * 25

    def units(self):
        """Work units: (partition, day start), newest first."""
        return [(p, self.end - (d + 1) * DAY) for d in range(self.days) for p in range(PARTITIONS)]

    def expected_docs(self):
        return self.readings + self.tokens + int(self.presence_est) + self.buckets


# ---- worker processes -------------------------------------------------------------------------

_W = {}


def _init(uri, dbname, plan, batch, done):
    import pymongo
    _W.update(client=pymongo.MongoClient(uri, maxPoolSize=2), dbname=dbname, plan=plan,
              batch=batch, done=done, pb=sl.proto_modules()["storage_pb2"])


def _flush(coll, buf):
    """insert_many of buf; retried through a store outage (the stack is
    shared), duplicates of an earlier attempt's documents accepted."""
    from pymongo.errors import AutoReconnect, BulkWriteError
    if buf:
        for attempt in range(30):
            try:
                _W["client"][_W["dbname"]][coll].insert_many(buf, ordered=False)
                break
            except BulkWriteError as e:
                if any(err.get("code") != 11000 for err in e.details.get("writeErrors", [])) \
                        or attempt == 0:
                    raise
                break
            except AutoReconnect:
                if attempt == 29:
                    raise
                time.sleep(2)
        with _W["done"].get_lock():
            _W["done"].value += len(buf)
        buf.clear()


def _unit(args):
    """One partition's day: raw readings, gate tokens, presence, its 24 hour
    buckets and its day bucket. Returns per-device first/last times and last
    offsets (indexed like plan.by_part[p])."""
    p, day0 = args
    plan, batch, pb = _W["plan"], _W["batch"], _W["pb"]
    rnd = random.Random(hash((p, day0)) & 0xFFFFFFFF)
    devs = plan.by_part[p]
    nd = len(devs)
    first, last, lastoff = array("q", [NONE]) * nd, array("q", [NONE]) * nd, array("q", [NONE]) * nd
    seen = bytearray(nd)
    tp = f"{plan.topic}:{p}"
    raw, gate, pres = [], [], []
    day_cells, day_devices, day_count, day_hw, buckets = {}, {}, 0, -1, []
    for k in range(24):
        h = day0 + k * HOUR
        n, o0 = plan.counts[(p, h)], plan.base[(p, h)]
        cells, devices = {}, {}
        for j, ts in enumerate(sorted(h + rnd.randrange(HOUR) for _ in range(n))):
            off = o0 + j
            di = rnd.randrange(nd)
            dev, zone, fw = plan.fleet[devs[di]]
            typ, unit, mean, sd = TYPES[rnd.randrange(3)]
            value = round(rnd.gauss(mean, sd), 3)
            tok = sl.token(rnd)
            received = ts + rnd.randrange(5, 200)
            org = f"{tp}:{off}"
            raw.append(sl.raw_reading_doc(tok, ts, dev, zone, typ, value, unit, value, unit, fw,
                                          received, "bench", "rest", org))
            if received >= plan.token_cutoff:
                gate.append(sl.gate_doc(tok, org, received))
            if not seen[di]:
                seen[di] = 1
                pres.append(sl.presence_doc(sl.utc_day(ts), dev, zone, org, ts))
                devices[zone] = devices.get(zone, 0) + 1
            if first[di] == NONE:
                first[di] = ts
            last[di], lastoff[di] = ts, off
            c = cells.get((zone, typ))
            if c is None:
                cells[(zone, typ)] = [1, value, value, value]
            else:
                c[0] += 1
                c[1] += value
                c[2] = min(c[2], value)
                c[3] = max(c[3], value)
            if len(raw) >= batch:
                _flush("telemetry", raw)
            if len(gate) >= batch:
                _flush("ingest_tokens", gate)
            if len(pres) >= batch:
                _flush("rollup_device_day", pres)
        hcells = [(z, t, "", c[0], c[1], c[2], c[3]) for (z, t), c in sorted(cells.items())]
        if n:
            buckets.append(sl.bucket_doc(pb, "hour", h, tp, o0 + n - 1, n, hcells, devices))
            day_hw = o0 + n - 1
        for z, t, _, cnt, s, lo, hi in hcells:
            d = day_cells.get((z, t))
            if d is None:
                day_cells[(z, t)] = [cnt, s, lo, hi]
            else:
                d[0] += cnt
                d[1] += s
                d[2] = min(d[2], lo)
                d[3] = max(d[3], hi)
        for z, cnt in devices.items():
            day_devices[z] = day_devices.get(z, 0) + cnt
        day_count += n
    if day_count:
        buckets.append(sl.bucket_doc(pb, "day", day0, tp, day_hw, day_count,
                                     [(z, t, "", *c) for (z, t), c in sorted(day_cells.items())],
                                     day_devices))
    _flush("telemetry", raw)
    _flush("ingest_tokens", gate)
    _flush("rollup_device_day", pres)
    _flush("rollup_readings", buckets)
    return p, first.tobytes(), last.tobytes(), lastoff.tobytes()


# ---- the load ---------------------------------------------------------------------------------

def preload(uri, dbname, topic, readings, devices, days=30, procs=4, batch=1000, now_ms=None,
            progress_s=5.0, log=print, settle_s=600):
    """Loads the database; returns a summary dict (plan, counts, seconds)."""
    import pymongo
    now_ms = now_ms or int(time.time() * 1000)
    t0 = time.time()
    plan = Plan(readings, devices, days, now_ms, topic)
    client = pymongo.MongoClient(uri)
    db = client[dbname]
    big = ["telemetry", "ingest_tokens", "rollup_device_day"]
    sl.create_layout(db, big, indexes=False)
    sl.create_layout(db, [c for c in sl.LAYOUT_INDEXES if c not in big])
    expected = plan.expected_docs()
    log(f"[preload] {plan.readings:,} readings from {devices:,} devices over the {days} days before "
        f"today ({sl.utc_day(plan.start)} .. {sl.utc_day(plan.end - DAY)}), partitions of {topic}: "
        f"about {expected:,} documents with {procs} processes, {batch} per insert_many")
    ctx = mp.get_context("spawn")
    done = ctx.Value("q", 0)
    merged = [[array("q", [NONE]) * len(plan.by_part[p]) for _ in range(3)]
              for p in range(PARTITIONS)]
    units = plan.units()
    with ctx.Pool(procs, initializer=_init, initargs=(uri, dbname, plan, batch, done)) as pool:
        results = pool.imap_unordered(_unit, units)
        finished, last_print = 0, time.time()
        while finished < len(units):
            try:
                p, first, last, lastoff = results.next(timeout=0.5)
            except mp.TimeoutError:
                p = None
            if p is not None:
                finished += 1
                f, l_, lo = array("q"), array("q"), array("q")
                f.frombytes(first)
                l_.frombytes(last)
                lo.frombytes(lastoff)
                mf, ml, mo = merged[p]
                for i in range(len(f)):
                    if f[i] != NONE:
                        mf[i] = f[i] if mf[i] == NONE else min(mf[i], f[i])
                        if l_[i] > ml[i]:
                            ml[i], mo[i] = l_[i], lo[i]
            if time.time() - last_print >= progress_s or finished == len(units):
                last_print = time.time()
                n, el = done.value, time.time() - t0
                rate = n / el if el else 0
                eta = (expected - n) / rate if rate else float("inf")
                log(f"[preload] {n:,} / ~{expected:,} documents ({100 * n / expected:.0f} %), "
                    f"{finished}/{len(units)} partition-days, {rate:,.0f} docs/s, "
                    f"ETA {max(eta, 0) / 60:.1f} min")
        pool.close()  # workers exit normally (and remove their temporary files)
        pool.join()
    load_s = time.time() - t0
    # the census of each (partition, shard)
    pb = sl.proto_modules()["storage_pb2"]
    shards = {}
    for p in range(PARTITIONS):
        mf, ml, mo = merged[p]
        for i, fi in enumerate(plan.by_part[p]):
            if mf[i] == NONE:
                continue
            dev, zone, fw = plan.fleet[fi]
            s = shards.setdefault((p, sl.census_shard(dev)), [[], -1])
            s[0].append((dev, zone, fw, mf[i], ml[i]))
            s[1] = max(s[1], mo[i])
    census = [sl.census_doc(pb, f"{topic}:{p}", shard, hw, entries)
              for (p, shard), (entries, hw) in sorted(shards.items())]
    for i in range(0, len(census), 8):  # shards are large: a few per call
        db.rollup_devices.insert_many(census[i:i + 8], ordered=False)
    log(f"[preload] {done.value:,} documents in {load_s / 60:.1f} min ({done.value / load_s:,.0f} "
        f"docs/s); census: {len(census)} shards, {sum(len(e) for e, _ in shards.values()):,} devices")
    t1 = time.time()
    for coll in big:
        sl.create_indexes(db, coll)
    log(f"[preload] indexes of {', '.join(big)} built in {time.time() - t1:.0f} s")
    t1 = time.time()
    for coll in sl.LAYOUT_INDEXES:
        db.command("compact", coll)
    log(f"[preload] compacted (VACUUM ANALYZE) in {time.time() - t1:.0f} s")
    t1 = time.time()
    quiet_since = None
    while time.time() - t1 < settle_s:
        if sl.autovacuum_workers():
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since >= 5:
            break
        time.sleep(0.5)
    settled = quiet_since is not None and time.time() - quiet_since >= 5
    log(f"[preload] PostgreSQL autovacuum {'quiet' if settled else 'STILL RUNNING'} after "
        f"{time.time() - t1:.0f} s")
    counts = {}
    for c in sl.LAYOUT_INDEXES:  # PostgreSQL's estimates after ANALYZE
        for attempt in range(6):
            try:
                counts[c] = db.command("collStats", c)["count"]
                break
            except pymongo.errors.PyMongoError:
                time.sleep(10)
        counts.setdefault(c, -1)
    client.close()
    return {"plan": plan, "counts": counts, "docs": done.value + len(census),
            "load_s": load_s, "total_s": time.time() - t0, "census_shards": len(census),
            "census_devices": sum(len(e) for e, _ in shards.values()), "settled": settled}
