"""Offline checks of the edge policy as code (no running stack needed).

kong/kong.yaml is validated against Kong's declarative schema (scripts/gateway/
kongconf.py), and the Kong Ingress Controller resources in k8s/base/kong and
k8s/base/kong-metrics (with the producer and metrics Services they point at) are
proven to say the same: routes, their protocols and methods, plugins and every
setting of them (the gateway secret from one Secret), consumers with their key-auth
and ACL credentials, and round-robin balancing. Changing one side without the
other fails here.
"""
import copy
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "gateway"))
import kongconf  # noqa: E402

KONG_YAML = ROOT / "kong" / "kong.yaml"
KIC_DIRS = {"kong": ROOT / "k8s" / "base" / "kong", "metrics": ROOT / "k8s" / "base" / "kong-metrics"}
KIC_DIR = KIC_DIRS["kong"]
SERVICE_FILES = {"kong": ROOT / "k8s" / "base" / "producer" / "service.yaml",
                 "metrics": ROOT / "k8s" / "base" / "metrics" / "service.yaml"}
SECRET_REF = '${{ env "DECK_GATEWAY_SECRET" }}'


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


@pytest.fixture(scope="module")
def kong_doc():
    return kongconf.load(str(KONG_YAML))


@pytest.fixture(scope="module")
def kic():
    """The resources of k8s/base/kong and k8s/base/kong-metrics (and the Services
    they point at), by kind and (namespace, name)."""
    by_kind = {"_kustomization": {}}
    for namespace, directory in KIC_DIRS.items():
        kustomization = load_docs(directory / "kustomization.yaml")[0]
        assert kustomization["namespace"] == namespace
        by_kind["_kustomization"][namespace] = kustomization
        for resource in kustomization["resources"]:
            for doc in load_docs(directory / resource):
                by_kind.setdefault(doc["kind"], {})[(namespace, doc["metadata"]["name"])] = doc
        for doc in load_docs(SERVICE_FILES[namespace]):
            by_kind.setdefault("Service", {})[(namespace, doc["metadata"]["name"])] = doc
    return by_kind


def kong_services(doc):
    return {s["name"]: s for s in doc["services"]}


# ---------------------------------------------------------------- schema


def test_kong_yaml_is_valid_kong_3_declarative_config(kong_doc):
    assert kong_doc["_format_version"] == "3.0"
    assert kongconf.validate(kong_doc) == []


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["services"][0].update(colour="blue"), "services[0].colour: unknown field"),
        (lambda d: d["services"][0]["routes"][0].update(protocols=["http", "ftp"]), "expected one of"),
        (lambda d: d["services"][1]["routes"][0].update(strip_path=True), "cannot set 'strip_path'"),
        (lambda d: d["services"][1]["routes"][0].update(methods=["POST"]), "cannot set 'methods'"),
        (lambda d: d["services"][0]["plugins"][2]["config"].update(second=0), "greater than 0"),
        (lambda d: d["services"][0]["plugins"][2]["config"].update(policy="memory"), "expected one of"),
        (lambda d: d["services"][0]["plugins"][1]["config"].update(deny=["read"]), "exactly one of 'allow' or 'deny'"),
        (lambda d: d["services"][0]["plugins"][3]["config"]["add"].update(headers=["X-Gateway-Token:s3cr3t"]),
         "must be a decK environment reference"),
        (lambda d: d["consumers"][0]["acls"][0].update(grp="x"), "acls[0].grp: unknown field"),
        (lambda d: d["services"][0]["plugins"][0]["config"].update(key_names="apikey"), "expected an array"),
        (lambda d: d["upstreams"][0].update(algorithm="random"), "expected one of"),
        (lambda d: d["upstreams"][0]["targets"][0].update(target="127.0.0.1"), "expected host:port"),
        (lambda d: d["consumers"][0]["keyauth_credentials"][0].update(key="s3cr3t-key"), "not a literal key"),
        (lambda d: d.pop("_format_version"), "_format_version: required"),
    ],
)
def test_schema_check_rejects_what_kong_rejects(kong_doc, mutate, expected):
    doc = copy.deepcopy(kong_doc)
    mutate(doc)
    errors = kongconf.validate(doc)
    assert any(expected in e for e in errors), errors


