"""The local store as production runs it: FerretDB on the stack's own
PostgreSQL, with authentication (the consumer may write, the metrics service
only read, strangers nothing) and guarded writes that a writer holding an old
state cannot roll back — neither through the guard in its filter nor through
FerretDB's read-then-write update, which PostgreSQL refuses when `_v` does
not grow. The consumer's own lost race is forced here too: it must read the
bucket again, fold again and count everything once."""
import os
import subprocess
import uuid

import pymongo
import pytest
from pymongo.errors import OperationFailure

from conftest import post_accepted, wait_until
from test_consumer_exactly_once import consumer_metric


def client(uri):
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)


def post_readings(stack, items):
    return post_accepted(stack, "/v1/telemetry", items)


def test_server_is_ferretdb_on_postgresql(mongo_db):
    info = mongo_db.client.admin.command("buildInfo")
    assert info["ferretdbVersion"].startswith("v1.24."), info
    # the handler is PostgreSQL: every collection is a table of schema "plantwatch"
    assert "telemetry" in mongo_db.list_collection_names()


def test_metrics_user_reads_but_cannot_write(stack, mongo_db):
    mongo_db.store_probe.drop()
    mongo_db.store_probe.insert_one({"_id": "probe", "n": 1})
    ro = client(stack.mongo_uri_of("metrics"))["plantwatch"]
    assert ro.store_probe.find_one({"_id": "probe"}) == {"_id": "probe", "n": 1}
    with pytest.raises(OperationFailure, match="permission denied"):
        ro.store_probe.insert_one({"_id": "written-by-metrics"})
    with pytest.raises(OperationFailure, match="permission denied"):
        ro.store_probe.update_one({"_id": "probe"}, {"$set": {"n": 2}})
    with pytest.raises(OperationFailure, match="permission denied"):
        ro.store_probe.delete_one({"_id": "probe"})
    with pytest.raises(OperationFailure):
        ro.create_collection(f"made_by_metrics_{uuid.uuid4().hex[:6]}")
    assert list(mongo_db.store_probe.find({}, sort=[("_id", 1)])) == [{"_id": "probe", "n": 1}]
    mongo_db.store_probe.drop()


def test_consumer_user_writes(stack, mongo_db):
    rw = client(stack.mongo_uri_of("consumer"))["plantwatch"]
    rw.store_probe_rw.insert_one({"_id": "x", "n": 1})
    rw.store_probe_rw.update_one({"_id": "x"}, {"$set": {"n": 2}})
    assert mongo_db.store_probe_rw.find_one({"_id": "x"}) == {"_id": "x", "n": 2}
    rw.store_probe_rw.drop()


@pytest.mark.parametrize("uri", ["mongodb://127.0.0.1:27017/",
                                 "mongodb://plantwatch-consumer:wrong@127.0.0.1:27017/"
                                 "?authMechanism=PLAIN&authSource=%24external"])
def test_store_refuses_unauthenticated_clients(uri):
    with pytest.raises(OperationFailure):
        client(uri)["plantwatch"].telemetry.find_one({})


def one_bucket(store_view, zone):
    """The hour bucket holding zone's cells, once it exists."""
    def found():
        for d, st in store_view.buckets("rollup_readings", "hour"):
            if any(c.zone == zone for c in st.cells):
                return d
        return None
    doc = wait_until(found, 120, 0.5)
    assert doc, f"no bucket for {zone}"
    return doc


