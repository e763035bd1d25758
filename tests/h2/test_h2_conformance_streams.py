"""RFC 9113 conformance, streams: stream states (5.1), identifiers (5.1.1), concurrency
(5.1.2), self-dependency (5.3.1), and flow control with SETTINGS_INITIAL_WINDOW_SIZE and
WINDOW_UPDATE (6.5.3, 6.9), on both workers over h2c, a few over TLS. The case list follows
h2spec's (see conformance.py for the outcomes)."""

from __future__ import annotations

from hyperframe.frame import DataFrame, HeadersFrame, RstStreamFrame, SettingsFrame

from tests.h2.conformance import (
    Case,
    E,
    answered,
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
    HEADERS,
    PRIORITY,
    PRIORITY_FLAG,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    RawH2,
    frame,
    setting,
)

CANCEL = b"\0\0\0\x08"


def _get(conn: RawH2, sid: int = 1, path: bytes = b"/", **kw) -> bytes:
    return conn.headers(sid, request_fields(conn, path), **kw)


def _hold(conn: RawH2, sid: int = 1, end_stream: bool = True) -> bytes:
    """A request the app takes and never answers: the stream stays open on our side."""
    return conn.headers(sid, request_fields(conn, b"/hold", b"POST"), end_stream=end_stream)


def _closed(conn: RawH2) -> None:
    """Stream 1 answered in full: closed both ways."""
    conn.send(_get(conn))
    conn.wait_for(lambda f: f.stream_id == 1 and "END_STREAM" in f.flags, "END_STREAM")


def _send(*parts, after_close: bool = False):
    """A case body: (stream 1 answered and closed first, with ``after_close``) then ``parts``
    (bytes, or functions of the connection)."""

    def send(conn: RawH2) -> int:
        if after_close:
            _closed(conn)
        conn.send(*(p(conn) if callable(p) else p for p in parts))
        return 1

    return send


def _wu(sid: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, sid, increment.to_bytes(4, "big"))


def _settings_acked(conn: RawH2, *params: bytes) -> None:
    conn.send(frame(SETTINGS, 0, 0, b"".join(params)))
    conn.wait_for(lambda f: isinstance(f, SettingsFrame) and "ACK" in f.flags, "SETTINGS ACK")


def _first_data_length(conn: RawH2) -> int:
    found = conn.wait_for(lambda f: isinstance(f, DataFrame | RstStreamFrame), "DATA")
    assert isinstance(found, DataFrame), repr(found)
    return len(found.data)


def _window_1(conn: RawH2) -> int:
    """SETTINGS_INITIAL_WINDOW_SIZE 1: the response's first DATA frame carries 1 byte."""
    _settings_acked(conn, setting(4, 1))
    conn.send(_get(conn))
    assert _first_data_length(conn) == 1
    return 1


def _window_in_order(conn: RawH2) -> int:
    """Two values in one SETTINGS frame: the last applies (6.5.3: processed in order)."""
    _settings_acked(conn, setting(4, 100), setting(4, 1))
    conn.send(_get(conn))
    assert _first_data_length(conn) == 1
    return 1


def _window_changed_while_open(conn: RawH2) -> int:
    """A change of SETTINGS_INITIAL_WINDOW_SIZE applies to the streams already open (6.9.2)."""
    _settings_acked(conn, setting(4, 0))
    conn.send(_get(conn))
    conn.wait_for(lambda f: isinstance(f, HeadersFrame), "the response head")
    conn.send(frame(SETTINGS, 0, 0, setting(4, 1)))
    assert _first_data_length(conn) == 1
    return 1


def _window_negative(conn: RawH2) -> int:
    """A smaller SETTINGS_INITIAL_WINDOW_SIZE can make a stream's window negative: it must
    take a WINDOW_UPDATE larger than the deficit before more DATA is sent (6.9.2)."""
    _settings_acked(conn, setting(4, 3))
    conn.send(_get(conn))
    assert _first_data_length(conn) == 3
    _settings_acked(conn, setting(4, 2))  # window 2 - 3 = -1
    conn.send(_wu(1, 2))  # -1 + 2 = 1
    assert _first_data_length(conn) == 1
    return 1


