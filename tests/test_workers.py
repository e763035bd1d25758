"""Gunicorn glue (gworkers/workers.py): sockets, backlog, keepalive, max_requests, heartbeat,
CONFIG_KWARGS errors, TLS, implementation fallback. Each test starts a real Gunicorn."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from collections import Counter

import httpx
import pytest

from tests.conftest import CPYTHON, ResponseReader, base_env, write_worker_module

GET = b"GET %b HTTP/1.1\r\nHost: t\r\n\r\n"


def _subclass_module(kwargs: str) -> str:
    return f"""
from gworkers import Worker, H11Worker

class Custom(Worker):
    CONFIG_KWARGS = {kwargs}

class CustomH11(H11Worker):
    CONFIG_KWARGS = {kwargs}
"""


def _custom(worker: str) -> str:
    return "custom.Custom" if worker == "gworkers.Worker" else "custom.CustomH11"


# ---------------------------------------------------------------------------- sockets
def test_every_bound_socket_serves(start_server, worker, tmp_path):
    uds = tmp_path / "second.sock"
    server = start_server(worker=worker, bind=f"unix:{uds}",
                          args=["-b", "127.0.0.1:0", "-b", "127.0.0.1:0"])
    listening = server.addresses
    assert len(listening) == 3
    ports = [int(where.rsplit(":", 1)[1]) for where in listening if where.startswith("http")]
    assert len(set(ports)) == 2
    for port in ports:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert client.get("/").json()["server"] == ["127.0.0.1", port]
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(uds)), base_url="http://x") as client:
        scope = client.get("/").json()
        assert scope["server"][0] == str(uds)
        assert scope["client"] is None


def test_backlog_is_gunicorns(start_server, worker):
    """asyncio would re-listen with a backlog of 100; the worker passes cfg.backlog on."""
    server = start_server(worker=worker, args=["--backlog", "77"])
    with server.client() as client:  # the worker is serving: it has re-listened by now
        assert client.get("/pid").status_code == 200
    out = subprocess.run(["ss", "-Hltn", f"sport = :{server.port}"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == "LISTEN"
    assert out[2] == "77", out  # Send-Q of a listening socket is its backlog


def test_keepalive_is_idle_timeout(start_server, worker):
    server = start_server(worker=worker, args=["--keep-alive", "1"])
    with server.connect(timeout=15) as sock:
        sock.sendall(GET % b"/pid")
        reader = ResponseReader(sock)
        assert reader.read().status == 200
        # the server closes the idle connection; the socket timeout is only the deadline
        assert reader.closed()
        assert reader.buf == b""


# ---------------------------------------------------------------------------- max_requests
@pytest.mark.parametrize("jitter", [0, 3])
def test_max_requests_recycles_without_failures(start_server, worker, jitter):
    server = start_server(worker=worker, args=["-w", "1", "--max-requests", "3",
                                               "--max-requests-jitter", str(jitter)])
    pids = []
    for _ in range(12):
        with server.client() as client:  # a new connection per request
            response = client.get("/pid")
        assert response.status_code == 200
        pids.append(int(response.text))
    served = Counter(pids)
    assert len(served) >= 2  # recycled at least once
    for pid in list(served)[:-1]:  # every worker but the last ran to its limit
        assert 3 <= served[pid] <= 3 + jitter, served
    assert server.log().count("Autorestarting worker after current request.") >= len(served) - 1


# ---------------------------------------------------------------------------- heartbeat
def test_blocked_loop_is_killed_and_replaced(start_server, worker):
    server = start_server(worker=worker, args=["-w", "1", "--timeout", "2"])
    with server.client() as client:
        first = int(client.get("/pid").text)
    with server.client(timeout=30) as client:
        try:
            status = client.get("/block?60").status_code
        except httpx.HTTPError:
            status = None
    # the arbiter aborts the stuck worker; the request it was running gets a 500 or nothing
    assert status in (None, 500)
    server.wait_for_log(r"WORKER TIMEOUT")
    server.wait_for_log(r"event loop was blocked here")
    with server.client() as client:
        assert int(client.get("/pid").text) != first


# ---------------------------------------------------------------------------- CONFIG_KWARGS
@pytest.mark.parametrize(("kwargs", "named"), [
    ('{"no_such_setting": 1}', "no_such_setting"),
    ('{"loop": 5}', "loop"),
    ('{"timeout_keep_alive": "soon"}', "timeout_keep_alive"),
])
def test_bad_config_kwargs_is_boot_error(start_server, worker, tmp_path, kwargs, named):
    env = write_worker_module(tmp_path, "custom", _subclass_module(kwargs))
    server = start_server(worker=_custom(worker), env=env)
    assert server.wait() == 3  # the master halts: no respawn loop
    log = server.log()
    lines = [ln for ln in log.splitlines() if "cannot start worker" in ln]
    assert len(lines) == 1, log
    assert named in lines[0]
    assert "Traceback" not in log
    assert log.count("Booting worker") == 1
    assert "Worker failed to boot" in log


def test_config_kwargs_force_h11_and_asyncio(start_server, tmp_path):
    env = write_worker_module(tmp_path, "custom",
                              _subclass_module('{"loop": "asyncio", "http": "h11"}'))
    server = start_server(worker="custom.Custom", env=env)
    with server.client() as client:
        assert client.get("/impl").text == "asyncio.unix_events"
    assert "gworkers: asyncio loop, h11 parser" in server.log()


def test_implementations_per_worker_class(start_server, worker):
    server = start_server(worker=worker)
    with server.client() as client:
        impl = client.get("/impl").text
    log = server.log()
    if worker == "gworkers.Worker" and CPYTHON:
        assert impl == "uvloop"
        assert "gworkers: uvloop loop, httptools parser" in log
    else:
        assert impl == "asyncio.unix_events"
        assert "gworkers: asyncio loop, h11 parser" in log
    if worker == "gworkers.Worker" and not CPYTHON:
        # PyPy: no uvloop, no httptools; the worker says so once and serves on the fallbacks
        assert log.count("uvloop is not installed: using asyncio; httptools is not installed: "
                         "using h11") == 1
    else:
        assert "not installed" not in log


BLOCK_IMPORTS = """
import sys
for name in ("uvloop", "httptools"):
    sys.modules[name] = None  # import raises ImportError, as if not installed
