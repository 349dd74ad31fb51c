"""Bulk loader for the metrics benchmark: writes what the consumer would have
stored for a synthetic fleet — rollup_readings and rollup_alerts (one
document per hour and Kafka partition, a cell per zone and type or zone,
severity and code), rollup_device_day (presence per device and day) and
devices, with the consumer's document shapes (ids, fields and BSON types) —
straight into a separate database.

The raw `telemetry` / `alerts` collections are not filled: no metrics view
reads them (every view reads rollups or devices), so they cannot change the
views' cost; the rollups are exactly the ones the consumer would have written
for the stated number of readings."""
import datetime as dt
import random

from bson.int64 import Int64

HOUR = 3_600_000
DAY = 86_400_000
TYPES = {"temperature": (21.0, 6.0), "pressure": (1013.0, 8.0), "humidity": (45.0, 12.0)}
SEVERITIES = ["critical", "warning", "info"]
CODES = ["OVERHEAT", "VIBRATION", "LOW_BATTERY", "DOOR_OPEN"]
TELEMETRY_PARTITIONS = 3
ALERT_PARTITIONS = 2
FIRMWARE = [("2.1.0", 0.45), ("2.0.3", 0.25), ("1.10.2", 0.15), ("1.9.0", 0.1), ("2.2.0-rc.1", 0.05)]


def date(ms):
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)


def utc_day(ms):
    return date(ms).strftime("%Y-%m-%d")


def split(n, parts):
    """n as parts near-equal shares (what keyed partitioning spreads)."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def load(db, readings, devices=10_000, zones=20, days=7, alert_share=0.05, now_ms=None, seed=7,
         log=print):
    """Writes the rollups of `readings` readings (plus alert_share × readings
    alerts) from `devices` devices in `zones` zones over the last `days` days."""
    rnd = random.Random(seed)
    now_ms = now_ms or int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    end_hour = now_ms - now_ms % HOUR
    hours = [end_hour - i * HOUR for i in range(days * 24)]
    zone_names = [f"zone-{z:02d}" for z in range(zones)]
    for c in ("rollup_readings", "rollup_alerts", "rollup_device_day", "devices"):
        db[c].drop()

    # readings: spread evenly over (hour, zone, type) cells, ±10 %, and over the
    # telemetry partitions: one document per (hour, partition) as the consumer writes
    ncells = len(hours) * zones * len(TYPES)
    per_cell = readings / ncells
    docs, total = [], 0
    for h in hours:
        parts = [[] for _ in range(TELEMETRY_PARTITIONS)]
        for z in zone_names:
            for typ, (mean, sd) in TYPES.items():
                n = max(1, round(per_cell * rnd.uniform(0.9, 1.1)))
                total += n
                for p, share in enumerate(split(n, TELEMETRY_PARTITIONS)):
                    if share == 0:
                        continue
                    lo = mean - sd * rnd.uniform(1.5, 3.0)
                    hi = mean + sd * rnd.uniform(1.5, 3.0)
                    parts[p].append({"zone": z, "type": typ, "count": Int64(share),
                                     "sum": share * rnd.uniform(mean - 1, mean + 1),
                                     "min": lo, "max": hi})
        for p, cells in enumerate(parts):
            tp = f"sensor-telemetry:{p}"
            docs.append({"_id": f"{h}|{tp}", "hour": date(h), "day": utc_day(h), "tp": tp,
                         "hw": Int64(total), "count": Int64(sum(c["count"] for c in cells)),
                         "cells": cells})
    db.rollup_readings.insert_many(docs, ordered=False)
    log(f"rollup_readings: {len(docs)} documents for {total} readings")

    # alerts: each alert lands in a random (hour, zone, severity, code) cell of a
    # random alerts partition
    alerts = int(readings * alert_share)
    counts = {}
    keys = [(h, p, z, s, c) for h in hours for p in range(ALERT_PARTITIONS) for z in zone_names
            for s in SEVERITIES for c in CODES]
    for k in rnd.choices(keys, k=alerts):
        counts[k] = counts.get(k, 0) + 1
    by_doc = {}
    for (h, p, z, s, c), n in counts.items():
        by_doc.setdefault((h, p), []).append({"zone": z, "severity": s, "code": c,
                                              "count": Int64(n)})
    docs = [{"_id": f"{h}|sensor-alerts:{p}", "hour": date(h), "day": utc_day(h),
             "tp": f"sensor-alerts:{p}", "hw": Int64(sum(c["count"] for c in cells)),
             "count": Int64(sum(c["count"] for c in cells)), "cells": cells}
            for (h, p), cells in by_doc.items()]
    db.rollup_alerts.insert_many(docs, ordered=False)
    log(f"rollup_alerts: {len(docs)} documents for {alerts} alerts")

    # every device becomes active once per day: one count in the "devices" array of
    # one hourly telemetry document of that day (its first reading of the day)
    by_id = {d["_id"]: d for d in db.rollup_readings.find({}, {"_id": 1})}
    active = {}
    for i in range(devices):
        zone = zone_names[i % zones]
        part = i % TELEMETRY_PARTITIONS
        for d in range(days):
            h = end_hour - (d * 24 + rnd.randrange(24)) * HOUR
            key = f"{h}|sensor-telemetry:{part}"
            if key in by_id:
                active.setdefault(key, {}).setdefault(zone, 0)
                active[key][zone] += 1
    for key, zones_n in active.items():
        db.rollup_readings.update_one({"_id": key}, {"$set": {"devices": [
            {"zone": z, "count": Int64(n)} for z, n in sorted(zones_n.items())]}})
    log(f"devices array: {sum(sum(v.values()) for v in active.values())} device-days "
        f"in {len(active)} hourly documents")

    # devices and their per-day activity (every device reports every day at these rates)
    dev_docs, day_docs = [], []
    versions, weights = zip(*FIRMWARE)
    for i in range(devices):
        dev = f"dev-{i:05d}"
        zone = zone_names[i % zones]
        # most devices report every few seconds; about 2 % have gone silent
        silent = rnd.random() < 0.02
        last = now_ms - (rnd.randint(15 * 60_000, 3 * DAY) if silent else rnd.randint(0, 60_000))
        dev_docs.append({"_id": dev, "zone": zone, "firmware": rnd.choices(versions, weights)[0],
                         "first_seen": date(now_ms - days * DAY), "last_seen": date(last)})
        for d in range(days):
            day = utc_day(now_ms - d * DAY)
            day_docs.append({"_id": f"{day}|{dev}", "day": day, "device": dev, "zone": zone})
    db.devices.insert_many(dev_docs, ordered=False)
    for i in range(0, len(day_docs), 10_000):
        db.rollup_device_day.insert_many(day_docs[i:i + 10_000], ordered=False)
    log(f"devices: {len(dev_docs)}; rollup_device_day: {len(day_docs)}")
    # the indexes the consumer creates
    for coll, field in (("devices", "last_seen"), ("devices", "firmware"), ("rollup_readings", "hour"),
                        ("rollup_readings", "day"), ("rollup_alerts", "hour"), ("rollup_alerts", "day"),
                        ("rollup_device_day", "day")):
        db[coll].create_index(field)
    return {"readings": total, "alerts": alerts, "rollup_readings": db.rollup_readings.estimated_document_count(),
            "rollup_alerts": len(docs), "rollup_device_day": len(day_docs), "devices": len(dev_docs)}
