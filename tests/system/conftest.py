"""Shared fixtures for the black-box system tests: where the running stack is,
credentials for independent Kafka / MongoDB clients, generated protobuf and
gRPC modules, and control over the stack's processes (kill, stop, start)."""
import importlib
import os
import pathlib
import signal
import struct
import subprocess
import sys
import tempfile
import time
import types
import zlib

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
STATE = pathlib.Path(os.environ.get("PW_STATE", ROOT / ".plantwatch"))


def pytest_configure(config):
    config.addinivalue_line("markers", "last: runs after every other test (reads what they left)")


def pytest_collection_modifyitems(items):
    """Tests marked `last` read what the whole run left behind (service logs):
    they run after all others."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


def read_env_file(path):
    values = {}
    for line in pathlib.Path(path).read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep:
            values[key] = value
    return values


def read_key_file(name):
    """{consumer: key} from a key file of the stack's secrets (lines `name key ...`)."""
    keys = {}
    path = STATE / "secrets" / name
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and not line.startswith("#"):
                keys[parts[0]] = parts[1]
    return keys


def read_gateway_keys():
    """The sensors' keys (ACL group ingest)."""
    return read_key_file("gateway-keys")


def read_read_keys():
    """The local readers' keys (ACL group read: metrics through the gateway)."""
    return read_key_file("read-keys")


def gateway_secret():
    """The secret the gateway sends to the producers (X-Gateway-Token): a test
    that calls a producer directly stands in for the gateway and sends it too."""
    return (STATE / "secrets" / "gateway-secret").read_text().strip()


def trusted_headers(headers=None):
    """headers plus the gateway secret, for direct requests to a producer."""
    return {"X-Gateway-Token": gateway_secret(), **(headers or {})}


def trusted_channel(target, options=None):
    """An insecure gRPC channel to a producer that adds the gateway secret
    (metadata x-gateway-token) to every call, as the gateway does."""
    import grpc

    token = ("x-gateway-token", gateway_secret())

    class GatewayToken(grpc.UnaryUnaryClientInterceptor, grpc.StreamUnaryClientInterceptor):
        def _details(self, details):
            metadata = [*(details.metadata or []), token]
            return details._replace(metadata=metadata) if hasattr(details, "_replace") else \
                _CallDetails(details, metadata)

        def intercept_unary_unary(self, continuation, details, request):
            return continuation(self._details(details), request)

        def intercept_stream_unary(self, continuation, details, request_iterator):
            return continuation(self._details(details), request_iterator)

    return grpc.intercept_channel(grpc.insecure_channel(target, options=options), GatewayToken())


class _CallDetails:
    """grpc.ClientCallDetails with other metadata."""

    def __init__(self, details, metadata):
        self.method, self.timeout, self.metadata = details.method, details.timeout, metadata
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


