"""gworkers-run --reload: the arbiter's workers follow edits, survive a broken import, recover.

Run with watchfiles and with the polling fallback (watchfiles hidden by a shim package).
"""

from __future__ import annotations

import os
import re
import threading

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
        with server.client() as client:
            response = client.get("/")
        return response.status_code, response.text
    except httpx.HTTPError:
        return 0, ""


def save(path, text: str, mtime_ns: int | None = None) -> None:
    """Save like an editor: write a hidden temp file, rename it over ``path``. A worker importing
    meanwhile reads the old or the new file, never a half-written one (an in-place write is
    truncate-then-write: a writer preempted in between lets a reload import an empty module)."""
    tmp = path.with_name(f".{path.name}.tmp")  # ".*" is excluded from watching by default
    tmp.write_text(text)
    if mtime_ns is not None:
        os.utime(tmp, ns=(mtime_ns, mtime_ns))
    os.replace(tmp, path)


def reported(server, name: str, start: int) -> None:
    """Wait for the watcher's line for this edit: no reload of it is pending once it is there."""
    server.wait_for_log(rf"gworkers: [^\n]*{re.escape(name)}[^\n]* changed, reloading", start=start)


def reloaded(server, start: int, workers: int = 2) -> None:
    """Wait until the reload logged after ``start`` is over: its workers have imported the app
    and the previous ones have exited, so every request now meets the code as saved. (A worker
    still booting when a save lands imports the new code early: one answer from the new code
    says nothing about its siblings.)"""

    def done() -> bool:
        log = server.log()
        hangup = log.rfind("Hang up: Master")
        if hangup < start:
            return False
        new = {int(p) for p in re.findall(r"Booting worker with pid: (\d+)", log[hangup:])}
        ready = {int(p) for p in re.findall(r"\[(\d+)\] \[INFO\] gworkers: \w+ loop, ", log[hangup:])}
        return len(new) == workers and new <= ready and set(server.worker_pids()) == new

    # (a reload boots two workers: on PyPy, on a loaded machine, that alone can take many
    # seconds; the deadline only has to catch a reload that never completes)
    wait_until(done, timeout=60, message="the reload to complete")


def edit(server, path, text: str, **kwargs) -> None:
    """Save ``path``, wait for the watcher to report it and for the reload to complete."""
    mark = len(server.log())
    save(path, text, **kwargs)
    reported(server, path.name, mark)
    reloaded(server, mark)


@pytest.mark.parametrize("engine", ["watchfiles", "polling"])
def test_reload_follows_edits_and_survives_a_broken_import(start_cli, tmp_path, engine):
    src = tmp_path / "src"
    src.mkdir()
    module = src / "reloadme.py"
    module.write_text(APP_SOURCE.format(version="v1"))
    (src / "skip_me.py").write_text("x = 1\n")
    data = src / "data.cfg"
    data.write_text("a = 1\n")
    # bytecode is written as users have it (this sandbox sets PYTHONDONTWRITEBYTECODE)
    env = {"PYTHONDONTWRITEBYTECODE": ""}
    if engine == "polling":
        shim = tmp_path / "shim" / "watchfiles"
        shim.mkdir(parents=True)
        (shim / "__init__.py").write_text("raise ImportError('hidden for the polling test')\n")
        env["PYTHONPATH"] = f"{shim.parent}:{REPO}"
    server = start_cli(["reloadme:app", "--port", "0", "--app-dir", str(src), "--reload",
                        "--reload-dir", str(src), "--reload-include", "*.cfg",
                        "--reload-exclude", "skip_*.py", "--reload-delay", "0.1",
                        "--workers", "2"], env=env)
    # logged once the watcher sees edits: no edit below needs repeating
    server.wait_for_log(rf"watching {re.escape(str(src))} for changes \({engine}, delay 0.1s\)")
    assert fetch(server) == (200, "v1")

    # same size, same second of mtime as the v1 the workers imported: a .pyc of v1 would pass
    # for up to date, so this checks that edited code is compiled afresh
    edit(server, module, APP_SOURCE.format(version="v2"),
         mtime_ns=os.stat(module).st_mtime_ns + 1)
    assert fetch(server) == (200, "v2")

    # a syntax error: the server stays up, reports the error, answers 500 with it
    edit(server, module, APP_SOURCE.format(version="v3") + "\ndef broken(:\n")
    status, text = fetch(server)
    assert status == 500
    assert "SyntaxError" in text and "reloadme.py" in text
    assert "SyntaxError" in server.log()
    assert server.proc.poll() is None

    edit(server, module, APP_SOURCE.format(version="v3"))
    assert fetch(server) == (200, "v3")

    # --reload-exclude: skip_me.py is ignored; --reload-include: data.cfg is watched. Both are
    # written in place; skip_me.py first, so if it were watched its line would come no later
    # than data.cfg's (same batch or an earlier one).
    mark = len(server.log())
    (src / "skip_me.py").write_text("x = 2\n")
    data.write_text("a = 2\n")
    reported(server, "data.cfg", mark)
    lines = re.findall(r"gworkers: (.*) changed, reloading", server.log()[mark:])
    assert not any("skip_me" in line for line in lines)
    # the workers restart for data.cfg: a request meanwhile is answered (by an old worker or
    # waits in the backlog for a new one), it does not fail
    assert fetch(server) == (200, "v3")
    reloaded(server, mark)
    assert fetch(server) == (200, "v3")
    # the workers wrote no bytecode of the app (see the v2 edit)
    assert not (src / "__pycache__").exists()


@pytest.mark.parametrize("engine", ["watchfiles", "polling"])
def test_an_edit_right_after_start_is_seen(tmp_path, engine):
    """``Reloader.start()`` returns once edits count ("watching ..." is logged then): an edit
    made at once is reported, no retry needed. Same path, other size: a polling snapshot
    within the filesystem's timestamp granularity still sees it."""
    from gworkers.reload import Reloader

    path = tmp_path / "a.py"
    path.write_text("x = 1\n")
    seen: list[list] = []
    reported_ = threading.Event()

    def on_change(paths) -> None:
        seen.append(paths)
        reported_.set()

    reloader = Reloader([str(tmp_path)], [], [], 0.05, on_change)
    reloader.engine = engine
    try:
        assert reloader.start()
        path.write_text("x = 22\n")
        assert reported_.wait(20)
    finally:
        reloader.stop()
        reloader.thread.join(5)
    assert seen[0] == [path.resolve()]
    assert not reloader.thread.is_alive()
