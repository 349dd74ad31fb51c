"""Offline checks of the Kubernetes deployment in k8s/.

Renders the kustomize overlays through scripts/k8s/validate.sh (the same render and
kubeconform -strict validation ./plantwatch test runs) and asserts the platform's
policy on the rendered prod overlay: topics, users, autoscaling, retention, namespaces,
secrets, container hardening and network isolation. Needs the tools and schemas that
`./plantwatch setup` (pw_setup_k8s) puts in $PW_CACHE; no cluster.
"""
import base64
import copy
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VALIDATE = ROOT / "scripts" / "k8s" / "validate.sh"
NAMESPACES = {"kong", "kafka", "metrics"}
SERVICE_CONTAINERS = {"producer", "consumer", "metrics"}
HASH_SUFFIX = re.compile(r"^(?P<base>.+)-[a-z0-9]{10}$")
SECRETISH = re.compile(r"PASS|SECRET|TOKEN|APIKEY|API_KEY|CREDENTIAL|_KEY$|URI$", re.I)


def _run(*args, **kwargs):
    return subprocess.run(
        [str(VALIDATE), *args], cwd=ROOT, capture_output=True, text=True, **kwargs
    )


def _render(overlay):
    proc = _run("render", overlay)
    assert proc.returncode == 0, f"render {overlay} failed:\n{proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.fixture(scope="module")
def prod():
    return _render("prod")


@pytest.fixture(scope="module")
def dev():
    return _render("dev")


def objects(docs, kind, namespace=None):
    return [
        d
        for d in docs
        if d["kind"] == kind
        and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]


