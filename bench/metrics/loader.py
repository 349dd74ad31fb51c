"""Bulk loader for the metrics benchmark: writes what the consumer would have
stored for a synthetic fleet in the documents every metrics view reads,
with the consumer's shapes (ids, fields, BSON types, packed iot.v1 state;
see src/consumer/rollup.c and census.c), straight into a separate database:

* rollup_readings: per telemetry partition (sensor-telemetry:0..2), one
  bucket per UTC hour ({_id "h|<hour_ms>|<tp>", res "hour", start, day,
  hour}) and one per UTC day ({_id "d|<day>|<tp>", res "day", start, day,
  month}), each with tp, hw, _v (= hw), count and state = a packed
  iot.v1.RollupState: a cell per (zone, type) with count, sum, min, max, and
  the devices that became active for their UTC day through that bucket (per
  zone; each device once per day, in the hour bucket of its first reading of
  the day and in that day's bucket);
* rollup_alerts: the same per alerts partition (sensor-alerts:0..1), a cell
  per (zone, severity, code) with its count;
* rollup_devices: the device census, one document per (partition, shard)
  ({_id "<tp>|<shard>", tp, shard = FNV-1a-32(device) mod 16, hw, _v, count,
  state = packed iot.v1.DeviceCensus}); every device is in the census of its
  telemetry partition and of its alerts partition (partition = CRC-32 of the
  device id, the key, mod the partition count).

Raw telemetry/alerts, ingest_tokens and rollup_device_day (presence) are not
written: no metrics view reads them, so they cannot change the views' cost.
The collections are created with the consumer's indexes (start, day+res,
month) before loading."""
import datetime as dt
import pathlib
import random
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "store"))
import storelib as sl  # noqa: E402

HOUR, DAY = sl.HOUR, sl.DAY
TYPES = {"temperature": (21.0, 6.0), "pressure": (1013.0, 8.0), "humidity": (45.0, 12.0)}
SEVERITIES = ["critical", "warning", "info"]
CODES = ["OVERHEAT", "VIBRATION", "LOW_BATTERY", "DOOR_OPEN"]
TELEMETRY_TOPIC, TELEMETRY_PARTITIONS = "sensor-telemetry", 3
ALERTS_TOPIC, ALERT_PARTITIONS = "sensor-alerts", 2
FIRMWARE = [("2.1.0", 0.45), ("2.0.3", 0.25), ("1.10.2", 0.15), ("1.9.0", 0.1), ("2.2.0-rc.1", 0.05)]
COLLECTIONS = ("rollup_readings", "rollup_alerts", "rollup_devices")


def split_weighted(n, weights):
    """n as integer shares proportional to weights (largest remainder)."""
    total = sum(weights) or 1
    raw = [n * w / total for w in weights]
    out = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)[:n - sum(out)]:
        out[i] += 1
    return out


def merge_cells(into, cells):
    """Adds hour cells (zone, label, code, count, sum, min, max) into a day's dict."""
    for zone, label, code, count, s, lo, hi in cells:
        k = (zone, label, code)
        if k not in into:
            into[k] = [count, s, lo, hi]
        else:
            c = into[k]
            c[0] += count
            c[1] += s
            c[2] = min(c[2], lo)
            c[3] = max(c[3], hi)


def day_buckets(pb, hour_docs_src, tp_of):
    """Day buckets of one collection: the merge of each (day, partition)'s hours.
    hour_docs_src: {(hour_ms, p): (hw, count, cells, devices)}."""
    days = {}
    for (h, p), (hw, count, cells, devices) in sorted(hour_docs_src.items()):
        d = days.setdefault((sl.day_start(h), p), {"hw": -1, "count": 0, "cells": {}, "devices": {}})
        d["hw"] = max(d["hw"], hw)
        d["count"] += count
        merge_cells(d["cells"], cells)
        for z, n in devices.items():
            d["devices"][z] = d["devices"].get(z, 0) + n
    return [sl.bucket_doc(pb, "day", start, tp_of(p), d["hw"], d["count"],
                          [(*k, *v) for k, v in d["cells"].items()], d["devices"])
            for (start, p), d in sorted(days.items())]


