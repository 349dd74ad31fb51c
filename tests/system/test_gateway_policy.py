"""Offline checks of the edge policy as code (no running stack needed).

kong/kong.yaml is validated against Kong's declarative schema (scripts/gateway/
kongconf.py), and the Kong Ingress Controller resources in k8s/base/kong (with the
producer Services they point at) are proven to say the same: routes and their
protocols, plugins and every setting of them, consumers and their credentials,
and round-robin balancing. Changing one side without the other fails here.
"""
import copy
import pathlib
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "gateway"))
import kongconf  # noqa: E402

KONG_YAML = ROOT / "kong" / "kong.yaml"
KIC_DIR = ROOT / "k8s" / "base" / "kong"
PRODUCER_SERVICES = ROOT / "k8s" / "base" / "producer" / "service.yaml"


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


@pytest.fixture(scope="module")
def kong_doc():
    return kongconf.load(str(KONG_YAML))


@pytest.fixture(scope="module")
def kic():
    """The resources k8s/base/kong/kustomization.yaml lists, by kind and name."""
    kustomization = load_docs(KIC_DIR / "kustomization.yaml")[0]
    assert kustomization["namespace"] == "kong"
    by_kind = {}
    for resource in kustomization["resources"]:
        for doc in load_docs(KIC_DIR / resource):
            by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    by_kind["Service"] = {d["metadata"]["name"]: d for d in load_docs(PRODUCER_SERVICES)}
    by_kind["_kustomization"] = kustomization
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
        (lambda d: d["services"][0]["plugins"][1]["config"].update(second=0), "greater than 0"),
        (lambda d: d["services"][0]["plugins"][1]["config"].update(policy="memory"), "expected one of"),
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
    assert {s.kind: s.name for s in pol.services} == {"rest": "producer-rest", "grpc": "producer-grpc"}
    rest, grpc = pol.service("rest"), pol.service("grpc")
    assert sorted(p for r in rest.routes for p in r.paths) == ["/v1/alerts", "/v1/telemetry"]
    assert sorted(p for r in grpc.routes for p in r.paths) == [
        "/iot.v1.IngestService/Publish",
        "/iot.v1.IngestService/PublishStream",
    ]
    assert rest.targets == ["127.0.0.1:8081", "127.0.0.1:8082"]
    assert grpc.targets == ["127.0.0.1:50051", "127.0.0.1:50052"]
    for svc in (rest, grpc):
        assert svc.algorithm == "round-robin"
        assert svc.plugins["key-auth"]["key_names"] == ["apikey"]
        assert svc.plugins["key-auth"]["hide_credentials"] is True
        rl = svc.plugins["rate-limiting"]
        assert (rl["second"], rl["limit_by"], rl["policy"]) == (5, "consumer", "local")
    assert pol.consumers == {
        "sensor-a": "DECK_SENSOR_A_KEY",
        "sensor-b": "DECK_SENSOR_B_KEY",
        "sensor-c": "DECK_SENSOR_C_KEY",
    }


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


def kic_routes(kic):
    """(kind, path, protocols, strip_path, preserve_host) of every Ingress path."""
    routes = set()
    for ing in kic["Ingress"].values():
        ann = ing["metadata"].get("annotations", {})
        assert ing["spec"]["ingressClassName"] == "kong"
        protocols = tuple(sorted(ann["konghq.com/protocols"].split(",")))
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                assert p["pathType"] == "ImplementationSpecific", "Kong must see kong.yaml's paths unchanged"
                svc = kic["Service"][p["backend"]["service"]["name"]]
                grpc = svc["metadata"].get("annotations", {}).get("konghq.com/protocol") == "grpc"
                routes.add(
                    (
                        "grpc" if grpc else "rest",
                        p["path"],
                        protocols,
                        ann.get("konghq.com/strip-path", "false") == "true",
                        ann.get("konghq.com/preserve-host", "true") == "true",
                    )
                )
    return routes


def kong_routes(doc):
    routes = set()
    for svc in doc["services"]:
        kind = "grpc" if svc["protocol"] in ("grpc", "grpcs") else "rest"
        for r in svc["routes"]:
            for path in r["paths"]:
                routes.add(
                    (
                        kind,
                        path,
                        tuple(sorted(r["protocols"])),
                        r.get("strip_path", True),
                        r.get("preserve_host", False),
                    )
                )
    return routes


def test_routes_are_the_same(kong_doc, kic):
    assert kic_routes(kic) == kong_routes(kong_doc)


def ingress_backends(kic):
    return {
        p["backend"]["service"]["name"]: p["backend"]["service"]["port"]["number"]
        for ing in kic["Ingress"].values()
        for rule in ing["spec"]["rules"]
        for p in rule["http"]["paths"]
    }


def test_backend_services_exist_with_the_protocol_of_their_kong_service(kic):
    backends = ingress_backends(kic)
    assert backends == {"producer": 8081, "producer-grpc": 50051}
    for name, port in backends.items():
        svc = kic["Service"][name]
        assert port in [p["port"] for p in svc["spec"]["ports"]], f"Service {name} has no port {port}"
    assert kic["Service"]["producer-grpc"]["metadata"]["annotations"]["konghq.com/protocol"] == "grpc"
    assert "konghq.com/protocol" not in kic["Service"]["producer"]["metadata"].get("annotations", {})