"""


def test_worker_falls_back_when_extras_missing(start_server, tmp_path):
    env = write_worker_module(tmp_path, "sitecustomize", BLOCK_IMPORTS)
    server = start_server(worker="gworkers.Worker", env=env)
    with server.client() as client:
        assert client.get("/impl").text == "asyncio.unix_events"
        assert client.post("/echo", content=b"still served").text == "still served"
    log = server.log()
    # one line says what was missing and what is used instead
    notes = [ln for ln in log.splitlines() if "not installed" in ln]
    assert len(notes) == 1, notes
    assert "uvloop is not installed: using asyncio" in notes[0]
    assert "httptools is not installed: using h11" in notes[0]
    assert "Traceback" not in log


# ---------------------------------------------------------------------------- TLS
def test_tls_client_certificates(start_server, worker, tls_files):
    server = start_server(worker=worker, tls=tls_files,
                          args=["--ca-certs", tls_files["ca"], "--cert-reqs", "2"])
    ctx = ssl.create_default_context(cafile=tls_files["ca"])
    ctx.load_cert_chain(tls_files["client_cert"])
    with server.client(verify=ctx) as client:
        assert client.get("/pid").status_code == 200
    # without a client certificate the handshake (or the first read) fails; PyPy's ssl module
    # (7.3.19) trips over the server's "certificate required" alert while formatting its
    # SSLError, and raises RuntimeError from its own error path instead
    refused = (ssl.SSLError, OSError) if CPYTHON else (ssl.SSLError, OSError, RuntimeError)
    with pytest.raises(refused):
        with server.connect() as sock:
            sock.sendall(GET % b"/pid")
            if not sock.recv(1):
                raise ConnectionError("closed")


def test_tls_alpn_is_http11(start_server, worker, tls_files):
    server = start_server(worker=worker, tls=tls_files)
    ctx = ssl.create_default_context(cafile=tls_files["ca"])
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection((server.host, server.port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
            assert sock.selected_alpn_protocol() == "http/1.1"


@pytest.mark.parametrize("broken", ["wrong key", "garbage cert", "bad ciphers"])
def test_tls_context_failure_is_boot_error(start_server, worker, tls_files, tmp_path, broken):
    """A TLS context that cannot be built: exit code 3, one line, never plaintext."""
    tls = dict(tls_files)
    args = []
    if broken == "wrong key":
        other = tls_files["_ca"].issue_cert("localhost")
        tls["key"] = str(tmp_path / "wrong-key.pem")
        other.private_key_pem.write_to_path(tls["key"])
    elif broken == "garbage cert":
        tls["cert"] = str(tmp_path / "garbage.pem")
        (tmp_path / "garbage.pem").write_text("not a certificate\n")
    else:
        args = ["--ciphers", "NO-SUCH-CIPHER"]
    server = start_server(worker=worker, tls=tls, args=args)
    # never plaintext: whatever is listening until the master halts answers no HTTP
    try:
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            sock.sendall(GET % b"/pid")
            assert not sock.recv(100).startswith(b"HTTP/")
    except OSError:
        pass
    assert server.wait() == 3
    log = server.log()
    assert log.count("cannot build the TLS context") == 1, log
    assert log.count("Booting worker") == 1
    assert "Traceback" not in log


def test_tls_missing_cert_file_never_serves(worker, tls_files, tmp_path):
    """Gunicorn's master refuses a certfile that does not exist before any worker starts."""
    cmd = [sys.executable, "-m", "gunicorn", "-k", worker, "-b", "127.0.0.1:0",
           "--certfile", str(tmp_path / "missing.pem"), "--keyfile", tls_files["key"],
           "tests.apps:app"]
    done = subprocess.run(cmd, cwd=str(tmp_path), env=base_env(XDG_RUNTIME_DIR=str(tmp_path)),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "does not exist" in done.stderr
    assert "Listening at" not in done.stderr
    assert "Booting worker" not in done.stderr


def test_tls_ciphers_applied(start_server, worker, tls_files):
    server = start_server(worker=worker, tls=tls_files,
                          args=["--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"])

    def handshake(cipher: str) -> str:
        ctx = ssl.create_default_context(cafile=tls_files["ca"])
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.3 suites are not set by ciphers
        ctx.set_ciphers(cipher)
        with socket.create_connection((server.host, server.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
                return sock.cipher()[0]

    assert handshake("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384") == (
        "ECDHE-ECDSA-AES128-GCM-SHA256")
    with pytest.raises(ssl.SSLError):
        handshake("ECDHE-ECDSA-AES256-GCM-SHA384")
