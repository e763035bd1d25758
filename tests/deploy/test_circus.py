"""deploy/circus: circusd really started on the shipped circus.ini (paths and ports adapted).

circusd binds [socket:web] once and keeps it for its whole life; Gunicorn gets it as
``fd://$(circus.sockets.web)``. A restart of the watcher therefore refuses nothing.
"""

from __future__ import annotations

import grp
import os
import re
import signal
import subprocess
from pathlib import Path

from tests.conftest import wait_until
from tests.deploy.support import (
    DEPLOY,
    USER,
    VENV_BIN,
    Program,
    app_dir,
    connects,
    free_port,
    kill_leftovers,
    program_env,
    render,
    request,
    require,
    short_dir,
)
from tests.deploy.test_supervisor import Hammer


def test_circus_owns_the_socket(tmp_path):
    circusd = require("circusd")
    app = app_dir(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    group = grp.getgrgid(os.getgid()).gr_name
    with short_dir() as d:
        render(DEPLOY / "gunicorn.conf.py", app / "gunicorn.conf.py",
               {"unix:/run/gworkers/gunicorn.sock": f"unix:{d}/unused.sock"})
        port = free_port()
        conf = tmp_path / "circus.ini"
        text = render(DEPLOY / "circus" / "circus.ini", conf, {
            "ipc:///run/gworkers/": f"ipc://{d}/",
            "port = 8000": f"port = {port}",
            "/srv/app/.venv/bin/": f"{VENV_BIN}/",
            "/srv/app": str(app),
            "uid = www-data": f"uid = {USER}",
            "gid = www-data": f"gid = {group}",
            "/var/log/circus/": f"{logs}/",
        })
        assert "--bind fd://$(circus.sockets.web)" in text
        endpoint = f"ipc://{d}/circus.sock"
        proc = Program([circusd, str(conf)], tmp_path / "circusd.log",
                       env=program_env(WEB_CONCURRENCY="2"), cwd=tmp_path)

        def ctl(*args: str) -> str:
            result = subprocess.run([str(VENV_BIN / "circusctl"), "--endpoint", endpoint,
                                     "--timeout", "60", *args],
                                    capture_output=True, text=True, timeout=90)
            return result.stdout + result.stderr

        def app_log() -> str:
            path = logs / "gworkers.log"
            return path.read_text() if path.exists() else ""

        def workers() -> list[int]:
            return [int(p) for p in re.findall(r"Booting worker with pid: (\d+)", app_log())
                    if Path(f"/proc/{p}").exists()]

        address = ("127.0.0.1", port)
        try:
            proc.wait_for(lambda: connects(address), "circus socket")
            proc.wait_for(lambda: len(workers()) >= 2, "two workers")
            assert request(address, "/").json()["type"] == "http"
            assert not os.path.exists(f"{d}/unused.sock")  # the inherited fd is served

            # a killed worker is replaced by the Gunicorn master
            victim = workers()[0]
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: victim not in workers() and len(workers()) >= 2,
                       message="replacement worker")

            # restarting the watcher keeps the socket: nothing is refused meanwhile
            hammer = Hammer(address)
            try:
                wait_until(lambda: hammer.ok >= 5, message="requests flowing")
                first = set(workers())
                out = ctl("restart", "gworkers")
                assert "ok" in out, out
                wait_until(lambda: len(set(workers()) - first) >= 2, message="new workers")
                before = hammer.ok
                wait_until(lambda: hammer.ok >= before + 20, message="requests after restart")
            finally:
                hammer.stop()
            assert hammer.errors == []
            assert len(hammer.pids) > 2  # answered by the old and the new workers

            # a killed master is restarted by circus, on the same socket
            master = int(re.findall(r"Starting gunicorn .*\n.*?\[(\d+)\] \[INFO\] Listening",
                                    app_log())[-1])
            os.kill(master, signal.SIGKILL)
            wait_until(lambda: app_log().count("Listening at") >= 3, message="new master")
            assert request(address, "/").status == 200
        finally:
            proc.stop()
            kill_leftovers(app_log())
