"""Sans-IO tests of gworkers' HTTP/2 server connection (gworkers/http/h2/core.py).

``H2Core`` is driven with bytes from the ``h2`` package's client state machine (the peer a
real client would be), its handler calls are recorded by ``Recorder`` (our own handler
interface), and its output is read back by the same h2 client, so both directions are checked
by an independent implementation. Frames h2 refuses to send (the protocol errors) are written
by ``raw`` below. The live twins of these tests run against Gunicorn in the other tests/h2
files.
"""

from __future__ import annotations

import base64
import random
import struct

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingAckReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    SettingsAcknowledged,
    StreamEnded,
    WindowUpdated,
)
from h2.settings import SettingCodes, Settings

from gworkers.config import Config
from gworkers.http.h2.core import CONNECTION_WINDOW, FLOOD_BUDGET, H2Core
from tests.h2.rawframes import (
    ACK,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PING,
    PREFACE,
    PUSH_PROMISE,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    frame,
)

NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED, FRAME_SIZE_ERROR, CANCEL, \
    COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 0x0, 0x1, 0x3, 0x5, 0x6, 0x8, 0x9, 0xB

GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
       (b":authority", b"example.test")]
POST = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/up"),
        (b":authority", b"example.test")]
OK = [(b":status", b"200"), (b"content-type", b"text/plain")]
GET_BLOCK = b"\x82\x86\x84"  # :method GET, :scheme http, :path / (static indexes)


raw = frame  # one frame, whatever it says: for what h2's client refuses to send


def frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """Our output cut into (type, flags, stream id, payload)."""
    out, pos = [], 0
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        kind, flags, stream_id = data[pos + 3], data[pos + 4], int.from_bytes(
            data[pos + 5:pos + 9], "big")
        out.append((kind, flags, stream_id, data[pos + 9:pos + 9 + length]))
        pos += 9 + length
    assert pos == len(data)
    return out


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


