"""Helpers for the deploy tests: render a shipped recipe, run a program, talk HTTP to it.

A recipe is rendered by replacing its production paths and ports with the test's, and every
replaced string must occur in the file, so the file under test is always the one shipped.
"""

from __future__ import annotations

import getpass
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import DEADLINE, REPO, base_env, wait_until

DEPLOY = REPO / "deploy"
VENV_BIN = Path(sys.executable).parent
USER = getpass.getuser()


def require(program: str) -> str:
    """The program's path. A missing one fails the test in CI (CI=true) on the host, where
    .ci/run installs it, and skips it elsewhere, the other interpreters' chroots included
    (.ci/pythons sets GWORKERS_PYTHONS: they carry no nginx, chromium or HAProxy)."""
    path = shutil.which(program, path=os.pathsep.join([str(VENV_BIN), "/usr/sbin", "/usr/bin",
                                                         os.environ.get("PATH", "")]))
    if path is None:
        message = f"{program} is not installed (.ci/run installs it)"
        if os.environ.get("CI") == "true" and not os.environ.get("GWORKERS_PYTHONS"):
            pytest.fail(message)
        pytest.skip(message)
    return path


NGINX_CONF = """\
# test wrapper standing in for /etc/nginx/nginx.conf: everything under the prefix
user {user};
worker_processes 1;
error_log {prefix}/error.log info;
pid {prefix}/nginx.pid;
events {{ worker_connections {connections}; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    {http}
}}
"""


def start_nginx_program(prefix: Path, http: str, connections: int = 64) -> Program:
    """nginx in the foreground with everything (conf, pid, logs, temp files) under ``prefix``
    and ``http`` as its http block's body; the caller waits for it to listen and stops it."""
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=USER, prefix=prefix, connections=connections,
                                      http=http))
    return Program([require("nginx"), "-p", str(prefix), "-e", str(prefix / "error.log"),
                    "-c", str(conf), "-g", "daemon off;"], prefix / "stderr.log")


def render(src: Path, dest: Path, replacements: dict[str, str]) -> str:
    """Copy ``src`` to ``dest`` with each key replaced; a key the file lacks is a test error."""
    text = src.read_text()
    for old, new in replacements.items():
        if old not in text:
            raise AssertionError(f"{src.name} no longer contains {old!r}; update the test")
        text = text.replace(old, new)
    dest.write_text(text)
    return text


def app_dir(tmp: Path) -> Path:
    """A stand-in for /srv/app: main.py exporting ``app``, and a static/ directory."""
    app = tmp / "app"
    (app / "static").mkdir(parents=True, exist_ok=True)
    (app / "main.py").write_text("from tests.deploy.appmain import app  # noqa: F401\n")
    (app / "static" / "hello.txt").write_text("static hello\n")
    return app


def program_env(**extra: str) -> dict[str, str]:
    """The environment programs start with: gworkers importable, the venv first on PATH."""
    env = base_env(**extra)
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "/usr/bin:/bin")])
    return env


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Program:
    """A subprocess in its own session, output to a file, stopped (group-wide) by ``stop()``."""

    def __init__(self, cmd: list[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.cmd = cmd
        self.log_path = log
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(cmd, env=env or program_env(), cwd=cwd, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, predicate, message: str, timeout: float = DEADLINE):
        def check():
            result = predicate()
            if not result and not self.alive():
                raise AssertionError(f"{self.cmd[0]} exited ({self.proc.returncode}) before "
                                     f"{message}:\n{self.log()}")
            return result

        try:
            return wait_until(check, timeout, message=message)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- {self.log_path.name} ---\n{self.log()}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.alive():
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:  # anything left in the group (a master that died first leaves its workers)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.alive():
            self.proc.wait(5)
        self._log.close()


def connects(address: str | tuple[str, int]) -> bool:
    """Whether a TCP or unix stream socket at ``address`` accepts a connection now."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect(address)
        except OSError:
            return False
        return True


def open_socket(address: str | tuple[str, int], source: str | None = None,
                timeout: float = 10.0) -> socket.socket:
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if source:
            sock.bind((source, 0))
    sock.settimeout(timeout)
    sock.connect(address)
    return sock


class Response:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        import json

        return json.loads(self.body)


def request(address: str | tuple[str, int], path: str = "/", *, method: str = "GET",
            host: str = "example.com", headers: dict[str, str] | None = None,
            body: bytes | None = None, tls: ssl.SSLContext | None = None,
            source: str | None = None, timeout: float = 15.0) -> Response:
    """One HTTP/1.1 request over a socket we open ourselves, so the test picks the source
    address, the Host header and the TLS server name independently of where it connects."""
    sock = open_socket(address, source, timeout)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname=host.partition(":")[0])
    conn = http.client.HTTPConnection(host, timeout=timeout)
    conn.sock = sock
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def client_tls(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


def retry_bind(start, attempts: int = 5):
    """Start something on freshly picked ports, again if another process took one meanwhile."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return start()
        except PortTaken as exc:
            last = exc
    raise AssertionError(f"could not bind after {attempts} attempts: {last}")


class PortTaken(Exception):
    pass


def short_dir() -> tempfile.TemporaryDirectory:
    """Unix socket paths are limited to ~107 bytes; pytest's tmp paths can be longer."""
    return tempfile.TemporaryDirectory(prefix="gw-", dir=os.environ.get("GW_SOCK_DIR", "/tmp"))


def kill_leftovers(gunicorn_log: str) -> None:
    """SIGKILL Gunicorn processes named in a log that outlived their supervisor (a supervisor
    puts its children in their own process groups, out of reach of ``Program.stop``)."""
    pids = re.findall(r"Listening at: \S+ \((\d+)\)", gunicorn_log)
    pids += re.findall(r"Booting worker with pid: (\d+)", gunicorn_log)
    for pid in {int(p) for p in pids}:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"gunicorn" in cmdline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
