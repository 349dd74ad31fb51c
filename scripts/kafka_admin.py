#!/usr/bin/env python3
"""Kafka administration for the local stack: creates the platform's topics with
their exact settings (and corrects drifted configs), waits for all brokers, and
prints a topic summary. Credentials come from $PW_STATE/secrets."""
import os
import sys
import time

from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic)

DAY_MS = 86_400_000
TOPICS = {
    "sensor-telemetry": (3, {"compression.type": "lz4", "retention.ms": str(7 * DAY_MS)}),
    "sensor-alerts": (2, {"retention.ms": str(30 * DAY_MS), "min.insync.replicas": "2"}),
    "sensor-dlq": (1, {"retention.ms": str(30 * DAY_MS)}),
}
REPLICATION = 3


def admin_config():
    state = os.environ.get("PW_STATE") or os.path.join(os.path.dirname(__file__), "..", ".plantwatch")
    secrets = {}
    with open(os.path.join(state, "secrets", "kafka-users.env")) as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            secrets[key] = value
    return {
        "bootstrap.servers": os.environ.get("PW_KAFKA_BOOTSTRAP", "127.0.0.1:9093"),
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "admin",
        "sasl.password": secrets["PW_KAFKA_ADMIN_PASSWORD"],
        "ssl.ca.location": os.path.join(state, "secrets", "ca.pem"),
    }


def wait_for_brokers(admin, want, timeout_s):
    deadline = time.time() + timeout_s
    seen = 0
    while time.time() < deadline:
        try:
            seen = len(admin.list_topics(timeout=5).brokers)
            if seen >= want:
                return
        except Exception:  # noqa: BLE001 - broker still starting
            pass
        time.sleep(1)
    raise SystemExit(f"only {seen} of {want} Kafka brokers joined within {timeout_s}s")


def partition_count(admin, name, want, timeout_s=30):
    """Partitions of a topic once metadata has propagated (new topics start at 0)."""
    deadline = time.time() + timeout_s
    have = 0
    while time.time() < deadline:
        meta = admin.list_topics(topic=name, timeout=10).topics.get(name)
        have = len(meta.partitions) if meta and not meta.error else 0
        if have == want:
            break
        time.sleep(0.5)
    return have


def ensure_topics(admin):
    existing = admin.list_topics(timeout=10).topics
    missing = [NewTopic(name, parts, REPLICATION, config=cfg)
               for name, (parts, cfg) in TOPICS.items() if name not in existing]
    if missing:
        for name, fut in admin.create_topics(missing, request_timeout=30).items():
            fut.result()
            print(f"  created {name}")
    for name, (parts, cfg) in TOPICS.items():
        have = partition_count(admin, name, parts)
        if have != parts:
            raise SystemExit(f"topic {name} has {have} partitions, expected {parts}: "
                             "remove $PW_STATE/kafka to recreate the cluster")
        res = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in cfg.items()])
        for fut in admin.incremental_alter_configs([res]).values():
            fut.result()
        settings = ", ".join(f"{k}={v}" for k, v in cfg.items())
        print(f"  {name}: {parts} partitions, replication {REPLICATION}, {settings}")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else "ensure-topics"
    admin = AdminClient(admin_config())
    if cmd == "ensure-topics":
        wait_for_brokers(admin, REPLICATION, 120)
        ensure_topics(admin)
    elif cmd == "brokers":
        print(len(admin.list_topics(timeout=5).brokers))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
