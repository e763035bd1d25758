"""deploy/systemd: socket activation and Type=notify, without systemd as PID 1.

``systemd-socket-activate`` plays systemd's part for gworkers.socket: it binds the unit's
ListenStream, waits for the first connection, then execs the service's ExecStart with
LISTEN_FDS/LISTEN_PID set, exactly as systemd would. The test binds the NOTIFY_SOCKET itself.
"""

from __future__ import annotations

import array
import configparser
import os
import re
import runpy
import shlex
import signal
import socket
import struct
from pathlib import Path

from tests.deploy.support import (
    DEPLOY,
    VENV_BIN,
    Program,
    app_dir,
    connects,
    program_env,
    render,
    request,
    require,
    short_dir,
)

UNITS = DEPLOY / "systemd"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # keys are case-sensitive in systemd
    parser.read_string((UNITS / name).read_text())
    return parser


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value.strip())
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


def test_units_are_consistent():
    service, sock = unit("gworkers.service")["Service"], unit("gworkers.socket")["Socket"]
    conf = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    assert service["Type"] == "notify"
    assert service["KillMode"] == "mixed"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    # systemd must not SIGKILL before Gunicorn's own graceful shutdown can finish
    assert seconds(service["TimeoutStopSec"]) > conf["graceful_timeout"]
    # the socket nginx connects to is the one the unit listens on
    assert f"server unix:{sock['ListenStream']} " in (DEPLOY / "nginx" / "gworkers.conf").read_text()
    # ExecStart runs gunicorn itself (LISTEN_PID must be Gunicorn's pid): no shell, no wrapper
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == "gunicorn"


def _receive_notify(notify: socket.socket) -> tuple[str, int]:
    """One datagram and the sender's pid (SCM_CREDENTIALS, as systemd checks NotifyAccess)."""
    cred_size = struct.calcsize("3i")
    data, ancdata, _flags, _addr = notify.recvmsg(4096, socket.CMSG_SPACE(cred_size))
    pid = 0
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = array.array("i", payload[:cred_size])[0]
    return data.decode(), pid


def test_socket_activation_and_ready_notification(tmp_path):
    activate = require("systemd-socket-activate")
    app = app_dir(tmp_path)
    with short_dir() as d:
        listen = f"{d}/gunicorn.sock"
        unused_bind = f"{d}/from-conf.sock"
        render(DEPLOY / "gunicorn.conf.py", app / "gunicorn.conf.py",
               {"unix:/run/gworkers/gunicorn.sock": f"unix:{unused_bind}"})
        service = tmp_path / "gworkers.service"
        render(UNITS / "gworkers.service", service, {
            "/srv/app/.venv/bin/": f"{VENV_BIN}/", "/srv/app": str(app)})
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.read_string(service.read_text())
        exec_start = shlex.split(parser["Service"]["ExecStart"])
        assert parser["Service"]["WorkingDirectory"] == str(app)

        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(f"{d}/notify.sock")
        notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        notify.settimeout(30)
        # systemd-socket-activate passes on only a few variables: the unit's Environment=,
        # and PYTHONPATH standing in for gworkers being installed in the app's venv
        env_args = []
        for assignment in ["WEB_CONCURRENCY=2", f"NOTIFY_SOCKET={d}/notify.sock",
                           f"PYTHONPATH={program_env()['PYTHONPATH']}",
                           *shlex.split(parser["Service"].get("Environment", ""))]:
            env_args += ["-E", assignment]
        proc = Program([activate, "-l", listen, *env_args, *exec_start],
                       tmp_path / "activate.log", cwd=app)
        try:
            proc.wait_for(lambda: "Listening on" in proc.log(), "the activation socket")
            # the first connection starts Gunicorn, which answers it on the inherited socket
            r = request(listen, "/pid", timeout=30)
            assert r.status == 200
            assert int(r.body) != proc.proc.pid  # served by a worker, not the master
            message, sender = _receive_notify(notify)
            assert "READY=1" in message.split("\n")
            assert sender == proc.proc.pid  # the main pid: NotifyAccess=main accepts it
            log = proc.log()
            assert f"Listening at: unix:{listen}" in log
            assert not os.path.exists(unused_bind)  # LISTEN_FDS wins over the config's bind

            # ExecReload: HUP replaces the workers; the socket never goes away
            before = set(re.findall(r"Booting worker with pid: (\d+)", log))
            reload_cmd = parser["Service"]["ExecReload"].replace("$MAINPID", str(proc.proc.pid))
            argv = shlex.split(reload_cmd)
            assert argv[0] == "/bin/kill" and argv[1] == "-HUP"
            os.kill(int(argv[2]), signal.SIGHUP)
            proc.wait_for(lambda: len(set(re.findall(r"Booting worker with pid: (\d+)",
                                                     proc.log())) - before) >= 2,
                          "new workers after HUP")
            for _ in range(5):
                assert request(listen, "/").status == 200
            # stop (KillMode=mixed: TERM to the main process) ends everything in time
            proc.proc.send_signal(signal.SIGTERM)
            assert proc.proc.wait(30) == 0
            assert not connects(listen)
        finally:
            notify.close()
            proc.stop()

