"""gworkers-run (``python -m gworkers``): each option, started for real, seen in a response or log.

Servers are shared where one can show several options: ``defaults`` against ``custom`` shows
that each option moves the behaviour away from its default.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import ssl
import subprocess
import threading

import httpx
import pytest

from .conftest import CPYTHON, REPO, run_cli, wait_until

APP = "tests.cli_app:app"
UVICORN_OPTIONS = [
    "--host", "--port", "--uds", "--fd", "--reload", "--reload-dir", "--reload-include",
    "--reload-exclude", "--reload-delay", "--workers", "--loop", "--http", "--ws", "--ws-max-size",
    "--ws-max-queue", "--ws-ping-interval", "--ws-ping-timeout", "--ws-per-message-deflate",
    "--lifespan", "--interface", "--env-file", "--log-config", "--log-level", "--access-log",
    "--no-access-log", "--use-colors", "--no-use-colors", "--proxy-headers", "--no-proxy-headers",
    "--server-header", "--no-server-header", "--date-header", "--no-date-header",
    "--forwarded-allow-ips", "--root-path", "--limit-concurrency", "--backlog",
    "--limit-max-requests", "--limit-max-requests-jitter", "--timeout-keep-alive",
    "--timeout-graceful-shutdown", "--ssl-keyfile", "--ssl-certfile", "--ssl-keyfile-password",
    "--ssl-version", "--ssl-cert-reqs", "--ssl-ca-certs", "--ssl-ciphers", "--header",
    "--version", "--app-dir", "--h11-max-incomplete-event-size", "--factory", "--help",
    "--reset-contextvars", "--timeout-worker-healthcheck", "--http2",
]


def info(server, path: str = "/", **kwargs) -> dict:
    with server.client() as client:
        response = client.get(path, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


# --------------------------------------------------------------------------- help and version


def test_help_lists_every_uvicorn_option_with_its_default():
    result = run_cli(["--help"])
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for option in UVICORN_OPTIONS:
        assert re.search(rf"(^|[\s,\[]){re.escape(option)}\b", text), option
    # every option but --help/--version states its default
    entries = re.findall(r"^  (--[\w-]+)", text, re.M)
    described = re.split(r"^  --", text, flags=re.M)[1:]
    for entry, body in zip(entries, described, strict=True):
        if entry not in ("--help", "--version"):
            assert "[default:" in body, entry
    text = " ".join(text.split())
    assert "[default: 127.0.0.1]" in text and "[default: 8000]" in text
    assert "[default: 2048]" in text and "[default: $WEB_CONCURRENCY or 1]" in text
    assert "[default: $FORWARDED_ALLOW_IPS or 127.0.0.1,::1]" in text


def test_version():
    import gunicorn

    import gworkers

    result = run_cli(["--version"])
    assert result.returncode == 0
    assert re.fullmatch(
        rf"gworkers {re.escape(gworkers.__version__)} with gunicorn "
        rf"{re.escape(gunicorn.__version__)}, Python 3\.\d+\.\d+ \(\w+\) on \w+\n", result.stdout
    ), result.stdout


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def busy_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


BAD_BEFORE_START = [
    # (args, exit code, message)
    (["--bogus", APP], 2, r"unrecognized arguments: --bogus"),
    ([APP, "--port", "http"], 2, r"argument --port: expected an integer, got 'http'"),
    ([APP, "--port", "70000"], 2, r"argument --port: must be a port number"),
    ([APP, "--workers", "0"], 2, r"argument --workers: must be at least 1"),
    ([APP, "--log-level", "loud"], 2, r"argument --log-level: expected one of critical"),
    ([APP, "--header", "novalue"], 2, r"argument --header: header 'novalue' is not"),
    ([APP, "--forwarded-allow-ips", "nonsense"], 2, r"argument --forwarded-allow-ips"),
    ([], 2, r"required: APP"),
    (["tests.cli_app"], 2, r"must be \"<module>:<attribute>\""),
    ([APP, "--uds", "/tmp/x.sock", "--fd", "0"], 2, r"uds and fd cannot be used together"),
    ([APP, "--env-file", "/nonexistent.env"], 2, r"env_file: no such file"),
    ([APP, "--log-config", "/nonexistent.json"], 2, r"log_config: no such file"),
    ([APP, "--ssl-certfile", "/nonexistent.pem"], 2, r"ssl_certfile: no such file"),
    ([APP, "--reload", "--reload-dir", "/nonexistent"], 2, r"no such directory"),
    ([APP, "--fd", "987"], 2, r"fd: 987 is not an open file descriptor"),
    (["nosuchmodule:app", "--port", "0"], 3, r"could not import module 'nosuchmodule'"),
]


@pytest.mark.parametrize(("args", "code", "message"), BAD_BEFORE_START,
                         ids=[" ".join(c[0])[:40] or "no-app" for c in BAD_BEFORE_START])
def test_bad_input_before_start(args, code, message):
    result = run_cli(args)
    assert result.returncode == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert lines[0].startswith("gworkers-run: error: ")


def test_bad_environment_default():
    result = run_cli([APP], env={"WEB_CONCURRENCY": "many"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "gworkers-run: error: $WEB_CONCURRENCY: expected an integer, got 'many'"
    ]


def test_port_in_use(busy_port):
    result = run_cli([APP, "--port", str(busy_port)])
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        f"gworkers-run: error: cannot listen on 127.0.0.1:{busy_port}: address already in use"
    ]


def test_live_unix_socket_is_not_stolen(tmp_path):
    path = tmp_path / "live.sock"
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(path))
    live.listen()
    try:
        result = run_cli([APP, "--uds", str(path)])
    finally:
        live.close()
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        f"gworkers-run: error: cannot listen on unix:{path}: address already in use"
    ]


@pytest.mark.parametrize(("app", "message"), [
    ("tests.cli_app:nothere", r"attribute 'nothere' not found in module 'tests.cli_app'"),
    ("tests.nosuchmodule:app", r"could not import module 'tests.nosuchmodule'"),
])
def test_bad_app_in_worker_halts_once(app, message):
    """Found by the worker: one error line, exit 3, no traceback, no respawn loop."""
    result = run_cli([app, "--port", "0", "--workers", "2"])
    assert result.returncode == 3
    # at most once per worker: each of the two is booted once, none is respawned
    assert 1 <= len(re.findall(message, result.stderr)) <= 2
    assert len(re.findall(r"Booting worker", result.stderr)) <= 2
    assert "Traceback" not in result.stderr


def test_ssl_wrong_password(tmp_path, tls_files):
    key = encrypted_key(tmp_path, tls_files, b"right")
    result = run_cli([APP, "--port", "0", "--ssl-certfile", tls_files["cert"],
                      "--ssl-keyfile", str(key), "--ssl-keyfile-password", "wrong"])
    assert result.returncode == 3
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "cannot load the TLS certificate/key" in lines[0], result.stderr
    # without a password: the same clean error, never a prompt on the terminal
    result = run_cli([APP, "--port", "0", "--ssl-certfile", tls_files["cert"],
                      "--ssl-keyfile", str(key)])
    assert result.returncode == 3 and len(result.stderr.splitlines()) == 1


# --------------------------------------------------------------------------- defaults vs custom


@pytest.fixture
def defaults(start_cli):
    return start_cli([APP, "--port", "0", "--log-level", "trace"])


def test_defaults(defaults):
    server = defaults
    assert server.host == "127.0.0.1"  # --host default
    with server.client() as client:
        response = client.get("/", headers={"x-forwarded-for": "203.0.113.7"})
    body = response.json()
    assert response.headers["server"] == "gworkers"
    assert "date" in response.headers
    assert body["root_path"] == ""
    assert body["client"][0] == "203.0.113.7"  # proxy headers on, 127.0.0.1 trusted
    assert body["marker"] == "inherited"  # no --reset-contextvars
    assert body["state"] == ["lifespan"]  # lifespan auto ran
    assert body["loop"].startswith("uvloop" if CPYTHON else "asyncio")  # --loop auto
    log = server.log()
    assert re.search(r"^\s+backlog: 2048$", log, re.M)
    assert re.search(r"^\s+timeout: 5$", log, re.M)
    assert re.search(r"^\s+workers: 1$", log, re.M)
    assert re.search(r"^\s+control_socket_disable: True$", log, re.M) or "control_socket" not in log
    assert "\x1b[" not in log  # not a tty: no colours
    assert "[DEBUG]" in log  # --log-level trace is Gunicorn's debug


def listen_queue(port: int) -> int:
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True,
                         check=True).stdout
    return int(out.split()[2])


def test_custom_options(start_cli):
    server = start_cli([
        APP, "--port", "0", "--no-server-header", "--no-date-header", "--header", "x-a:1",
        "--header", "X-B: two", "--root-path", "/api", "--forwarded-allow-ips", "10.9.9.9",
        "--reset-contextvars", "--lifespan", "off", "--loop", "asyncio", "--http", "h11",
        "--backlog", "77", "--h11-max-incomplete-event-size", "1024",
        "--limit-max-requests", "3", "--limit-max-requests-jitter", "0",
    ])
    with server.client() as client:
        response = client.get("/", headers={"x-forwarded-for": "203.0.113.7"})
    body = response.json()
    assert "server" not in response.headers
    assert "date" not in response.headers
    assert response.headers["x-a"] == "1" and response.headers["x-b"] == "two"
    assert body["root_path"] == "/api"
    assert body["client"][0] == "127.0.0.1"  # 127.0.0.1 is not in --forwarded-allow-ips
    assert body["marker"] == "fresh"
    assert body["state"] == []
    assert body["loop"] == "asyncio.unix_events"
    assert listen_queue(server.port) == 77
    # --h11-max-incomplete-event-size: a 2 KiB head is too large
    sock = server.connect()
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 2048 + b"\r\n\r\n")
    assert sock.recv(100).startswith(b"HTTP/1.1 431")
    sock.close()
    # --limit-max-requests 3: the worker is replaced after its third request
    first = body["pid"]
    for _ in range(2):
        info(server)
    wait_until(lambda: info(server)["pid"] != first, message="a new worker")


def test_no_proxy_headers(start_cli):
    server = start_cli([APP, "--port", "0", "--no-proxy-headers", "--forwarded-allow-ips", "*"])
    body = info(server, headers={"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https"})
    assert body["client"][0] == "127.0.0.1" and body["scheme"] == "http"


def test_interface_option(start_cli):
    # An ASGI3 app declared as WSGI is called the WSGI way and fails: the option is obeyed.
    server = start_cli([APP, "--port", "0", "--interface", "wsgi"])
    with server.client() as client:
        assert client.get("/").status_code == 500
    server = start_cli(["tests.apps:asgi2_app", "--port", "0", "--interface", "asgi2"])
    with server.client() as client:
        assert client.get("/x").text == "asgi2 /x"


def test_timeout_keep_alive(start_cli):
    server = start_cli([APP, "--port", "0", "--timeout-keep-alive", "1"])
    sock = server.connect(timeout=4.5)  # the default (5 s) would still be waiting
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    assert data.startswith(b"HTTP/1.1 200")


def test_timeout_worker_healthcheck(start_cli):
    # A 6 s blocked loop outlives the default 5 s heartbeat timeout, not a 60 s one.
    server = start_cli([APP, "--port", "0", "--timeout-worker-healthcheck", "60"])
    pid = info(server)["pid"]
    assert info(server, "/block?6")["pid"] == pid
    assert "WORKER TIMEOUT" not in server.log()


def test_healthcheck_kills_a_blocked_worker(start_cli):
    server = start_cli([APP, "--port", "0", "--timeout-worker-healthcheck", "1"])
    first = info(server)["pid"]
    _answers_path(server, "/block?30")  # no answer, or a 500 from the dying worker
    server.wait_for_log(rf"WORKER TIMEOUT \(pid:{first}\)")
    wait_until(lambda: info(server)["pid"] != first, message="a replacement worker")


def test_timeout_graceful_shutdown(start_cli, tmp_path):
    """TERM with a request still running: the worker is stopped after 1 s, not Gunicorn's 30."""
    started = tmp_path / "started"
    server = start_cli([APP, "--port", "0", "--timeout-graceful-shutdown", "1"],
                       env={"GW_CLI_STARTED": str(started)})
    errors = []

    def slow():
        try:
            with server.client() as client:
                client.get("/sleep?60")
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=slow)
    thread.start()
    wait_until(lambda: _started(started) == 1, message="the request reached the app")
    server.signal(signal.SIGTERM)
    assert server.wait(15) == 0
    thread.join(15)
    assert errors and not thread.is_alive()


