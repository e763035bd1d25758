"""gworkers-run --reload: the arbiter's workers follow edits, survive a broken import, recover.

Run with watchfiles and with the polling fallback (watchfiles hidden by a shim package).
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from .conftest import REPO, wait_until

APP_SOURCE = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": b"{version}"}})
'''


def fetch(server) -> tuple[int, str]:
    try:
        with server.client(timeout=5) as client:
            response = client.get("/")
        return response.status_code, response.text
    except httpx.HTTPError:
        return 0, ""


def edit_until(path, text: str, predicate, message: str, timeout: float = 30.0) -> None:
    """Write ``text``; rewrite it every few seconds until ``predicate()`` holds (a watcher may
    still be starting when the first write lands)."""
    end = time.monotonic() + timeout
    while True:
        path.write_text(text)
        try:
            wait_until(predicate, timeout=3.0, message=message)
            return
        except AssertionError:
            if time.monotonic() > end:
                raise


@pytest.mark.parametrize("engine", ["watchfiles", "polling"])
def test_reload_follows_edits_and_survives_a_broken_import(start_cli, tmp_path, engine):
    src = tmp_path / "src"
    src.mkdir()
    module = src / "reloadme.py"
    module.write_text(APP_SOURCE.format(version="v1"))
    (src / "skip_me.py").write_text("x = 1\n")
    data = src / "data.cfg"
    data.write_text("a = 1\n")
    env = {}
    if engine == "polling":
        shim = tmp_path / "shim" / "watchfiles"
        shim.mkdir(parents=True)
        (shim / "__init__.py").write_text("raise ImportError('hidden for the polling test')\n")
        env["PYTHONPATH"] = f"{shim.parent}:{REPO}"
    server = start_cli(["reloadme:app", "--port", "0", "--app-dir", str(src), "--reload",
                        "--reload-dir", str(src), "--reload-include", "*.cfg",
                        "--reload-exclude", "skip_*.py", "--reload-delay", "0.1",
                        "--workers", "2"], env=env)
    server.wait_for_log(rf"watching {re.escape(str(src))} for changes \({engine}, delay 0.1s\)")
    assert fetch(server) == (200, "v1")

    edit_until(module, APP_SOURCE.format(version="v2"), lambda: fetch(server) == (200, "v2"),
               "the v2 edit")
    # a syntax error: the server stays up, reports the error, answers 500 with it
    # (until the old workers have drained, a request may still reach one of them)
    broken = []
    edit_until(module, APP_SOURCE.format(version="v3") + "\ndef broken(:\n",
               lambda: broken.append(fetch(server)) or broken[-1][0] == 500, "the broken edit")
    status, text = broken[-1]
    assert "SyntaxError" in text and "reloadme.py" in text
    assert "SyntaxError" in server.log()
    assert server.proc.poll() is None
    edit_until(module, APP_SOURCE.format(version="v3"), lambda: fetch(server) == (200, "v3"),
               "the fixing edit")

    # --reload-exclude: skip_me.py is ignored; --reload-include: data.cfg is watched
    reloads = len(re.findall(r"changed, reloading", server.log()))
    (src / "skip_me.py").write_text("x = 2\n")
    edit_until(data, "a = 2\n",
               lambda: len(re.findall(r"changed, reloading", server.log())) > reloads,
               "a reload for data.cfg")
    lines = re.findall(r"gworkers: (.*) changed, reloading", server.log())
    assert any("data.cfg" in line for line in lines)
    assert not any("skip_me" in line for line in lines)
    assert fetch(server) == (200, "v3")
