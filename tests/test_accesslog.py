"""Gunicorn's access log (every ``access_log_format`` atom) and statsd request metrics, both fed
through Gunicorn's own ``log.access`` call when the response completes."""

from __future__ import annotations

import re
import socket

from tests.conftest import wait_until

ATOMS = ("h", "l", "u", "t", "r", "m", "U", "q", "H", "s", "B", "b", "f", "a", "T", "M", "D", "L",
         "p", "{x-trace}i", "{content-type}o", "{remote_port}e")
FORMAT = "|".join(f"%({atom})s" for atom in ATOMS)
TIME = r"\[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\]"


def send(server, request: bytes) -> tuple[int, bytes]:
    """One request on its own connection; returns the client's port and the whole answer."""
    sock = server.connect()
    try:
        port = sock.getsockname()[1]
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return port, data
    finally:
        sock.close()


def check_times(fields: dict) -> None:
    # T, M, D and L are one duration in four units, exactly as Gunicorn derives them
    micros = int(fields["D"])
    assert int(fields["T"]) == micros // 1_000_000
    assert int(fields["M"]) == micros // 1000
    assert fields["L"] == f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def test_access_log_every_atom(tmp_path, start_server, worker):
    access = tmp_path / "access.log"
    conf = tmp_path / "conf.py"
    conf.write_text(f"accesslog = {str(access)!r}\naccess_log_format = {FORMAT!r}\n")
    server = start_server(worker=worker, args=["-w", "1", "-c", str(conf)])
    requests = [
        # (raw request, expected fields except t/T/M/D/L/p/{remote_port}e)
        (b"GET /pid?x=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Basic Ym9iOnB3\r\n"
         b"Referer: http://ref/\r\nUser-Agent: ua-test\r\nX-Trace: abc\r\nConnection: close\r\n\r\n",
         {"u": "bob", "r": "GET /pid?x=1 HTTP/1.1", "m": "GET", "U": "/pid", "q": "x=1",
          "s": "200", "f": "http://ref/", "a": "ua-test", "{x-trace}i": "abc",
          "{content-type}o": "text/plain"}),
        (b"GET /stream?3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
         {"r": "GET /stream?3 HTTP/1.1", "U": "/stream", "q": "3", "s": "200",
          "B": str(3 * 65536), "b": str(3 * 65536), "{content-type}o": "-"}),
        (b"HEAD /pid HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
         {"r": "HEAD /pid HTTP/1.1", "m": "HEAD", "s": "200", "B": "0", "b": "0"}),
        (b"GET /status/404 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
         {"s": "404", "B": "12", "b": "12"}),
        (b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
         + b"x" * 1000, {"m": "POST", "s": "200", "B": "1000"}),
        (b"GET /a%20b?q=%20 HTTP/1.0\r\n\r\n",
         {"r": "GET /a%20b?q=%20 HTTP/1.0", "U": "/a b", "q": "q=%20", "H": "HTTP/1.0"}),
        (b"GET /raise HTTP/1.1\r\nHost: h\r\n\r\n", {"s": "500", "B": "0"}),
        (b"GET /sleep?0.3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", {"s": "200"}),
    ]
    ports = []
    for raw, _ in requests:
        port, answer = send(server, raw)
        assert answer.startswith(b"HTTP/1.")
        ports.append(port)
    wait_until(lambda: access.exists() and len(access.read_text().splitlines()) == len(requests),
               message="one access-log line per request")
    pid = server.worker_pids()[0]
    lines = access.read_text().splitlines()
    for line, (_, expected), port in zip(lines, requests, ports, strict=True):
        values = line.split("|")
        assert len(values) == len(ATOMS), line
        fields = dict(zip(ATOMS, values, strict=True))
        defaults = {"h": "127.0.0.1", "l": "-", "u": "-", "H": "HTTP/1.1", "f": "-", "a": "-",
                    "p": f"<{pid}>", "{x-trace}i": "-", "{remote_port}e": str(port)}
        for atom, value in {**defaults, **expected}.items():
            assert fields[atom] == value, (atom, line)
        assert re.fullmatch(TIME, fields["t"]), line
        if "B" not in expected:
            assert fields["B"] == fields["b"] and int(fields["B"]) > 0, line
        check_times(fields)
    # duration runs until the response completed, not until the app was called: the app slept
    # 0.3 s (by the loop's clock: uvloop counts a timer from the time it cached when the loop
    # iteration began, so the sleep can end a little before 0.3 s of real time have passed)
    assert int(dict(zip(ATOMS, lines[-1].split("|"), strict=True))["D"]) >= 250_000


def test_statsd_request_metrics(tmp_path, start_server, worker):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(20)
    try:
        port = udp.getsockname()[1]
        # no access log: statsd alone turns the bridge on
        server = start_server(worker=worker, args=["-w", "1", "--statsd-host", f"127.0.0.1:{port}",
                                                   "--statsd-prefix", "gw"])
        with server.client() as client:
            assert client.get("/pid").status_code == 200
            assert client.get("/status/404").status_code == 404
        wanted = {"gw.gunicorn.requests:1|c|@1.0", "gw.gunicorn.request.status.200:1|c|@1.0",
                  "gw.gunicorn.request.status.404:1|c|@1.0"}
        seen: list[str] = []
        while not (wanted <= set(seen) and
                   sum(m.startswith("gw.gunicorn.request.duration:") for m in seen) >= 2):
            seen.append(udp.recv(65536).decode())
        assert seen.count("gw.gunicorn.requests:1|c|@1.0") == 2
        for metric in seen:
            if metric.startswith("gw.gunicorn.request.duration:"):
                assert re.fullmatch(r"gw\.gunicorn\.request\.duration:\d+\.\d+\|ms", metric)
    finally:
        udp.close()


def test_no_access_log_line_without_accesslog(tmp_path, start_server, worker):
    # --log-level info: Gunicorn's default pre_request logs only at debug, and nothing else reads
    # the request, so nothing per request reaches the error log either
    server = start_server(worker=worker, args=["-w", "1", "--log-level", "info"])
    with server.client() as client:
        for _ in range(3):
            assert client.get("/pid?quiet").status_code == 200
        assert client.get("/raise").status_code == 500
    server.wait_for_log(r"\[ERROR\] Exception in ASGI application")
    assert "/pid?quiet" not in server.log()
    assert "[DEBUG]" not in server.log()


def test_access_log_counts_pathsend_bytes(tmp_path, start_server, worker):
    data = tmp_path / "file.bin"
    data.write_bytes(bytes(range(256)) * 1000)
    access = tmp_path / "access.log"
    server = start_server(app="tests.ext_apps:app", worker=worker,
                          args=["-w", "1", "--access-logfile", str(access),
                                "--access-logformat", "%(r)s %(s)s %(B)s"],
                          env={"GW_TEST_FILE": str(data)})
    with server.client() as client:
        assert len(client.get("/pathsend").content) == 256_000
        assert len(client.get("/pathsend?nolength").content) == 256_000
    wait_until(lambda: access.exists() and len(access.read_text().splitlines()) == 2,
               message="two access-log lines")
    assert access.read_text().splitlines() == [
        "GET /pathsend HTTP/1.1 200 256000", "GET /pathsend?nolength HTTP/1.1 200 256000"]
