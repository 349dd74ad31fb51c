"""gRPC load client for IngestService (Python grpc.aio, several processes).
Requests are serialized once up front and sent as raw bytes, so the client's
per-call cost is the gRPC stack, not protobuf encoding.
  unary : Publish with `--batch` readings per call, `--concurrency` calls in
          flight per process
  stream: PublishStream with `--batch` readings per message and `--messages`
          messages per stream, `--concurrency` streams in flight per process
Prints one JSON line: records, calls, seconds, p50_ms, p99_ms, errors."""
import argparse
import asyncio
import json
import multiprocessing as mp
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def pb2():
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix="pw-bench-pb2-")
    include = str(pathlib.Path(protoc.__file__).parent / "_proto")
    protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}",
                 str(ROOT / "proto/iot/v1/telemetry.proto"), str(ROOT / "proto/iot/v1/ingest.proto")])
    sys.path.insert(0, out)
    from iot.v1 import ingest_pb2, telemetry_pb2
    return ingest_pb2, telemetry_pb2


def payload(batch, seed):
    ingest_pb2, tp = pb2()
    readings = [tp.Reading(device_id=f"bench-{(seed * 7 + i) % 500}", zone=f"zone-{i % 8}",
                           type="temperature", value=20.5 + i % 10, unit="C", firmware="1.0.0")
                for i in range(batch)]
    return ingest_pb2.PublishRequest(readings=readings).SerializeToString()


async def run_worker(args, seed, q):
    import grpc
    body = payload(args.batch, seed)
    lat, records, calls, errors = [], 0, 0, 0
    deadline = time.time() + args.duration
    # the producer takes ingest only with the gateway secret
    metadata = [("x-gateway-token", os.environ.get("PW_BENCH_GATEWAY_TOKEN", ""))]
    async with grpc.aio.insecure_channel(args.target) as ch:
        ident = lambda b: b  # noqa: E731
        unary = ch.unary_unary("/iot.v1.IngestService/Publish", request_serializer=ident,
                               response_deserializer=ident)
        stream = ch.stream_unary("/iot.v1.IngestService/PublishStream",
                                 request_serializer=ident, response_deserializer=ident)

        async def one():
            nonlocal records, calls, errors
            while time.time() < deadline:
                t = time.perf_counter()
                try:
                    if args.mode == "unary":
                        await unary(body, timeout=30, metadata=metadata)
                        n = args.batch
                    else:
                        await stream(iter([body] * args.messages), timeout=60, metadata=metadata)
                        n = args.batch * args.messages
                except grpc.RpcError:
                    errors += 1
                    continue
                lat.append(time.perf_counter() - t)
                records += n
                calls += 1

        start = time.time()
        await asyncio.gather(*[one() for _ in range(args.concurrency)])
        q.put({"records": records, "calls": calls, "seconds": time.time() - start,
               "lat": lat, "errors": errors})


def worker(args, seed, q):
    asyncio.run(run_worker(args, seed, q))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--mode", choices=["unary", "stream"], required=True)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--messages", type=int, default=100)
    ap.add_argument("--duration", type=float, default=15)
    args = ap.parse_args()
    q = mp.Queue()
    procs = [mp.Process(target=worker, args=(args, i, q)) for i in range(args.processes)]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    lat = sorted(x for r in results for x in r["lat"])
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0  # noqa: E731
    print(json.dumps({"records": sum(r["records"] for r in results),
                      "calls": sum(r["calls"] for r in results),
                      "seconds": max(r["seconds"] for r in results),
                      "errors": sum(r["errors"] for r in results),
                      "p50_ms": pct(0.50), "p99_ms": pct(0.99)}))


if __name__ == "__main__":
    main()
