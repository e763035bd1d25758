"""The once-a-second checks of an HTTP/2 connection's streams: a response stalled on a closed
flow-control window, and a request body that stopped arriving.

Both end the one stream and leave the others and the connection alone (RFC 9113 5.4.2: a
stream error). The body rule is HTTP/1.1's (``http/h1/timers.py``): a body must bring
``BODY_PROGRESS`` bytes in each ``timeout_request_body`` window, unless the wait is ours -- the
app has not read what it has, so the stream's receive window is (nearly) closed, or the client
waits for ``100 Continue`` the app has not asked for. A late body is answered 408 when nothing
of the response has left (then RST_STREAM NO_ERROR, RFC 9113 8.1), else the stream is reset
with CANCEL; the app's ``receive`` says ``http.disconnect`` either way.
"""

from __future__ import annotations

from typing import Any

from ..h1.timers import BODY_PROGRESS
from .frames import ErrorCodes

_OFF = float("inf")


def body_window(config: Any, now: float) -> float:
    """The end of a new request-body window that starts ``now``."""
    return now + (config.timeout_request_body or _OFF)


def check_streams(conn: Any, now: float) -> None:
    """The checks above, on ``conn`` (an ``H2Protocol``); ends late streams."""
    stall = conn.config.timeout_request_body
    if not stall:
        return
    ended = False
    for sink in list(conn.blocked.values()):
        if now - sink.blocked_since >= stall:
            conn.context.log.debug("HTTP/2 stream %d stalled on flow control", sink.id)
            conn.core.reset(sink.id, ErrorCodes.CANCEL)
            _forget(conn, sink)
            ended = True
    for sink in list(conn.streams.values()):
        if sink.receiving and now >= sink.body_deadline:
            if sink.body_progress >= BODY_PROGRESS or _our_wait(conn, sink):
                sink.body_progress = 0
                sink.body_deadline = body_window(conn.config, now)
            else:
                _body_late(conn, sink)
                ended = True
    if ended:
        conn.flush()


def _our_wait(conn: Any, sink: Any) -> bool:
    """The client cannot send (the app has not read its window) or waits for our 100."""
    return (conn.core.receive_window(sink.id) < BODY_PROGRESS
            or sink.stream.continue_owed)


def _body_late(conn: Any, sink: Any) -> None:
    conn.context.log.debug("HTTP/2 stream %d: request body not received in time", sink.id)
    conn.end_upload(sink, 408)


def _forget(conn: Any, sink: Any) -> None:
    conn.streams.pop(sink.id, None)
    sink.gone()
    sink.stream.on_disconnect()