class Recorder:
    """``H2Core``'s handler: every call, in order, as a tuple."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def request(self, stream_id: int, headers: list, ended: bool) -> None:
        self.calls.append(("request", stream_id, list(headers), ended))

    def data(self, stream_id: int, data: bytes, size: int) -> None:
        self.calls.append(("data", stream_id, bytes(data), size))

    def end(self, stream_id: int) -> None:
        self.calls.append(("end", stream_id))

    def malformed(self, stream_id: int, reason: str) -> None:
        self.calls.append(("malformed", stream_id))

    def reset(self, stream_id: int, code: int) -> None:
        self.calls.append(("reset", stream_id, code))

    def window(self, stream_id: int) -> None:
        self.calls.append(("window", stream_id))

    def peer_goaway(self, code: int) -> None:
        self.calls.append(("peer_goaway", code))

    def terminated(self, code: int, reason: str) -> None:
        self.calls.append(("terminated", code))

    def drained(self) -> None:
        self.calls.append(("drained",))


class Pair:
    """An ``H2Core`` and an h2 client, connected by hand."""

    def __init__(self, **config) -> None:
        self.handler = Recorder()
        self.core = H2Core(Config(**config), self.handler)
        self.client = H2Connection(H2Configuration(client_side=True, header_encoding=None))

    @property
    def calls(self) -> list[tuple]:
        return self.handler.calls

    def start(self) -> Pair:
        """Both prefaces, both SETTINGS acknowledged; the records start empty."""
        self.core.initiate()
        self.client.initiate_connection()
        self.to_server()
        self.to_client()
        self.to_server()  # the client's ACK of our SETTINGS
        assert self.core.acked
        self.calls.clear()
        return self

    def to_server(self, extra: bytes = b"") -> bytes:
        data = self.client.data_to_send() + extra
        self.core.receive(data)
        return data

    def to_client(self) -> list:
        return self.client.receive_data(self.core.data_to_send())

    def out(self) -> list[tuple[int, int, int, bytes]]:
        return frames(self.core.data_to_send())


def of(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


# ---------------------------------------------------------------------- the exchange
def test_preface_settings_then_ack():
    pair = Pair()
    pair.core.initiate()
    (kind, flags, sid, payload), (wu_kind, _, wu_sid, wu_payload) = pair.out()
    assert (kind, flags, sid) == (SETTINGS, 0, 0)
    values = dict(struct.iter_unpack(">HL", payload))
    assert values == {3: 100, 4: 65535, 5: 16384, 6: 65536, 8: 1}
    assert (wu_kind, wu_sid, int.from_bytes(wu_payload, "big")) == (
        WINDOW_UPDATE, 0, CONNECTION_WINDOW - 65535)
    pair.client.initiate_connection()
    pair.to_server()
    assert pair.out() == [(SETTINGS, ACK, 0, b"")]  # the client's SETTINGS, acknowledged
    assert pair.calls == [("window", 0)]  # (h2's SETTINGS name INITIAL_WINDOW_SIZE)


def test_client_sees_our_settings_and_ack():
    pair = Pair()
    pair.core.initiate()
    pair.client.initiate_connection()
    pair.to_server()
    events = pair.to_client()
    changed = of(events, RemoteSettingsChanged)[0].changed_settings
    assert changed[SettingCodes.MAX_CONCURRENT_STREAMS].new_value == 100
    assert changed[SettingCodes.ENABLE_CONNECT_PROTOCOL].new_value == 1
    assert of(events, SettingsAcknowledged)
    assert of(events, WindowUpdated)[0].delta == CONNECTION_WINDOW - 65535


def test_request_reaches_the_handler():
    pair = Pair().start()
    pair.client.send_headers(1, GET, end_stream=True)
    pair.to_server()
    assert pair.calls == [("request", 1, GET, True)]
    assert pair.core.stream_open(1)
    assert pair.core.receive_window(1) == 0  # half closed (remote)


def test_response_reaches_the_client():
    pair = Pair().start()
    pair.client.send_headers(1, GET, end_stream=True)
    pair.to_server()
    assert pair.core.send_headers(1, OK, False)
    assert pair.core.send_data(1, b"hello", True) == b""
    events = pair.to_client()
    assert [type(e) for e in events] == [ResponseReceived, DataReceived, StreamEnded]
    assert events[0].headers == OK
    assert events[1].data == b"hello"
    assert not pair.core.stream_open(1)
    assert pair.core.send_data(1, b"more", True) is None
    assert pair.core.send_headers(1, OK, True) is False


def test_ping_answered_and_ping_ack_not():
    pair = Pair().start()
    pair.client.ping(b"12345678")
    pair.to_server()
    out = pair.core.data_to_send()
    assert frames(out) == [(PING, ACK, 0, b"12345678")]
    assert of(pair.client.receive_data(out), PingAckReceived)[0].ping_data == b"12345678"
    pair.core.receive(raw(PING, ACK, 0, b"abcdefgh"))
    assert pair.core.data_to_send() == b""
    assert pair.calls == []


def test_peer_goaway_reported():
    pair = Pair().start()
    pair.client.close_connection(error_code=ENHANCE_YOUR_CALM)
    pair.to_server()
    assert pair.calls == [("peer_goaway", ENHANCE_YOUR_CALM)]


def test_client_reset_reported_and_stream_closed():
    pair = Pair().start()
    pair.client.send_headers(1, POST)
    pair.client.reset_stream(1, CANCEL)
    pair.to_server()
    assert pair.calls == [("request", 1, POST, False), ("reset", 1, CANCEL)]
    assert not pair.core.stream_open(1)
    assert pair.core.send_headers(1, OK, True) is False
    # DATA the client had in flight on the stream it reset: a stream error, not the connection's
    pair.core.receive(raw(DATA, 0, 1, b"late"))
    assert pair.out() == [(RST_STREAM, 0, 1, u32(STREAM_CLOSED))]


def test_trailers_end_the_request():
    pair = Pair().start()
    pair.client.send_headers(1, POST)
    pair.client.send_data(1, b"body")
    pair.client.send_headers(1, [(b"x-checksum", b"abc")], end_stream=True)
    pair.to_server()
    assert pair.calls == [("request", 1, POST, False), ("data", 1, b"body", 4), ("end", 1)]


# ---------------------------------------------------------------------- feeding
def client_stream() -> bytes:
    """Everything a busy client sends, as one byte string: requests with bodies, padding,
    trailers, a header block in CONTINUATION frames, PING, WINDOW_UPDATE, RST_STREAM, GOAWAY."""
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    client.send_headers(1, POST)
    client.send_data(1, b"a" * 1000)
    client.send_data(1, b"b" * 10, pad_length=20)
    client.send_headers(1, [(b"x-trailer", b"t")], end_stream=True)
    client.send_headers(3, GET, end_stream=True)
    rng = random.Random(1)
    big = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(30000))
    client.send_headers(5, [*GET, (b"x-big", big)], end_stream=True)  # HEADERS + CONTINUATION
    client.ping(b"pingpong")
    client.send_headers(7, POST)
    client.send_data(7, b"c" * 300)
    client.reset_stream(7, CANCEL)
    client.increment_flow_control_window(1000)
    client.close_connection()
    data = client.data_to_send()
    assert CONTINUATION in [kind for kind, *_ in frames(data[len(PREFACE):])]
    return data


def feed(chunks: list[bytes]) -> tuple[list[tuple], bytes]:
    """A new core fed ``chunks`` one call each: its handler calls and all it wrote."""
    handler = Recorder()
    core = H2Core(Config(), handler)
    core.initiate()
    out = core.data_to_send()
    for chunk in chunks:
        core.receive(chunk)
        out += core.data_to_send()
    return handler.calls, out


def test_stream_means_what_we_expect():
    calls, out = feed([client_stream()])
    big = [c for c in calls if c[0] == "request" and c[1] == 5][0][2][-1]
    assert big[0] == b"x-big" and len(big[1]) == 30000
    assert calls == [
        ("window", 0),  # the client's SETTINGS name INITIAL_WINDOW_SIZE
        ("request", 1, POST, False), ("data", 1, b"a" * 1000, 1000),
        ("data", 1, b"b" * 10, 31), ("end", 1),
        ("request", 3, GET, True),
        ("request", 5, [*GET, big], True),
        ("request", 7, POST, False), ("data", 7, b"c" * 300, 300), ("reset", 7, CANCEL),
        ("window", 0), ("peer_goaway", NO_ERROR),
    ]
    kinds = [kind for kind, *_ in frames(out)]
    assert kinds == [SETTINGS, WINDOW_UPDATE, SETTINGS, PING]  # ours, ACK, PING ACK


@pytest.mark.parametrize("split", ["bytes", *range(5)])
def test_split_feeding_gives_the_same_calls(split):
    data = client_stream()
    if split == "bytes":
        chunks = [data[i:i + 1] for i in range(len(data))]
    else:
        rng = random.Random(split)
        cuts = sorted(rng.sample(range(1, len(data)), 60))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert feed(chunks) == feed([data])


def test_trailing_bytes_wait_for_the_rest():
    data = client_stream()
    ping = raw(PING, 0, 0, b"trailing")
    whole_calls, whole_out = feed([data])
    handler = Recorder()
    core = H2Core(Config(), handler)
    core.initiate()
    out = core.data_to_send()
    pieces = [data + ping[:5], ping[5:9], ping[9:12]]  # cut in the frame header, at its
    for piece in pieces:  # end, inside the payload
        core.receive(piece)
        assert handler.calls == whole_calls
        out += core.data_to_send()
        assert out == whole_out
    core.receive(ping[12:])
    assert frames(core.data_to_send()) == [(PING, ACK, 0, b"trailing")]


# ---------------------------------------------------------------------- flow control
def test_response_cut_at_the_window_then_resumed():
    pair = Pair().start()
    pair.client.send_headers(1, GET, end_stream=True)
    pair.to_server()
    body = bytes(random.Random(2).randrange(256) for _ in range(100000))
    pair.core.send_headers(1, OK, False)
    rest = pair.core.send_data(1, body, True)
    assert rest == body[65535:]
    assert pair.core.window_for(1) == 0
    events = pair.to_client()
    received = of(events, DataReceived)
    assert sum(len(e.data) for e in received) == 65535
    assert max(len(e.data) for e in received) <= 16384
    assert not of(events, StreamEnded)
    pair.client.increment_flow_control_window(len(rest), 1)
    pair.client.increment_flow_control_window(len(rest))
    pair.to_server()
    assert pair.calls[-2:] == [("window", 1), ("window", 0)]
    assert pair.core.window_for(1) == 16384  # the windows are open: a frame's worth
    assert pair.core.send_data(1, rest, True) == b""
    events = pair.to_client()
    got = b"".join(e.data for e in received + of(events, DataReceived))
    assert got == body
    assert of(events, StreamEnded)


def test_client_initial_window_changes_open_streams():
    pair = Pair().start()
    pair.client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    pair.client.send_headers(1, GET, end_stream=True)
    pair.to_server()
    pair.to_client()
    pair.core.send_headers(1, OK, False)
    assert len(pair.core.send_data(1, b"x" * 3000, False)) == 2000
    pair.client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 5000})
    pair.to_server()
    assert ("window", 0) in pair.calls
    assert pair.core.window_for(1) == 4000  # the 4000 the setting added, less nothing sent
    assert pair.core.send_data(1, b"y" * 4000, True) == b""


def test_client_max_frame_size_sizes_our_frames():
    pair = Pair().start()
    pair.client.update_settings({SettingCodes.MAX_FRAME_SIZE: 32768,
                                 SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    pair.client.increment_flow_control_window(1 << 20)
    pair.client.send_headers(1, GET, end_stream=True)
    pair.to_server()
    pair.to_client()  # our ACK: h2 reads frames up to its new size from now on
    big = [(b":status", b"200"), (b"x-big", b"v" * 40000)]
    assert pair.core.send_headers(1, big, False)
    assert pair.core.send_data(1, b"d" * 40000, True) == b""
    out = pair.core.data_to_send()
    shape = [(kind, len(payload)) for kind, _, _, payload in frames(out)]
    assert [kind for kind, _ in shape] == [HEADERS, CONTINUATION, DATA, DATA]
    assert shape[0][1] == 32768 and shape[2][1] == 32768 and shape[3][1] == 40000 - 32768
    events = pair.client.receive_data(out)
    assert of(events, ResponseReceived)[0].headers == big
    assert sum(len(e.data) for e in of(events, DataReceived)) == 40000


def test_upload_uses_the_window_and_open_window_reopens_it():
    pair = Pair().start()
    pair.client.send_headers(1, POST)
    pair.client.send_data(1, b"x" * 1000)
    pair.client.send_data(1, b"y" * 5, pad_length=4)  # 5 + 4 + the pad length byte: 10
    pair.to_server()
    assert pair.calls == [("request", 1, POST, False), ("data", 1, b"x" * 1000, 1000),
                          ("data", 1, b"y" * 5, 10)]
    assert pair.core.receive_window(1) == 65535 - 1010
    pair.core.open_window(1, 1010)
    events = pair.to_client()
    assert [(e.stream_id, e.delta) for e in of(events, WindowUpdated)] == [(1, 1010)]
    assert pair.core.receive_window(1) == 65535
    pair.client.end_stream(1)
    pair.to_server()
    assert pair.calls[-1] == ("end", 1)
    pair.core.open_window(1, 500)  # closed for the client: no WINDOW_UPDATE
    assert pair.core.data_to_send() == b""


def test_upload_past_the_stream_window_resets_the_stream():
    pair = Pair(http2_initial_window_size=100).start()
    pair.client.send_headers(1, POST)
    pair.to_server()
    pair.core.receive(raw(DATA, 0, 1, b"z" * 101))
    assert pair.out() == [(RST_STREAM, 0, 1, u32(FLOW_CONTROL_ERROR))]
    assert pair.calls[-1] == ("reset", 1, FLOW_CONTROL_ERROR)
    pair.client.send_headers(3, GET, end_stream=True)  # the connection goes on
    pair.to_server()
    assert pair.calls[-1] == ("request", 3, GET, True)


def test_small_window_is_the_default_until_acknowledged():
    pair = Pair(http2_initial_window_size=100)
    pair.core.initiate()
    pair.client.initiate_connection()
    pair.client.send_headers(1, POST)
    pair.to_server()  # our SETTINGS not yet acknowledged
    assert pair.core.receive_window(1) == 65535


def test_connection_window_reopened_as_data_arrives():
    pair = Pair(http2_initial_window_size=CONNECTION_WINDOW).start()
    pair.client.send_headers(1, POST)
    pair.to_server()
    chunk = raw(DATA, 0, 1, b"q" * 16384)
    count = CONNECTION_WINDOW // 2 // 16384
    pair.core.receive(chunk * (count - 1))
    assert pair.out() == []
    pair.core.receive(chunk)
    assert pair.out() == [(WINDOW_UPDATE, 0, 0, u32(CONNECTION_WINDOW // 2))]


# ---------------------------------------------------------------------- errors
def stream_1_open(pair: Pair) -> None:
    pair.client.send_headers(1, POST)
    pair.to_server()
    pair.core.data_to_send()
    pair.calls.clear()


BIG_FRAME_HEAD = (16385).to_bytes(3, "big") + bytes((DATA, 0)) + u32(1)


@pytest.mark.parametrize(("data", "code"), [
    pytest.param(raw(DATA, 0, 0, b"x"), PROTOCOL_ERROR, id="data-on-stream-0"),
    pytest.param(BIG_FRAME_HEAD, FRAME_SIZE_ERROR, id="frame-over-max-size"),
    pytest.param(raw(HEADERS, END_HEADERS | END_STREAM, 2, GET_BLOCK), PROTOCOL_ERROR,
                 id="even-stream-id"),
    pytest.param(raw(HEADERS, END_HEADERS, 3, GET_BLOCK) + raw(HEADERS, END_HEADERS, 1, GET_BLOCK),
                 PROTOCOL_ERROR, id="stream-id-going-down"),
    pytest.param(raw(HEADERS, END_HEADERS, 1, b"\xbe"), COMPRESSION_ERROR, id="hpack-error"),
    pytest.param(raw(HEADERS, 0, 1, GET_BLOCK) + raw(PING, 0, 0, b"12345678"), PROTOCOL_ERROR,
                 id="ping-inside-a-header-block"),
    pytest.param(raw(HEADERS, 0, 1, GET_BLOCK) + raw(CONTINUATION, END_HEADERS, 3, b"\x84"),
                 PROTOCOL_ERROR, id="continuation-of-another-stream"),
    pytest.param(raw(WINDOW_UPDATE, 0, 0, u32(2**31 - 65535)), FLOW_CONTROL_ERROR,
                 id="connection-window-overflow"),
    pytest.param(raw(WINDOW_UPDATE, 0, 0, u32(0)), PROTOCOL_ERROR, id="connection-window-0"),
    pytest.param(raw(PUSH_PROMISE, END_HEADERS, 1, u32(2) + GET_BLOCK), PROTOCOL_ERROR,
                 id="push-promise"),
    pytest.param(raw(SETTINGS, 0, 0, struct.pack(">HL", 2, 2)), PROTOCOL_ERROR,
                 id="enable-push-2"),
    pytest.param(raw(SETTINGS, 0, 0, struct.pack(">HL", 4, 2**31)), FLOW_CONTROL_ERROR,
                 id="initial-window-over-max"),
    pytest.param(raw(SETTINGS, 0, 0, b"\x00\x04"), FRAME_SIZE_ERROR, id="settings-length"),
    pytest.param(raw(HEADERS, END_HEADERS | END_STREAM, 1, GET_BLOCK)
                 + raw(WINDOW_UPDATE, 0, 1, u32(2**31 - 1 - 65535))
                 + raw(SETTINGS, 0, 0, struct.pack(">HL", 4, 65536)), FLOW_CONTROL_ERROR,
                 id="initial-window-change-overflows-a-stream"),
    pytest.param(raw(DATA, 0, 9, b"x"), PROTOCOL_ERROR, id="data-on-idle-stream"),
    pytest.param(raw(RST_STREAM, 0, 0, u32(0)), PROTOCOL_ERROR, id="rst-on-stream-0"),
    pytest.param(raw(PING, 0, 0, b"short"), FRAME_SIZE_ERROR, id="ping-length"),
    pytest.param(raw(PING, 0, 0, b"12345678") * (FLOOD_BUDGET + 1), ENHANCE_YOUR_CALM,
                 id="ping-flood"),
])
def test_connection_errors(data, code):
    pair = Pair().start()
    pair.core.receive(data)
    assert pair.calls[-1] == ("terminated", code)
    out = pair.core.data_to_send()
    kind, _, _, payload = frames(out)[-1]
    assert (kind, int.from_bytes(payload[4:8], "big")) == (GOAWAY, code)
    terminated = of(pair.client.receive_data(out), ConnectionTerminated)
    assert terminated[0].error_code == code
    calls = list(pair.calls)
    pair.core.receive(raw(PING, 0, 0, b"12345678") + raw(HEADERS, 5, 11, GET_BLOCK))
    assert pair.calls == calls  # nothing read after the GOAWAY
    assert pair.core.data_to_send() == b""


def test_frame_over_max_size_refused_before_its_payload():
    pair = Pair().start()
    pair.core.receive(BIG_FRAME_HEAD)
    assert pair.calls == [("terminated", FRAME_SIZE_ERROR)]


@pytest.mark.parametrize("preface", [
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="http1"),
    pytest.param(PREFACE + raw(PING, 0, 0, b"12345678"), id="no-settings-first"),
])
def test_bad_preface(preface):
    pair = Pair()
    pair.core.initiate()
    pair.core.data_to_send()
    pair.core.receive(preface)
    assert pair.calls == [("terminated", PROTOCOL_ERROR)]


def test_window_update_overflow_on_a_stream_resets_it():
    pair = Pair().start()
    stream_1_open(pair)
    pair.core.receive(raw(WINDOW_UPDATE, 0, 1, u32(2**31 - 65535)))
    assert pair.out() == [(RST_STREAM, 0, 1, u32(FLOW_CONTROL_ERROR))]
    assert pair.calls == [("reset", 1, FLOW_CONTROL_ERROR)]
    assert not pair.core.stream_open(1)
    pair.client.send_headers(3, GET, end_stream=True)
    pair.to_server()
    assert pair.calls[-1] == ("request", 3, GET, True)


@pytest.mark.parametrize(("frame", "code"), [
    pytest.param(raw(WINDOW_UPDATE, 0, 1, u32(0)), PROTOCOL_ERROR, id="window-update-0"),
    pytest.param(raw(HEADERS, END_HEADERS, 1, b"\x0f\x10\x01x"), PROTOCOL_ERROR,
                 id="trailers-without-end-stream"),
    pytest.param(raw(HEADERS, END_HEADERS | END_STREAM, 1, b"\x82"), PROTOCOL_ERROR,
                 id="trailers-with-a-pseudo-header"),
])
def test_stream_errors(frame, code):
    pair = Pair().start()
    stream_1_open(pair)
    pair.core.receive(frame)
    assert (RST_STREAM, 0, 1, u32(code)) in pair.out()
    assert pair.calls[-1] == ("reset", 1, code) or pair.calls == [("malformed", 1)]
    assert not pair.core.stream_open(1)


def test_data_after_end_stream_is_stream_closed():
    pair = Pair().start()
    pair.client.send_headers(1, GET, end_stream=True)
    pair.to_server()
    pair.core.data_to_send()
    pair.core.receive(raw(DATA, 0, 1, b"x"))
    assert pair.out() == [(RST_STREAM, 0, 1, u32(STREAM_CLOSED))]
    assert pair.calls[-1] == ("reset", 1, STREAM_CLOSED)


def test_frames_on_a_stream_we_reset_are_ignored():
    pair = Pair().start()
    stream_1_open(pair)
    pair.core.reset(1, CANCEL)
    assert pair.out() == [(RST_STREAM, 0, 1, u32(CANCEL))]
    pair.core.receive(raw(DATA, 0, 1, b"in flight") + raw(WINDOW_UPDATE, 0, 1, u32(10)))
    assert pair.core.data_to_send() == b""
    assert pair.calls == []


def test_flood_budget_renews():
    pair = Pair().start()
    pings = raw(PING, 0, 0, b"12345678") * FLOOD_BUDGET
    pair.core.new_budget_window()  # (the handshake's SETTINGS frames counted)
    pair.core.receive(pings)
    pair.core.new_budget_window()
    pair.core.receive(pings)
    assert pair.calls == []
    assert len(pair.out()) == 2 * FLOOD_BUDGET


# ---------------------------------------------------------------------- settings, ending
def test_header_table_size_change_means_a_size_update():
    pair = Pair().start()
    pair.client.update_settings({SettingCodes.HEADER_TABLE_SIZE: 0})
    pair.client.send_headers(1, GET, end_stream=True)
    pair.client.send_headers(3, GET, end_stream=True)
    pair.to_server()
    ack = pair.out()
    assert ack == [(SETTINGS, ACK, 0, b"")]
    pair.client.receive_data(raw(SETTINGS, ACK, 0))
    pair.core.send_headers(1, OK, True)
    pair.core.send_headers(3, OK, True)
    out = pair.core.data_to_send()
    (_, _, _, first), (_, _, _, second) = frames(out)
    assert first[:1] == b"\x20" and second[:1] != b"\x20"
    responses = of(pair.client.receive_data(out), ResponseReceived)
    assert [e.headers for e in responses] == [OK, OK]


def test_same_header_table_size_means_no_update():
    pair = Pair().start()
    pair.client.update_settings({SettingCodes.HEADER_TABLE_SIZE: 4096})
    pair.client.send_headers(1, GET, end_stream=True)
    pair.to_server()
    pair.core.data_to_send()
    pair.core.send_headers(1, OK, True)
    assert frames(pair.core.data_to_send())[0][3][:1] != b"\x20"


MAX_STREAM_ID = 2**31 - 1


@pytest.mark.parametrize("how", ["ping-ack", "ticks"])
def test_drain_in_two_steps_then_goodbye(how):
    """RFC 9113 6.8: GOAWAY naming the largest stream id and a PING; a stream opened before
    the client read it is taken; the final GOAWAY (on the PING's ACK, or at the second tick
    without one) names the last stream taken, and later streams are the handler's to refuse."""
    pair = Pair().start()
    pair.client.send_headers(1, GET, end_stream=True)
    pair.client.send_headers(3, POST)
    pair.to_server()
    pair.core.data_to_send()
    pair.core.drain()
    pair.core.drain()  # once only
    (goaway_frame, ping) = pair.out()
    assert goaway_frame == (GOAWAY, 0, 0, u32(MAX_STREAM_ID) + u32(NO_ERROR))
    assert ping[:3] == (PING, 0, 0)
    pair.core.receive(raw(HEADERS, END_STREAM | END_HEADERS, 5, GET_BLOCK))  # in flight
    assert pair.calls[-1][:2] == ("request", 5) and not pair.core.draining
    if how == "ping-ack":
        pair.core.receive(raw(PING, ACK, 0, ping[3]))
    else:
        pair.core.drain_tick()
        assert pair.out() == [] and not pair.core.draining
        pair.core.drain_tick()
    assert pair.out() == [(GOAWAY, 0, 0, u32(5) + u32(NO_ERROR))]
    assert pair.core.draining and pair.calls[-1] == ("drained",)
    pair.core.drain_tick()
    pair.core.receive(raw(PING, ACK, 0, ping[3]))  # (a late ACK: nothing more)
    assert pair.out() == []
    pair.core.reset(3, CANCEL)
    pair.core.goodbye()
    pair.core.reset(5, CANCEL)  # queued after the goodbye: still before it on the wire
    assert pair.out() == [(RST_STREAM, 0, 3, u32(CANCEL)), (RST_STREAM, 0, 5, u32(CANCEL)),
                          (GOAWAY, 0, 0, u32(5) + u32(NO_ERROR))]
    pair.core.receive(raw(HEADERS, END_STREAM | END_HEADERS, 7, GET_BLOCK))
    assert pair.core.data_to_send() == b""
    assert not [c for c in pair.calls if c[:2] == ("request", 7)]


