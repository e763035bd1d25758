"""When an HTTP/1.1 connection is late, idle or drained (a mixin of ``HTTPConnection``).

Timers are not armed per request: the server sweeps its connections once a second and each one
compares the deadlines it keeps (``check_timeouts``). No deadline is moved by the arrival of
bytes, so a peer trickling single bytes gains nothing:

* a new connection has ``timeout_request_header`` seconds from accept to deliver a complete
  request head (silent: closed; a head had begun: 408);
* a kept-alive connection may idle ``timeout_keep_alive`` seconds; once the next head has begun
  it has ``timeout_request_header`` seconds (counted from the sweep that first sees it) to finish;
* a request body must bring ``BODY_PROGRESS`` bytes, or its end, in every
  ``timeout_request_body`` window, unless reading is paused on our side or a 100-continue is
  still owed (then the client is waiting for us): 408 if no response started, else closed.
"""

from __future__ import annotations

import array
import fcntl
import termios
from typing import Any

from ...errors import RequestTimeout

# Seconds a connection accepted just before a drain has to send its first request.
DRAIN_GRACE = 1.0
# Body bytes a request must bring in each ``timeout_request_body`` window to count as progress.
BODY_PROGRESS = 1024
# A timeout of 0 turns that deadline off.
NO_DEADLINE = float("inf")


def input_waiting(transport: Any) -> bool:
    """Whether bytes sit unread in the transport's socket (FIONREAD; for TLS, raw records)."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return False
    try:
        count = array.array("i", [0])
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, count)
    except (OSError, ValueError):
        return False
    return count[0] > 0


class ConnectionTimers:
    """Deadlines checked by the server's once-a-second sweep, idleness, the drain."""

    __slots__ = ()

    # (declared by HTTPConnection)
    accepting: bool
    body_deadline: float
    body_progress: int
    closed: bool
    closing: bool
    config: Any
    cycle: Any
    head_deadline: float
    idle_deadline: float
    loop: Any
    parser: Any
    read_paused: bool
    reading: Any
    requests: int
    transport: Any

    def check_timeouts(self, now: float) -> None:
        """Called once a second by the server; see the module docstring for the rules."""
        if self.closed or self.closing or self.transport.get_protocol() is not self:
            return  # done, or handed over (WebSocket): the new protocol keeps its own timers
        reading = self.reading
        if self.cycle is None and reading is None:
            if self.parser.in_head:
                deadline = self.head_deadline
                if not deadline:
                    self.head_deadline = now + (self.config.timeout_request_header or NO_DEADLINE)
                elif now >= deadline:
                    self.protocol_error(RequestTimeout("request head not received in time"))
            elif now >= self.idle_deadline:
                self.close()
        elif reading is not None and now >= self.body_deadline:
            if self.body_progress >= BODY_PROGRESS or self.read_paused or reading.continue_owed:
                # real progress, or the client is waiting for us: a new window
                self.body_progress = 0
                self.body_deadline = now + (self.config.timeout_request_body or NO_DEADLINE)
            else:
                self.protocol_error(RequestTimeout("request body not received in time"))

    def is_idle(self) -> bool:
        """No request in progress: nothing of one received (a new connection that has sent
        nothing, or a kept-alive one between requests) and no bytes waiting unread. Closing
        such a connection loses nothing (RFC 9112 9.3: a client retries on a new one)."""
        return (
            self.cycle is None and self.reading is None and not self.closing and not self.closed
            and not self.parser.in_head and not input_waiting(self.transport)
        )

    def shutdown(self) -> None:
        """Graceful drain: no new request here; idle keep-alive connections close at once.

        A connection accepted just before the drain began has not sent its first request yet:
        its client is about to, and would see a reset, so it gets a short grace instead (the
        request is then answered with ``connection: close``). So does a keep-alive connection
        whose next request already sits unread in the socket: closing it would reset it.
        """
        self.accepting = False
        if self.cycle is None and self.reading is None and not self.parser.in_head:
            if self.requests and not input_waiting(self.transport):
                self.close()
            else:
                self.idle_deadline = min(self.idle_deadline, self.loop.time() + DRAIN_GRACE)
