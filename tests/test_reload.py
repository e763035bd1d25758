"""``--reload`` under Gunicorn: a code change restarts the worker (Gunicorn's reloader flips
``alive`` and writes to the worker's pipe; the worker drains and returns), and a syntax error is
served as a 500 page naming it, until the next change fixes it."""

from __future__ import annotations

import os

import httpx

from tests.conftest import wait_until

APP = '''
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({{"type": message["type"] + ".complete"}})
            if message["type"] == "lifespan.shutdown":
                return
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]}})
    await send({{"type": "http.response.body", "body": b"{version}"}})
'''


def test_reload_restarts_on_change_and_serves_syntax_errors(tmp_path, start_server, worker):
    module = tmp_path / "reloadapp.py"
    module.write_text(APP.format(version="v1"))
    # bytecode is written as users have it (this sandbox sets PYTHONDONTWRITEBYTECODE)
    server = start_server(app="reloadapp:app", worker=worker, args=["--reload", "-w", "1"],
                          env={"PYTHONDONTWRITEBYTECODE": ""})
    stamp = [os.stat(module).st_mtime]

    def change(source: str, until, step: float = 1.0) -> None:
        """Save ``source`` with its mtime ``step`` seconds past the last one; until ``until()``
        holds, keep moving it forward by ``step`` (Gunicorn's polling reloader only sees a
        change after its first scan has recorded the file).

        Saved as editors do, to a temp file renamed over the module: every bump restarts the
        worker, and one still restarting when an in-place write truncates the file imports an
        empty module, a boot error that halts the arbiter.
        """
        tmp = module.with_name(f".{module.name}.tmp")
        tmp.write_text(source)
        stamp[0] += step
        os.utime(tmp, (stamp[0], stamp[0]))
        os.replace(tmp, module)

        def check():
            if until():
                return True
            stamp[0] += step
            os.utime(module, (stamp[0], stamp[0]))
            return False

        wait_until(check, timeout=30, interval=0.5, message="reload")

    def body() -> tuple[int, str]:
        try:
            with server.client() as client:
                response = client.get("/")
        except httpx.HTTPError:
            return 0, ""
        return response.status_code, response.text

    assert body() == (200, "v1")
    first = server.worker_pids()

    # same size, mtime within the same second as the v1 the worker imported (microsecond
    # steps): a .pyc of v1 would pass for up to date, the new code must be compiled afresh
    change(APP.format(version="v2"), lambda: body() == (200, "v2"), step=1e-6)
    assert "Worker reloading: " in server.log() and "reloadapp.py modified" in server.log()
    assert server.worker_pids() != first

    answers = []
    change("async def app(scope, receive, send:\n    pass\n",
           lambda: answers.append(body()) or answers[-1][0] == 500)
    status, text = answers[-1]
    assert "SyntaxError" in text and "reloadapp.py" in text  # the page names the error

    change(APP.format(version="v3"), lambda: body() == (200, "v3"))
    assert not (tmp_path / "__pycache__").exists()  # the worker wrote no bytecode of the app