def test_kong_yaml_holds_the_required_policy(kong_doc):
    pol = kongconf.policy(kong_doc)
    assert [(s.kind, s.name) for s in pol.services] == [
        ("rest", "producer-rest"), ("grpc", "producer-grpc"), ("rest", "metrics-rest"),
        ("rest", "metrics-dashboard"), ("grpc", "metrics-grpc")]
    rest, grpc = pol.named("producer-rest"), pol.named("producer-grpc")
    assert sorted(p for r in rest.routes for p in r.paths) == ["/v1/alerts", "/v1/telemetry"]
    assert sorted(p for r in grpc.routes for p in r.paths) == [
        "/grpc.health.v1.Health/",
        "/grpc.reflection.v1.ServerReflection/",
        "/grpc.reflection.v1alpha.ServerReflection/",
        "/iot.v1.IngestService/Publish",
        "/iot.v1.IngestService/PublishStream",
    ]
    assert rest.targets == ["127.0.0.1:8081", "127.0.0.1:8082"]
    assert grpc.targets == ["127.0.0.1:50051", "127.0.0.1:50052"]
    for svc in (rest, grpc):
        assert svc.algorithm == "round-robin"
        assert svc.plugins["key-auth"]["key_names"] == ["apikey"]
        assert svc.plugins["key-auth"]["hide_credentials"] is True
        assert svc.plugins["key-auth"]["key_in_query"] is False
        assert svc.plugins["acl"] == {"allow": ["ingest"], "hide_groups_header": True}
        rl = svc.plugins["rate-limiting"]
        assert (rl["second"], rl["limit_by"], rl["policy"]) == (5, "consumer", "local")
        assert svc.plugins["request-transformer"] == {
            "remove": {"headers": ["X-Gateway-Token"]},
            "add": {"headers": ["X-Gateway-Token:" + SECRET_REF]}}
    for name in ("metrics-rest", "metrics-grpc"):
        svc = pol.named(name)
        assert svc.plugins["key-auth"] == rest.plugins["key-auth"]
        assert svc.plugins["acl"] == {"allow": ["read"], "hide_groups_header": True}
        assert svc.plugins["rate-limiting"]["second"] == 20
        assert "request-transformer" not in svc.plugins
    assert pol.named("metrics-rest").targets == ["127.0.0.1:8090"]
    assert pol.named("metrics-grpc").targets == ["127.0.0.1:50061"]
    dashboard = pol.named("metrics-dashboard")
    assert dashboard.plugins == {}, "the dashboard's assets hold no data"
    assert [p for r in dashboard.routes for p in r.paths] == [
        "~/index\\.html$", "~/app\\.js$", "~/style\\.css$", "~/openapi\\.json$"]
    assert pol.consumers == {
        "sensor-a": "DECK_SENSOR_A_KEY",
        "sensor-b": "DECK_SENSOR_B_KEY",
        "sensor-c": "DECK_SENSOR_C_KEY",
        "dashboard": "DECK_DASHBOARD_KEY",
    }
    assert pol.groups == {"sensor-a": ["ingest"], "sensor-b": ["ingest"], "sensor-c": ["ingest"],
                          "dashboard": ["read"]}