def test_log_level_and_colors(start_cli, tmp_path):
    # --log-level warning hides the INFO lines: wait on a socket we bound ourselves (--fd)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = start_cli([APP, "--fd", str(sock.fileno()), "--log-level", "warning",
                        "--use-colors"], pass_fds=(sock.fileno(),), wait=False)
    server.host, server.port = sock.getsockname()
    sock.close()
    wait_until(lambda: _answers(server), message="the server answers")
    server.signal(signal.SIGTERM)
    server.wait()
    log = server.log()
    assert "[INFO]" not in log and "Booting worker" not in log
    quiet = start_cli([APP, "--port", "0", "--use-colors", "--log-level", "info"])
    assert "\x1b[32mINFO\x1b[0m" in quiet.log()
    quiet = start_cli([APP, "--port", "0", "--no-use-colors"])
    assert "\x1b[" not in quiet.log()


def _answers(server) -> bool:
    try:
        with server.client() as client:
            return client.get("/").status_code == 200
    except httpx.HTTPError:
        return False


# --------------------------------------------------------------------------- sockets


def test_uds(start_cli, tmp_path):
    path = tmp_path / "app.sock"
    server = start_cli([APP, "--uds", str(path)])
    assert server.uds == str(path)
    assert info(server)["client"] is None or info(server)["client"][0] in ("", None)
    server.signal(signal.SIGTERM)
    server.wait()
    assert not path.exists()  # removed on exit