def load(db, readings, devices=10_000, zones=20, days=7, alert_share=0.05, now_ms=None, seed=7,
         log=print):
    """Writes the rollups and census of `readings` readings (plus alert_share ×
    readings alerts) from `devices` devices in `zones` zones over the last
    `days` days (the hours before the current one). Returns document counts."""
    pb = sl.proto_modules()["storage_pb2"]
    rnd = random.Random(seed)
    now_ms = now_ms or int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    end_hour = sl.hour_start(now_ms)
    hours = [end_hour - i * HOUR for i in range(days * 24, 0, -1)]  # oldest first
    zone_names = [f"zone-{z:02d}" for z in range(zones)]
    for c in COLLECTIONS + ("rollup_device_day", "devices"):
        db[c].drop()
    sl.create_layout(db, COLLECTIONS)

    # the fleet: zone, firmware, partitions, census shard, last reading
    versions, weights = zip(*FIRMWARE)
    fleet = []
    for i in range(devices):
        dev = f"dev-{i:05d}"
        silent = rnd.random() < 0.02  # about 2 % have gone silent
        last = now_ms - (rnd.randint(15 * 60_000, 3 * DAY) if silent else rnd.randint(0, 60_000))
        fleet.append({"id": dev, "zone": zone_names[i % zones],
                      "fw": rnd.choices(versions, weights)[0],
                      "tp": sl.partition_of(dev, TELEMETRY_PARTITIONS),
                      "ap": sl.partition_of(dev, ALERT_PARTITIONS), "shard": sl.census_shard(dev),
                      "first": hours[0] + rnd.randrange(HOUR), "last": last,
                      "a_first": None, "a_last": None})
    # devices per (zone, telemetry partition): how a zone's readings spread over partitions
    zone_parts = {z: [0] * TELEMETRY_PARTITIONS for z in zone_names}
    for d in fleet:
        zone_parts[d["zone"]][d["tp"]] += 1

    # readings: spread evenly over (hour, zone, type) cells, ±10 %, then over the
    # partitions by the zone's devices there; offsets counted per partition
    ncells = len(hours) * zones * len(TYPES)
    per_cell = readings / ncells
    src, total, offset = {}, 0, [0] * TELEMETRY_PARTITIONS
    for h in hours:
        parts = [[] for _ in range(TELEMETRY_PARTITIONS)]
        for z in zone_names:
            for typ, (mean, sd) in TYPES.items():
                n = max(1, round(per_cell * rnd.uniform(0.9, 1.1)))
                total += n
                for p, share in enumerate(split_weighted(n, zone_parts[z])):
                    if share == 0:
                        continue
                    lo = mean - sd * rnd.uniform(1.5, 3.0)
                    hi = mean + sd * rnd.uniform(1.5, 3.0)
                    parts[p].append((z, typ, "", share, share * rnd.uniform(mean - 1, mean + 1),
                                     lo, hi))
        for p, cells in enumerate(parts):
            count = sum(c[3] for c in cells)
            offset[p] += count
            src[(h, p)] = [offset[p] - 1, count, cells, {}]

    # every device becomes active once per UTC day it reported on: in one hour
    # bucket of its telemetry partition, an hour of that day before it went silent
    by_day = {}
    for h in hours:
        by_day.setdefault(sl.day_start(h), []).append(h)
    device_days = 0
    for d in fleet:
        for start, hs in by_day.items():
            cands = [h for h in hs if d["first"] - d["first"] % HOUR <= h <= d["last"]]
            if not cands:
                continue
            h = rnd.choice(cands)
            devs = src[(h, d["tp"])][3]
            devs[d["zone"]] = devs.get(d["zone"], 0) + 1
            device_days += 1
    tel_tp = lambda p: f"{TELEMETRY_TOPIC}:{p}"  # noqa: E731
    docs = [sl.bucket_doc(pb, "hour", h, tel_tp(p), hw, count, cells, devs)
            for (h, p), (hw, count, cells, devs) in sorted(src.items())]
    hour_n = len(docs)
    docs += day_buckets(pb, src, tel_tp)
    db.rollup_readings.insert_many(docs, ordered=False)
    log(f"rollup_readings: {hour_n} hour and {len(docs) - hour_n} day buckets for {total:,} "
        f"readings, {device_days:,} device-days")
    counts = {"readings": total, "rollup_readings_hour": hour_n,
              "rollup_readings_day": len(docs) - hour_n}

    # alerts: each from a random device (its zone, its alerts partition) in a
    # random hour up to its last reading, with a random severity and code
    alerts = int(readings * alert_share)
    cnt = {}
    for _ in range(alerts):
        d = fleet[rnd.randrange(devices)]
        h = rnd.choice(hours)
        if h > d["last"]:
            h = sl.hour_start(d["last"])
        ts = min(h + rnd.randrange(HOUR), d["last"])
        d["a_first"] = ts if d["a_first"] is None else min(d["a_first"], ts)
        d["a_last"] = ts if d["a_last"] is None else max(d["a_last"], ts)
        k = (h, d["ap"], d["zone"], rnd.choice(SEVERITIES), rnd.choice(CODES))
        cnt[k] = cnt.get(k, 0) + 1
    asrc, aoff = {}, [0] * ALERT_PARTITIONS
    by_doc = {}
    for (h, p, z, s, c), n in cnt.items():
        by_doc.setdefault((h, p), []).append((z, s, c, n, 0.0, 0.0, 0.0))
    for (h, p), cells in sorted(by_doc.items()):
        count = sum(c[3] for c in cells)
        aoff[p] += count
        asrc[(h, p)] = [aoff[p] - 1, count, sorted(cells), {}]
    al_tp = lambda p: f"{ALERTS_TOPIC}:{p}"  # noqa: E731
    docs = [sl.bucket_doc(pb, "hour", h, al_tp(p), hw, count, cells, devs)
            for (h, p), (hw, count, cells, devs) in sorted(asrc.items())]
    hour_n = len(docs)
    docs += day_buckets(pb, asrc, al_tp)
    if docs:
        db.rollup_alerts.insert_many(docs, ordered=False)
    log(f"rollup_alerts: {hour_n} hour and {len(docs) - hour_n} day buckets for {alerts:,} alerts")
    counts.update(alerts=alerts, rollup_alerts_hour=hour_n, rollup_alerts_day=len(docs) - hour_n)

    # the census: every device in its telemetry partition's shard, and in its
    # alerts partition's shard when it raised an alert
    shards = {}
    for d in fleet:
        shards.setdefault((tel_tp(d["tp"]), d["shard"]), []).append(
            (d["id"], d["zone"], d["fw"], d["first"], d["last"]))
        if d["a_first"] is not None:
            shards.setdefault((al_tp(d["ap"]), d["shard"]), []).append(
                (d["id"], d["zone"], d["fw"], d["a_first"], d["a_last"]))
    hw = {tel_tp(p): offset[p] - 1 for p in range(TELEMETRY_PARTITIONS)}
    hw.update({al_tp(p): aoff[p] - 1 for p in range(ALERT_PARTITIONS)})
    docs = [sl.census_doc(pb, tp, shard, hw[tp], entries)
            for (tp, shard), entries in sorted(shards.items())]
    db.rollup_devices.insert_many(docs, ordered=False)
    entries = sum(len(e) for e in shards.values())
    log(f"rollup_devices: {len(docs)} census shards, {entries:,} entries for {devices:,} devices")
    counts.update(rollup_devices=len(docs), devices=devices, census_entries=entries)
    return counts