def _too_many_streams(conn: RawH2) -> int:
    """One stream more than SETTINGS_MAX_CONCURRENT_STREAMS, each kept open by a zero
    window (the preface's SETTINGS_INITIAL_WINDOW_SIZE 0): the last one is refused."""
    limit = conn.server_settings[3]
    block = [_get(conn, 1 + 2 * i) for i in range(limit + 1)]
    conn.send(*block)
    return 1 + 2 * limit


CASES = [
    # 5.1 idle streams: only HEADERS and PRIORITY
    Case("5.1/idle-priority", "RFC 9113 5.1", _send(frame(PRIORITY, 0, 3, b"\0\0\0\0\x0f")),
         ignored()),
    Case("5.1/idle-data", "RFC 9113 5.1", _send(frame(DATA, END_STREAM, 1, b"test")),
         conn_error(E.PROTOCOL_ERROR)),
    Case("5.1/idle-rst-stream", "RFC 9113 5.1", _send(frame(RST_STREAM, 0, 1, CANCEL)),
         conn_error(E.PROTOCOL_ERROR)),
    Case("5.1/idle-window-update", "RFC 9113 5.1", _send(_wu(1, 100)),
         conn_error(E.PROTOCOL_ERROR)),
    Case("5.1/idle-continuation", "RFC 9113 5.1",
         _send(lambda c: frame(CONTINUATION, END_HEADERS, 1, c.block(request_fields(c)))),
         conn_error(E.PROTOCOL_ERROR)),
    # 5.1 half-closed (remote): WINDOW_UPDATE, PRIORITY, RST_STREAM only
    Case("5.1/half-closed-window-update", "RFC 9113 5.1", _send(_get, _wu(1, 1)), answered()),
    Case("5.1/half-closed-priority", "RFC 9113 5.1",
         _send(_get, frame(PRIORITY, 0, 1, b"\0\0\0\x03\x0f")), answered()),
    Case("5.1/half-closed-rst-stream", "RFC 9113 5.1",
         _send(_hold, frame(RST_STREAM, 0, 1, CANCEL)), ping_or_close()),
    Case("5.1/half-closed-data", "RFC 9113 5.1, 6.1",
         _send(_hold, frame(DATA, END_STREAM, 1, b"test")), stream_error(E.STREAM_CLOSED)),
    Case("5.1/half-closed-headers", "RFC 9113 5.1",
         _send(_hold, _hold), stream_error(E.STREAM_CLOSED)),
    # a CONTINUATION without a HEADERS before it is a PROTOCOL_ERROR (6.10) as well
    Case("5.1/half-closed-continuation", "RFC 9113 5.1, 6.10",
         _send(_hold, lambda c: frame(CONTINUATION, END_HEADERS, 1, c.block([(b"x-a", b"b")]))),
         stream_or_conn(E.STREAM_CLOSED, E.PROTOCOL_ERROR)),
    # 5.1 closed by the client's RST_STREAM
    Case("5.1/reset-then-data", "RFC 9113 5.1",
         _send(lambda c: _hold(c, end_stream=False), frame(RST_STREAM, 0, 1, CANCEL),
               frame(DATA, END_STREAM, 1, b"test")), stream_error(E.STREAM_CLOSED)),
    Case("5.1/reset-then-headers", "RFC 9113 5.1",
         _send(lambda c: _hold(c, end_stream=False), frame(RST_STREAM, 0, 1, CANCEL), _hold),
         stream_error(E.STREAM_CLOSED)),
    Case("5.1/reset-then-continuation", "RFC 9113 5.1, 6.10",
         _send(lambda c: _hold(c, end_stream=False), frame(RST_STREAM, 0, 1, CANCEL),
               lambda c: frame(CONTINUATION, END_HEADERS, 1, c.block([(b"x-a", b"b")]))),
         stream_or_conn(E.STREAM_CLOSED, E.PROTOCOL_ERROR)),
    # 5.1 closed by END_STREAM both ways: an endpoint MAY make these connection errors
    Case("5.1/closed-data", "RFC 9113 5.1, 6.1",
         _send(frame(DATA, END_STREAM, 1, b"test"), after_close=True),
         stream_or_conn(E.STREAM_CLOSED)),
    Case("5.1/closed-headers", "RFC 9113 5.1", _send(_get, after_close=True),
         stream_or_conn(E.STREAM_CLOSED)),
    Case("5.1/closed-continuation", "RFC 9113 5.1, 6.10",
         _send(lambda c: frame(CONTINUATION, END_HEADERS, 1, c.block([(b"x-a", b"b")])),
               after_close=True),
         stream_or_conn(E.STREAM_CLOSED, E.PROTOCOL_ERROR)),
    Case("5.1/closed-priority", "RFC 9113 5.1",
         _send(frame(PRIORITY, 0, 1, b"\0\0\0\x03\x0f"), after_close=True), ignored()),
    Case("5.1/closed-window-update", "RFC 9113 5.1",
         _send(_wu(1, 1), after_close=True), ignored()),
    # 5.1.1 stream identifiers
    Case("5.1.1/even-stream", "RFC 9113 5.1.1", _send(lambda c: _get(c, 2)),
         conn_error(E.PROTOCOL_ERROR)),
    Case("5.1.1/decreasing-stream", "RFC 9113 5.1.1",
         _send(lambda c: _get(c, 5), lambda c: _get(c, 3)), conn_error(E.PROTOCOL_ERROR)),
    # 5.1.2 concurrency: REFUSED_STREAM (we) or PROTOCOL_ERROR
    Case("5.1.2/over-max-concurrent-streams", "RFC 9113 5.1.2", _too_many_streams,
         stream_error(E.REFUSED_STREAM, E.PROTOCOL_ERROR), settings=(setting(4, 0),)),
    # 5.3.1 a stream cannot depend on itself: a stream error; on an idle stream (which may not
    # be reset, 6.4) a connection error
    Case("5.3.1/headers-depends-on-itself", "RFC 9113 5.3.1",
         _send(lambda c: frame(HEADERS, END_STREAM | END_HEADERS | PRIORITY_FLAG, 1,
                               b"\0\0\0\x01\xff" + c.block(request_fields(c)))),
         stream_error(E.PROTOCOL_ERROR)),
    Case("5.3.1/priority-depends-on-itself", "RFC 9113 5.3.1",
         _send(lambda c: _hold(c, end_stream=False), frame(PRIORITY, 0, 1, b"\0\0\0\x01\xff")),
         stream_error(E.PROTOCOL_ERROR)),
    Case("5.3.1/priority-idle-depends-on-itself", "RFC 9113 5.3.1, 6.4",
         _send(frame(PRIORITY, 0, 1, b"\0\0\0\x01\xff")), conn_error(E.PROTOCOL_ERROR)),
    # 6.5.3 / 6.9 flow control
    Case("6.5.3/initial-window-values-in-order", "RFC 9113 6.5.3", _window_in_order, ignored()),
    Case("6.9/window-update-stream-1", "RFC 9113 6.9", _send(_get, _wu(1, 1)), answered()),
    # a stream error (the connection's window is untouched); on stream 0 a connection error
    Case("6.9/window-update-0-stream", "RFC 9113 6.9",
         _send(lambda c: _hold(c, end_stream=False), _wu(1, 0)),
         stream_error(E.PROTOCOL_ERROR)),
    Case("6.9.1/initial-window-1", "RFC 9113 6.9.1", _window_1, ignored()),
    Case("6.9.1/connection-window-overflow", "RFC 9113 6.9.1",
         _send(_wu(0, 2**31 - 1), _wu(0, 2**31 - 1)), conn_error(E.FLOW_CONTROL_ERROR)),
    Case("6.9.1/stream-window-overflow", "RFC 9113 6.9.1",
         _send(lambda c: _hold(c, end_stream=False), _wu(1, 2**31 - 1), _wu(1, 2**31 - 1)),
         stream_error(E.FLOW_CONTROL_ERROR)),
    Case("6.9.2/initial-window-changed-on-open-stream", "RFC 9113 6.9.2",
         _window_changed_while_open, ignored()),
    Case("6.9.2/negative-window", "RFC 9113 6.9.2", _window_negative, ignored()),
    Case("6.9.2/initial-window-over-max", "RFC 9113 6.9.2",
         _send(frame(SETTINGS, 0, 0, setting(4, 2**31))), conn_error(E.FLOW_CONTROL_ERROR)),
]
TLS_CASES = ["5.1/half-closed-data", "5.1.2/over-max-concurrent-streams",
             "6.9.2/negative-window"]


test_streams, test_streams_over_tls, test_cases_are_named_once = corpus_tests(CASES, TLS_CASES)
