"""A private gateway for the producer benchmark: nginx rendered by
scripts/gateway/render.py from kong/kong.yaml with the REST upstream pointed at
the bench producer, one bench key (ingest group) and the rate limit lifted, so
that the same paced load can run through the gateway and directly and the
gateway's added latency is their difference. Stopped with QUIT afterwards."""
import hashlib
import pathlib
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
KONG_YAML = ROOT / "kong" / "kong.yaml"
RENDER = ROOT / "scripts" / "gateway" / "render.py"
BENCH_LIMIT = 1000000  # requests per second per consumer: never the limit here


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_policy(upstream_port):
    """kong.yaml with the REST upstream on the bench producer and no effective rate limit."""
    doc = yaml.safe_load(KONG_YAML.read_text())
    for svc in doc["services"]:
        for plugin in svc.get("plugins", []):
            if plugin["name"] == "rate-limiting":
                plugin["config"]["second"] = BENCH_LIMIT
    for up in doc["upstreams"]:
        if up["name"] == "producer-rest.upstream":
            up["targets"] = [{"target": f"127.0.0.1:{upstream_port}", "weight": 100}]
    return doc


class BenchGateway:
    def __init__(self, upstream_port, gateway_secret):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="pw-bench-gw-"))
        self.key = secrets.token_hex(24)
        kong = self.dir / "kong.yaml"
        kong.write_text(yaml.safe_dump(bench_policy(upstream_port), sort_keys=False))
        sec = self.dir / "secrets"
        sec.mkdir()
        digest = hashlib.sha256(self.key.encode()).hexdigest()
        (sec / "gateway-credentials").write_text(f"bench ingest sha256:{digest}\n")
        (sec / "gateway-secret").write_text(gateway_secret + "\n")
        for d in ("nginx/logs", "nginx/tmp"):
            (self.dir / d).mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        conf = self.dir / "nginx" / "nginx.conf"
        subprocess.run([sys.executable, str(RENDER), "--kong", str(kong), "--state", str(self.dir),
                        "--out", str(conf), "--rest-listen", f"127.0.0.1:{self.port}",
                        "--grpc-listen", f"127.0.0.1:{free_port()}"], check=True)
        self.proc = subprocess.Popen(["nginx", "-p", str(self.dir / "nginx"), "-c", str(conf),
                                      "-e", str(self.dir / "nginx" / "logs" / "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait()

    def _wait(self):
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"bench gateway on {self.port} did not start")

    def pids(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [self.proc.pid] + [int(x) for x in out.stdout.split()]

    def close(self):
        subprocess.run(["kill", "-QUIT", str(self.proc.pid)], check=False)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
