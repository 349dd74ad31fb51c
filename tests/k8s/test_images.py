"""Offline checks of the container image recipes in docker/: one multi-stage
Dockerfile per service, built like the project (CMake target plantwatch-<service>
on Debian bookworm) and run from a slim image as a non-root user."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["producer", "consumer", "metrics", "sim"]
RUNTIME_LIBS = {
    "librdkafka1", "libmongoc-1.0-0", "libbson-1.0-0", "libprotobuf-c1", "libgrpc29",
    "libmicrohttpd12", "libjansson4", "libuuid1", "libssl3",
}


def stages(text):
    parts = re.split(r"^FROM\s+", text, flags=re.M)[1:]
    return [("FROM " + p).replace("\\\n", " ") for p in parts]


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_is_multistage_bookworm_non_root(service):
    text = (ROOT / "docker" / f"{service}.Dockerfile").read_text()
    build, runtime = stages(text)
    assert build.startswith("FROM debian:bookworm AS build")
    assert runtime.startswith("FROM debian:bookworm-slim")
    assert f"cmake --build /build --target plantwatch-{service}" in build
    assert "-dev" not in runtime, "no development packages in the runtime image"
    packages = set(re.findall(r"\b(lib[\w.+-]+)", runtime))
    assert RUNTIME_LIBS <= packages
    assert re.search(r"^USER 10001:10001$", runtime, flags=re.M)
    assert f'ENTRYPOINT ["/usr/local/bin/plantwatch-{service}"]' in runtime
    assert "COPY --from=build /out/ /" in runtime


def test_dockerignore_keeps_state_and_secrets_out_of_the_context():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".plantwatch", "build", "k8s/**/secrets/*.env"):
        assert entry in ignored


def test_image_user_matches_pod_security_context():
    deployment = (ROOT / "k8s" / "base" / "producer" / "deployment.yaml").read_text()
    assert "runAsUser: 10001" in deployment
