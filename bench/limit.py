"""Runs the reference limit servers (``../shared/bench/limit_server.py``: uvloop + httptools with
no server features -- the floor any Python server on this stack can reach) under this package's
apps. Loaded by path, so the shared folder's own ``bench`` package does not shadow ours.

    python -m bench.limit --mode {raw,asgi,asgi-task,ws} --port 8000 bench.apps:app
"""

import importlib.util
import os
import sys
from pathlib import Path

PATH = Path(os.environ.get("BENCH_LIMIT_SERVER", "/work/shared/bench/limit_server.py"))

if __name__ == "__main__":
    if not PATH.exists():
        sys.exit(f"limit server not found at {PATH} (set BENCH_LIMIT_SERVER)")
    spec = importlib.util.spec_from_file_location("limit_server", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(sys.argv[1:])
