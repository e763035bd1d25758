"""The benchmark harness runs end to end (never a speed: benchmarks are not tests)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from bench import h2
from tests.conftest import REPO, base_env


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_bench_smoke_prints_a_table(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=REPO, env=base_env(), capture_output=True, text=True, timeout=90,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    table = (tmp_path / "table.md").read_text()
    assert "## Results" in table
    for name in ("gworkers", "gworkers-h11"):
        assert f"| {name} |" in table
    for scenario in ("### plaintext", "### echo-4k", "### pipe16", "### idle"):
        assert scenario in table
    assert "FAILED" not in out.stdout
    assert "| gworkers | 100/100 |" in table
    if h2.available():  # h2load (nghttp2-client) drives the HTTP/2 scenario; .ci/run installs it
        section = table.split("### h2-plaintext-m100")[1]
        for name in ("gworkers", "gworkers-h11"):
            row = next(line for line in section.splitlines() if line.startswith(f"| {name} |"))
            assert row.endswith("| 0 |"), row  # no failed request, no non-2xx answer