def test_fd(start_cli):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = start_cli([APP, "--fd", str(sock.fileno())], pass_fds=(sock.fileno(),))
    assert (server.host, server.port) == sock.getsockname()
    sock.close()
    assert info(server)["pid"]


def test_ipv6_host(start_cli):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no ::1")
    server = start_cli([APP, "--host", "::1", "--port", "0"])
    assert server.host == "::1"
    assert info(server)["client"][0] == "::1"


def test_workers_serve_from_two_pids(start_cli):
    server = start_cli([APP, "--port", "0", "--workers", "2"])
    seen: set[int] = set()

    def both() -> bool:
        threads = [threading.Thread(target=lambda: seen.add(info(server, "/sleep?0.2")["pid"]))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return len(seen) >= 2

    wait_until(both, message="two worker pids")
    assert seen <= set(server.worker_pids())


def test_web_concurrency(start_cli):
    server = start_cli([APP, "--port", "0"], env={"WEB_CONCURRENCY": "2"})
    wait_until(lambda: len(server.worker_pids()) == 2)


# --------------------------------------------------------------------------- app loading


def test_env_file_app_dir_and_factory(start_cli, tmp_path):
    appdir = tmp_path / "elsewhere"
    appdir.mkdir()
    (appdir / "factory_mod.py").write_text(
        "import os\nfrom tests.cli_app import make_app\n"
    )
    env_file = tmp_path / "settings.env"
    factory_log = tmp_path / "factory.log"
    env_file.write_text(f"GW_CLI_ENV=from-dotenv\nGW_CLI_FACTORY_LOG={factory_log}\n")
    server = start_cli(["factory_mod:make_app", "--factory", "--app-dir", str(appdir),
                        "--env-file", str(env_file), "--workers", "2", "--port", "0"])
    body = info(server)
    assert body["env"] == "from-dotenv"
    wait_until(lambda: len(factory_log.read_text().split()) == 2 if factory_log.exists() else False)
    assert sorted(map(int, factory_log.read_text().split())) == sorted(server.worker_pids())
    # without --factory the factory itself is served, and fails
    plain = start_cli(["factory_mod:make_app", "--app-dir", str(appdir), "--port", "0"])
    with plain.client() as client:
        assert client.get("/").status_code == 500


LOG_CONFIGS = {
    "ini": """
[loggers]
keys=root,gunicorn.error

[handlers]
keys=file

[formatters]
keys=custom

[logger_root]
level=INFO
handlers=

[logger_gunicorn.error]
level=INFO
handlers=file
propagate=0
qualname=gunicorn.error

[handler_file]
class=FileHandler
formatter=custom
args=({path!r},)

[formatter_custom]
format=CUSTOM-INI %(levelname)s %(message)s
""",
    "json": None,
    "yaml": None,
}


def _dict_log_config(path: str, tag: str) -> dict:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"custom": {"format": f"CUSTOM-{tag} %(levelname)s %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": path,
                              "formatter": "custom"}},
        "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["file"],
                                       "propagate": False}},
    }


