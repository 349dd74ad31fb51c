"""Issue-level checks of the whole local platform: the thin path from a sensor
through the gateway, Kafka and the store to the analytics; the edge rejecting
unauthenticated requests before Kafka; the topics' exact settings; and Kafka
refusing clients without SCRAM credentials."""
import time
import uuid

import pytest
import requests
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource

from conftest import STATE, Stack, find_ids, wait_until

DAY_MS = 86_400_000


def first_key(stack):
    name, key = sorted(stack.keys.items())[0]
    return name, key


def test_reading_travels_gateway_kafka_store_analytics(stack, mongo_db):
    zone = f"thin-{uuid.uuid4().hex[:8]}"
    name, key = first_key(stack)
    now_ms = int(time.time() * 1000)
    readings = [
        {"device_id": f"{zone}-d1", "zone": zone, "type": "temperature", "value": 20.0,
         "unit": "C", "ts": now_ms - 1000, "firmware": "1.4.2"},
        {"device_id": f"{zone}-d2", "zone": zone, "type": "temperature", "value": 26.5,
         "unit": "C", "ts": now_ms - 500, "firmware": "1.4.2"},
    ]
    r = requests.post(f"{stack.gateway_url}/v1/telemetry", json=readings,
                      headers={"apikey": key}, timeout=30)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 2
    tokens = body["ids"]
    assert len(tokens) == 2 and len(set(tokens)) == 2
    for t in tokens:
        assert str(uuid.UUID(t)) == t

    stored = wait_until(lambda: len(find_ids(mongo_db.telemetry, tokens)) == 2
                        and find_ids(mongo_db.telemetry, tokens), 90)
    assert stored, "the readings did not reach the store"
    by_token = {d["_id"]: d for d in stored}
    assert by_token[tokens[0]]["device"] == f"{zone}-d1"
    assert by_token[tokens[0]]["zone"] == zone
    assert by_token[tokens[0]]["value"] == pytest.approx(20.0)
    assert by_token[tokens[1]]["value"] == pytest.approx(26.5)
    assert by_token[tokens[0]]["consumer"] == name

    def zone_row():
        res = requests.get(f"{stack.metrics_url}/v1/metrics/temperature/zones", timeout=10)
        assert res.status_code == 200, res.text
        rows = [z for z in res.json()["zones"] if z["zone"] == zone]
        return rows[0] if rows and rows[0]["count"] == 2 else None

    row = wait_until(zone_row, 60)
    assert row, "the zone average never showed the two readings"
    assert row["avg_c"] == pytest.approx(23.25)
    assert row["min_c"] == pytest.approx(20.0)
    assert row["max_c"] == pytest.approx(26.5)


@pytest.mark.parametrize("headers,message", [
    ({}, "No API key found in request"),
    ({"apikey": "not-a-key"}, "Invalid authentication credentials"),
])
def test_no_valid_key_is_401_and_nothing_reaches_kafka(stack, watermarks, headers, message):
    before = watermarks("sensor-telemetry")
    reading = {"device_id": "unauth-1", "zone": "z", "type": "temperature", "value": 1, "unit": "C"}
    r = requests.post(f"{stack.gateway_url}/v1/telemetry", json=reading, headers=headers, timeout=10)
    assert r.status_code == 401
    assert r.json() == {"message": message}
    time.sleep(1)
    assert watermarks("sensor-telemetry") == before


EXPECTED_TOPICS = {
    "sensor-telemetry": (3, {"compression.type": "lz4", "retention.ms": str(7 * DAY_MS)}),
    "sensor-alerts": (2, {"retention.ms": str(30 * DAY_MS), "min.insync.replicas": "2"}),
}


@pytest.mark.parametrize("topic", sorted(EXPECTED_TOPICS))
def test_topic_settings_through_admin_api(kafka_config, topic):
    admin = AdminClient(kafka_config("admin"))
    partitions, configs = EXPECTED_TOPICS[topic]
    meta = admin.list_topics(topic=topic, timeout=10).topics[topic]
    assert len(meta.partitions) == partitions
    for p in meta.partitions.values():
        assert len(p.replicas) == 3, f"{topic}/{p.id} replicas {p.replicas}"
    assert len(admin.list_topics(timeout=10).brokers) == 3
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    described = admin.describe_configs([res])[res].result()
    for key, value in configs.items():
        assert described[key].value == value, key
    if topic == "sensor-telemetry":
        assert described["min.insync.replicas"].value == "1"
    else:
        assert described["compression.type"].value == "producer"


def _admin_list(conf):
    conf = dict(conf, **{"socket.timeout.ms": 4000, "socket.connection.setup.timeout.ms": 4000})
    AdminClient(conf).list_topics(timeout=6)


def test_kafka_refuses_clients_without_scram_credentials(kafka_config):
    ca = str(STATE / "secrets" / "ca.pem")
    plaintext = {"bootstrap.servers": Stack.bootstrap, "security.protocol": "PLAINTEXT"}
    tls_only = {"bootstrap.servers": Stack.bootstrap, "security.protocol": "SSL",
                "ssl.ca.location": ca}
    wrong_password = kafka_config("admin", **{"sasl.password": "wrong-password"})
    for conf in (plaintext, tls_only, wrong_password):
        with pytest.raises(KafkaException):
            _admin_list(conf)
    # and the same client with the right credentials gets through
    _admin_list(kafka_config("producer"))
