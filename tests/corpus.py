"""Loader for the raw-request corpus in ``tests/requests`` (format: tests/requests/README.md).

Each case is a pair ``NAME.http`` (the request bytes, written with escapes) and ``NAME.json``
(the expected outcome). The same cases run through both parser adapters sans-IO
(tests/http/test_parsers.py) and against both real workers (tests/http/test_corpus_live.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "requests"

_SIMPLE = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\", "s": b" "}


class CorpusError(ValueError):
    """A case file that does not follow the format: fail loudly, never guess."""


def decode(text: str, where: str = "") -> bytes:
    """Expand a ``.http`` file's escapes into the exact request bytes.

    Literal line breaks in the file are layout only and are dropped; every byte that matters
    (CR, LF, NUL, TAB, obs-text) is written as an escape, so no editor or git setting can
    change a case.
    """
    out, pos = _decode(text, 0, where, nested=False)
    return out


def _decode(text: str, pos: int, where: str, nested: bool) -> tuple[bytes, int]:
    out = bytearray()
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch in "\r\n":
            pos += 1
            continue
        if ch != "\\":
            if ord(ch) > 0x7E or (ord(ch) < 0x20):
                raise CorpusError(f"{where}: write byte {ord(ch):#x} as an escape")
            out += ch.encode("ascii")
            pos += 1
            continue
        esc = text[pos + 1 : pos + 2]
        if esc in _SIMPLE:
            out += _SIMPLE[esc]
            pos += 2
        elif esc == "x":
            digits = text[pos + 2 : pos + 4]
            if len(digits) != 2 or digits.strip("0123456789abcdefABCDEF"):
                raise CorpusError(f"{where}: bad \\x escape at {pos}")
            out.append(int(digits, 16))
            pos += 4
        elif esc == "[":
            # \[COUNT:...\]  repeats the enclosed bytes COUNT times
            colon = text.find(":", pos)
            try:
                count = int(text[pos + 2 : colon])
            except ValueError:
                raise CorpusError(f"{where}: bad repeat count at {pos}") from None
            inner, pos = _decode(text, colon + 1, where, nested=True)
            out += inner * count
        elif esc == "]":
            if not nested:
                raise CorpusError(f"{where}: unmatched \\] at {pos}")
            return bytes(out), pos + 2
        else:
            raise CorpusError(f"{where}: unknown escape \\{esc} at {pos}")
    if nested:
        raise CorpusError(f"{where}: unterminated \\[")
    return bytes(out), pos


def latin1(value: str) -> bytes:
    return value.encode("latin-1")


@dataclass
class Case:
    name: str
    kind: str  # "valid" or "invalid"
    data: bytes
    expect: dict = field(repr=False)

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.name}"

    # Valid cases: the expected request as bytes, shaped like what the tests record.
    def expected_request(self) -> dict:
        e = self.expect
        return {
            "method": latin1(e["method"]),
            "target": latin1(e["target"]),
            "path": e["path"],
            "raw_path": latin1(e["raw_path"]),
            "query_string": latin1(e["query_string"]),
            "http_version": e["http_version"],
            "headers": [(latin1(n), latin1(v)) for n, v in e["headers"]],
            "body": latin1(e["body"]),
            "keep_alive": e["keep_alive"],
        }


VALID_KEYS = {
    "description",
    "ref",
    "method",
    "target",
    "path",
    "raw_path",
    "query_string",
    "http_version",
    "headers",
    "body",
    "keep_alive",
}
INVALID_KEYS = {"description", "ref", "status", "stage"}


def load(kind: str | None = None) -> list[Case]:
    kinds = [kind] if kind else ["valid", "invalid"]
    cases = []
    for k in kinds:
        folder = CORPUS / k
        for path in sorted(folder.glob("*.http")):
            expect_path = path.with_suffix(".json")
            if not expect_path.exists():
                raise CorpusError(f"{path}: no {expect_path.name}")
            expect = json.loads(expect_path.read_text("utf-8"))
            keys = VALID_KEYS if k == "valid" else INVALID_KEYS
            if set(expect) != keys:
                raise CorpusError(f"{expect_path}: keys {sorted(set(expect) ^ keys)} differ")
            data = decode(path.read_text("utf-8"), str(path))
            cases.append(Case(path.stem, k, data, expect))
        orphans = {p.stem for p in folder.glob("*.json")} - {p.stem for p in folder.glob("*.http")}
        if orphans:
            raise CorpusError(f"{folder}: .json without .http: {sorted(orphans)}")
    return cases
