"""A real browser: Debian's chromium, headless, loads a page from the worker over https and
negotiates h2 by ALPN; the app saw ``http_version`` "2" and wrote it into the page chromium
dumps; a WebSocket the page opens runs over that HTTP/2 connection (RFC 8441). Both
workers."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import WORKERS
from tests.deploy.support import require

pytestmark = pytest.mark.parametrize("worker", WORKERS)


def chromium(tmp_path, url: str, *extra: str) -> str:
    """The DOM chromium ends with after loading ``url`` (headless, its profile under tmp)."""
    binary = require("chromium")
    profile = tmp_path / "chromium-profile"
    result = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
         "--no-first-run", f"--user-data-dir={profile}", *extra, "--dump-dom", url],
        capture_output=True, timeout=90, start_new_session=True)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return result.stdout.decode()


def test_chromium_loads_a_page_over_h2(start_h2, worker, tmp_path):
    h2 = start_h2(worker, tls=True)
    dom = chromium(tmp_path, f"https://localhost:{h2.server.port}/page")
    assert "http_version=2" in dom
    assert h2.marks() == ["page over 2"]


def test_chromium_websocket_over_h2(start_h2, worker, tmp_path):
    """The page opens a WebSocket to the same origin: chromium sends it as an extended CONNECT
    on its HTTP/2 connection (RFC 8441, which we advertise), and the echo reaches the DOM."""
    h2 = start_h2(worker, tls=True)
    dom = chromium(tmp_path, f"https://localhost:{h2.server.port}/ws-page")
    assert "echo: hello from the browser" in dom
    assert "websocket over 2" in h2.marks()
