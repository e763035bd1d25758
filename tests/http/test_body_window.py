"""Sans-IO check of the request-body window around our own pause of reading (in addition to
tests/http/test_connection.py's real-server test): the connection is driven by hand on a loop
whose clock the test sets, so a tick can land just after reading resumes."""

from __future__ import annotations

import asyncio

import pytest

from gworkers.config import Config
from gworkers.http.h1.connection import HTTPConnection
from gworkers.server import ServerState
from tests.conftest import PARSERS


class Transport:
    """Just what HTTPConnection calls on a transport, recording writes and pauses."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.closed = False
        self.paused = False
        self.protocol = None

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def get_protocol(self):
        return self.protocol

    def write(self, data: bytes) -> None:
        self.out.append(bytes(data))

    def writelines(self, data) -> None:
        self.out.extend(bytes(d) for d in data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_write_buffer_size(self) -> int:
        return 0


async def waiting_app(scope, receive, send):
    await asyncio.sleep(3600)


@pytest.mark.parametrize("http", PARSERS)
def test_body_window_restarts_when_reading_resumes(http):
    loop = asyncio.new_event_loop()
    clock = [1000.0]
    loop.time = lambda: clock[0]  # the test's clock: ticks are check_timeouts(now) calls
    try:
        state = ServerState(Config(timeout_request_body=1, http=http), waiting_app, loop)
        conn = HTTPConnection(state.context)
        transport = Transport()
        transport.protocol = conn
        conn.connection_made(transport)
        conn.data_received(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
        cycle = conn.reading
        assert cycle is not None
        conn.pause_reading()  # our side stops reading (flow control, a request ahead of it)
        clock[0] = 1001.0
        conn.check_timeouts(clock[0])  # paused: our wait, a new window
        clock[0] = 1001.9
        conn.resume_reading()
        clock[0] = 1002.0
        conn.check_timeouts(clock[0])  # a tick right after resuming: not the client's fault
        assert conn.reading is cycle and not transport.closed
        clock[0] = 1003.0
        conn.check_timeouts(clock[0])  # a whole window of silence while we read: 408
        assert conn.reading is None
        loop.run_until_complete(asyncio.sleep(0))  # the deferred write reaches the transport
        assert b"".join(transport.out).startswith(b"HTTP/1.1 408 ")
    finally:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()
