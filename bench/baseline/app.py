"""Reference producer for the benchmarks: Flask + confluent-kafka doing what
plantwatch-producer does — same validation rules, Envelope protobuf, topic
routing, token per message, acks=all + idempotence, lz4 for telemetry — and
answering 202 only after the broker acknowledged every record. Run under
gunicorn (see bench/producer/run.py); configured by the same PW_* variables."""
import datetime
import json
import math
import os
import pathlib
import sys
import tempfile
import threading
import time
import uuid

from confluent_kafka import Producer
from flask import Flask, Response, request

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load_pb2():
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix="pw-baseline-pb2-")
    include = str(pathlib.Path(protoc.__file__).parent / "_proto")
    rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}",
                      str(ROOT / "proto/iot/v1/telemetry.proto")])
    assert rc == 0
    sys.path.insert(0, out)
    from iot.v1 import telemetry_pb2
    return telemetry_pb2


pb = _load_pb2()
MAX_BATCH = 1000
MAX_BODY = int(os.environ.get("PW_MAX_BODY_BYTES", 1048576))
TIMEOUT_MS = int(os.environ.get("PW_DELIVERY_TIMEOUT_MS", 10000))
TOPICS = {"reading": os.environ.get("PW_TOPIC_TELEMETRY", "sensor-telemetry"),
          "alert": os.environ.get("PW_TOPIC_ALERTS", "sensor-alerts")}
LIMITS = {"device_id": 128, "zone": 64, "type": 32, "unit": 16, "firmware": 32, "code": 64,
          "message": 1024}
REQUIRED = {"reading": ("device_id", "zone", "type"), "alert": ("device_id", "zone", "code")}
OPTIONAL = {"reading": ("unit", "firmware"), "alert": ("message", "firmware")}
SEVERITIES = {"info": 1, "warning": 2, "critical": 3}


def kafka_conf(codec):
    conf = {"bootstrap.servers": os.environ.get("PW_KAFKA_BOOTSTRAP", "127.0.0.1:9093"),
            "security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": os.environ.get("PW_KAFKA_USERNAME", "producer"),
            "sasl.password": os.environ["PW_KAFKA_PASSWORD"],
            "acks": "all", "enable.idempotence": True, "compression.type": codec,
            "linger.ms": int(os.environ.get("PW_LINGER_MS", 5)),
            "message.timeout.ms": TIMEOUT_MS}
    if os.environ.get("PW_KAFKA_CA_FILE"):
        conf["ssl.ca.location"] = os.environ["PW_KAFKA_CA_FILE"]
    return conf


producers = {}
producers_lock = threading.Lock()


def _serve_delivery_reports(prod):
    while True:
        prod.poll(0.1)


def producer_for(kind):
    """One producer per topic kind and worker process, created lazily after
    gunicorn forked; a background thread serves its delivery reports."""
    with producers_lock:
        if kind not in producers:
            prod = Producer(kafka_conf("lz4" if kind == "reading" else "none"))
            threading.Thread(target=_serve_delivery_reports, args=(prod,), daemon=True).start()
            producers[kind] = prod
        return producers[kind]


app = Flask(__name__)


def error(status, code, message, details=None, headers=None):
    body = json.dumps({"error": {"code": code, "message": message, "details": details or []}})
    return Response(body, status=status, mimetype="application/json", headers=headers)


def parse_ts(v, now_ms, errs, index):
    if v is None:
        return now_ms
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        errs.append({"index": index, "field": "ts", "message": "must be RFC 3339 or epoch ms"})
        return 0
    if isinstance(v, str):
        try:
            d = datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
            if d.tzinfo is None:
                raise ValueError
            v = int(d.timestamp() * 1000)
        except ValueError:
            errs.append({"index": index, "field": "ts", "message": "must be RFC 3339"})
            return 0
    if v < now_ms - 30 * 86400000 or v > now_ms + 3600000:
        errs.append({"index": index, "field": "ts", "message": "out of range"})
    return v


def check_item(kind, obj, index, now_ms, errs):
    if not isinstance(obj, dict):
        errs.append({"index": index, "field": "", "message": "must be an object"})
        return None
    out = {}
    for f in REQUIRED[kind] + OPTIONAL[kind]:
        v = obj.get(f)
        if v is None:
            if f in REQUIRED[kind]:
                errs.append({"index": index, "field": f, "message": "is required"})
            continue
        if not isinstance(v, str) or (f in REQUIRED[kind] and not v.strip()) \
                or len(v) > LIMITS[f] or any(ord(c) < 32 for c in v):
            errs.append({"index": index, "field": f, "message": "invalid string"})
            continue
        out[f] = v
    if kind == "reading":
        v = obj.get("value")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            errs.append({"index": index, "field": "value", "message": "must be a finite number"})
        else:
            out["value"] = float(v)
    else:
        sev = SEVERITIES.get(obj.get("severity"))
        if not sev:
            errs.append({"index": index, "field": "severity", "message": "invalid"})
        out["severity"] = sev
    out["ts_ms"] = parse_ts(obj.get("ts"), now_ms, errs, index)
    return out


def ingest(kind):
    if not (request.content_type or "").startswith("application/json"):
        return error(415, "unsupported_media_type", "Content-Type must be application/json")
    if (request.content_length or 0) > MAX_BODY:
        return error(413, "payload_too_large", "too large")
    try:
        doc = json.loads(request.get_data(), parse_constant=lambda c: (_ for _ in ()).throw(
            ValueError(c)))
    except ValueError as e:
        return error(400, "invalid_json", str(e))
    items = doc if isinstance(doc, list) else [doc]
    if not items or len(items) > MAX_BATCH:
        return error(400, "validation_failed", "1..1000 items")
    now_ms = int(time.time() * 1000)
    errs = []
    checked = [check_item(kind, o, i if isinstance(doc, list) else -1, now_ms, errs)
               for i, o in enumerate(items)]
    if errs:
        return error(400, "validation_failed", "invalid request", errs)
    consumer = request.headers.get("X-Consumer-Username") or "anonymous"
    pending = {"n": len(checked), "failed": 0}
    done = threading.Event()
    lock = threading.Lock()

    def on_delivery(err, msg):
        with lock:
            if err:
                pending["failed"] += 1
            pending["n"] -= 1
            if pending["n"] == 0:
                done.set()

    prod = producer_for(kind)
    ids = []
    for c in checked:
        token = str(uuid.uuid4())
        ids.append(token)
        env = pb.Envelope(token=token, received_ms=now_ms, consumer=consumer,
                          source=pb.SOURCE_REST, schema_version=1)
        if kind == "reading":
            env.reading.CopyFrom(pb.Reading(**c))
        else:
            env.alert.CopyFrom(pb.Alert(**c))
        try:
            prod.produce(TOPICS[kind], env.SerializeToString(), key=c["device_id"],
                         headers=[("pw-token", token), ("pw-schema", "1"),
                                  ("content-type", "application/x-protobuf")],
                         on_delivery=on_delivery)
        except BufferError:
            return error(503, "kafka_unavailable", "queue full", headers={"Retry-After": "1"})
    if not done.wait(TIMEOUT_MS / 1000 + 5) or pending["failed"]:
        return error(503, "kafka_unavailable", "not acknowledged", headers={"Retry-After": "1"})
    return Response(json.dumps({"accepted": len(ids), "ids": ids}), status=202,
                    mimetype="application/json")


@app.post("/v1/telemetry")
def telemetry():
    return ingest("reading")


@app.post("/v1/alerts")
def alerts():
    return ingest("alert")


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