class Stack:
    """The running local stack, as seen from outside."""

    root = ROOT
    state = STATE
    gateway_url = "http://127.0.0.1:8000"
    gateway_grpc = "127.0.0.1:9080"
    producer_urls = ["http://127.0.0.1:8081", "http://127.0.0.1:8082"]
    producer_grpc = ["127.0.0.1:50051", "127.0.0.1:50052"]
    consumer_urls = ["http://127.0.0.1:8101", "http://127.0.0.1:8102", "http://127.0.0.1:8103"]
    metrics_url = "http://127.0.0.1:8090"
    metrics_grpc = "127.0.0.1:50061"
    mongo_db_name = "plantwatch"
    bootstrap = "127.0.0.1:9093"

    @property
    def keys(self):
        """The sensors' keys (ACL group ingest)."""
        return read_gateway_keys()

    @property
    def read_keys(self):
        return read_read_keys()

    def mongo_uri_of(self, role="admin"):
        """The store URI of a role (admin, consumer, metrics), as the stack wrote it."""
        return (self.state / "secrets" / f"{role}-mongodb.uri").read_text().strip()

    @property
    def mongo_uri(self):
        return self.mongo_uri_of("admin")

    @property
    def consumer_binary(self):
        """The consumer binary the stack runs (the sanitizer build under ./plantwatch test)."""
        path = self.state / "consumer-build"
        build = pathlib.Path(path.read_text().strip()) if path.exists() else \
            pathlib.Path(os.environ.get("PW_BUILD", ROOT / "build"))
        return build / "src" / "consumer" / "plantwatch-consumer"

    def service_env(self, name):
        """The environment ./plantwatch gives a service (for starting a copy of it)."""
        out = subprocess.run([str(self.root / "plantwatch"), "env", name], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def pid(self, name):
        path = self.state / "pids" / f"{name}.pid"
        return int(path.read_text().strip()) if path.exists() else None

    def kill(self, name, sig=signal.SIGKILL):
        """Signals a stack process (its whole process group) without cleanup."""
        pid = self.pid(name)
        assert pid, f"{name} is not running"
        os.killpg(pid, sig)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)

    def plantwatch(self, *args):
        subprocess.run([str(self.root / "plantwatch"), *args], check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def start(self, name):
        """(Re)starts one process and waits until it is healthy."""
        self.plantwatch("start", name)

    def stop_service(self, name):
        self.plantwatch("stop", name)

    def start_service(self, name):
        self.plantwatch("start", name)

    def restart(self, name):
        self.plantwatch("restart", name)


def _reachable(url):
    try:
        return requests.get(url, timeout=3).status_code < 500
    except requests.RequestException:
        return False


_LOG_MARKS = {}


@pytest.fixture(scope="session", autouse=True)
def log_marks():
    """Where each service log ended when the run began: tests that read the
    logs (plans, sanitizer reports) read only what this run wrote."""
    for path in (STATE / "logs").glob("*.log"):
        _LOG_MARKS[path.name] = path.stat().st_size
    return _LOG_MARKS


def run_log(name, since_start=False):
    """The part of .plantwatch/logs/<name>.log written during this run; with
    since_start, from the start of the process that was running when the run
    began (its first line: a C service's "listening" or "started" event)."""
    path = STATE / "logs" / f"{name}.log"
    if not path.exists():
        return ""
    data = path.read_bytes()
    mark = _LOG_MARKS.get(path.name, 0)
    if since_start:
        # consumers log "listening" first, the metrics service only "started"
        first = data.rfind(b'"event":"listening"', 0, mark)
        if first < 0:
            first = data.rfind(b'"event":"started"', 0, mark)
        if first >= 0:
            mark = data.rfind(b"\n", 0, first) + 1
    return data[mark:].decode(errors="replace")


@pytest.fixture(scope="session")
def stack():
    s = Stack()
    down = [u for u in [*s.producer_urls, s.metrics_url] if not _reachable(u + "/healthz")]
    if down:
        pytest.fail(f"the local stack is not running ({', '.join(down)} unreachable): "
                    "run the system tests with ./plantwatch test, or ./plantwatch up first")
    if not s.keys:
        pytest.fail(f"no gateway keys in {s.state}/secrets/gateway-keys")
    return s


@pytest.fixture(scope="session")
def kafka_config():
    secrets = read_env_file(STATE / "secrets" / "kafka-users.env")

    def make(user="admin", **extra):
        conf = {
            "bootstrap.servers": Stack.bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": user,
            "sasl.password": secrets[f"PW_KAFKA_{user.upper()}_PASSWORD"],
            "ssl.ca.location": str(STATE / "secrets" / "ca.pem"),
        }
        conf.update(extra)
        return conf

    return make


@pytest.fixture(scope="session")
def mongo_client():
    import pymongo
    client = pymongo.MongoClient(Stack().mongo_uri, serverSelectionTimeoutMS=5000)
    yield client
    client.close()


@pytest.fixture(scope="session")
def mongo_db(mongo_client):
    return mongo_client[Stack.mongo_db_name]


@pytest.fixture(scope="session")
def iot_pb2():
    """Python protobuf + gRPC modules generated from proto/ for this run."""
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix="pw-pb2-")
    # proto/grpc/ (the standard health and reflection services) is left out: as
    # Python modules its "grpc" package would shadow grpcio's
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto")
                    if p.relative_to(ROOT / "proto").parts[0] != "grpc")
    include = str(pathlib.Path(protoc.__file__).parent / "_proto")
    rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}",
                      f"--grpc_python_out={out}", *protos])
    assert rc == 0, "grpc_tools.protoc failed on proto/"
    sys.path.insert(0, out)
    mods = {}
    for proto in protos:
        base = proto[:-len(".proto")].replace("/", ".")
        mods[base.rsplit(".", 1)[1] + "_pb2"] = importlib.import_module(base + "_pb2")
        try:
            mods[base.rsplit(".", 1)[1] + "_pb2_grpc"] = importlib.import_module(base + "_pb2_grpc")
        except ImportError:
            pass
    return types.SimpleNamespace(**mods)


