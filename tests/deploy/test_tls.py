"""HTTPS served by Gunicorn + gworkers: the README's command line, a password-protected key via
deploy/tls/gunicorn_tls.conf.py, and client certificates required (present and missing)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.deploy.support import DEPLOY, request

HOOK = str(DEPLOY / "tls" / "gunicorn_tls.conf.py")
PASSWORD = "correct horse"


@pytest.fixture(scope="module")
def encrypted_key(tls_files, tmp_path_factory) -> str:
    key = serialization.load_pem_private_key(Path(tls_files["key"]).read_bytes(), password=None)
    path = tmp_path_factory.mktemp("enc") / "key.enc.pem"
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSWORD.encode())))
    assert b"ENCRYPTED" in path.read_bytes()
    return str(path)


def client_context(tls_files, cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=tls_files["ca"])
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    if cert:
        ctx.load_cert_chain(tls_files["client_cert"])
    return ctx


def https_get(server, ctx: ssl.SSLContext, path: str = "/"):
    return request((server.host, server.port), path, host="localhost", tls=ctx)


def test_keyfile_certfile_command_line(start_server, worker, tls_files):
    # start_server(tls=...) runs: gunicorn -k <worker> --keyfile key.pem --certfile cert.pem
    server = start_server(app="tests.deploy.appmain:app", worker=worker, tls=tls_files)
    ctx = client_context(tls_files)
    sock = ctx.wrap_socket(socket.create_connection((server.host, server.port)),
                           server_hostname="localhost")
    with sock:
        assert sock.selected_alpn_protocol() == "http/1.1"  # never h2: the worker is HTTP/1.1
    scope = https_get(server, ctx).json()
    assert scope["scheme"] == "https"


def test_encrypted_key_with_password(start_server, worker, tls_files, encrypted_key):
    server = start_server(app="tests.deploy.appmain:app", worker=worker,
                          args=["-c", HOOK, "--keyfile", encrypted_key,
                                "--certfile", tls_files["cert"]],
                          env={"GUNICORN_KEY_PASSWORD": PASSWORD})
    r = https_get(server, client_context(tls_files))
    assert r.status == 200
    assert r.json()["scheme"] == "https"


@pytest.mark.parametrize("password", [None, "wrong"])
def test_encrypted_key_bad_password_fails_closed(start_server, tls_files, encrypted_key,
                                                 password):
    env = {"GUNICORN_KEY_PASSWORD": password} if password else {}
    server = start_server(app="tests.deploy.appmain:app",
                          args=["-c", HOOK, "--keyfile", encrypted_key,
                                "--certfile", tls_files["cert"]], env=env)
    # the worker cannot build its TLS context: a boot error, and Gunicorn halts (no plaintext,
    # no respawn loop)
    assert server.wait(30) != 0
    expected = "set GUNICORN_KEY_PASSWORD" if password is None else "cannot build the TLS context"
    assert expected in server.log()


def test_client_certificate_required(start_server, worker, tls_files, encrypted_key):
    server = start_server(app="tests.deploy.appmain:app", worker=worker,
                          args=["-c", HOOK, "--keyfile", encrypted_key,
                                "--certfile", tls_files["cert"],
                                "--ca-certs", tls_files["ca"], "--cert-reqs", "2"],
                          env={"GUNICORN_KEY_PASSWORD": PASSWORD})
    r = https_get(server, client_context(tls_files, cert=True))
    assert r.status == 200
    # without a client certificate the server refuses the handshake: no HTTP answer at all
    ctx = client_context(tls_files)
    raw = socket.create_connection((server.host, server.port), timeout=10)
    received = b""
    sock = raw
    try:
        sock = ctx.wrap_socket(raw, server_hostname="localhost")
        # TLS 1.3: the server checks the (missing) certificate after the client's Finished, so
        # the refusal shows on the first read: an alert, a reset or a bare close
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        received = sock.recv(1024)
    except ssl.SSLError as exc:
        assert "CERTIFICATE_REQUIRED" in str(exc).upper() or "ALERT" in str(exc).upper(), exc
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        sock.close()
    assert received == b"", received
