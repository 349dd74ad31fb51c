"""Kong declarative configuration: loading, schema validation and the policy model.

This module owns the reading of kong/kong.yaml for every local consumer of it:
the nginx renderer (render.py), the drift test against the Kubernetes resources
and the schema check run by the test suite. The schema below follows Kong 3.x
entity schemas (services, routes, upstreams, targets, consumers,
keyauth_credentials, acls and the key-auth / acl / rate-limiting /
request-transformer plugin configs) and the
decK file format: unknown fields, wrong types, values outside Kong's ranges and
enums, and Kong's cross-field rules (for example "gRPC routes take no methods
and never strip the path") are errors, as `deck file validate` reports them.

Run as a script: `kongconf.py [FILE]` validates FILE (default kong/kong.yaml).
"""

import os
import re
import sys
from dataclasses import dataclass, field

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_KONG_YAML = os.path.join(ROOT, "kong", "kong.yaml")

# decK's environment substitution: ${{ env "DECK_NAME" }}
DECK_ENV_RE = re.compile(r'^\$\{\{\s*env\s+"(DECK_[A-Za-z0-9_]+)"\s*\}\}$')

TIMEOUT_MAX = 2**31 - 2
SERVICE_PROTOCOLS = ["grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp", "ws", "wss"]
ROUTE_PROTOCOLS = SERVICE_PROTOCOLS
HTTP_METHODS_RE = re.compile(r"^[A-Z]+$")
NAME_RE = re.compile(r"^[A-Za-z0-9.\-_~]+$")
HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9\-.]*[A-Za-z0-9])?$")
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
UPSTREAM_ALGORITHMS = ["round-robin", "consistent-hashing", "least-connections", "latency", "sticky-sessions"]
RATE_PERIODS = ["second", "minute", "hour", "day", "month", "year"]
RATE_LIMIT_BY = ["consumer", "credential", "ip", "service", "header", "path", "consumer-group"]
RATE_POLICIES = ["local", "cluster", "redis"]


class SchemaError(Exception):
    """The configuration does not satisfy Kong's declarative schema."""

    def __init__(self, errors):
        super().__init__("\n".join(errors))
        self.errors = errors


# ---------------------------------------------------------------------------
# Field checkers: each returns an error string or None.


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def t_string(pattern=None, one_of=None):
    def check(v):
        if not isinstance(v, str) or v == "":
            return "expected a non-empty string"
        if one_of is not None and v not in one_of:
            return "expected one of: " + ", ".join(one_of)
        if pattern is not None and not pattern.match(v):
            return "invalid value '%s'" % v
        return None

    return check


def t_int(lo, hi):
    def check(v):
        if not _is_int(v):
            return "expected an integer"
        if not lo <= v <= hi:
            return "value should be between %d and %d" % (lo, hi)
        return None

    return check