def one(docs, kind, name, namespace=None):
    found = [d for d in objects(docs, kind, namespace) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_specs(docs):
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            yield d, d["spec"]["template"]["spec"]


# --- rendering and schema validation -------------------------------------------


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlay_renders_and_validates_strictly(overlay):
    proc = _run("check", overlay)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = re.search(r"Valid: (\d+), Invalid: (\d+), Errors: (\d+), Skipped: (\d+)", proc.stdout)
    assert summary, proc.stdout
    valid, invalid, errors, skipped = map(int, summary.groups())
    assert (invalid, errors, skipped) == (0, 0, 0)
    assert valid >= 40


def test_validation_rejects_unknown_fields_and_wrong_types(prod, tmp_path):
    broken = copy.deepcopy(prod)
    one(broken, "HorizontalPodAutoscaler", "producer")["spec"]["maxReplica"] = 4
    one(broken, "KafkaTopic", "sensor-alerts")["spec"]["partition"] = 2
    dep = one(broken, "Deployment", "consumer")
    dep["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = "yes"
    expected_invalid = 3
    policies = objects(broken, "KongUpstreamPolicy")
    if policies:
        policies[0]["spec"]["algorithmus"] = "round-robin"
        expected_invalid += 1
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump_all(broken))
    proc = _run("validate", str(path))
    assert proc.returncode != 0
    assert "'maxReplica' not allowed" in proc.stdout
    assert "'partition' not allowed" in proc.stdout
    assert "runAsNonRoot" in proc.stdout
    if policies:
        assert "'algorithmus' not allowed" in proc.stdout
    assert f"Invalid: {expected_invalid}" in proc.stdout


# --- Kafka ------------------------------------------------------------------------


def test_kafka_cluster_is_kraft_with_scram_tls_listener(prod):
    kafka = one(prod, "Kafka", "plantwatch", "kafka")
    annotations = kafka["metadata"]["annotations"]
    assert annotations["strimzi.io/kraft"] == "enabled"
    assert annotations["strimzi.io/node-pools"] == "enabled"
    assert "zookeeper" not in kafka["spec"]
    listeners = {l["name"]: l for l in kafka["spec"]["kafka"]["listeners"]}
    assert set(listeners) == {"tls"}
    assert listeners["tls"]["port"] == 9093
    assert listeners["tls"]["tls"] is True
    assert listeners["tls"]["authentication"] == {"type": "scram-sha-512"}
    assert kafka["spec"]["kafka"]["authorization"] == {"type": "simple"}
    assert kafka["spec"]["kafka"]["config"]["min.insync.replicas"] == 2
    pool = one(prod, "KafkaNodePool", "dual", "kafka")
    assert pool["spec"]["replicas"] == 3
    assert sorted(pool["spec"]["roles"]) == ["broker", "controller"]
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == "plantwatch"


def test_dev_overlay_runs_one_kafka_node(dev):
    assert one(dev, "KafkaNodePool", "dual", "kafka")["spec"]["replicas"] == 1
    assert one(dev, "Kafka", "plantwatch")["spec"]["kafka"]["config"]["default.replication.factor"] == 1
    for topic in objects(dev, "KafkaTopic"):
        assert topic["spec"]["replicas"] == 1
        assert topic["spec"]["config"]["min.insync.replicas"] == 1


def test_topic_table(prod):
    topics = {t["metadata"]["name"]: t for t in objects(prod, "KafkaTopic", "kafka")}
    assert set(topics) == {"sensor-telemetry", "sensor-alerts", "sensor-dlq"}
    telemetry = topics["sensor-telemetry"]["spec"]
    assert telemetry["partitions"] == 3
    assert telemetry["replicas"] == 3
    assert telemetry["config"]["compression.type"] == "lz4"
    assert telemetry["config"]["retention.ms"] == 7 * 24 * 3600 * 1000
    alerts = topics["sensor-alerts"]["spec"]
    assert alerts["partitions"] == 2
    assert alerts["replicas"] == 3
    assert alerts["config"]["retention.ms"] == 30 * 24 * 3600 * 1000
    assert alerts["config"]["min.insync.replicas"] == 2
    assert topics["sensor-dlq"]["spec"]["replicas"] == 3
    for topic in topics.values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "plantwatch"


def _acls(user):
    spec = user["spec"]
    assert spec["authentication"] == {"type": "scram-sha-512"}
    assert spec["authorization"]["type"] == "simple"
    return {
        (a["resource"]["type"], a["resource"]["name"], a["resource"].get("patternType", "literal"), op)
        for a in spec["authorization"]["acls"]
        for op in a["operations"]
    }


def test_kafka_users_have_least_privilege(prod):
    users = {u["metadata"]["name"]: u for u in objects(prod, "KafkaUser", "kafka")}
    assert set(users) == {"producer", "consumer", "metrics"}
    assert _acls(users["producer"]) == {
        ("topic", "sensor-telemetry", "literal", "Write"),
        ("topic", "sensor-telemetry", "literal", "Describe"),
        ("topic", "sensor-alerts", "literal", "Write"),
        ("topic", "sensor-alerts", "literal", "Describe"),
    }
    assert _acls(users["consumer"]) == {
        ("topic", "sensor-telemetry", "literal", "Read"),
        ("topic", "sensor-telemetry", "literal", "Describe"),
        ("topic", "sensor-alerts", "literal", "Read"),
        ("topic", "sensor-alerts", "literal", "Describe"),
        ("topic", "sensor-dlq", "literal", "Write"),
        ("topic", "sensor-dlq", "literal", "Read"),  # plantwatch-dlq list/replay
        ("topic", "sensor-dlq", "literal", "Describe"),
        ("group", "plantwatch-consumers", "literal", "Read"),
    }
    # the pipeline view: end offsets and the group's committed offsets, nothing else
    assert _acls(users["metrics"]) == {
        ("topic", "sensor-telemetry", "literal", "Describe"),
        ("topic", "sensor-alerts", "literal", "Describe"),
        ("group", "plantwatch-consumers", "literal", "Describe"),
    }


# --- workloads --------------------------------------------------------------------


def test_three_namespaces_hold_everything(prod):
    assert {n["metadata"]["name"] for n in objects(prod, "Namespace")} == NAMESPACES
    for d in prod:
        if d["kind"] != "Namespace":
            assert d["metadata"].get("namespace") in NAMESPACES, d["metadata"]["name"]
    placement = {
        ("Deployment", "producer"): "kong",
        ("Deployment", "consumer"): "kafka",
        ("Deployment", "metrics"): "metrics",
        ("StatefulSet", "mongodb"): "metrics",
        ("Kafka", "plantwatch"): "kafka",
    }
    for (kind, name), namespace in placement.items():
        one(prod, kind, name, namespace)


def test_producer_hpa_scales_on_cpu_50_percent_from_1_to_4(prod):
    hpa = one(prod, "HorizontalPodAutoscaler", "producer", "kong")
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "producer"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 4)
    assert spec["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
        }
    ]
    producer = one(prod, "Deployment", "producer", "kong")
    assert "replicas" not in producer["spec"], "the HPA owns the replica count"
    assert producer["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]


def test_producer_services_for_kong(prod):
    rest = one(prod, "Service", "producer", "kong")
    assert {(p["name"], p["port"]) for p in rest["spec"]["ports"]} == {("http", 8081), ("grpc", 50051)}
    grpc = one(prod, "Service", "producer-grpc", "kong")
    assert [(p["name"], p["port"]) for p in grpc["spec"]["ports"]] == [("grpc", 50051)]
    assert grpc["metadata"]["annotations"]["konghq.com/protocol"] == "grpc"
    for svc in (rest, grpc):
        annotations = svc["metadata"]["annotations"]
        assert annotations["konghq.com/upstream-policy"] == "round-robin"
        assert annotations["konghq.com/plugins"] == "key-auth,acl-ingest,rate-limiting,gateway-secret"
        assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "producer"}