class StoreView:
    """Reads the consumer's pre-aggregated documents: the packed iot.v1
    storage messages in their "state" fields, decoded."""

    def __init__(self, db, storage_pb2):
        self.db, self.pb = db, storage_pb2

    def unpack(self, cls, value):
        """A packed state field: subtype 0x80 = little-endian uint32 length,
        then the message deflated with zlib (subtype 0: the message as is)."""
        msg = cls()
        if value is None:
            return msg
        raw = bytes(value)
        if getattr(value, "subtype", 0) == 0x80:
            n = struct.unpack("<I", raw[:4])[0]
            raw = zlib.decompress(raw[4:])
            assert len(raw) == n, "packed state length prefix disagrees"
        msg.ParseFromString(raw)
        return msg

    def state(self, doc):
        return self.unpack(self.pb.RollupState, doc.get("state"))

    def buckets(self, coll, res="hour"):
        """(document, RollupState) of every bucket of one resolution."""
        return [(d, self.state(d)) for d in self.db[coll].find({"res": res})]

    def cells(self, coll, zone, res="hour"):
        return [c for _, st in self.buckets(coll, res) for c in st.cells if c.zone == zone]

    def became_active(self, zone, res="hour"):
        return sum(z.count for coll in ("rollup_readings", "rollup_alerts")
                   for _, st in self.buckets(coll, res) for z in st.devices if z.zone == zone)

    def census(self):
        """tp -> {device: DeviceEntry} over all census shards."""
        out = {}
        for d in self.db.rollup_devices.find():
            m = self.unpack(self.pb.DeviceCensus, d["state"])
            last = 0
            for i, dev in enumerate(m.device_ids):
                last += m.last_seen_delta_ms[i]
                out.setdefault(d["tp"], {})[dev] = types.SimpleNamespace(
                    device_id=dev, zone=m.zones[m.zone[i]], firmware=m.firmwares[m.firmware[i]],
                    first_seen_ms=last - m.seen_for_ms[i], last_seen_ms=last)
        return out

    def device(self, device_id):
        """The merged view of one device (newest entry wins), or None."""
        best = None
        for tp, devs in self.census().items():
            e = devs.get(device_id)
            if e is None:
                continue
            if best is None:
                best = {"zone": e.zone, "firmware": e.firmware, "first_seen_ms": e.first_seen_ms,
                        "last_seen_ms": e.last_seen_ms}
                continue
            best["first_seen_ms"] = min(best["first_seen_ms"], e.first_seen_ms)
            if e.last_seen_ms > best["last_seen_ms"]:
                best.update(zone=e.zone, firmware=e.firmware, last_seen_ms=e.last_seen_ms)
        return best


@pytest.fixture(scope="session")
def store_view(mongo_db, iot_pb2):
    return StoreView(mongo_db, iot_pb2.storage_pb2)


def topic_offsets(kafka_config, topic):
    """Sum of high watermarks over a topic's partitions (records ever written)."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer(kafka_config("admin", **{"group.id": "pw-test-watermarks"}))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        total = 0
        for p in meta.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high
        return total
    finally:
        consumer.close()


@pytest.fixture
def watermarks(kafka_config):
    return lambda topic: topic_offsets(kafka_config, topic)


def post_accepted(stack, path, body, key=None):
    """POSTs body through the gateway (waiting out 429s) and returns the
    tokens of the 202 answer."""
    key = key or sorted(stack.keys.values())[0]
    for _ in range(100):
        r = requests.post(f"{stack.gateway_url}{path}", json=body, headers={"apikey": key},
                          timeout=60)
        if r.status_code != 429:
            break
        time.sleep(0.5)
    assert r.status_code == 202, r.text
    return r.json()["ids"]


def find_ids(coll, ids, projection=None):
    """The documents of coll with these _ids, one {_id} query each: the store
    serves those from an index, while an {_id: {$in: [...]}} filter is not
    pushed down and reads the whole collection."""
    out = []
    for i in ids:
        d = coll.find_one({"_id": i}, projection)
        if d is not None:
            out.append(d)
    return out


def find_devices(coll, devices, projection=None):
    """The documents of coll from these devices, one {device} query each
    (pushed down to the store, unlike {device: {$in: [...]}})."""
    return [d for dev in devices for d in coll.find({"device": dev}, projection)]


def wait_until(predicate, timeout_s=60, interval_s=0.25):
    """Polls predicate until it returns a truthy value; returns its last value."""
    deadline = time.time() + timeout_s
    value = predicate()
    while not value and time.time() < deadline:
        time.sleep(interval_s)
        value = predicate()
    return value