def test_stale_guarded_write_is_refused(stack, store_view):
    zone = f"stale-{uuid.uuid4().hex[:8]}"
    post_readings(stack, [{"device_id": f"{zone}-d1", "zone": zone, "type": "temperature",
                           "value": 20.0, "unit": "C", "firmware": "1.0.0"}])
    doc = one_bucket(store_view, zone)
    coll = store_view.db.rollup_readings
    before = coll.find_one({"_id": doc["_id"]})
    # a writer whose state is older: its guard no longer matches
    res = coll.update_one({"_id": doc["_id"], "_v": before["_v"] - 1},
                          {"$set": {"_v": before["_v"] + 1, "count": 0, "state": b""}})
    assert res.matched_count == 0
    # a write that passed its guard inside FerretDB but lands after a newer one:
    # it would put back a lower _v, which PostgreSQL refuses
    with pytest.raises(OperationFailure, match="stale write refused"):
        coll.update_one({"_id": doc["_id"]},
                        {"$set": {"_v": before["_v"] - 1, "hw": before["hw"] - 1, "count": 0}})
    with pytest.raises(OperationFailure, match="stale write refused"):
        coll.update_one({"_id": doc["_id"]}, {"$set": {"count": 0}})  # _v unchanged
    assert coll.find_one({"_id": doc["_id"]}) == before


def test_consumer_that_loses_a_race_reads_again_and_counts_once(stack, store_view):
    """Another writer moves a bucket on while the owning consumer holds it in
    memory: the owner's next guarded write does not match, is counted as a
    conflict, and after reading the bucket again its batch is folded into the
    newer state. Nothing is lost or counted twice. (A rebalance between the
    two readings makes the owner read the bucket anyway, without a conflict:
    then the round is repeated.)"""
    zone = f"race-{uuid.uuid4().hex[:8]}"
    dev = f"{zone}-d1"
    reading = {"device_id": dev, "zone": zone, "type": "temperature", "unit": "C",
               "firmware": "1.0.0"}
    coll = store_view.db.rollup_readings
    values = [10.0]
    post_readings(stack, [dict(reading, value=values[0])])
    raced = False
    for _ in range(5):
        doc = one_bucket(store_view, zone)
        wait_until(lambda: sum(c.count for c in store_view.cells("rollup_readings", zone,
                                                                  "hour")) == len(values), 120)
        doc = coll.find_one({"_id": doc["_id"]})
        # the other writer: same state, a newer version (as a new owner's write would be)
        moved = coll.update_one({"_id": doc["_id"], "_v": doc["_v"]},
                                {"$set": {"_v": doc["_v"] + 1_000_000}})
        assert moved.matched_count == 1
        conflicts = consumer_metric(stack, "pw_consumer_write_conflicts_total")
        values.append(10.0 * (len(values) + 1))
        post_readings(stack, [dict(reading, value=values[-1])])

        def counted():
            cells = store_view.cells("rollup_readings", zone, "hour")
            return sum(c.count for c in cells) == len(values) and cells

        cells = wait_until(counted, 120, 0.5)
        assert cells, "a reading was not counted"
        assert sum(c.sum for c in cells) == sum(values)
        assert min(c.min for c in cells) == min(values)
        assert max(c.max for c in cells) == max(values)
        after = coll.find_one({"_id": doc["_id"]})
        assert after["_v"] > doc["_v"] + 1_000_000 and after["hw"] > doc["hw"]
        if consumer_metric(stack, "pw_consumer_write_conflicts_total") > conflicts:
            raced = True
            break
    assert raced, "the owner never held the bucket across the other writer's write"
    assert store_view.db.telemetry.count_documents({"zone": zone}) == len(values)


def test_up_refuses_a_state_directory_of_the_sqlite_layout(stack, tmp_path):
    """A state directory written by the previous layout is detected before
    anything starts, and the user is told exactly what to run."""
    state = tmp_path / "old-state"
    (state / "ferretdb" / "data").mkdir(parents=True)
    (state / "ferretdb" / "data" / "plantwatch.sqlite").write_bytes(b"SQLite format 3\0")
    env = dict(os.environ, PW_STATE=str(state))
    r = subprocess.run([str(stack.root / "plantwatch"), "up"], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120)
    assert r.returncode != 0
    assert "previous layout (FerretDB on SQLite" in r.stdout
    assert f"./plantwatch down && rm -rf '{state}/ferretdb'" in r.stdout
    assert not (state / "pids").exists() or not any((state / "pids").iterdir())
    assert not (state / "postgres").exists()