def test_no_api_key_is_committed_in_the_policy_files(kong_doc, kic):
    for consumer in kong_doc["consumers"]:
        for cred in consumer["keyauth_credentials"]:
            assert kongconf.DECK_ENV_RE.match(cred["key"]), consumer["username"]
    assert "Secret" not in kic, "credential Secrets come from the secretGenerator, not from files"
    tracked = subprocess.run(
        ["git", "ls-files", "k8s/base/kong/secrets"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked, "the *.example key files are committed"
    assert [t for t in tracked if not t.endswith(".example")] == []


# ---------------------------------------------------------------- drift: kong.yaml <-> KIC


def kic_path(path):
    """An Ingress path as Kong sees it: KIC turns /~regex into the regex route ~regex."""
    return path[1:] if path.startswith("/~") else path


def kic_routes(kic):
    """{(namespace, Service): {(path, protocols, methods, strip_path, preserve_host)}} of the Ingresses."""
    routes = {}
    for (namespace, _), ing in kic["Ingress"].items():
        ann = ing["metadata"].get("annotations", {})
        assert ing["spec"]["ingressClassName"] == "kong"
        protocols = tuple(sorted(ann["konghq.com/protocols"].split(",")))
        methods = tuple(sorted(filter(None, ann.get("konghq.com/methods", "").split(","))))
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                assert p["pathType"] == "ImplementationSpecific", "Kong must see kong.yaml's paths unchanged"
                backend = (namespace, p["backend"]["service"]["name"])
                assert backend in kic["Service"], f"Ingress backend {backend} is not a Service"
                routes.setdefault(backend, set()).add((
                    kic_path(p["path"]), protocols, methods,
                    ann.get("konghq.com/strip-path", "false") == "true",
                    ann.get("konghq.com/preserve-host", "true") == "true",
                ))
    return routes


def kong_routes(svc):
    return {
        (path, tuple(sorted(r["protocols"])), tuple(sorted(r.get("methods", []))),
         r.get("strip_path", True), r.get("preserve_host", False))
        for r in svc["routes"] for path in r["paths"]
    }


def k8s_service_of(kong_svc, kic):
    """The one Kubernetes Service whose Ingress paths are exactly the Kong service's routes."""
    want = kong_routes(kong_svc)
    found = [backend for backend, routes in kic_routes(kic).items() if routes == want]
    assert len(found) == 1, f"{kong_svc['name']}: {len(found)} Services carry exactly its routes"
    return found[0]


def test_routes_are_the_same(kong_doc, kic):
    mapped = {k8s_service_of(svc, kic) for svc in kong_doc["services"]}
    assert mapped == set(kic_routes(kic)), "every Ingress backend is one service of kong.yaml"
    assert len(mapped) == len(kong_doc["services"])


def test_backend_services_have_the_protocol_and_port_of_their_kong_service(kong_doc, kic):
    expected = {"producer-rest": (("kong", "producer"), 8081), "producer-grpc": (("kong", "producer-grpc"), 50051),
                "metrics-rest": (("metrics", "metrics"), 8090), "metrics-dashboard": (("metrics", "metrics-dashboard"), 8090),
                "metrics-grpc": (("metrics", "metrics-grpc"), 50061)}
    ports = {}
    for (namespace, _), ing in kic["Ingress"].items():
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                ports.setdefault((namespace, p["backend"]["service"]["name"]), set()).add(
                    p["backend"]["service"]["port"]["number"])
    for svc in kong_doc["services"]:
        backend = k8s_service_of(svc, kic)
        assert (backend, ports[backend]) == (expected[svc["name"]][0], {expected[svc["name"]][1]})
        k8s_svc = kic["Service"][backend]
        assert expected[svc["name"]][1] in [p["port"] for p in k8s_svc["spec"]["ports"]]
        grpc = k8s_svc["metadata"].get("annotations", {}).get("konghq.com/protocol") == "grpc"
        assert grpc == (svc["protocol"] in ("grpc", "grpcs")), backend


def kic_plugin_config(plugin):
    """A KongPlugin's config with its configPatches applied; a value from a
    Secret stands as <secret:name/key>."""
    config = copy.deepcopy(plugin.get("config", {}))
    for patch in plugin.get("configPatches", []):
        ref = patch["valueFrom"]["secretKeyRef"]
        node, parts = config, patch["path"].strip("/").split("/")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = "<secret:%s/%s>" % (ref["name"], ref["key"])
    return config


def kong_plugin_config(plugin):
    config = copy.deepcopy(plugin["config"])
    if plugin["name"] == "request-transformer":
        headers = config["add"]["headers"]
        assert headers == ["X-Gateway-Token:" + SECRET_REF]
        config["add"]["headers"] = "<secret:gateway-secret/headers>"
    return config


def test_plugins_are_the_same_and_attached_to_the_same_services(kong_doc, kic):
    for svc in kong_doc["services"]:
        namespace, name = k8s_service_of(svc, kic)
        attached = kic["Service"][(namespace, name)]["metadata"].get("annotations", {}).get("konghq.com/plugins", "")
        plugins = [kic["KongPlugin"][(namespace, n.strip())] for n in attached.split(",") if n.strip()]
        assert sorted(p["plugin"] for p in plugins) == sorted(p["name"] for p in svc.get("plugins", [])), (
            f"Service {namespace}/{name} must carry konghq.com/plugins for {svc['name']}'s plugins")
        by_name = {p["plugin"]: p for p in plugins}
        for p in svc.get("plugins", []):
            assert kic_plugin_config(by_name[p["name"]]) == kong_plugin_config(p), f"{svc['name']}: {p['name']} differs"


def test_the_gateway_secret_reaches_kong_and_the_producers_from_one_secret(kic):
    generators = {g["name"]: g for g in kic["_kustomization"]["kong"]["secretGenerator"]}
    assert generators["gateway-secret"]["envs"] == ["secrets/gateway-secret.env"]
    example = (KIC_DIR / "secrets" / "gateway-secret.env.example").read_text()
    token = re.search(r"^token=(\S+)$", example, re.M).group(1)
    assert re.search(r'^headers=\["X-Gateway-Token:%s"\]$' % re.escape(token), example, re.M)
    deployment = load_docs(ROOT / "k8s" / "base" / "producer" / "deployment.yaml")[0]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PW_GATEWAY_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "gateway-secret", "key": "token"}
    config = load_docs(KIC_DIR / "kustomizeconfig.yaml")[0]
    refs = [f for n in config["nameReference"] if n["kind"] == "Secret" for f in n["fieldSpecs"]]
    assert {"kind": "KongPlugin", "group": "configuration.konghq.com",
            "path": "configPatches/valueFrom/secretKeyRef/name"} in refs


def test_rate_limits_per_consumer_in_both(kong_doc, kic):
    for svc in kong_doc["services"]:
        cfg = next((p["config"] for p in svc.get("plugins", []) if p["name"] == "rate-limiting"), None)
        if cfg is None:
            continue
        assert (cfg["limit_by"], cfg["policy"]) == ("consumer", "local")
        assert cfg["second"] == (5 if svc["name"].startswith("producer") else 20)


def test_balancing_is_round_robin_in_both(kong_doc, kic):
    assert {u["algorithm"] for u in kong_doc["upstreams"]} == {"round-robin"}
    for svc in kong_doc["services"]:
        namespace, name = k8s_service_of(svc, kic)
        policy_name = kic["Service"][(namespace, name)]["metadata"]["annotations"]["konghq.com/upstream-policy"]
        assert kic["KongUpstreamPolicy"][(namespace, policy_name)]["spec"]["algorithm"] == "round-robin"


def test_consumers_and_their_credentials_are_the_same(kong_doc, kic):
    kong_consumers = {c["username"]: c for c in kong_doc["consumers"]}
    kic_consumers = {c["username"]: c for c in kic["KongConsumer"].values()}
    assert set(kic_consumers) == set(kong_consumers)
    generators = {g["name"]: g for g in kic["_kustomization"]["kong"]["secretGenerator"]}
    for name, consumer in kic_consumers.items():
        assert consumer["metadata"]["annotations"]["kubernetes.io/ingress.class"] == "kong"
        creds = [generators[c] for c in consumer["credentials"]]
        by_type = {g["options"]["labels"]["konghq.com/credential"]: g for g in creds}
        assert sorted(by_type) == ["acl", "key-auth"] and len(creds) == 2, name
        assert len(kong_consumers[name]["keyauth_credentials"]) == 1
        for env in by_type["key-auth"]["envs"]:
            example = KIC_DIR / (env + ".example")
            assert example.is_file(), f"missing {example.relative_to(ROOT)}"
            assert example.read_text().count("\nkey=") == 1
        assert by_type["acl"]["literals"] == ["group=" + g["group"] for g in kong_consumers[name]["acls"]]
    # kustomize must rewrite the hashed Secret names into KongConsumer.credentials
    config = load_docs(KIC_DIR / "kustomizeconfig.yaml")[0]
    refs = [f for n in config["nameReference"] if n["kind"] == "Secret" for f in n["fieldSpecs"]]
    assert {"kind": "KongConsumer", "group": "configuration.konghq.com", "path": "credentials"} in refs


# ---------------------------------------------------------------- Kong DB-less from the local keys


def test_kong_out_fills_in_the_local_keys_and_secret_for_kong_start(kong_doc, tmp_path):
    a, b, r, l7 = ("a" * 32, "b" * 32, "r" * 32, "7" * 32)
    keys = tmp_path / "gateway-keys"
    keys.write_text(f"# local keys\nsensor-b {b}\nsensor-a {a}\ndashboard {r} read\nline-7 {l7}\n")
    secret = tmp_path / "gateway-secret"
    secret.write_text("s" * 64 + "\n")
    out = tmp_path / "kong.resolved.yaml"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gateway" / "render.py"), "--kong", str(KONG_YAML),
                    "--keys", str(keys), "--secret", str(secret), "--kong-out", str(out)], check=True)
    assert out.stat().st_mode & 0o077 == 0, "the resolved file holds keys: owner-only"
    resolved = yaml.safe_load(out.read_text())
    assert [(c["username"], c["keyauth_credentials"][0]["key"], c["acls"]) for c in resolved["consumers"]] == [
        ("sensor-a", a, [{"group": "ingest"}]),
        ("sensor-b", b, [{"group": "ingest"}]),  # sensor-c has no local key: not a consumer
        ("dashboard", r, [{"group": "read"}]),
        ("line-7", l7, [{"group": "ingest"}]),
    ]
    errors = kongconf.validate(resolved)
    assert errors and all("not a literal key" in e or "decK environment reference" in e for e in errors)
    for svc in resolved["services"]:
        for p in svc.get("plugins", []):
            if p["name"] == "request-transformer":
                assert p["config"]["add"]["headers"] == ["X-Gateway-Token:" + "s" * 64]
    assert [s["name"] for s in resolved["services"]] == [s["name"] for s in kong_doc["services"]]
    assert resolved["upstreams"] == kong_doc["upstreams"]


def test_kong_out_refuses_a_short_key(tmp_path):
    keys = tmp_path / "gateway-keys"
    keys.write_text("sensor-a 0123456789abcdef\n")
    secret = tmp_path / "gateway-secret"
    secret.write_text("s" * 64)
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "gateway" / "render.py"), "--kong", str(KONG_YAML),
                          "--keys", str(keys), "--secret", str(secret), "--kong-out", str(tmp_path / "out.yaml")],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert "invalid key for 'sensor-a' (32-256" in res.stderr
    assert not (tmp_path / "out.yaml").exists()