@pytest.mark.parametrize("kind", ["ini", "json", "yaml"])
def test_log_config(start_cli, tmp_path, kind):
    out = tmp_path / f"{kind}.log"
    conf = tmp_path / f"logging.{kind}"
    if kind == "ini":
        conf.write_text(LOG_CONFIGS["ini"].format(path=str(out)))
    elif kind == "json":
        conf.write_text(json.dumps(_dict_log_config(str(out), "JSON")))
    else:
        import yaml

        conf.write_text(yaml.safe_dump(_dict_log_config(str(out), "YAML")))
    server = start_cli([APP, "--port", "0", "--log-config", str(conf)], wait=False)
    wait_until(lambda: out.exists() and "Booting worker" in out.read_text(),
               message="the configured log file")
    assert re.search(rf"^CUSTOM-{kind.upper()} INFO Booting worker with pid: \d+$",
                     out.read_text(), re.M)
    server.stop()


def test_bad_log_config(tmp_path):
    conf = tmp_path / "broken.json"
    conf.write_text("{not json")
    result = run_cli([APP, "--log-config", str(conf)])
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "log_config: cannot read" in result.stderr


# --------------------------------------------------------------------------- TLS


def encrypted_key(tmp_path, tls_files, password: bytes):
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(Path(tls_files["key"]).read_bytes(), None)
    path = tmp_path / "encrypted-key.pem"
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password)))
    return path