def test_producers_require_the_gateway_secret_that_kong_adds(prod):
    producer = one(prod, "Deployment", "producer", "kong")
    env = {e["name"]: e for e in producer["spec"]["template"]["spec"]["containers"][0]["env"]}
    ref = env["PW_GATEWAY_SECRET"]["valueFrom"]["secretKeyRef"]
    assert HASH_SUFFIX.match(ref["name"]).group("base") == "gateway-secret" and ref["key"] == "token"
    secret = one(prod, "Secret", ref["name"], "kong")
    assert set(secret["data"]) == {"token", "headers"}
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert base64.b64decode(secret["data"]["headers"]).decode() == '["X-Gateway-Token:%s"]' % token
    plugin = one(prod, "KongPlugin", "gateway-secret", "kong")
    assert plugin["plugin"] == "request-transformer"
    assert plugin["config"]["remove"] == {"headers": ["X-Gateway-Token"]}
    assert plugin["configPatches"] == [
        {"path": "/add/headers", "valueFrom": {"secretKeyRef": {"name": ref["name"], "key": "headers"}}}]
    assert "konghq.com/credential" not in secret["metadata"].get("labels", {})


def test_metrics_services_behind_kong_with_read_keys(prod):
    rest = one(prod, "Service", "metrics", "metrics")
    grpc = one(prod, "Service", "metrics-grpc", "metrics")
    dashboard = one(prod, "Service", "metrics-dashboard", "metrics")
    for svc in (rest, grpc):
        assert svc["metadata"]["annotations"]["konghq.com/plugins"] == "key-auth,acl-read,rate-limiting-read"
    assert grpc["metadata"]["annotations"]["konghq.com/protocol"] == "grpc"
    assert "konghq.com/plugins" not in dashboard["metadata"]["annotations"]
    assert one(prod, "KongPlugin", "acl-read", "metrics")["config"]["allow"] == ["read"]
    assert one(prod, "KongPlugin", "acl-ingest", "kong")["config"]["allow"] == ["ingest"]
    for namespace in ("kong", "metrics"):
        assert one(prod, "KongPlugin", "key-auth", namespace)["config"]["key_in_query"] is False
    paths = {(i["metadata"]["name"], p["path"], p["backend"]["service"]["name"])
             for i in objects(prod, "Ingress", "metrics") for r in i["spec"]["rules"] for p in r["http"]["paths"]}
    assert paths == {
        ("metrics-rest", "/v1/metrics", "metrics"),
        ("metrics-rest", "/v1/devices/", "metrics"),
        ("metrics-rest", "/v1/zones/", "metrics"),
        ("metrics-rest", "/v1/export/", "metrics"),
        ("metrics-grpc", "/iot.v1.MetricsService/", "metrics-grpc"),
        *{("metrics-dashboard", p, "metrics-dashboard")
          for p in ("/~/index\\.html$", "/~/app\\.js$", "/~/style\\.css$", "/~/openapi\\.json$")},
    }
    readers = [c for c in objects(prod, "KongConsumer", "kong") if c["username"] == "dashboard"]
    assert len(readers) == 1
    acl = [s for s in objects(prod, "Secret", "kong")
           if s["metadata"].get("labels", {}).get("konghq.com/credential") == "acl"
           and s["metadata"]["name"] in readers[0]["credentials"]]
    assert [base64.b64decode(s["data"]["group"]).decode() for s in acl] == ["read"]


