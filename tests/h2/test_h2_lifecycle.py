"""The end of HTTP/2 streams and connections: a drain's two GOAWAYs, a quick exit
(SIGINT/SIGQUIT) resets what is open and sends another GOAWAY; a request body that stops arriving times out on its stream only;
no PINGs of ours on an idle connection, the peer's answered. Both workers, real Gunicorn."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame, PingFrame, RstStreamFrame

from tests.conftest import WORKERS, wait_until
from tests.h2.client import H2Client
from tests.h2.conformance import request_fields
from tests.h2.rawframes import DATA, END_STREAM, RawH2, frame, response_status

MAX_STREAM_ID = 2**31 - 1

pytestmark = pytest.mark.parametrize("worker", WORKERS)


@pytest.mark.parametrize("how", ["drain-then-quit", "int"])
def test_quick_exit_resets_streams_and_sends_a_second_goaway(start_h2, worker, how):
    h2 = start_h2(worker)
    [pid] = wait_until(h2.server.worker_pids, message="the worker")
    client = H2Client(h2.server, raw_after_goaway=True)  # (h2 as a client stops at a GOAWAY)
    done = client.response(client.request("/echo", method="POST", body=b"finished"))
    assert bytes(done.data) == b"finished"
    sid = client.request("/hold-unread", method="POST", body=b"in flight")
    h2.wait_mark("entered unread")
    if how == "drain-then-quit":
        os.kill(pid, signal.SIGTERM)  # graceful: GOAWAY, the stream may finish ...
        client.until(lambda: client.goaways, message="the drain's GOAWAY")
        assert client.responses[sid].reset is None
        os.kill(pid, signal.SIGQUIT)  # ... until a quick exit is asked for
    else:
        os.kill(pid, signal.SIGINT)
    client.wait_closed()
    assert client.responses[sid].reset == ErrorCodes.CANCEL  # cut, not taken for complete
    # a drain's first GOAWAY names the largest stream id (RFC 9113 6.8; the final one was
    # still waiting for the PING's answer), then the final one and the quick exit's
    first = [MAX_STREAM_ID] if how == "drain-then-quit" else []
    assert [g.error_code for g in client.goaways] == [ErrorCodes.NO_ERROR] * (len(first) + 2)
    assert [g.last_stream_id for g in client.goaways] == [*first, sid, sid]


@pytest.mark.parametrize("answer_ping", [True, False], ids=["ping-acked", "no-ping-ack"])
def test_drain_takes_the_streams_in_flight_then_names_the_last(start_h2, worker, answer_ping):
    """A drain's GOAWAY comes in two steps (RFC 9113 6.8): first one naming the largest stream
    id, with a PING; a stream the client opened before it read that GOAWAY (here sent after
    it, as if in flight) is served, not refused. Once the PING is answered (or a second later
    without an answer) the final GOAWAY names the last stream taken; one after it is refused
    (REFUSED_STREAM, safe to retry), the held stream finishes, then the connection closes."""
    h2 = start_h2(worker)
    [pid] = wait_until(h2.server.worker_pids, message="the worker")
    with contextlib.closing(RawH2(h2.server)) as conn:
        conn.handshake()
        conn.send(conn.headers(1, request_fields(conn, b"/hold-unread", b"POST"), end_stream=False))
        h2.wait_mark("entered unread")
        os.kill(pid, signal.SIGTERM)
        first = conn.wait_for(lambda f: isinstance(f, GoAwayFrame), "the first GOAWAY")
        assert (first.error_code, first.last_stream_id) == (ErrorCodes.NO_ERROR, MAX_STREAM_ID)
        ping = conn.wait_for(lambda f: isinstance(f, PingFrame) and "ACK" not in f.flags,
                             "the drain's PING")
        conn.send(conn.headers(3, request_fields(conn, b"/pid")))  # in flight
        if answer_ping:
            conn.send(PingFrame(0, opaque_data=ping.opaque_data, flags=["ACK"]))
        final = conn.wait_for(lambda f: isinstance(f, GoAwayFrame), "the final GOAWAY")
        assert (final.error_code, final.last_stream_id) == (ErrorCodes.NO_ERROR, 3)
        _until_ended(conn, 3)  # (its response may have come before the final GOAWAY)
        assert response_status(conn.stream_frames(3)[0]) == 200
        conn.send(conn.headers(5, request_fields(conn, b"/pid")))  # after the final GOAWAY
        refused = conn.wait_for(lambda f: f.stream_id == 5, "stream 5 refused")
        assert isinstance(refused, RstStreamFrame)
        assert refused.error_code == ErrorCodes.REFUSED_STREAM
        h2.gate.touch()
        conn.send(frame(DATA, END_STREAM, 1, b"body"))
        _until_ended(conn, 1)
        assert response_status(conn.stream_frames(1)[0]) == 200
        assert conn.goaway_or_close() is None  # closed, with no other GOAWAY


def test_request_body_that_stops_times_out_on_its_stream(start_h2, worker):
    h2 = start_h2(worker, timeout_request_body=1)
    client = H2Client(h2.server)
    # (the server's connection window, wider than the default, before filling a stream's)
    client.until(lambda: client.conn.outbound_flow_control_window > 65535 * 2,
                 message="the connection window")
    # the app waits for the body, which stops: 408, the upload stopped (RST NO_ERROR)
    late = client.request("/echo", method="POST", body=b"x" * 100, end=False)
    # the app has read nothing, the client filled the window: the wait is ours, no timeout
    unread = client.request("/hold-unread", method="POST", body=b"u" * 65535, end=False)
    # the response began before the body stopped: the stream is reset (CANCEL)
    begun = client.request("/started-then-read", method="POST", body=b"y" * 100, end=False)
    answered = client.response(late)
    assert answered.status == 408
    client.until(lambda: client.responses[begun].reset is not None, message="reset of begun")
    assert client.responses[begun].reset == ErrorCodes.CANCEL
    assert bytes(client.responses[begun].data) == b"started"
    h2.wait_mark("read ended: http.disconnect")
    # the same ticks left the unread upload alone, and the connection serves on
    assert client.responses[unread].reset is None and not client.responses[unread].ended
    fresh = client.response(client.request("/echo", method="POST", body=b"still here"))
    assert bytes(fresh.data) == b"still here"
    h2.gate.touch()
    client.send_body(unread, b"", end=True)
    assert bytes(client.response(unread).data) == b"gate open"
    assert client.goaway is None


def test_no_ping_of_ours_and_the_peers_answered(start_h2, worker):
    h2 = start_h2(worker, args=["--keep-alive", "1"])
    client = H2Client(h2.server)
    client.conn.ping(b"12345678")
    client.flush()
    client.until(lambda: client.ping_acks, message="PING ACK")
    assert client.ping_acks == [b"12345678"]
    # idle until the keep-alive timeout: a GOAWAY, never a PING
    client.until(lambda: client.goaway is not None, message="idle GOAWAY")
    assert client.goaway.error_code == ErrorCodes.NO_ERROR
    client.wait_closed()
    assert client.pings == []


def _until_ended(conn: RawH2, sid: int) -> None:
    """Until stream ``sid`` has ended (END_STREAM read now or before)."""
    def ended(f) -> bool:
        return f.stream_id == sid and "END_STREAM" in f.flags

    if not any(ended(f) for f in conn.received):
        conn.wait_for(ended, f"the end of stream {sid}")
