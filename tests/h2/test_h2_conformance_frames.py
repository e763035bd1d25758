"""RFC 9113 conformance, frames: the preface (3.4), frame format and size (4.1, 4.2), header
blocks (4.3), extensions (5.5), each frame type's rules (6.1-6.10) and error codes (7), on both
workers over h2c, a few over TLS. The case list follows h2spec's "generic" and "http2" groups
for these sections (see conformance.py for the outcomes)."""

from __future__ import annotations

from hyperframe.frame import DataFrame, PingFrame, SettingsFrame

from tests.h2.conformance import (
    Case,
    E,
    answered,
    closed,
    conn_error,
    corpus_tests,
    ignored,
    ping_or_close,
    request_fields,
    stream_error,
    stream_or_conn,
)
from tests.h2.rawframes import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PRIORITY_FLAG,
    PUSH_PROMISE,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    RawH2,
    frame,
    response_status,
    setting,
)

PING_DATA = b"h2spec!!"


def _get(conn: RawH2, sid: int = 1, **kw) -> bytes:
    return conn.headers(sid, request_fields(conn), **kw)


def _post(conn: RawH2, sid: int = 1) -> bytes:
    return conn.headers(sid, request_fields(conn, b"/echo", b"POST"), end_stream=False)


def _send(*parts):
    """A case body sending ``parts`` (bytes, or functions of the connection) to stream 1."""

    def send(conn: RawH2) -> int:
        conn.send(*(p(conn) if callable(p) else p for p in parts))
        return 1

    return send


def _dummy(n: int = 1) -> list:
    return [(b"x-dummy%d" % i, b"x" * 100) for i in range(n)]


def _ping(flags: int = 0, sid: int = 0, data: bytes = PING_DATA) -> bytes:
    return frame(PING, flags, sid, data)


def _ping_ack_ignored(conn: RawH2) -> int:
    """A PING with ACK is not answered (6.7): the next ACK carries our later PING's data."""
    conn.send(_ping(flags=1, data=b"unasked!"))
    conn.send(_ping())
    found = conn.wait_for(lambda f: isinstance(f, PingFrame), "a PING")
    assert "ACK" in found.flags and found.opaque_data == PING_DATA, repr(found)
    return 0


def _settings_acked(*params: bytes):
    def send(conn: RawH2) -> int:
        conn.send(frame(SETTINGS, 0, 0, b"".join(params)))
        conn.wait_for(lambda f: isinstance(f, SettingsFrame) and "ACK" in f.flags,
                      "SETTINGS ACK")
        return 0

    return send


def _goaway_then_finish(conn: RawH2) -> int:
    """The client's GOAWAY (NO_ERROR) names the last stream *we* opened: its own open
    streams go on (6.8), here an upload whose body follows the GOAWAY."""
    conn.send(_post(conn), frame(GOAWAY, 0, 0, b"\0" * 8),
              DataFrame(1, data=b"after goaway", flags=["END_STREAM"]))
    found = conn.wait_for(lambda f: f.stream_id in (0, 1) and not isinstance(f, PingFrame)
                          and not isinstance(f, SettingsFrame), "the response")
    assert response_status(found) == 200, repr(found)
    conn.wait_for(lambda f: isinstance(f, DataFrame) and "END_STREAM" in f.flags, "the body")
    body = b"".join(f.data for f in conn.stream_frames(1) if isinstance(f, DataFrame))
    assert body == b"after goaway"
    return 1


def _bad_preface(conn: RawH2) -> int:
    conn.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + frame(SETTINGS, 0, 0))
    return 0


def _preface_then_ping(conn: RawH2) -> int:
    conn.send(PREFACE + _ping())  # the first frame must be SETTINGS (3.4)
    return 0


def _header_block_then(other) -> callable:
    """HEADERS without END_HEADERS, then ``other``, then the CONTINUATION that would end it."""

    def send(conn: RawH2) -> int:
        conn.send(_get(conn, end_headers=False), other(conn),
                  conn.continuation(1, _dummy()))
        return 1

    return send


