"""The conformance corpus' machinery: a ``Case`` (the frames a client sends, the outcome RFC 9113
or RFC 7541 requires), the outcomes, and the runner. The tables are in the
``test_h2_conformance_*.py`` modules, one per part of the RFCs; the case list follows h2spec's
(summerwind/h2spec, "generic", "http2" and "hpack" groups), so what that suite checks from
outside is checked here on both workers.

Outcomes, as h2spec judges them and no looser:

* ``answered(status)``: a response HEADERS on the case's stream, then a PING round trip.
* ``ignored()``: nothing ends the connection: a PING round trip after the frames.
* ``conn_error(*codes)``: a GOAWAY with one of ``codes``, then the close. (h2spec also passes a
  close without GOAWAY; RFC 9113 5.4.1 says an endpoint SHOULD send GOAWAY first, and we do.)
* ``stream_error(*codes)``: a RST_STREAM with one of ``codes`` on the case's stream, then a
  PING round trip: the connection goes on.
* ``stream_or_conn(*codes)``: either of the two -- only where the RFC leaves the choice to the
  endpoint (each use says which clause).
* ``closed()``: the connection is closed (a GOAWAY before it, if any, says PROTOCOL_ERROR).

After any outcome that ends the connection, a fresh connection to the same worker must be
answered: an error on one client never costs another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, RstStreamFrame

from tests.h2.rawframes import Closed, RawH2, response_status

E = ErrorCodes


def request_fields(conn: RawH2, path: bytes = b"/", method: bytes = b"GET",
                   extra: tuple = ()) -> list:
    """A well-formed request's pseudo-header fields (and ``extra`` after them)."""
    scheme = b"https" if conn.tls else b"http"
    return [(b":method", method), (b":scheme", scheme), (b":path", path),
            (b":authority", b"localhost"), *extra]


@dataclass(frozen=True)
class Outcome:
    kind: str
    codes: tuple = ()
    status: int = 200

    def __str__(self) -> str:
        names = ",".join(E(c).name if c in E._value2member_map_ else str(c) for c in self.codes)
        return f"{self.kind}({names or self.status})"


def answered(status: int = 200) -> Outcome:
    return Outcome("answered", status=status)


def ignored() -> Outcome:
    return Outcome("ignored")


def conn_error(*codes: int) -> Outcome:
    return Outcome("conn", codes)


def stream_error(*codes: int) -> Outcome:
    return Outcome("stream", codes)


def stream_or_conn(*codes: int) -> Outcome:
    return Outcome("either", codes)


def ping_or_close() -> Outcome:
    return Outcome("ping-or-close")


def closed() -> Outcome:
    return Outcome("closed")


@dataclass(frozen=True)
class Case:
    """``send(conn) -> stream id`` after the handshake (``settings``: ours in the preface;
    ``handshake=False``: ``send`` writes the preface itself); ``expect`` what must follow."""

    id: str
    rfc: str
    send: Callable[[RawH2], int]
    expect: Outcome
    settings: tuple = field(default=())
    handshake: bool = True

    def __str__(self) -> str:
        return self.id


def ids(cases: list[Case]) -> list[str]:
    return [case.id for case in cases]


def run_case(server, case: Case) -> None:
    """One case on a fresh connection to ``server``, then the check of what followed."""
    conn = RawH2(server)
    try:
        if case.handshake:
            conn.handshake(*case.settings)
        stream_id = case.send(conn)
        check(conn, stream_id, case.expect)
    finally:
        conn.close()
    if case.expect.kind in ("conn", "either", "closed", "ping-or-close"):
        still_answered(server)


def check(conn: RawH2, stream_id: int, expect: Outcome) -> None:
    kind = expect.kind
    if kind == "answered":
        found = conn.wait_for(lambda f: isinstance(f, GoAwayFrame | RstStreamFrame)
                              or isinstance(f, HeadersFrame) and f.stream_id == stream_id,
                              f"a response on stream {stream_id}")
        assert response_status(found) == expect.status, f"{found!r} instead of a response"
        conn.ping_round_trip()
    elif kind == "ignored":
        conn.ping_round_trip()
    elif kind == "ping-or-close":
        try:
            conn.ping_round_trip()
        except AssertionError:
            assert conn.closed, "neither a PING ACK nor a close"
    elif kind == "conn":
        goaway = conn.goaway_or_close()
        assert goaway is not None, f"closed without GOAWAY; read {conn.received!r}"
        assert goaway.error_code in expect.codes, _unexpected(conn, goaway, expect)
    elif kind == "closed":
        goaway = conn.goaway_or_close()
        assert goaway is None or goaway.error_code == E.PROTOCOL_ERROR, repr(goaway)
    else:  # a stream error ("either": or a connection error with the same code)
        found = conn.wait_for(
            lambda f: isinstance(f, GoAwayFrame)
            or isinstance(f, RstStreamFrame) and f.stream_id == stream_id,
            f"RST_STREAM on stream {stream_id}")
        if isinstance(found, GoAwayFrame):
            assert kind == "either", _unexpected(conn, found, expect)
            assert found.error_code in expect.codes, _unexpected(conn, found, expect)
            conn.goaway_or_close()
            return
        assert found.error_code in expect.codes, _unexpected(conn, found, expect)
        conn.ping_round_trip()


def _unexpected(conn: RawH2, found, expect: Outcome) -> str:
    code = getattr(found, "error_code", None)
    name = E(code).name if code in E._value2member_map_ else code
    return f"{type(found).__name__} {name} instead of {expect}; read {conn.received!r}"


def still_answered(server) -> None:
    """The worker serves a new connection after the last one ended in an error."""
    conn = RawH2(server)
    try:
        conn.handshake()
        conn.send(conn.headers(1, request_fields(conn, b"/pid")))
        found = conn.wait_for(lambda f: isinstance(f, HeadersFrame), "a response")
        assert response_status(found) == 200
        conn.wait_for(lambda f: isinstance(f, DataFrame) and "END_STREAM" in f.flags,
                      "the body")
    except Closed as exc:  # pragma: no cover - a failure's message
        raise AssertionError("a new connection was closed") from exc
    finally:
        conn.close()


def corpus_tests(cases: list[Case], tls_ids: list[str]) -> tuple:
    """A corpus file's three tests: every case on h2c, the named ones over TLS too (both
    workers: the ``corpus_h2c``/``corpus_tls`` fixtures), and that case ids are unique."""
    tls_cases = [c for c in cases if c.id in tls_ids]

    @pytest.mark.parametrize("case", cases, ids=ids(cases))
    def test_h2c(corpus_h2c, case: Case) -> None:
        run_case(corpus_h2c, case)

    @pytest.mark.parametrize("case", tls_cases, ids=ids(tls_cases))
    def test_tls(corpus_tls, case: Case) -> None:
        run_case(corpus_tls, case)

    def test_cases_are_named_once() -> None:
        assert len(set(ids(cases))) == len(cases)
        assert set(tls_ids) <= set(ids(cases))

    return test_h2c, test_tls, test_cases_are_named_once
