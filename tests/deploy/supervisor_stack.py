"""supervisord -n with a shipped deploy/supervisor/*.conf snippet, adapted in paths and ports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.deploy.support import (
    DEPLOY,
    USER,
    VENV_BIN,
    Program,
    app_dir,
    free_port,
    kill_leftovers,
    program_env,
    render,
    require,
)

MAIN_CONF = """\
; test wrapper standing in for /etc/supervisor/supervisord.conf
[supervisord]
logfile={tmp}/supervisord.log
pidfile={tmp}/supervisord.pid
childlogdir={tmp}
loglevel=info

[unix_http_server]
file={sock_dir}/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{sock_dir}/supervisor.sock

[include]
files = {snippet}
"""


class Supervisor:
    def __init__(self, tmp: Path, sock_dir: str, snippet: str) -> None:
        self.tmp = tmp
        self.app = app_dir(tmp)
        self.port = free_port()
        self.unix_bind = f"{sock_dir}/gunicorn.sock"
        render(DEPLOY / "gunicorn.conf.py", self.app / "gunicorn.conf.py",
               {"unix:/run/gworkers/gunicorn.sock": f"unix:{self.unix_bind}"})
        self.log_dir = tmp / "logs"
        self.log_dir.mkdir()
        rendered = tmp / snippet
        replacements = {
            "/srv/app/.venv/bin/": f"{VENV_BIN}/",
            "/srv/app": str(self.app),
            "user=www-data": f"user={USER}",
            "/var/log/supervisor/": f"{self.log_dir}/",
        }
        if "fcgi" in snippet:
            replacements["tcp://127.0.0.1:8000"] = f"tcp://127.0.0.1:{self.port}"
        self.text = render(DEPLOY / "supervisor" / snippet, rendered, replacements)
        self.conf = tmp / "supervisord.conf"
        self.conf.write_text(MAIN_CONF.format(tmp=tmp, sock_dir=sock_dir, snippet=rendered))
        self.proc = Program([require("supervisord"), "-n", "-c", str(self.conf)],
                            tmp / "supervisord.out", env=program_env(WEB_CONCURRENCY="2"))

    def ctl(self, *args: str) -> str:
        result = subprocess.run([str(VENV_BIN / "supervisorctl"), "-c", str(self.conf), *args],
                                capture_output=True, text=True, timeout=60)
        return result.stdout + result.stderr

    def app_log(self) -> str:
        return "".join(p.read_text() for p in sorted(self.log_dir.glob("*.log")))

    def worker_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"Booting worker with pid: (\d+)", self.app_log())
                if Path(f"/proc/{p}").exists()]

    def stop(self) -> None:
        self.proc.stop()
        kill_leftovers(self.app_log())
