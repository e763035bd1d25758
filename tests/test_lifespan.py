"""ASGI lifespan (gworkers/lifespan.py) under real Gunicorn: auto/on/off, the state dict,
startup failure halting Gunicorn, shutdown on stop."""

from __future__ import annotations

import signal

import pytest

from tests.conftest import wait_until, write_worker_module

MODE = """
from gworkers import Worker, H11Worker

class Custom(Worker):
    CONFIG_KWARGS = {{"lifespan": "{0}"}}

class CustomH11(H11Worker):
    CONFIG_KWARGS = {{"lifespan": "{0}"}}
"""


def _worker_with(tmp_path, worker, mode):
    env = write_worker_module(tmp_path, "custom", MODE.format(mode))
    return ("custom.Custom" if worker == "gworkers.Worker" else "custom.CustomH11"), env


def test_auto_runs_startup_and_shutdown(start_server, worker, tmp_path):
    marker = tmp_path / "shutdown.txt"
    server = start_server(worker=worker, env={"GW_TEST_SHUTDOWN_MARKER": str(marker)})
    with server.client() as client:
        assert client.get("/").json()["state"] == ["started"]
        pid = int(client.get("/pid").text)
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    assert marker.read_text() == f"lifespan shutdown {pid}\n"


def test_auto_without_lifespan_support(start_server, worker):
    server = start_server(app="tests.apps:no_lifespan", worker=worker)
    with server.client() as client:
        assert client.get("/").text == "no lifespan"
    assert server.log().count("ASGI 'lifespan' protocol appears unsupported.") == 1
    assert "Traceback" not in server.log()


def test_on_without_lifespan_support_is_boot_error(start_server, worker, tmp_path):
    cls, env = _worker_with(tmp_path, worker, "on")
    server = start_server(app="tests.apps:no_lifespan", worker=cls, env=env)
    assert server.wait() == 3
    assert server.log().count("lifespan startup failed") == 1


def test_off_skips_lifespan(start_server, worker, tmp_path):
    cls, env = _worker_with(tmp_path, worker, "off")
    marker = tmp_path / "shutdown.txt"
    server = start_server(worker=cls, env=dict(env, GW_TEST_SHUTDOWN_MARKER=str(marker)))
    with server.client() as client:
        assert client.get("/").json()["state"] == []
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    assert not marker.exists()


# When several workers fail to boot at once, Gunicorn's arbiter (23 through 27) reaps the second
# one while halting for the first, raises HaltServer again inside halt() and exits 1 with its
# own traceback: it still halts (no respawn loop), which is what the worker can promise.
@pytest.mark.parametrize(("mode", "workers"), [("auto", 1), ("on", 1), ("auto", 2)])
def test_startup_failure_halts_gunicorn(start_server, worker, tmp_path, mode, workers):
    cls, env = _worker_with(tmp_path, worker, mode)
    server = start_server(app="tests.apps:failing_startup", worker=cls, env=env,
                          args=["-w", str(workers)])
    code = server.wait()  # the master halts instead of respawning
    log = server.log()
    if workers > 1 and code == 1:
        assert "HaltServer 'Worker failed to boot.' 3" in log
    else:
        assert code == 3, log
        assert "Traceback" not in log
    failures = [ln for ln in log.splitlines() if "lifespan startup failed" in ln]
    assert failures and all("database unreachable" in ln for ln in failures)
    # one line per worker that booted, never a respawn loop
    assert len(failures) <= log.count("Booting worker") <= workers
    assert "Worker failed to boot" in log
    wait_until(lambda: not server.worker_pids(), message="workers gone")


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_exception_after_receive_is_failure(start_server, worker, tmp_path, mode):
    """An app that took the startup message speaks lifespan: raising then is a failure even in
    auto mode (only raising before receive means 'unsupported')."""
    cls, env = _worker_with(tmp_path, worker, mode)
    server = start_server(app="tests.apps:raising_startup", worker=cls, env=env)
    assert server.wait() == 3
    log = server.log()
    assert log.count("Exception in lifespan startup") == 1
    assert "RuntimeError: startup raised" in log
    assert "appears unsupported" not in log