def test_plugins_are_the_same_and_attached_to_the_same_services(kong_doc, kic):
    plugins = {p["plugin"]: p for p in kic["KongPlugin"].values()}
    assert set(plugins) == {"key-auth", "rate-limiting"}
    by_kind = {"rest": "producer", "grpc": "producer-grpc"}
    for svc in kong_doc["services"]:
        kind = "grpc" if svc["protocol"] in ("grpc", "grpcs") else "rest"
        k8s_svc = kic["Service"][by_kind[kind]]
        attached = k8s_svc["metadata"].get("annotations", {}).get("konghq.com/plugins", "")
        attached_plugins = {kic["KongPlugin"][n.strip()]["plugin"] for n in attached.split(",") if n.strip()}
        assert attached_plugins == {p["name"] for p in svc["plugins"]}, (
            f"Service {by_kind[kind]} must carry konghq.com/plugins for {sorted(p['name'] for p in svc['plugins'])}"
        )
        for p in svc["plugins"]:
            assert plugins[p["name"]]["config"] == p["config"], f"{p['name']} config differs"


def test_rate_limit_is_five_per_second_per_consumer_in_both(kong_doc, kic):
    rl = next(p for p in kic["KongPlugin"].values() if p["plugin"] == "rate-limiting")["config"]
    assert (rl["second"], rl["limit_by"], rl["policy"]) == (5, "consumer", "local")
    for svc in kong_doc["services"]:
        cfg = next(p["config"] for p in svc["plugins"] if p["name"] == "rate-limiting")
        assert (cfg["second"], cfg["limit_by"], cfg["policy"]) == (rl["second"], rl["limit_by"], rl["policy"])


def test_balancing_is_round_robin_in_both(kong_doc, kic):
    assert {u["algorithm"] for u in kong_doc["upstreams"]} == {"round-robin"}
    for name in ingress_backends(kic):
        policy_name = kic["Service"][name]["metadata"]["annotations"]["konghq.com/upstream-policy"]
        assert kic["KongUpstreamPolicy"][policy_name]["spec"]["algorithm"] == "round-robin"


def test_consumers_and_their_key_auth_credentials_are_the_same(kong_doc, kic):
    kong_consumers = {c["username"]: c for c in kong_doc["consumers"]}
    kic_consumers = {c["username"]: c for c in kic["KongConsumer"].values()}
    assert set(kic_consumers) == set(kong_consumers)
    generators = {g["name"]: g for g in kic["_kustomization"]["secretGenerator"]}
    labels = kic["_kustomization"]["generatorOptions"]["labels"]
    assert labels["konghq.com/credential"] == "key-auth"
    for name, consumer in kic_consumers.items():
        assert consumer["metadata"]["annotations"]["kubernetes.io/ingress.class"] == "kong"
        assert len(consumer["credentials"]) == len(kong_consumers[name]["keyauth_credentials"]) == 1
        gen = generators[consumer["credentials"][0]]
        for env in gen["envs"]:
            example = KIC_DIR / (env + ".example")
            assert example.is_file(), f"missing {example.relative_to(ROOT)}"
            assert example.read_text().count("\nkey=") == 1
    # kustomize must rewrite the hashed Secret names into KongConsumer.credentials
    config = load_docs(KIC_DIR / "kustomizeconfig.yaml")[0]
    refs = [f for n in config["nameReference"] if n["kind"] == "Secret" for f in n["fieldSpecs"]]
    assert {"kind": "KongConsumer", "group": "configuration.konghq.com", "path": "credentials"} in refs


# ---------------------------------------------------------------- Kong DB-less from the local keys


def test_kong_out_fills_in_the_local_keys_for_kong_start(kong_doc, tmp_path):
    keys = tmp_path / "gateway-keys"
    keys.write_text("# local keys\nsensor-b bbbbbbbbbbbbbbbb\nsensor-a aaaaaaaaaaaaaaaa\nline-7 7777777777777777\n")
    out = tmp_path / "kong.resolved.yaml"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gateway" / "render.py"), "--kong", str(KONG_YAML),
                    "--keys", str(keys), "--kong-out", str(out)], check=True)
    assert out.stat().st_mode & 0o077 == 0, "the resolved file holds keys: owner-only"
    resolved = yaml.safe_load(out.read_text())
    assert [(c["username"], c["keyauth_credentials"][0]["key"]) for c in resolved["consumers"]] == [
        ("sensor-a", "aaaaaaaaaaaaaaaa"),
        ("sensor-b", "bbbbbbbbbbbbbbbb"),  # sensor-c has no local key: not a consumer
        ("line-7", "7777777777777777"),
    ]
    errors = kongconf.validate(resolved)
    assert errors and all("not a literal key" in e for e in errors)  # only the keys differ
    assert resolved["services"] == kong_doc["services"]
    assert resolved["upstreams"] == kong_doc["upstreams"]
