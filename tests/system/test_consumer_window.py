"""The 30-day window is checked once, at acceptance: a reading and an alert
accepted with a ts 20 s inside the edge, while every consumer is stopped
until that ts is outside the window by the consumers' clock, are stored
exactly as sent once the consumers start (the consumer checks ts against
the producer's receive time in the envelope, never against its own clock):
nothing of theirs reaches sensor-dlq and no consumer counts an invalid record."""
import calendar
import time
import uuid

from conftest import post_accepted, wait_until
from test_consumer_exactly_once import STORE_TIMEOUT_S, consumer_metric
from test_consumer_storage import dlq_end, dlq_records

CONSUMERS = ("consumer-1", "consumer-2", "consumer-3")
HOUR = 3_600_000
DAY = 86_400_000
PAST = 30 * DAY  # PW_MAX_PAST_MS
INSIDE_MS = 20_000  # how far inside the edge the records are accepted
OUTSIDE_MS = 10_000  # how far outside the edge they are when the consumers start


def wait_for_room_in_the_hour(now_ms):
    """The records are past retention once stored, and the FerretDB sweep (it
    runs when a consumer starts) deletes whole hours before its cutoff: keep
    their hour the cutoff's hour for the whole test, so that what this test
    sees stored is not swept before it looks. Returns the new now."""
    ts_in_hour = (now_ms - PAST + INSIDE_MS) % HOUR
    if ts_in_hour > HOUR - 4 * 60_000:
        time.sleep((HOUR - ts_in_hour) / 1000 + 1)
    return int(time.time() * 1000)


def ms(dt):
    """Epoch milliseconds of a stored date (pymongo returns naive UTC datetimes)."""
    return calendar.timegm(dt.utctimetuple()) * 1000 + dt.microsecond // 1000


def origin_of(doc):
    topic, partition, offset = doc["origin"].rsplit(":", 2)
    return topic, partition, offset


def test_records_accepted_inside_the_window_are_stored_after_consumer_lag(stack, mongo_db,
                                                                           kafka_config):
    wait_for_room_in_the_hour(int(time.time() * 1000))
    zone = f"window-{uuid.uuid4().hex[:8]}"
    dev = f"{zone}-d1"
    dlq_start = dlq_end(kafka_config)
    for name in CONSUMERS:
        stack.stop_service(name)
    try:
        ts = int(time.time() * 1000) - PAST + INSIDE_MS
        reading_ids = post_accepted(stack, "/v1/telemetry", {
            "device_id": dev, "zone": zone, "type": "temperature", "value": 18.25, "unit": "C",
            "ts": ts, "firmware": "1.0.0"})
        alert_ids = post_accepted(stack, "/v1/alerts", {
            "device_id": dev, "zone": zone, "severity": "critical", "code": "EDGE",
            "message": "accepted at the edge", "ts": ts + 1, "firmware": "1.0.0"})
        # by the consumers' clock the records are now outside the 30 days
        while int(time.time() * 1000) < ts + 1 + PAST + OUTSIDE_MS:
            time.sleep(0.5)
    finally:
        for name in CONSUMERS:
            stack.start(name)
    started_ms = int(time.time() * 1000)
    assert started_ms - ts > PAST, "the records were not outside the window when consumed"

    def stored():
        r = mongo_db.telemetry.find_one({"_id": reading_ids[0]})
        a = mongo_db.alerts.find_one({"_id": alert_ids[0]})
        return (r, a) if r and a else None

    got = wait_until(stored, STORE_TIMEOUT_S, 1.0)
    assert got, "a record accepted inside the window was not stored after the consumers' lag"
    reading, alert = got
    assert reading["zone"] == zone and reading["device"] == dev
    assert reading["value"] == 18.25 and reading["unit"] == "C"
    assert ms(reading["ts"]) == ts
    # accepted just inside the window of its receipt
    assert PAST - INSIDE_MS <= ms(reading["received"]) - ts <= PAST
    assert alert["code"] == "EDGE" and alert["severity"] == "critical"
    assert ms(alert["ts"]) == ts + 1
    assert mongo_db.telemetry.count_documents({"zone": zone}) == 1
    assert mongo_db.alerts.count_documents({"zone": zone}) == 1

    # not dead-lettered: the consumers (their counters start at 0 with them)
    # count no invalid record, and sensor-dlq holds neither record
    assert consumer_metric(stack, 'pw_consumer_dead_lettered_total{reason="invalid"}') == 0
    ours = {origin_of(reading), origin_of(alert)}
    dead = set()
    for m in dlq_records(kafka_config, dlq_start):
        h = {k: v.decode() for k, v in (m.headers() or [])}
        dead.add((h.get("pw-source-topic"), h.get("pw-source-partition"),
                  h.get("pw-source-offset")))
    assert not ours & dead, "an accepted record was dead-lettered"
