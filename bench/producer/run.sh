#!/usr/bin/env bash
# Producer benchmark (on demand; needs the local Kafka cluster up and wrk, java,
# and the Python packages flask, gunicorn, confluent-kafka, grpcio, grpcio-tools,
# requests). See run.py for what is measured; extra args are passed through.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PW_VENV:-${PW_CACHE:-$HOME/.cache/plantwatch}/venv}/bin/python
exec "$PY" "$ROOT/bench/producer/run.py" "$@"