# ---------------------------------------------------------------------- Upgrade: h2c
def upgrade_client(initial_window: int) -> tuple[H2Connection, bytes]:
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    client.local_settings = Settings(
        client=True, initial_values={SettingCodes.INITIAL_WINDOW_SIZE: initial_window})
    settings = client.initiate_upgrade_connection()
    return client, settings.rstrip(b"=")


def test_upgrade_makes_stream_1_half_closed():
    client, settings = upgrade_client(1000)
    handler = Recorder()
    core = H2Core(Config(), handler)
    core.initiate(settings)
    assert [kind for kind, flags, *_ in frames(core.data_to_send())] == [SETTINGS, WINDOW_UPDATE]
    assert core.stream_open(1)
    assert core.receive_window(1) == 0  # the request's body came over HTTP/1.1
    assert core.window_for(1) == 1000  # the client's HTTP2-Settings apply
    core.receive(client.data_to_send())  # the client's preface: one SETTINGS to acknowledge
    assert frames(core.data_to_send()) == [(SETTINGS, ACK, 0, b"")]
    assert handler.calls == [("window", 0)]  # no request: stream 1 is the connection's to open
    assert core.send_headers(1, OK, False)
    assert core.send_data(1, b"u" * 1500, True) == b"u" * 500
    events = client.receive_data(core.data_to_send())
    assert of(events, ResponseReceived)[0].stream_id == 1
    assert sum(len(e.data) for e in of(events, DataReceived)) == 1000


def test_upgrade_with_bad_settings_terminates():
    handler = Recorder()
    core = H2Core(Config(), handler)
    core.initiate(base64.urlsafe_b64encode(struct.pack(">HL", 5, 100)).rstrip(b"="))
    assert handler.calls == [("terminated", PROTOCOL_ERROR)]
    assert not core.stream_open(1)
    kind, _, _, payload = frames(core.data_to_send())[-1]
    assert (kind, payload[4:8]) == (GOAWAY, u32(PROTOCOL_ERROR))
