"""HTTP/2 lifecycle and hardening with hand-made frames: drain (GOAWAY), idle timeout, rapid
reset, CONTINUATION flood, HPACK bomb, control-frame floods, a stalled window, protocol errors.
Each ends with the worker still serving another client."""

from __future__ import annotations

import signal

import pytest
from h2.errors import ErrorCodes
from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from tests.conftest import WORKERS
from tests.h2.client import H2Client

pytestmark = pytest.mark.parametrize("worker", WORKERS)
_REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"localhost"),
            (b":path", b"/echo")]


def still_serving(h2) -> None:
    with h2.client() as client:
        response = client.post("/echo", content=b"alive")
        assert response.http_version == "HTTP/2" and response.text == "alive"


def send_flood(client: H2Client, data: bytes) -> None:
    try:
        client.send_raw(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server stopped reading: what it answered is still to be read


def expect_goaway(client: H2Client, code: int) -> None:
    client.until(lambda: client.goaway is not None or client.closed, message="GOAWAY")
    assert client.goaway is not None, "closed without GOAWAY"
    assert client.goaway.error_code == code


def test_drain_sends_goaway_and_finishes_streams(start_h2, worker):
    h2 = start_h2(worker)
    client = H2Client(h2.server, raw_after_goaway=True)  # (h2 as a client stops at a GOAWAY)
    sid = client.request("/hold-unread", method="POST", body=b"in flight")
    h2.wait_mark("entered unread")
    h2.server.signal(signal.SIGHUP)  # the arbiter replaces the worker: it drains
    final = client.final_goaway()  # (after the drain's first, which names no stream)
    assert final.error_code == ErrorCodes.NO_ERROR and final.last_stream_id == sid
    h2.gate.touch()
    response = client.response(sid)
    assert response.status == 200 and bytes(response.data) == b"gate open"
    client.wait_closed()


def test_idle_connection_is_closed_with_goaway(start_h2, worker):
    h2 = start_h2(worker, args=["--keep-alive", "1"])
    client = H2Client(h2.server)
    sid = client.request("/echo", method="POST", body=b"once")
    assert bytes(client.response(sid).data) == b"once"
    expect_goaway(client, ErrorCodes.NO_ERROR)
    client.wait_closed()


def test_rapid_reset_is_bounded_then_goaway(start_h2, worker):
    h2 = start_h2(worker)
    client = H2Client(h2.server)
    fields = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"localhost"),
              (b":path", b"/hold")]
    for _ in range(600):  # under the control-frame budget: the reset count is what stops it
        sid = client.conn.get_next_available_stream_id()
        client.conn.send_headers(sid, fields)
        client.conn.reset_stream(sid, ErrorCodes.CANCEL)
    send_flood(client, client.conn.data_to_send())
    expect_goaway(client, ErrorCodes.ENHANCE_YOUR_CALM)
    # the connection ended long before the 600 streams it opened had all run an app call
    h2.wait_mark("entered")
    still_serving(h2)
    entered = h2.marks().count("entered")
    assert 0 < entered < 600
    still_serving(h2)


def test_continuation_flood_is_cut_at_the_header_list_size(start_h2, worker):
    h2 = start_h2(worker)
    client = H2Client(h2.server)
    block = Encoder().encode(_REQUEST)
    frames = [HeadersFrame(1, data=block).serialize()]
    frames += [ContinuationFrame(1, data=b"\x40\x01a\x01b" * 3000).serialize()
               for _ in range(200)]  # 200 x 15 KB, never END_HEADERS
    send_flood(client, b"".join(frames))
    expect_goaway(client, ErrorCodes.ENHANCE_YOUR_CALM)
    still_serving(h2)


def test_hpack_bomb(start_h2, worker):
    h2 = start_h2(worker)
    client = H2Client(h2.server)
    encoder = Encoder()
    # one 4 KB field into the dynamic table (index 62), then referenced 500 times by one byte
    block = encoder.encode(_REQUEST) + encoder.encode([(b"x-bomb", b"a" * 4000)])
    block += b"\xbe" * 500
    send_flood(client, HeadersFrame(1, data=block, flags=["END_HEADERS", "END_STREAM"])
               .serialize())
    expect_goaway(client, ErrorCodes.ENHANCE_YOUR_CALM)
    still_serving(h2)


@pytest.mark.parametrize("flood", ["ping", "settings", "empty-data", "window-update"])
def test_control_frame_floods(start_h2, worker, flood):
    h2 = start_h2(worker)
    client = H2Client(h2.server)
    if flood == "ping":
        frame = PingFrame(0, opaque_data=b"12345678").serialize()
    elif flood == "settings":
        frame = SettingsFrame(0).serialize()
    elif flood == "window-update":
        frame = WindowUpdateFrame(0, window_increment=1).serialize()
    else:
        client.request("/hold", method="POST", end=False)
        h2.wait_mark("entered")
        frame = DataFrame(1, data=b"").serialize()
    send_flood(client, frame * 20000)
    expect_goaway(client, ErrorCodes.ENHANCE_YOUR_CALM)
    still_serving(h2)


def test_zero_window_stall_resets_that_stream_only(start_h2, worker):
    h2 = start_h2(worker, timeout_request_body=1)
    client = H2Client(h2.server, auto_ack=False)
    stalled = client.request("/stream-watch?100")
    h2.wait_mark("blocked 0")
    response = client.response(stalled)
    assert response.reset == ErrorCodes.CANCEL and len(response.data) == 65535
    still_serving(h2)  # another connection meanwhile
    # the same connection goes on once its reader catches up with the connection window
    client.auto_ack = True
    client.conn.increment_flow_control_window(65535)
    sid = client.request("/echo", method="POST", body=b"next")
    assert bytes(client.response(sid).data) == b"next"


@pytest.mark.parametrize("frame, code", [
    (b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x", ErrorCodes.PROTOCOL_ERROR),  # DATA, stream 0
    (HeadersFrame(2, data=Encoder().encode(_REQUEST), flags=["END_HEADERS"]).serialize(),
     ErrorCodes.PROTOCOL_ERROR),  # a client stream id must be odd
    (DataFrame(1, data=b"x" * 20000).serialize(), ErrorCodes.FRAME_SIZE_ERROR),
    (WindowUpdateFrame(0, window_increment=2**31 - 1).serialize() * 2,
     ErrorCodes.FLOW_CONTROL_ERROR),
], ids=["data-stream-0", "even-stream", "frame-too-large", "window-overflow"])
def test_connection_errors_get_their_code(start_h2, worker, frame, code):
    h2 = start_h2(worker)
    client = H2Client(h2.server)
    send_flood(client, frame)
    expect_goaway(client, code)
    client.wait_closed()
    still_serving(h2)


def test_bad_preface_is_closed(start_h2, worker):
    h2 = start_h2(worker)
    client = H2Client(h2.server, preface=False)
    client.send_raw(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
    client.wait_closed()
    still_serving(h2)
