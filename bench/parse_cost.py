"""Per-request parse cost of the parser adapters, sans-IO, with a connection that does nothing.

    python bench/parse_cost.py [--against OLD_h11_parser.py] [--rounds N]

Feeds a 7-header GET, a 1 KiB chunked POST, a 4 KiB Content-Length POST and a Content-Length 0
POST (the head alone) whole through H11Parser and HttptoolsParser (and through the H11Parser
of another ``h11_parser.py`` with ``--against``, e.g. one taken from git history), interleaved over
rounds; prints the best time per request. The box may be loaded: the minimum is the figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gworkers.config import Config  # noqa: E402
from gworkers.http.h1.h11_parser import H11Parser  # noqa: E402


class Null:
    def on_request(self, method: bytes, target: bytes, version: str, headers: list) -> bool:
        return False

    def on_body(self, data: bytes) -> None:
        pass

    def on_complete(self) -> bool:
        return True

    def on_upgrade(self, data: bytes) -> None:
        pass


GET = (
    b"GET /plaintext?x=1 HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: wrk/4.2\r\n"
    b"Accept: text/plain,text/html;q=0.9\r\nAccept-Encoding: gzip, deflate\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\nConnection: keep-alive\r\nCookie: a=b; c=d\r\n\r\n"
)
CHUNKED = (
    b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Type: application/octet-stream\r\n\r\n"
    + (b"200\r\n" + b"x" * 512 + b"\r\n") * 2
    + b"0\r\n\r\n"
)
CL_HEAD = (
    b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: %s\r\n"
    b"Content-Type: application/octet-stream\r\n\r\n"
)
REQUESTS = {
    "GET, 7 headers": GET,
    "POST 1 KiB chunked": CHUNKED,
    "POST 4 KiB Content-Length": CL_HEAD % b"4096" + b"y" * 4096,
    "POST Content-Length 0000": CL_HEAD % b"0000",
}


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--against", help="another h11_parser.py to compare with")
    args.add_argument("--rounds", type=int, default=15)
    opts = args.parse_args()
    config = Config()
    parsers = {"h11": H11Parser(Null(), config)}
    if opts.against:
        spec = importlib.util.spec_from_file_location("gworkers.http._against", opts.against)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        parsers["against"] = module.H11Parser(Null(), config)
    try:
        from gworkers.http.h1.httptools_parser import HttptoolsParser

        parsers["httptools"] = HttptoolsParser(Null(), config)
    except ImportError:
        pass
    number = 5000
    best: dict = {}
    for _ in range(opts.rounds):
        for which, parser in parsers.items():
            for name, data in REQUESTS.items():
                t = timeit.timeit(lambda p=parser, d=data: p.feed(d), number=number) / number
                best[name, which] = min(best.get((name, which), 1.0), t)
    print(f"{'us per request':28s}" + "".join(f"{w:>12s}" for w in parsers))
    for name in REQUESTS:
        print(f"{name:28s}" + "".join(f"{best[name, w] * 1e6:12.2f}" for w in parsers))


if __name__ == "__main__":
    main()
