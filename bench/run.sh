#!/usr/bin/env bash
# One command: install what the benchmark needs if missing, then run it.
#   bench/run.sh              full interleaved run (6 rounds, every server and scenario)
#   bench/run.sh --smoke      ~15 s check that the harness works (one HTTP/2 scenario too)
#   bench/run.sh --list       servers and scenarios; any other option goes to python -m bench
# BENCH_VENV (default /tmp/bench-venv) holds the peers (bench/requirements.txt) and this checkout.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
VENV="${BENCH_VENV:-/tmp/bench-venv}"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
if ! command -v wrk >/dev/null || ! command -v taskset >/dev/null || ! command -v h2load >/dev/null \
        || ! command -v curl >/dev/null; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk util-linux nghttp2-client curl
fi
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import uvicorn_worker, granian, gunicorn, hypercorn, h2, zttp" 2>/dev/null; then
    "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
fi
"$VENV/bin/python" -c "import gworkers" 2>/dev/null || "$VENV/bin/pip" install -q -e "$ROOT"
cd "$ROOT"
exec "$VENV/bin/python" -m bench --python "$VENV/bin/python" "$@"