def t_number_gt0(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "expected a number"
    if v <= 0:
        return "value must be greater than 0"
    return None


def t_bool(v):
    return None if isinstance(v, bool) else "expected a boolean"


def t_array(elem, unique=False):
    def check(v):
        if not isinstance(v, list):
            return "expected an array"
        for item in v:
            err = elem(item)
            if err:
                return err
        if unique and len(set(map(str, v))) != len(v):
            return "array elements must be unique"
        return None

    return check


def t_tags(v):
    return t_array(t_string(), unique=True)(v)


def t_path(v):
    if not isinstance(v, str) or not (v.startswith("/") or v.startswith("~/")):
        return "should start with: / (fixed path) or ~/ (regex path)"
    return None


def t_target(v):
    if not isinstance(v, str):
        return "expected a string"
    host, sep, port = v.rpartition(":")
    if not sep or not HOST_RE.match(host) or not port.isdigit() or not 0 < int(port) <= 65535:
        return "invalid target '%s' (expected host:port)" % v
    return None


def t_secret(v):
    """A credential: must be a decK env reference, never a literal in the repo."""
    if not isinstance(v, str) or not DECK_ENV_RE.match(v):
        return 'must be a decK environment reference ${{ env "DECK_..." }}, not a literal key'
    return None


def t_any(_v):
    return None


GATEWAY_SECRET_HEADER = "X-Gateway-Token"


def t_transformer_headers(v):
    """request-transformer header list; the gateway secret only as a decK env reference."""
    err = t_array(t_string())(v)
    if err:
        return err
    for item in v:
        name, sep, value = item.partition(":")
        if not sep or not HEADER_NAME_RE.match(name):
            return "invalid header '%s' (expected name:value)" % item
        if name.lower() == GATEWAY_SECRET_HEADER.lower() and not DECK_ENV_RE.match(value):
            return 'the value of %s must be a decK environment reference ${{ env "DECK_..." }}' % name
    return None


def t_header_names(v):
    return t_array(t_string(HEADER_NAME_RE))(v)


COMMON = {"id": t_string(), "tags": t_tags}

SERVICE = dict(
    COMMON,
    name=t_string(NAME_RE),
    protocol=t_string(one_of=SERVICE_PROTOCOLS),
    host=t_string(HOST_RE),
    port=t_int(0, 65535),
    path=t_path,
    url=t_string(),
    retries=t_int(0, 32767),
    connect_timeout=t_int(1, TIMEOUT_MAX),
    read_timeout=t_int(1, TIMEOUT_MAX),
    write_timeout=t_int(1, TIMEOUT_MAX),
    enabled=t_bool,
    tls_verify=t_bool,
    tls_verify_depth=t_int(0, 64),
    client_certificate=t_any,
    ca_certificates=t_array(t_string()),
    routes=t_any,
    plugins=t_any,
)

ROUTE = dict(
    COMMON,
    name=t_string(NAME_RE),
    protocols=t_array(t_string(one_of=ROUTE_PROTOCOLS), unique=True),
    methods=t_array(t_string(HTTP_METHODS_RE), unique=True),
    hosts=t_array(t_string(), unique=True),
    paths=t_array(t_path, unique=True),
    headers=t_any,
    snis=t_array(t_string()),
    sources=t_any,
    destinations=t_any,
    https_redirect_status_code=t_string(one_of=["426", "301", "302", "307", "308"]),
    regex_priority=t_int(-(2**31), 2**31 - 1),
    strip_path=t_bool,
    path_handling=t_string(one_of=["v0", "v1"]),
    preserve_host=t_bool,
    request_buffering=t_bool,
    response_buffering=t_bool,
    service=t_any,
    plugins=t_any,
)

TARGET = dict(COMMON, target=t_target, weight=t_int(0, 65535))

UPSTREAM = dict(
    COMMON,
    name=t_string(HOST_RE),
    algorithm=t_string(one_of=UPSTREAM_ALGORITHMS),
    slots=t_int(10, 2**16),
    hash_on=t_string(one_of=["none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"]),
    hash_fallback=t_string(one_of=["none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"]),
    host_header=t_string(HOST_RE),
    use_srv_name=t_bool,
    healthchecks=t_any,
    client_certificate=t_any,
    targets=t_any,
)

KEYAUTH_CREDENTIAL = dict(COMMON, key=t_secret, ttl=t_int(0, 100000000))

ACL_CREDENTIAL = dict(COMMON, group=t_string())

CONSUMER = dict(
    COMMON,
    username=t_string(),
    custom_id=t_string(),
    keyauth_credentials=t_any,
    acls=t_any,
    plugins=t_any,
    groups=t_any,
)

KEY_AUTH_CONFIG = {
    "key_names": t_array(t_string(HEADER_NAME_RE), unique=True),
    "hide_credentials": t_bool,
    "anonymous": t_string(),
    "key_in_header": t_bool,
    "key_in_query": t_bool,
    "key_in_body": t_bool,
    "run_on_preflight": t_bool,
    "realm": t_string(),
}

RATE_LIMITING_CONFIG = dict(
    {p: t_number_gt0 for p in RATE_PERIODS},
    limit_by=t_string(one_of=RATE_LIMIT_BY),
    header_name=t_string(HEADER_NAME_RE),
    path=t_path,
    policy=t_string(one_of=RATE_POLICIES),
    fault_tolerant=t_bool,
    hide_client_headers=t_bool,
    error_code=t_int(100, 599),
    error_message=t_string(),
    sync_rate=t_any,
    redis=t_any,
)

ACL_CONFIG = {
    "allow": t_array(t_string(), unique=True),
    "deny": t_array(t_string(), unique=True),
    "hide_groups_header": t_bool,
    "include_consumer_groups": t_bool,
    "always_use_authenticated_groups": t_bool,
}

TRANSFORM_REMOVE = {"headers": t_header_names, "querystring": t_array(t_string()), "body": t_array(t_string())}
TRANSFORM_ADD = {
    "headers": t_transformer_headers,
    "querystring": t_array(t_string()),
    "body": t_array(t_string()),
}
REQUEST_TRANSFORMER_CONFIG = {
    "http_method": t_string(),
    "remove": t_any,
    "rename": t_any,
    "replace": t_any,
    "add": t_any,
    "append": t_any,
}

PLUGIN_CONFIGS = {
    "key-auth": KEY_AUTH_CONFIG,
    "rate-limiting": RATE_LIMITING_CONFIG,
    "acl": ACL_CONFIG,
    "request-transformer": REQUEST_TRANSFORMER_CONFIG,
}

PLUGIN = dict(
    COMMON,
    name=t_string(one_of=sorted(PLUGIN_CONFIGS)),
    config=t_any,
    enabled=t_bool,
    protocols=t_array(t_string(one_of=ROUTE_PROTOCOLS), unique=True),
    instance_name=t_string(),
    service=t_any,
    route=t_any,
    consumer=t_any,
    ordering=t_any,
)

TOP = {
    "_format_version": t_string(one_of=["1.1", "3.0"]),
    "_transform": t_bool,
    "_info": t_any,
    "_workspace": t_string(),
    "services": t_any,
    "routes": t_any,
    "upstreams": t_any,
    "consumers": t_any,
    "plugins": t_any,
}


class _Checker:
    def __init__(self):
        self.errors = []

    def fields(self, where, obj, spec, required=()):
        if not isinstance(obj, dict):
            self.errors.append("%s: expected a record" % where)
            return False
        for key in obj:
            if key not in spec:
                self.errors.append("%s.%s: unknown field" % (where, key))
        for key, check in spec.items():
            if key in obj:
                err = check(obj[key])
                if err:
                    self.errors.append("%s.%s: %s" % (where, key, err))
        for key in required:
            if key not in obj:
                self.errors.append("%s.%s: required field missing" % (where, key))
        return True

    def items(self, where, obj, key):
        value = obj.get(key, [])
        if not isinstance(value, list):
            self.errors.append("%s.%s: expected an array" % (where, key))
            return []
        return list(enumerate(value))

    def unique(self, where, names):
        seen = set()
        for n in names:
            if n in seen:
                self.errors.append("%s: duplicate name '%s'" % (where, n))
            seen.add(n)


def _check_route(c, where, route, service_protocol):
    if not c.fields(where, route, ROUTE):
        return
    protocols = route.get("protocols", ["http", "https"])
    grpc = any(p in ("grpc", "grpcs") for p in protocols)
    if grpc and not all(p in ("grpc", "grpcs") for p in protocols):
        c.errors.append("%s.protocols: grpc routes cannot mix other protocols" % where)
    if grpc and route.get("strip_path", True):
        c.errors.append("%s.strip_path: cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs'" % where)
    if grpc and "methods" in route:
        c.errors.append("%s.methods: cannot set 'methods' when 'protocols' is 'grpc' or 'grpcs'" % where)
    if not any(route.get(k) for k in ("methods", "hosts", "paths", "headers", "snis")):
        c.errors.append("%s: must set one of 'methods', 'hosts', 'headers', 'paths', 'snis'" % where)
    if service_protocol and grpc != (service_protocol in ("grpc", "grpcs")):
        c.errors.append("%s.protocols: route and service protocols must both be gRPC or both HTTP" % where)


def _check_plugin(c, where, plugin):
    if not c.fields(where, plugin, PLUGIN, required=("name",)):
        return
    spec = PLUGIN_CONFIGS.get(plugin.get("name"))
    if spec is None:
        return
    config = plugin.get("config", {})
    c.fields(where + ".config", config, spec)
    if plugin["name"] == "rate-limiting" and isinstance(config, dict):
        limits = [config[p] for p in RATE_PERIODS if isinstance(config.get(p), (int, float))]
        if not limits:
            c.errors.append("%s.config: at least one of %s must be set" % (where, ", ".join(RATE_PERIODS)))
        if limits != sorted(limits):
            c.errors.append("%s.config: a longer period cannot have a lower limit than a shorter one" % where)
        if config.get("policy") == "redis" and not config.get("redis"):
            c.errors.append("%s.config.redis: required when policy is 'redis'" % where)
    if plugin["name"] == "acl" and isinstance(config, dict):
        if bool(config.get("allow")) == bool(config.get("deny")):
            c.errors.append("%s.config: exactly one of 'allow' or 'deny' must be set" % where)
    if plugin["name"] == "request-transformer" and isinstance(config, dict):
        for part, spec in (("remove", TRANSFORM_REMOVE), ("rename", TRANSFORM_REMOVE),
                           ("replace", TRANSFORM_ADD), ("add", TRANSFORM_ADD), ("append", TRANSFORM_ADD)):
            if part in config:
                c.fields("%s.config.%s" % (where, part), config[part], spec)


def validate(doc):
    """Return the list of schema errors of a parsed kong.yaml document (empty if valid)."""
    c = _Checker()
    if not c.fields("", doc, TOP, required=("_format_version",)):
        return c.errors
    upstream_names = set()
    for i, up in c.items("", doc, "upstreams"):
        where = "upstreams[%d]" % i
        if c.fields(where, up, UPSTREAM, required=("name",)):
            upstream_names.add(up.get("name"))
            for j, target in c.items(where, up, "targets"):
                c.fields("%s.targets[%d]" % (where, j), target, TARGET, required=("target",))
    c.unique("upstreams", [u.get("name") for _, u in c.items("", doc, "upstreams") if isinstance(u, dict)])
    route_names = []
    for i, svc in c.items("", doc, "services"):
        where = "services[%d]" % i
        if not c.fields(where, svc, SERVICE, required=("name",)):
            continue
        if "url" not in svc and "host" not in svc:
            c.errors.append("%s: one of 'url' or 'host' is required" % where)
        if svc.get("protocol") in ("grpc", "grpcs") and "path" in svc:
            c.errors.append("%s.path: must not be set when protocol is grpc or grpcs" % where)
        for j, route in c.items(where, svc, "routes"):
            _check_route(c, "%s.routes[%d]" % (where, j), route, svc.get("protocol", "http"))
            if isinstance(route, dict):
                route_names.append(route.get("name"))
        for j, plugin in c.items(where, svc, "plugins"):
            _check_plugin(c, "%s.plugins[%d]" % (where, j), plugin)
        c.unique(where + ".plugins", [p.get("name") for _, p in c.items(where, svc, "plugins") if isinstance(p, dict)])
    c.unique("services", [s.get("name") for _, s in c.items("", doc, "services") if isinstance(s, dict)])
    c.unique("routes", [n for n in route_names if n])
    for i, plugin in c.items("", doc, "plugins"):
        _check_plugin(c, "plugins[%d]" % i, plugin)
    c.unique("plugins", [p.get("name") for _, p in c.items("", doc, "plugins") if isinstance(p, dict)])
    for i, consumer in c.items("", doc, "consumers"):
        where = "consumers[%d]" % i
        if not c.fields(where, consumer, CONSUMER):
            continue
        if "username" not in consumer and "custom_id" not in consumer:
            c.errors.append("%s: at least one of 'username' or 'custom_id' is required" % where)
        for j, cred in c.items(where, consumer, "keyauth_credentials"):
            c.fields("%s.keyauth_credentials[%d]" % (where, j), cred, KEYAUTH_CREDENTIAL, required=("key",))
        for j, acl in c.items(where, consumer, "acls"):
            c.fields("%s.acls[%d]" % (where, j), acl, ACL_CREDENTIAL, required=("group",))
    c.unique("consumers", [u.get("username") for _, u in c.items("", doc, "consumers") if isinstance(u, dict)])
    return c.errors


# ---------------------------------------------------------------------------
# The policy model: what the gateway enforces, independent of Kong's syntax.


@dataclass
class Route:
    name: str
    paths: list  # prefix paths, or exact ones (regex "~/literal$")
    methods: list = field(default_factory=list)  # empty: any method
    strip_path: bool = True


@dataclass
class Service:
    name: str
    kind: str  # "rest" or "grpc"
    routes: list
    targets: list  # "host:port", weight > 0
    algorithm: str
    timeouts: dict  # connect/read/write in ms, retries
    plugins: dict  # plugin name -> config (service-scoped or global)
    plugin_scope: str  # "service" (counters per service) or "global" (shared)
    upstream: str = ""  # the upstream's name (services may share one)


@dataclass
class Policy:
    services: list
    consumers: dict = field(default_factory=dict)  # username -> DECK_ env var name
    groups: dict = field(default_factory=dict)  # username -> [ACL groups]

    def service(self, kind):
        """The first service of a kind ("rest" or "grpc")."""
        return next(s for s in self.services if s.kind == kind)

    def named(self, name):
        return next(s for s in self.services if s.name == name)


def load(path=DEFAULT_KONG_YAML):
    """Parse and validate a kong.yaml; raise SchemaError listing every problem."""
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    errors = validate(doc)
    if errors:
        raise SchemaError(errors)
    return doc


def _enabled(plugins):
    return {p["name"]: p.get("config", {}) for p in plugins or [] if p.get("enabled", True)}


def policy(doc):
    """Extract the enforced policy from a validated kong.yaml document."""
    upstream_by_name = {u["name"]: u for u in doc.get("upstreams", [])}
    global_plugins = _enabled(doc.get("plugins"))
    services = []
    for svc in doc.get("services", []):
        kind = "grpc" if svc.get("protocol") in ("grpc", "grpcs") else "rest"
        up = upstream_by_name.get(svc.get("host"))
        if up is None:
            raise SchemaError(["service %s: host %s is not an upstream" % (svc["name"], svc.get("host"))])
        own = _enabled(svc.get("plugins"))
        plugins = dict(global_plugins, **own)
        services.append(
            Service(
                name=svc["name"],
                kind=kind,
                routes=[
                    Route(r["name"], list(r["paths"]), list(r.get("methods", [])), r.get("strip_path", True))
                    for r in svc.get("routes", [])
                ],
                targets=[t["target"] for t in up.get("targets", []) if t.get("weight", 100) > 0],
                algorithm=up.get("algorithm", "round-robin"),
                timeouts={
                    "connect": svc.get("connect_timeout", 60000),
                    "read": svc.get("read_timeout", 60000),
                    "write": svc.get("write_timeout", 60000),
                    "retries": svc.get("retries", 5),
                },
                plugins=plugins,
                plugin_scope="service" if "rate-limiting" in own else "global",
                upstream=up["name"],
            )
        )
    consumers, groups = {}, {}
    for consumer in doc.get("consumers", []):
        for cred in consumer.get("keyauth_credentials", []):
            consumers[consumer["username"]] = DECK_ENV_RE.match(cred["key"]).group(1)
        groups[consumer["username"]] = sorted(a["group"] for a in consumer.get("acls", []))
    return Policy(services=services, consumers=consumers, groups=groups)


def main(argv):
    path = argv[1] if len(argv) > 1 else DEFAULT_KONG_YAML
    try:
        policy(load(path))
    except SchemaError as e:
        for err in e.errors:
            print("%s: %s" % (path, err), file=sys.stderr)
        return 1
    print("%s: valid Kong 3.0 declarative configuration" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
