"""Servers for the HTTP/2 tests: the h2 app under a worker with HTTP/2 on (ALPN with TLS, h2c
by prior knowledge and Upgrade without), markers and gates in the test's tmp dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import WORKERS, GunicornServer, wait_until, write_config_worker
from tests.h2 import client as h2_client

H2_KWARGS = {"http_protocols": "h2,h1", "http2_cleartext": "both"}


class H2Server:
    """A started server plus the files its app reads and writes."""

    def __init__(self, server: GunicornServer, tmp: Path) -> None:
        self.server = server
        self.marker = tmp / "marker.txt"
        self.gate = tmp / "gate"
        self.file = tmp / "payload.bin"

    def marks(self) -> list[str]:
        return self.marker.read_text().splitlines() if self.marker.exists() else []

    def wait_mark(self, line: str, count: int = 1) -> None:
        wait_until(lambda: self.marks().count(line) >= count, message=f"marker {line!r}")

    def client(self, **kwargs):

        if not self.server.tls:
            kwargs.setdefault("http1", False)  # h2c by prior knowledge
        return self.server.client(http2=True, **kwargs)


def _app_files(env: dict, files: Path) -> None:
    """The files tests.h2.apps reads and writes, named in ``env``."""
    files.mkdir()
    env.update(GW_TEST_MARKER=str(files / "marker.txt"), GW_TEST_GATE=str(files / "gate"),
               GW_TEST_FILE=str(files / "payload.bin"),
               GW_TEST_DISCONNECT_MARKER=str(files / "marker.txt"),
               GW_TEST_STREAM_MARKER=str(files / "marker.txt"))
    (files / "payload.bin").write_bytes(bytes(range(256)) * 4096 + b"tail")  # 1 MiB + 4


@pytest.fixture
def start_h2(start_server, config_worker, tls_files, tmp_path) -> Callable[..., H2Server]:
    def start(worker: str = "gworkers.Worker", tls: bool = False, args: list | None = None,
              **kwargs) -> H2Server:
        worker_class, env = config_worker(worker, **{**H2_KWARGS, **kwargs})
        files = tmp_path / f"files-{len(list(tmp_path.iterdir()))}"
        _app_files(env, files)
        server = start_server(app="tests.h2.apps:app", worker=worker_class, env=env,
                              tls=tls_files if tls else None, args=args)
        return H2Server(server, files)

    return start


@pytest.fixture(scope="module")
def start_module_h2(start_module_server, tls_files,
                    tmp_path_factory) -> Callable[..., GunicornServer]:
    """``start_h2`` for a server shared by a whole module (the conformance corpus runs many
    independent connections against one server per worker class)."""
    tmp = tmp_path_factory.mktemp("h2-module")

    def start(worker: str, tls: bool = False, **kwargs) -> GunicornServer:
        name = f"gw_h2_{len(list(tmp.iterdir()))}"
        worker_class, env = write_config_worker(tmp, name, worker, **{**H2_KWARGS, **kwargs})
        _app_files(env, tmp / f"{name}-files")
        return start_module_server(app="tests.h2.apps:app", worker=worker_class, env=env,
                                   tls=tls_files if tls else None)

    return start


@pytest.fixture(scope="module", params=WORKERS)
def corpus_h2c(request, start_module_h2) -> GunicornServer:
    """The conformance corpus's h2c server, one per worker class and module."""
    return start_module_h2(request.param)


@pytest.fixture(scope="module", params=WORKERS)
def corpus_tls(request, start_module_h2) -> GunicornServer:
    """The conformance corpus's TLS (ALPN h2) server, one per worker class and module."""
    return start_module_h2(request.param, tls=True)


@pytest.fixture(autouse=True)
def _close_h2_clients(start_server):
    # (after start_server, so torn down before it: the clients leave before the server drains,
    # or it would wait out its graceful timeout for their streams and WebSocket close frames)
    yield
    while h2_client.OPEN:
        h2_client.OPEN.pop().close()