def test_ssl_with_password(start_cli, tmp_path, tls_files):
    key = encrypted_key(tmp_path, tls_files, b"s3cret")
    server = start_cli([APP, "--port", "0", "--ssl-certfile", tls_files["cert"],
                        "--ssl-keyfile", str(key), "--ssl-keyfile-password", "s3cret"],
                       tls=tls_files)
    body = info(server)
    assert body["scheme"] == "https"


def test_ssl_version_ciphers_and_client_certs(start_cli, tls_files):
    ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
    server = start_cli([APP, "--port", "0", "--ssl-certfile", tls_files["cert"],
                        "--ssl-keyfile", tls_files["key"],
                        "--ssl-version", str(int(ssl.PROTOCOL_TLSv1_2)),
                        "--ssl-ciphers", ciphers, "--ssl-cert-reqs", "2",
                        "--ssl-ca-certs", tls_files["ca"]], tls=tls_files)
    ctx = ssl.create_default_context(cafile=tls_files["ca"])
    ctx.load_cert_chain(tls_files["client_cert"])
    raw = socket.create_connection((server.host, server.port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() == "TLSv1.2"
        assert tls.cipher()[0] in ciphers.split(":")
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert tls.recv(100).startswith(b"HTTP/1.1 200")
    # --ssl-cert-reqs 2: a client without a certificate is turned away
    bare = ssl.create_default_context(cafile=tls_files["ca"])
    raw = socket.create_connection((server.host, server.port), timeout=10)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        with bare.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            if not tls.recv(100):
                raise ConnectionError("closed")


# --------------------------------------------------------------------------- signals


def _started(path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_signals_hup_reloads_term_drains(start_cli, tmp_path):
    started = tmp_path / "started"
    server = start_cli([APP, "--port", "0"], env={"GW_CLI_STARTED": str(started)})
    first = info(server)["pid"]
    server.signal(signal.SIGHUP)
    wait_until(lambda: info(server)["pid"] != first, message="a new worker after HUP")
    results = []
    thread = threading.Thread(target=lambda: results.append(info(server, "/sleep?1")))
    thread.start()
    wait_until(lambda: _started(started) == 1, message="the request reached the app")
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    thread.join(10)
    assert results and results[0]["pid"] != first  # the in-flight request completed


def test_ctrl_c_is_quick(start_cli, tmp_path):
    started = tmp_path / "started"
    server = start_cli([APP, "--port", "0", "--timeout-graceful-shutdown", "60"],
                       env={"GW_CLI_STARTED": str(started)})
    thread = threading.Thread(target=lambda: _answers_path(server, "/sleep?60"))
    thread.start()
    wait_until(lambda: _started(started) == 1, message="the request reached the app")
    server.signal(signal.SIGINT)
    assert server.wait(15) == 0  # does not wait for the 60 s request
    thread.join(15)


def _answers_path(server, path):
    try:
        with server.client() as client:
            client.get(path)
    except httpx.HTTPError:
        pass


# --------------------------------------------------------------------------- the module entry


def test_python_m_and_console_script_agree():
    from gworkers import cli

    assert (REPO / "gworkers" / "__main__.py").read_text().count("main()") == 1
    assert cli.main.__module__ == "gworkers.cli"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'gworkers-run = "gworkers.cli:main"' in pyproject


# --------------------------------------------------------------------------- options served by other modules

HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
             b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")


def ws_connect(server) -> tuple[socket.socket, bytes, bytes]:
    """A raw WebSocket handshake: the socket, the response head, and bytes read past it."""
    sock = server.connect(timeout=10)
    sock.sendall(HANDSHAKE)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return sock, head, rest


def ws_frame(opcode: int, payload: bytes) -> bytes:
    import os

    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_read_frame(sock: socket.socket, buffered: bytes) -> tuple[int, bytes, bytes]:
    """(opcode, payload, leftover) of the next server frame; opcode -1 on EOF."""
    data = buffered

    def need(n: int) -> bool:
        nonlocal data
        while len(data) < n:
            chunk = sock.recv(65536)
            if not chunk:
                return False
            data += chunk
        return True

    if not need(2):
        return -1, b"", b""
    opcode, length, offset = data[0] & 0x0F, data[1] & 0x7F, 2
    if length == 126:
        need(4)
        length, offset = int.from_bytes(data[2:4], "big"), 4
    elif length == 127:
        need(10)
        length, offset = int.from_bytes(data[2:10], "big"), 10
    need(offset + length)
    return opcode, data[offset:offset + length], data[offset + length:]


def test_ws_options(start_cli):
    default = start_cli([APP, "--port", "0"])
    sock, head, _ = ws_connect(default)
    assert head.startswith(b"HTTP/1.1 101") and b"permessage-deflate" in head.lower()
    sock.close()

    server = start_cli([APP, "--port", "0", "--ws-max-size", "1000",
                        "--ws-per-message-deflate", "false",  # uvicorn's spelling
                        "--ws-ping-interval", "0.5", "--ws-ping-timeout", "1", "--ws", "wsproto"])
    sock, head, rest = ws_connect(server)
    assert head.startswith(b"HTTP/1.1 101") and b"permessage-deflate" not in head.lower()
    sock.sendall(ws_frame(0x1, b"x" * 2000))  # over --ws-max-size
    while True:
        opcode, payload, rest = ws_read_frame(sock, rest)
        if opcode in (0x8, -1):
            break
    assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1009
    sock.close()
    # --ws-ping-interval: a ping comes; --ws-ping-timeout: unanswered, the server closes
    sock, head, rest = ws_connect(server)
    opcode, _, rest = ws_read_frame(sock, rest)
    assert opcode == 0x9
    while opcode not in (0x8, -1):
        opcode, _, rest = ws_read_frame(sock, rest)
    sock.close()

    refused = start_cli([APP, "--port", "0", "--ws", "none"])
    sock, head, _ = ws_connect(refused)
    assert not head.startswith(b"HTTP/1.1 101")
    sock.close()


def test_worker_options_reach_the_worker(start_cli):
    """Options whose effect a request cannot show (or only slowly) are seen in the worker's
    resolved settings and boot line; their behaviour is tested in tests/ws and tests/http."""
    server = start_cli([APP, "--port", "0", "--log-level", "debug", "--ws-max-queue", "7",
                        "--http", "h11", "--loop", "asyncio"])
    info(server)
    server.wait_for_log(r"gworkers: asyncio loop, h11 parser, asgi3 app")
    line = server.wait_for_log(r"gworkers: Config\(.*\)").group(0)
    assert "ws_max_queue=7," in line and "http='h11'," in line and "loop='asyncio'," in line
    default = start_cli([APP, "--port", "0", "--log-level", "debug"])
    info(default)
    assert "ws_max_queue=32," in default.wait_for_log(r"gworkers: Config\(.*\)").group(0)


def test_access_log(start_cli):
    server = start_cli([APP, "--port", "0"])
    info(server, "/access-probe")
    server.wait_for_log(r'"GET /access-probe HTTP/1.1" 200')
    quiet = start_cli([APP, "--port", "0", "--no-access-log"])
    info(quiet, "/access-probe")
    info(quiet, "/sleep?0")
    assert "/access-probe" not in quiet.log()


def test_limit_concurrency(start_cli, tmp_path):
    started = tmp_path / "started"
    server = start_cli([APP, "--port", "0", "--limit-concurrency", "1"],
                       env={"GW_CLI_STARTED": str(started)})
    thread = threading.Thread(target=lambda: _answers_path(server, "/sleep?3"))
    thread.start()
    wait_until(lambda: _started(started) == 1, message="the request reached the app")
    with server.client() as client:
        assert client.get("/").status_code == 503
    thread.join(15)
    assert info(server)["pid"]


def test_limit_request_body(start_cli):
    server = start_cli([APP, "--port", "0", "--limit-request-body", "10"])
    with server.client() as client:
        assert client.post("/", content=b"x" * 11).status_code == 413
        assert client.post("/", content=b"x" * 10).status_code == 200