CASES = [
    # 3.4 the connection preface
    Case("3.4/server-preface", "RFC 9113 3.4", _send(), ignored()),
    Case("3.4/invalid-preface", "RFC 9113 3.4", _bad_preface, closed(), handshake=False),
    Case("3.4/first-frame-not-settings", "RFC 9113 3.4", _preface_then_ping,
         conn_error(E.PROTOCOL_ERROR), handshake=False),
    # 4.1 frame format: unknown types, undefined flags and the reserved bit are ignored
    Case("4.1/unknown-type", "RFC 9113 4.1, 5.5", _send(frame(0x16, 0, 0, b"\0" * 8)),
         ignored()),
    Case("4.1/undefined-flag", "RFC 9113 4.1", _send(_ping(flags=0x16 & ~1)), ignored()),
    Case("4.1/reserved-bit", "RFC 9113 4.1", _send(_ping(sid=0x80000000)), ignored()),
    # 4.2 frame size
    Case("4.2/data-16384", "RFC 9113 4.2",
         _send(_post, DataFrame(1, data=b"x" * 16384, flags=["END_STREAM"])), answered()),
    # a DATA frame changes no connection state: a stream error is enough (4.2), and an
    # endpoint MAY treat a stream error as a connection error (5.4.2)
    Case("4.2/data-over-max-frame-size", "RFC 9113 4.2",
         _send(_post, frame(DATA, END_STREAM, 1, b"x" * 16385)),
         stream_or_conn(E.FRAME_SIZE_ERROR)),
    Case("4.2/headers-over-max-frame-size", "RFC 9113 4.2",
         _send(lambda c: frame(HEADERS, END_STREAM | END_HEADERS, 1,
                               c.block(request_fields(c) + _dummy(170)))),
         conn_error(E.FRAME_SIZE_ERROR)),
    # 4.3 header compression and decompression
    Case("4.3/invalid-header-block", "RFC 9113 4.3",
         _send(frame(HEADERS, END_STREAM | END_HEADERS, 1, b"\x40")),
         conn_error(E.COMPRESSION_ERROR)),
    Case("4.3/priority-inside-block", "RFC 9113 4.3, 6.10",
         _header_block_then(lambda c: frame(PRIORITY, 0, 1, b"\0\0\0\0\x0f")),
         conn_error(E.PROTOCOL_ERROR)),
    Case("4.3/headers-other-stream-inside-block", "RFC 9113 4.3, 6.10",
         _header_block_then(lambda c: _get(c, 3)), conn_error(E.PROTOCOL_ERROR)),
    # 5.5 extending HTTP/2
    Case("5.5/unknown-extension-frame", "RFC 9113 5.5",
         _send(frame(0xFF, 0, 0, b"\0" * 8)), ignored()),
    Case("5.5/unknown-frame-inside-block", "RFC 9113 5.5",
         _header_block_then(lambda c: frame(0xFF, 0, 1, b"\0" * 8)),
         conn_error(E.PROTOCOL_ERROR)),
    # 6.1 DATA
    Case("6.1/data", "RFC 9113 6.1", _send(_post, DataFrame(1, data=b"x", flags=["END_STREAM"])),
         answered()),
    Case("6.1/multiple-data", "RFC 9113 6.1",
         _send(_post, *[DataFrame(1, data=b"x" * 10) for _ in range(5)],
               DataFrame(1, data=b"x", flags=["END_STREAM"])), answered()),
    Case("6.1/data-padded", "RFC 9113 6.1",
         _send(_post, DataFrame(1, data=b"x" * 8, pad_length=8, flags=["END_STREAM", "PADDED"])),
         answered()),
    Case("6.1/data-stream-0", "RFC 9113 6.1", _send(frame(DATA, END_STREAM, 0, b"test")),
         conn_error(E.PROTOCOL_ERROR)),
    Case("6.1/data-pad-length-too-long", "RFC 9113 6.1",
         _send(_post, frame(DATA, END_STREAM | PADDED, 1, b"\x06test")),
         conn_error(E.PROTOCOL_ERROR)),
    # 6.2 HEADERS
    Case("6.2/headers", "RFC 9113 6.2", _send(_get), answered()),
    Case("6.2/headers-padded", "RFC 9113 6.2",
         _send(lambda c: frame(HEADERS, END_STREAM | END_HEADERS | PADDED, 1,
                               b"\x08" + c.block(request_fields(c)) + b"\0" * 8)),
         answered()),
    Case("6.2/headers-priority", "RFC 9113 6.2",
         _send(lambda c: frame(HEADERS, END_STREAM | END_HEADERS | PRIORITY_FLAG, 1,
                               b"\0\0\0\0\x0f" + c.block(request_fields(c)))),
         answered()),
    Case("6.2/headers-then-priority", "RFC 9113 6.2, 6.10",
         _send(lambda c: _get(c, end_headers=False), frame(PRIORITY, 0, 1, b"\0\0\0\0\x0f")),
         conn_error(E.PROTOCOL_ERROR)),
    Case("6.2/headers-then-headers-other-stream", "RFC 9113 6.2, 6.10",
         _send(lambda c: _get(c, end_headers=False), lambda c: _get(c, 3)),
         conn_error(E.PROTOCOL_ERROR)),
    Case("6.2/headers-stream-0", "RFC 9113 6.2", _send(lambda c: _get(c, 0)),
         conn_error(E.PROTOCOL_ERROR)),
    Case("6.2/headers-pad-length-too-long", "RFC 9113 6.2",
         _send(lambda c: frame(HEADERS, END_STREAM | END_HEADERS | PADDED, 1,
                               b"\xff" + c.block(request_fields(c)))),
         conn_error(E.PROTOCOL_ERROR)),
    # 6.3 PRIORITY (weights and dependencies are accepted and not acted on: 5.3.2)
    *[Case(f"6.3/priority-{name}", "RFC 9113 6.3",
           _send(frame(PRIORITY, 0, 1, payload), _get), answered())
      for name, payload in [("weight-1", b"\0\0\0\0\x00"), ("weight-256", b"\0\0\0\0\xff"),
                            ("dependency", b"\0\0\0\x03\x0f"),
                            ("exclusive", b"\x80\0\0\x03\x0f")]],
    Case("6.3/priority-idle-then-lower-headers", "RFC 9113 5.1.1, 6.3",
         _send(frame(PRIORITY, 0, 3, b"\0\0\0\0\x0f"), _get), answered()),
    Case("6.3/priority-stream-0", "RFC 9113 6.3", _send(frame(PRIORITY, 0, 0, b"\0\0\0\x01\x0f")),
         conn_error(E.PROTOCOL_ERROR)),
    Case("6.3/priority-length-4", "RFC 9113 6.3", _send(_post, frame(PRIORITY, 0, 1, b"\0" * 4)),
         stream_error(E.FRAME_SIZE_ERROR)),
    # 6.4 RST_STREAM
    Case("6.4/rst-stream", "RFC 9113 6.4", _send(_post, frame(RST_STREAM, 0, 1, b"\0\0\0\x08")),
         ping_or_close()),
    Case("6.4/rst-stream-0", "RFC 9113 6.4", _send(frame(RST_STREAM, 0, 0, b"\0\0\0\x08")),
         conn_error(E.PROTOCOL_ERROR)),
    Case("6.4/rst-idle-stream", "RFC 9113 5.1, 6.4", _send(frame(RST_STREAM, 0, 1, b"\0\0\0\x08")),
         conn_error(E.PROTOCOL_ERROR)),
    Case("6.4/rst-length-3", "RFC 9113 6.4", _send(_post, frame(RST_STREAM, 0, 1, b"\0\0\x08")),
         conn_error(E.FRAME_SIZE_ERROR)),
    # 6.5 SETTINGS
    Case("6.5/settings-acked", "RFC 9113 6.5.3", _settings_acked(setting(2, 0)), ignored()),
    Case("6.5/ack-with-payload", "RFC 9113 6.5", _send(frame(SETTINGS, 1, 0, setting(2, 0))),
         conn_error(E.FRAME_SIZE_ERROR)),
    Case("6.5/settings-stream-1", "RFC 9113 6.5", _send(frame(SETTINGS, 0, 1, setting(2, 0))),
         conn_error(E.PROTOCOL_ERROR)),
    Case("6.5/length-not-multiple-of-6", "RFC 9113 6.5",
         _send(frame(SETTINGS, 0, 0, setting(2, 0)[:3])), conn_error(E.FRAME_SIZE_ERROR)),
    Case("6.5.2/enable-push-2", "RFC 9113 6.5.2", _send(frame(SETTINGS, 0, 0, setting(2, 2))),
         conn_error(E.PROTOCOL_ERROR)),
    Case("6.5.2/initial-window-2^31", "RFC 9113 6.5.2",
         _send(frame(SETTINGS, 0, 0, setting(4, 2**31))), conn_error(E.FLOW_CONTROL_ERROR)),
    Case("6.5.2/max-frame-size-16383", "RFC 9113 6.5.2",
         _send(frame(SETTINGS, 0, 0, setting(5, 16383))), conn_error(E.PROTOCOL_ERROR)),
    Case("6.5.2/max-frame-size-2^24", "RFC 9113 6.5.2",
         _send(frame(SETTINGS, 0, 0, setting(5, 2**24))), conn_error(E.PROTOCOL_ERROR)),
    Case("6.5.2/unknown-setting", "RFC 9113 6.5.2", _settings_acked(setting(0xFF, 1)),
         ignored()),
    Case("6.5.2/enable-connect-protocol-2", "RFC 8441 3",
         _send(frame(SETTINGS, 0, 0, setting(8, 2))), conn_error(E.PROTOCOL_ERROR)),
    # 6.7 PING
    Case("6.7/ping", "RFC 9113 6.7", _send(_ping()), ignored()),
    Case("6.7/ping-ack-not-answered", "RFC 9113 6.7", _ping_ack_ignored, ignored()),
    Case("6.7/ping-stream-1", "RFC 9113 6.7", _send(_ping(sid=1)), conn_error(E.PROTOCOL_ERROR)),
    Case("6.7/ping-length-6", "RFC 9113 6.7", _send(frame(PING, 0, 0, b"\0" * 6)),
         conn_error(E.FRAME_SIZE_ERROR)),
    # 6.8 GOAWAY
    Case("6.8/goaway", "RFC 9113 6.8", _send(frame(GOAWAY, 0, 0, b"\0" * 8 + b"h2spec")),
         ping_or_close()),
    Case("6.8/goaway-then-open-stream-finishes", "RFC 9113 6.8", _goaway_then_finish,
         ping_or_close()),
    Case("6.8/goaway-stream-1", "RFC 9113 6.8", _send(frame(GOAWAY, 0, 1, b"\0" * 8)),
         conn_error(E.PROTOCOL_ERROR)),
    # 6.9 WINDOW_UPDATE (the window arithmetic is in the streams module)
    Case("6.9/window-update-stream-0", "RFC 9113 6.9",
         _send(frame(WINDOW_UPDATE, 0, 0, b"\0\0\0\x01")), ignored()),
    Case("6.9/window-update-0-connection", "RFC 9113 6.9",
         _send(frame(WINDOW_UPDATE, 0, 0, b"\0" * 4)), conn_error(E.PROTOCOL_ERROR)),
    Case("6.9/window-update-length-3", "RFC 9113 6.9",
         _send(frame(WINDOW_UPDATE, 0, 0, b"\0\0\x01")), conn_error(E.FRAME_SIZE_ERROR)),
    # 6.10 CONTINUATION
    Case("6.10/continuation", "RFC 9113 6.10",
         _send(lambda c: _get(c, end_headers=False), lambda c: c.continuation(1, _dummy())),
         answered()),
    Case("6.10/multiple-continuation", "RFC 9113 6.10",
         _send(lambda c: _get(c, end_headers=False),
               *[lambda c, i=i: c.continuation(1, [(b"x-c%d" % i, b"v")], end_headers=False)
                 for i in range(3)],
               lambda c: c.continuation(1, _dummy())), answered()),
    Case("6.10/continuation-then-data", "RFC 9113 6.10",
         _send(lambda c: _get(c, end_stream=False, end_headers=False),
               lambda c: c.continuation(1, _dummy(), end_headers=False),
               frame(DATA, END_STREAM, 1, b"test")), conn_error(E.PROTOCOL_ERROR)),
    Case("6.10/continuation-stream-0", "RFC 9113 6.10",
         _send(lambda c: _get(c, end_headers=False),
               lambda c: frame(CONTINUATION, END_HEADERS, 0, c.block(_dummy()))),
         conn_error(E.PROTOCOL_ERROR)),
    Case("6.10/continuation-other-stream", "RFC 9113 6.10",
         _send(lambda c: _get(c, end_headers=False),
               lambda c: c.continuation(3, _dummy())), conn_error(E.PROTOCOL_ERROR)),
    Case("6.10/continuation-after-end-headers", "RFC 9113 6.10",
         _send(lambda c: _get(c, end_stream=False), lambda c: c.continuation(1, _dummy())),
         conn_error(E.PROTOCOL_ERROR)),
    Case("6.10/continuation-after-continuation-end", "RFC 9113 6.10",
         _send(lambda c: _get(c, end_stream=False, end_headers=False),
               lambda c: c.continuation(1, _dummy()),
               lambda c: c.continuation(1, _dummy(1))), conn_error(E.PROTOCOL_ERROR)),
    Case("6.10/continuation-after-data", "RFC 9113 6.10",
         _send(_post, frame(DATA, 0, 1, b"test"),
               lambda c: c.continuation(1, _dummy())), conn_error(E.PROTOCOL_ERROR)),
    # 7 error codes: unknown codes trigger nothing special
    Case("7/goaway-unknown-code", "RFC 9113 7", _send(frame(GOAWAY, 0, 0, b"\0" * 4 + b"\0\0\0\xff")),
         ping_or_close()),
    Case("7/rst-unknown-code", "RFC 9113 7", _send(_post, frame(RST_STREAM, 0, 1, b"\0\0\0\xff")),
         ping_or_close()),
    # 8.4 server push: a client cannot push
    Case("8.4/push-promise", "RFC 9113 8.4",
         _send(_post, lambda c: frame(PUSH_PROMISE, END_HEADERS, 1,
                                      b"\0\0\0\x02" + c.block(request_fields(c)))),
         conn_error(E.PROTOCOL_ERROR)),
]
TLS_CASES = ["3.4/server-preface", "4.2/headers-over-max-frame-size", "6.1/data-padded",
             "6.5/ack-with-payload", "6.10/continuation-other-stream"]


test_frames, test_frames_over_tls, test_cases_are_named_once = corpus_tests(CASES, TLS_CASES)