def test_kong_plugins_and_policy_referenced_by_services_exist(prod):
    for namespace in ("kong", "metrics"):
        plugins = {p["metadata"]["name"]: p["plugin"] for p in objects(prod, "KongPlugin", namespace)}
        policies = {p["metadata"]["name"] for p in objects(prod, "KongUpstreamPolicy", namespace)}
        for svc in objects(prod, "Service", namespace):
            annotations = svc["metadata"].get("annotations", {})
            for name in filter(None, annotations.get("konghq.com/plugins", "").split(",")):
                assert name in plugins, f"Service {svc['metadata']['name']} names missing plugin {name}"
            if "konghq.com/upstream-policy" in annotations:
                assert annotations["konghq.com/upstream-policy"] in policies
        assert {"key-auth", "rate-limiting", "acl"} <= set(plugins.values()), namespace


def test_consumer_runs_three_replicas_with_30_day_ttl(prod):
    consumer = one(prod, "Deployment", "consumer", "kafka")
    assert consumer["spec"]["replicas"] == 3
    env = {e["name"]: e for e in consumer["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PW_TELEMETRY_TTL_SECONDS"]["value"] == "2592000"
    assert env["PW_KAFKA_GROUP"]["value"] == "plantwatch-consumers"
    assert env["PW_HTTP_PORT"]["value"] == "8101"
    assert env["PW_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "consumer", "key": "password"}


def test_kafka_clients_use_strimzi_secrets_and_ca(prod):
    for name, namespace in (("producer", "kong"), ("consumer", "kafka"), ("metrics", "metrics")):
        spec = one(prod, "Deployment", name, namespace)["spec"]["template"]["spec"]
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        assert env["PW_KAFKA_BOOTSTRAP"]["value"] == "plantwatch-kafka-bootstrap.kafka.svc:9093"
        assert env["PW_KAFKA_USERNAME"]["value"] == name
        assert env["PW_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": name, "key": "password"}
        ca_file = env["PW_KAFKA_CA_FILE"]["value"]
        mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        volume = volumes[mounts[os.path.dirname(ca_file)]]
        assert volume["secret"]["secretName"] == "plantwatch-cluster-ca-cert"
        assert volume["secret"]["items"] == [{"key": "ca.crt", "path": os.path.basename(ca_file)}]


def test_metrics_service_ports(prod):
    svc = one(prod, "Service", "metrics", "metrics")
    assert {(p["name"], p["port"]) for p in svc["spec"]["ports"]} == {("http", 8090), ("grpc", 50061)}


def test_mongodb_statefulset(prod):
    sts = one(prod, "StatefulSet", "mongodb", "metrics")
    svc = one(prod, "Service", sts["spec"]["serviceName"], "metrics")
    assert svc["spec"]["clusterIP"] == "None"
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["data"]
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("mongo:7")
    env = {e["name"]: e for e in container["env"]}
    for key in ("MONGO_INITDB_ROOT_USERNAME", "MONGO_INITDB_ROOT_PASSWORD"):
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert HASH_SUFFIX.match(ref["name"]).group("base") == "mongodb-root"
        assert ref["key"] == key
    for probe in ("livenessProbe", "readinessProbe"):
        command = container[probe]["exec"]["command"]
        assert command[0] == "mongosh" and "ping" in command[-1]
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/data/db", "/docker-entrypoint-initdb.d"}


# --- hardening --------------------------------------------------------------------


def test_every_container_has_probes_resources_and_security_context(prod):
    seen = set()
    for workload, spec in pod_specs(prod):
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in spec.get("initContainers", []) + spec["containers"]:
            where = f"{workload['metadata']['name']}/{c['name']}"
            seen.add(c["name"])
            for probe in ("livenessProbe", "readinessProbe"):
                assert probe in c, f"{where} lacks {probe}"
            if c["name"] in SERVICE_CONTAINERS:
                assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", where
                assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", where
            for section in ("requests", "limits"):
                assert set(c["resources"][section]) >= {"cpu", "memory"}, f"{where} {section}"
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in sc["capabilities"], where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
    assert seen >= SERVICE_CONTAINERS | {"mongodb"}


def test_pod_disruption_budgets_cover_every_workload(prod):
    budgets = objects(prod, "PodDisruptionBudget")
    for workload, _ in pod_specs(prod):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        matching = [
            b
            for b in budgets
            if b["metadata"]["namespace"] == workload["metadata"]["namespace"]
            and b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(matching) == 1, workload["metadata"]["name"]


# --- secrets ----------------------------------------------------------------------

# Secrets made in the cluster, not by kustomize: Strimzi's user and CA Secrets in
# namespace kafka, and their copies in kong (k8s/sync-kafka-secrets.sh).
CLUSTER_MADE_SECRETS = {
    "kafka": {"producer", "consumer", "metrics", "plantwatch-cluster-ca-cert"},
    "kong": {"producer", "plantwatch-cluster-ca-cert"},
    "metrics": {"metrics", "plantwatch-cluster-ca-cert"},
}


def _pod_references(spec):
    for c in spec["containers"]:
        for env in c.get("env", []):
            ref = env.get("valueFrom", {})
            if "secretKeyRef" in ref:
                yield "Secret", ref["secretKeyRef"]["name"]
            if "configMapKeyRef" in ref:
                yield "ConfigMap", ref["configMapKeyRef"]["name"]
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            yield "Secret", volume["secret"]["secretName"]
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"]


def test_every_referenced_secret_exists_in_the_pods_namespace(prod):
    for workload, spec in pod_specs(prod):
        namespace = workload["metadata"]["namespace"]
        present = {(d["kind"], d["metadata"]["name"]) for d in objects(prod, "Secret", namespace)}
        present |= {(d["kind"], d["metadata"]["name"]) for d in objects(prod, "ConfigMap", namespace)}
        present |= {("Secret", n) for n in CLUSTER_MADE_SECRETS.get(namespace, set())}
        for ref in _pod_references(spec):
            assert ref in present, f"{workload['metadata']['name']} ({namespace}) uses missing {ref}"
    users = {u["metadata"]["name"] for u in objects(prod, "KafkaUser", "kafka")}
    assert users <= CLUSTER_MADE_SECRETS["kafka"]
    sync = (ROOT / "k8s" / "sync-kafka-secrets.sh").read_text()
    for name in CLUSTER_MADE_SECRETS["kong"]:
        assert re.search(rf"^copy {re.escape(name)} ", sync, flags=re.M), name
    for name in CLUSTER_MADE_SECRETS["metrics"]:
        assert re.search(rf'^copy {re.escape(name)} \S+ "\$metrics_ns"$', sync, flags=re.M), name


def _generator_names():
    names = set()
    for path in (ROOT / "k8s").rglob("kustomization.yaml"):
        doc = yaml.safe_load(path.read_text()) or {}
        names |= {g["name"] for g in doc.get("secretGenerator", [])}
    return names


def test_repository_holds_no_secret_values():
    for path in (ROOT / "k8s").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Secret":
                assert "data" not in doc and "stringData" not in doc, path
    ignored = subprocess.run(
        ["git", "ls-files", "--", "k8s/**/secrets/*.env", "k8s/**/secrets/*.txt"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    assert ignored.stdout == "", "secret inputs are committed: " + ignored.stdout
    assert list((ROOT / "k8s").rglob("secrets/*.example")), "no example secret inputs"


def test_rendered_secrets_come_only_from_generators(prod):
    generators = _generator_names()
    assert {"mongodb-root", "consumer-mongodb", "metrics-mongodb"} <= generators
    for secret in objects(prod, "Secret"):
        match = HASH_SUFFIX.match(secret["metadata"]["name"])
        assert match and match.group("base") in generators, secret["metadata"]["name"]


def test_no_literal_credentials_in_environment(prod):
    for workload, spec in pod_specs(prod):
        for c in spec["containers"]:
            for env in c.get("env", []):
                where = f"{workload['metadata']['name']}/{c['name']}/{env['name']}"
                value = env.get("value")
                if value is None:
                    continue
                assert not SECRETISH.search(env["name"]), f"{where} must come from a Secret"
                assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), f"{where} embeds credentials"


def test_mongodb_uris_come_from_secrets(prod):
    for name, namespace in (("consumer", "kafka"), ("metrics", "metrics")):
        spec = one(prod, "Deployment", name, namespace)["spec"]["template"]["spec"]
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        ref = env["PW_MONGO_URI"]["valueFrom"]["secretKeyRef"]
        assert HASH_SUFFIX.match(ref["name"]).group("base") == f"{name}-mongodb"
        secret = one(prod, "Secret", ref["name"], namespace)
        uri = base64.b64decode(secret["data"][ref["key"]]).decode()
        assert uri.startswith(f"mongodb://plantwatch-{name}:")
        assert "@mongodb-0.mongodb.metrics.svc.cluster.local:27017/" in uri


# --- network policies -------------------------------------------------------------


def _policies(docs, namespace):
    return {p["metadata"]["name"]: p["spec"] for p in objects(docs, "NetworkPolicy", namespace)}


def test_every_namespace_denies_by_default(prod):
    for namespace in NAMESPACES:
        policies = _policies(prod, namespace)
        deny = policies.get("default-deny")
        assert deny is not None, namespace
        assert deny["podSelector"] == {}
        assert sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
        assert "ingress" not in deny and "egress" not in deny


PROMETHEUS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}


def test_only_kong_and_prometheus_reach_producers(prod):
    spec = _policies(prod, "kong")["producer-ingress-from-kong"]
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "producer"}}
    assert spec["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "kong"}}}],
            "ports": [{"protocol": "TCP", "port": 8081}, {"protocol": "TCP", "port": 50051}],
        },
        {"from": [PROMETHEUS], "ports": [{"protocol": "TCP", "port": 8081}]},
    ]
    ingress_rules = [
        p
        for p in objects(prod, "NetworkPolicy", "kong")
        if "Ingress" in p["spec"]["policyTypes"]
        and p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "producer"
    ]
    assert len(ingress_rules) == 1


