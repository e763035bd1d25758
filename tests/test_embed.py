"""gworkers.run() called from a script: the same options as gworkers-run, over the same arbiter."""

from __future__ import annotations

import re
import signal
import sys
import textwrap

from .conftest import run_cli, wait_until


def script(tmp_path, body: str):
    path = tmp_path / "serve.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def test_run_with_an_app_object_reads_only_its_arguments(start_cli, tmp_path):
    """An app object, worker_class, headers; a hostile gunicorn.conf.py and GUNICORN_CMD_ARGS
    in the environment are not read, and no control socket appears."""
    (tmp_path / "gunicorn.conf.py").write_text("raise RuntimeError('gunicorn.conf.py was read')\n")
    run_dir = tmp_path / "run"
    argv = script(tmp_path, """
        import asyncio, os
        import gworkers

        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            body = f"{os.getpid()} {type(asyncio.get_running_loop()).__module__}".encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

        gworkers.run(app, port=0, headers=["x-embedded: yes"], worker_class=gworkers.H11Worker)
        print("run returned", flush=True)
    """)
    server = start_cli([], argv0=argv, cwd=tmp_path,
                       env={"GUNICORN_CMD_ARGS": "--workers 3 --bind 127.0.0.1:1"})
    with server.client() as client:
        response = client.get("/")
    assert response.headers["x-embedded"] == "yes"
    pid, loop = response.text.split()
    assert loop == "asyncio.unix_events"  # H11Worker's loop
    assert [int(pid)] == server.worker_pids()  # one worker, not GUNICORN_CMD_ARGS' three
    assert not (run_dir / "gunicorn.ctl").exists()
    assert not (tmp_path / "gunicorn.ctl").exists()
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    assert server.log().count("run returned") == 1  # the master returns; workers never do


def test_run_with_an_import_string_and_workers(start_cli, tmp_path):
    argv = script(tmp_path, """
        import gworkers
        gworkers.run("tests.cli_app:app", port=0, workers=2, root_path="/mounted")
        print("run returned", flush=True)
    """)
    server = start_cli([], argv0=argv, cwd=tmp_path)
    wait_until(lambda: len(server.worker_pids()) == 2)
    with server.client() as client:
        assert client.get("/").json()["root_path"] == "/mounted"
    server.signal(signal.SIGINT)
    assert server.wait() == 0
    assert server.log().count("run returned") == 1


def test_run_refuses_an_app_object_with_workers_or_reload(tmp_path):
    for kwargs, what in (("workers=2", "workers=2"), ("reload=True", "reload")):
        argv = script(tmp_path, f"""
            import gworkers
            async def app(scope, receive, send):
                pass
            gworkers.run(app, port=0, {kwargs})
        """)
        result = run_cli([], argv0=argv)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            f"gworkers-run: error: {what} needs the app as an import string like 'main:app', "
            "not an app object"
        ]


def test_run_rejects_unknown_and_bad_keywords(tmp_path):
    for kwargs, message in (("bogus=1", "unknown option 'bogus'"),
                            ("port='eighty'", "port: expected an integer, got 'eighty'")):
        argv = script(tmp_path, f"""
            import gworkers
            gworkers.run("tests.cli_app:app", {kwargs})
        """)
        result = run_cli([], argv0=argv)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [f"gworkers-run: error: {message}"]


def test_run_takes_python_values(start_cli, tmp_path):
    """What uvicorn.run() callers pass: Path objects, a dictConfig mapping, a level number."""
    env_file = tmp_path / "app.env"
    env_file.write_text("GW_CLI_ENV=via-path\n")
    log_file = tmp_path / "server.log"
    argv = script(tmp_path, f"""
        import logging, pathlib
        import gworkers

        config = {{
            "version": 1, "disable_existing_loggers": False,
            "formatters": {{"plain": {{"format": "DICT %(levelname)s %(message)s"}}}},
            "handlers": {{"file": {{"class": "logging.FileHandler", "filename": {str(log_file)!r},
                                  "formatter": "plain"}}}},
            "loggers": {{"gunicorn.error": {{"handlers": ["file"], "propagate": False}}}},
        }}
        gworkers.run("tests.cli_app:app", port=0, log_level=logging.INFO, log_config=config,
                     env_file=pathlib.Path({str(env_file)!r}))
    """)
    server = start_cli([], argv0=argv, cwd=tmp_path, wait=False)
    found = wait_until(lambda: log_file.exists() and re.search(
        r"^DICT INFO Listening at: http://127.0.0.1:(\d+)", log_file.read_text(), re.M))
    server.host, server.port = "127.0.0.1", int(found.group(1))
    wait_until(lambda: "Booting worker" in log_file.read_text())
    with server.client() as client:
        assert client.get("/").json()["env"] == "via-path"


def test_run_outside_the_main_thread_is_refused(tmp_path):
    argv = script(tmp_path, """
        import threading
        import gworkers

        errors = []

        def serve():
            try:
                gworkers.run("tests.cli_app:app", port=0)
            except RuntimeError as exc:
                errors.append(str(exc))

        thread = threading.Thread(target=serve)
        thread.start()
        thread.join()
        print(errors[0])
    """)
    result = run_cli([], argv0=argv)
    assert result.returncode == 0
    assert "must be called from the main thread" in result.stdout
