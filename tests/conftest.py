"""The only shared fixtures: start a real Gunicorn with our worker, get its address, stop it.

Servers run as subprocesses in their own session (so teardown can signal the group), with
stdout/stderr going to a file in the test's tmp dir (a PIPE could fill and block the server),
and are waited on with a deadline for Gunicorn's "Listening at" line, which names the real port.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WORKERS = ["gworkers.Worker", "gworkers.H11Worker"]
# The `standard` extra installs uvloop and httptools on CPython only (pyproject's markers): there
# gworkers.Worker must run on them; on PyPy it falls back to asyncio and h11, as documented.
CPYTHON = sys.implementation.name == "cpython"
PARSERS = ["httptools", "h11"] if CPYTHON else ["h11"]
DEADLINE = 20.0
# The console script, as users run it: a USR2 re-exec of "python -m gunicorn" would start Python
# with gunicorn's own directory first on sys.path, where gunicorn/http shadows the stdlib's http.
_SCRIPT = Path(sys.executable).with_name("gunicorn")
GUNICORN = [sys.executable, str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "gunicorn"]


def wait_until(predicate: Callable[[], object], timeout: float = DEADLINE, interval: float = 0.02,
               message: str = "condition") -> object:
    """Poll ``predicate`` until it returns something truthy or the deadline passes."""
    end = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(interval)


def gunicorn_has_setting(name: str) -> bool:
    """Whether the installed Gunicorn knows the setting ``name`` (``root_path`` came with 25)."""
    from gunicorn.config import KNOWN_SETTINGS

    return any(setting.name == name for setting in KNOWN_SETTINGS)


def gunicorn_takes_networks() -> bool:
    """Whether the installed Gunicorn accepts CIDR networks in ``forwarded_allow_ips`` (24.1+;
    Gunicorn 23 refuses them at startup, so networks go in the worker's CONFIG_KWARGS there)."""
    from gunicorn.config import validate_string_to_addr_list

    try:
        validate_string_to_addr_list("10.0.0.0/8")
    except ValueError:
        return False
    return True


def base_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("WEB_CONCURRENCY", None)
    if not CPYTHON:
        # PyPy's GC lets garbage pile up: a nursery of several MiB, and a major collection only
        # once the heap has grown by up to 1/8 of the RAM. With its defaults a worker's RSS says
        # when the GC last ran, not what the worker holds; small settings make the RSS bounds
        # of the flow-control tests measure buffering, as they do on CPython.
        env.setdefault("PYPY_GC_NURSERY", "512KB")
        env.setdefault("PYPY_GC_MAX_DELTA", "4MB")
    env.update(extra)
    return env


def connect_raw(server, timeout: float = 10.0, alpn: str | None = None) -> socket.socket:
    """A raw socket to anything with ``uds`` or ``host``/``port`` and ``tls`` (a started
    GunicornServer, or nginx's unix socket in front of one), TLS-wrapped when ``tls`` is set,
    offering ``alpn`` when given; the caller closes it."""
    if server.uds:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(server.uds)
    else:
        sock = socket.create_connection((server.host, server.port), timeout=timeout)
    if server.tls:
        ctx = ssl.create_default_context(cafile=server.tls["ca"])
        if alpn is not None:
            ctx.set_alpn_protocols([alpn])
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    return sock


class GunicornServer:
    """One Gunicorn master started for a test. ``stop()`` is always called by the fixture."""

    def __init__(self, tmp: Path, app: str, worker: str, args: list[str], env: dict[str, str],
                 bind: str, tls: dict[str, str] | None) -> None:
        self.tmp = tmp
        self.log_path = tmp / f"gunicorn-{time.monotonic_ns()}.log"
        self.tls = tls
        cmd = [*GUNICORN, "-k", worker, "-b", bind,
               "--log-level", "debug", "--graceful-timeout", "10"]
        if tls:
            cmd += ["--keyfile", tls["key"], "--certfile", tls["cert"]]
        cmd += args + [app]
        self.cmd = cmd
        run_dir = tmp / "run"
        run_dir.mkdir(exist_ok=True)
        env = base_env(XDG_RUNTIME_DIR=str(run_dir), **env)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=str(tmp), env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.host = ""
        self.port = 0
        self.uds: str | None = None
        try:
            match = self.wait_for_log(r"Listening at: (\S+)")
        except BaseException:
            self.stop()  # a server that never listened: reap it and close its log file
            raise
        # several binds are listed on one line, comma-separated: the first one is ours
        self.addresses = match.group(1).split(",")
        where = self.addresses[0]
        if where.startswith("unix:"):
            self.uds = where[5:]
        else:
            hostport = where.split("://", 1)[1]
            host, _, port = hostport.rpartition(":")
            self.host, self.port = host.strip("[]"), int(port)

    # ------------------------------------------------------------------ addresses
    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        if self.uds:
            return f"{self.scheme}://localhost"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def connect(self, timeout: float = 10.0, alpn: str | None = None) -> socket.socket:
        """A raw socket to the server (TLS-wrapped when the server speaks TLS)."""
        return connect_raw(self, timeout, alpn)

    def client(self, **kwargs):
        import httpx

        if self.uds:
            kwargs.setdefault("transport", httpx.HTTPTransport(uds=self.uds))
        if self.tls:
            kwargs.setdefault("verify", ssl.create_default_context(cafile=self.tls["ca"]))
        kwargs.setdefault("timeout", 15.0)
        return httpx.Client(base_url=self.url, **kwargs)

    # ------------------------------------------------------------------ logs and lifecycle
    def log(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def wait_for_log(self, pattern: str, timeout: float = DEADLINE, start: int = 0) -> re.Match:
        regex = re.compile(pattern)

        def found():
            if self.proc.poll() is not None and not regex.search(self.log(), start):
                raise AssertionError(
                    f"gunicorn exited ({self.proc.returncode}) before {pattern!r}:\n{self.log()}"
                )
            return regex.search(self.log(), start)

        try:
            return wait_until(found, timeout, message=pattern)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log ---\n{self.log()}") from None

    def worker_pids(self) -> list[int]:
        pids = [int(m) for m in re.findall(r"Booting worker with pid: (\d+)", self.log())]
        return [p for p in pids if Path(f"/proc/{p}").exists()]

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = DEADLINE) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)
        else:
            try:  # workers left behind by a crashed master
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._log.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> dict[str, str]:
    """A trustme CA and a certificate for localhost/127.0.0.1/::1, as files."""
    import trustme

    tmp = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1", "::1")
    paths = {"ca": tmp / "ca.pem", "cert": tmp / "cert.pem", "key": tmp / "key.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(paths["cert"]), append=True)
    cert.private_key_pem.write_to_path(str(paths["key"]))
    client = ca.issue_cert("client@example.com")
    paths["client_cert"] = tmp / "client.pem"
    client.private_key_and_cert_chain_pem.write_to_path(str(paths["client_cert"]))
    result = {k: str(v) for k, v in paths.items()}
    result["_ca"] = ca  # type: ignore[assignment]
    return result


def _starter(tmp: Path, servers: list[GunicornServer]) -> Callable[..., GunicornServer]:
    def start(app: str = "tests.apps:app", worker: str = "gworkers.Worker",
              args: list[str] | None = None, env: dict[str, str] | None = None,
              bind: str = "127.0.0.1:0", tls: dict | None = None) -> GunicornServer:
        server = GunicornServer(tmp, app, worker, list(args or []), dict(env or {}), bind, tls)
        servers.append(server)
        return server

    return start


@pytest.fixture
def start_server(tmp_path) -> Iterator[Callable[..., GunicornServer]]:
    """``start_server(app="tests.apps:app", worker=..., args=[...], env={}, bind=..., tls=...)``."""
    servers: list[GunicornServer] = []
    yield _starter(tmp_path, servers)
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def start_module_server(tmp_path_factory) -> Iterator[Callable[..., GunicornServer]]:
    """``start_server`` whose servers live for the whole test module: for modules that run
    many independent requests (the raw-request corpus) against one server per worker class."""
    servers: list[GunicornServer] = []
    yield _starter(tmp_path_factory.mktemp("module-server"), servers)
    for server in servers:
        server.stop()


@pytest.fixture(params=WORKERS)
def worker(request) -> str:
    return request.param


@pytest.fixture(params=["plain", "tls"])
def tls_mode(request, tls_files) -> dict | None:
    return tls_files if request.param == "tls" else None


@pytest.fixture
def server(start_server, worker, tls_mode) -> GunicornServer:
    """The default app under each worker class, with and without TLS."""
    return start_server(worker=worker, tls=tls_mode)


def read_until_close(sock: socket.socket, stop_at_timeout: bool = False) -> bytes:
    """Everything the server sends until it closes. The socket's timeout bounds the wait: it
    raises (a hang is a failure) unless ``stop_at_timeout``, which returns what arrived."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if not stop_at_timeout:
                raise
            break
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def raw_request(server: GunicornServer, data: bytes, timeout: float = 10.0,
                shutdown_write: bool = False) -> bytes:
    """Send raw bytes, read until the server closes (or the timeout), return all it sent."""
    sock = server.connect(timeout)
    try:
        sock.sendall(data)
        if shutdown_write and not server.tls:
            sock.shutdown(socket.SHUT_WR)
        return read_until_close(sock, stop_at_timeout=True)
    finally:
        sock.close()


@pytest.fixture
def config_worker(tmp_path) -> Callable[..., tuple[str, dict[str, str]]]:
    """``config_worker(worker, **CONFIG_KWARGS) -> (worker class path, env)``.

    Writes a module into tmp_path with a subclass of ``worker`` carrying ``CONFIG_KWARGS`` (short
    timeouts, limits...) and returns the class path plus the env putting tmp_path on PYTHONPATH,
    both to hand to ``start_server``.
    """
    count = [0]

    def make(worker: str, **kwargs) -> tuple[str, dict[str, str]]:
        count[0] += 1
        return write_config_worker(tmp_path, f"gw_config_{count[0]}_{os.getpid()}", worker,
                                   **kwargs)

    return make


def write_config_worker(directory: Path, module: str, worker: str,
                        **kwargs) -> tuple[str, dict[str, str]]:
    """``config_worker`` for any directory (a module-scoped server's): the module ``module``
    in ``directory`` with a subclass of ``worker`` carrying ``kwargs`` as CONFIG_KWARGS."""
    base_module, _, base_name = worker.rpartition(".")
    (directory / f"{module}.py").write_text(
        f"from {base_module} import {base_name} as _Base\n\n\n"
        f"class ConfigWorker(_Base):\n    CONFIG_KWARGS = {kwargs!r}\n"
    )
    path = os.pathsep.join([str(directory), str(REPO)])
    return f"{module}.ConfigWorker", {"PYTHONPATH": path}


# --------------------------------------------------------------------------- WebSocket servers
WS_ENGINES = ["websockets", "wsproto"]
_WS_MODULE = """\
import gworkers

KW = {kwargs!r}


class Worker(gworkers.Worker):
    CONFIG_KWARGS = KW


class H11Worker(gworkers.H11Worker):
    CONFIG_KWARGS = KW
"""


def ws_worker_module(directory: Path, engine: str, **config_kwargs: object) -> tuple[Path, dict]:
    """Write ``gwtest_ws.py`` (worker subclasses whose CONFIG_KWARGS pick the engine) into
    ``directory``; return it and the env putting it on the Gunicorn subprocess's PYTHONPATH."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "gwtest_ws.py").write_text(_WS_MODULE.format(kwargs={"ws": engine, **config_kwargs}))
    env = {"PYTHONPATH": os.pathsep.join([str(directory), str(REPO)])}
    return directory, env


def ws_worker_class(worker: str) -> str:
    return "gwtest_ws.H11Worker" if worker.endswith("H11Worker") else "gwtest_ws.Worker"


@pytest.fixture(params=WS_ENGINES)
def ws_engine(request) -> str:
    return request.param


@pytest.fixture
def start_ws_server(start_server, config_worker, tmp_path) -> Callable[..., GunicornServer]:
    """``start_ws_server(worker, engine, app=..., tls=None, args=[], env={}, **CONFIG_KWARGS)``:
    Gunicorn with ``worker`` (a gworkers class name) serving WebSockets with ``engine``. The
    app's marker file (``GW_WS_MARKER``) is ``server.marker``."""

    def start(worker: str, engine: str, app: str = "tests.ws_apps:app", tls: dict | None = None,
              args: list[str] | None = None, env: dict[str, str] | None = None,
              **config_kwargs: object) -> GunicornServer:
        worker_class, extra = config_worker(worker, ws=engine, **config_kwargs)
        marker = tmp_path / f"ws-marker-{time.monotonic_ns()}.txt"
        marker.touch()
        extra["GW_WS_MARKER"] = str(marker)
        extra.update(env or {})
        server = start_server(app=app, worker=worker_class, args=args, env=extra, tls=tls)
        server.marker = marker  # type: ignore[attr-defined]
        return server

    return start


@pytest.fixture(scope="module", params=[(w, e) for w in WORKERS for e in WS_ENGINES],
                ids=[f"{w.rsplit('.', 1)[1]}-{e}" for w in WORKERS for e in WS_ENGINES])
def ws_server(request, tmp_path_factory) -> Iterator[GunicornServer]:
    """One server per worker class x WebSocket engine, shared by a module's tests (each test
    uses its own path tag, so marker lines do not mix). ws_max_size is 2 MiB here."""
    worker, engine = request.param
    tmp = tmp_path_factory.mktemp("ws")
    _, env = ws_worker_module(tmp / "mod", engine, ws_max_size=2 * 1024 * 1024)
    marker = tmp / "marker.txt"
    marker.touch()
    env["GW_WS_MARKER"] = str(marker)
    server = GunicornServer(tmp, "tests.ws_apps:app", ws_worker_class(worker), [], env,
                            "127.0.0.1:0", None)
    server.marker = marker  # type: ignore[attr-defined]
    server.engine = engine  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- gworkers-run


class CliServer(GunicornServer):
    """``python -m gworkers ARGS`` (== gworkers-run), started and waited on like GunicornServer.

    ``wait=False`` skips waiting for the "Listening at" line (for log levels that hide it);
    ``pass_fds`` hands sockets the test bound itself to ``--fd``; ``argv0`` replaces
    ``python -m gworkers`` (e.g. ``[python, script.py]`` for ``gworkers.run()`` in a script).
    """

    def __init__(self, tmp: Path, args: list[str], env: dict[str, str] | None = None,
                 tls: dict[str, str] | None = None, cwd: Path | None = None,
                 pass_fds: tuple[int, ...] = (), wait: bool = True,
                 argv0: list[str] | None = None) -> None:
        self.tmp = tmp
        self.log_path = tmp / f"gworkers-run-{time.monotonic_ns()}.log"
        self.tls = tls
        self.cmd = (argv0 or [sys.executable, "-m", "gworkers"]) + list(args)
        run_dir = tmp / "run"
        run_dir.mkdir(exist_ok=True)
        full_env = base_env(XDG_RUNTIME_DIR=str(run_dir), **(env or {}))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, cwd=str(cwd or tmp), env=full_env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     pass_fds=pass_fds)
        self.host = ""
        self.port = 0
        self.uds = None
        if wait:
            try:
                where = self.wait_for_log(r"Listening at: (\S+)").group(1)
            except BaseException:
                self.stop()
                raise
            if where.startswith("unix:"):
                self.uds = where[5:]
            else:
                host, _, port = where.split("://", 1)[1].rpartition(":")
                self.host, self.port = host.strip("[]"), int(port)


@pytest.fixture
def start_cli(tmp_path) -> Iterator[Callable[..., CliServer]]:
    """``start_cli(args, env=None, tls=None, cwd=None, pass_fds=(), wait=True, argv0=None)``."""
    servers: list[CliServer] = []

    def start(args: list[str], **kwargs) -> CliServer:
        server = CliServer(tmp_path, list(args), **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def run_cli(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = DEADLINE, argv0: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m gworkers ARGS`` expected to exit on its own; the group is killed on timeout."""
    cmd = (argv0 or [sys.executable, "-m", "gworkers"]) + list(args)
    proc = subprocess.Popen(cmd, cwd=str(cwd) if cwd else None, env=base_env(**(env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{cmd} did not exit:\n{err.decode(errors='replace')}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out.decode(errors="replace"),
                                       err.decode(errors="replace"))


class RawResponse:
    """One HTTP/1.x response read off a raw socket, framing checked strictly."""

    def __init__(self, status_line: bytes, headers: list[tuple[bytes, bytes]], body: bytes,
                 framing: str) -> None:
        self.status_line = status_line
        self.status = int(status_line.split(b" ", 2)[1])
        self.headers = headers
        self.body = body
        self.framing = framing  # "length", "chunked", "close" or "none"

    def header(self, name: bytes) -> bytes | None:
        values = [v for n, v in self.headers if n == name]
        return b",".join(values) if values else None

    def names(self) -> list[bytes]:
        return [n for n, _ in self.headers]


class ResponseReader:
    """Reads successive responses from one socket; raises AssertionError on a malformed one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.eof = False

    def _more(self) -> bool:
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            if not self._more():
                raise AssertionError(f"connection closed before {marker!r}: {self.buf[:200]!r}")
        i = self.buf.index(marker) + len(marker)
        data, self.buf = self.buf[:i], self.buf[i:]
        return data

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._more():
                raise AssertionError(f"connection closed after {len(self.buf)} of {n} bytes")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def closed(self) -> bool:
        """True when the peer closed the connection with nothing more to read."""
        return not self.buf and not self._more()

    def read(self, method: bytes = b"GET") -> RawResponse:
        head = self._until(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        status_line = lines[0]
        assert status_line.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), status_line
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            assert sep and name and name == name.strip(), f"malformed header line {line!r}"
            headers.append((name.lower(), value.strip()))
        response = RawResponse(status_line, headers, b"", "none")
        status = response.status
        te = response.header(b"transfer-encoding")
        cl = response.header(b"content-length")
        if method == b"HEAD" or status in (204, 304) or 100 <= status < 200:
            return response
        if te is not None:
            assert cl is None, "both Transfer-Encoding and Content-Length"
            assert te.lower() == b"chunked", te
            body = []
            while True:
                size_line = self._until(b"\r\n")[:-2]
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while self._until(b"\r\n") != b"\r\n":  # trailers
                        pass
                    break
                body.append(self._exactly(size))
                assert self._exactly(2) == b"\r\n", "chunk not followed by CRLF"
            response.body, response.framing = b"".join(body), "chunked"
        elif cl is not None:
            response.body, response.framing = self._exactly(int(cl)), "length"
        else:
            while self._more():
                pass
            response.body, self.buf, response.framing = self.buf, b"", "close"
        return response


def proc_status(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` field in kB (VmRSS, VmHWM, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def write_worker_module(tmp: Path, name: str, body: str) -> dict[str, str]:
    """Write ``<tmp>/<name>.py`` (a CONFIG_KWARGS worker subclass, a test app...) and return the
    ``env`` that puts ``tmp`` on the Gunicorn subprocess's PYTHONPATH."""
    (tmp / f"{name}.py").write_text(body)
    return {"PYTHONPATH": os.pathsep.join([str(REPO), str(tmp)])}