def test_kafka_clients_reach_only_the_brokers(prod):
    strimzi = {"strimzi.io/cluster": "plantwatch"}
    producer = _policies(prod, "kong")["producer-egress-to-kafka"]["egress"]
    assert producer == [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kafka"}},
                    "podSelector": {"matchLabels": strimzi},
                }
            ],
            "ports": [{"protocol": "TCP", "port": 9093}],
        }
    ]
    consumer = _policies(prod, "kafka")["consumer-egress"]["egress"]
    targets = [(rule["to"][0], rule["ports"][0]["port"]) for rule in consumer]
    assert ({"podSelector": {"matchLabels": strimzi}}, 9093) in targets
    assert (
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "metrics"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "mongodb"}},
        },
        27017,
    ) in targets
    assert len(targets) == 2
    listener = one(prod, "Kafka", "plantwatch")["spec"]["kafka"]["listeners"][0]
    peers = [p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in listener["networkPolicyPeers"]]
    assert sorted(peers) == ["consumer", "metrics", "producer"]
    metrics = _policies(prod, "metrics")["metrics-api"]["egress"]
    assert metrics[1] == producer[0] and len(metrics) == 2


def test_only_consumer_and_metrics_reach_mongodb(prod):
    spec = _policies(prod, "metrics")["mongodb-ingress"]
    peers = spec["ingress"][0]["from"]
    assert {p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in peers} == {"consumer", "metrics"}
    consumer_peer = next(p for p in peers if p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "consumer")
    assert consumer_peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "kafka"}}
    assert spec["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 27017}]
    assert len(spec["ingress"]) == 1


def test_metrics_reached_only_by_kong_and_prometheus(prod):
    spec = _policies(prod, "metrics")["metrics-api"]
    assert spec["ingress"] == [
        {
            "from": [{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kong"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/instance": "kong"}},
            }],
            "ports": [{"protocol": "TCP", "port": 8090}, {"protocol": "TCP", "port": 50061}],
        },
        {"from": [PROMETHEUS], "ports": [{"protocol": "TCP", "port": 8090}]},
    ]
    metrics_rules = [p for p in objects(prod, "NetworkPolicy", "metrics")
                     if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "metrics"
                     and "Ingress" in p["spec"]["policyTypes"]]
    assert len(metrics_rules) == 1, "no other policy opens the metrics pods"
