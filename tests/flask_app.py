"""A real Flask (Werkzeug) app for the WSGI tests: Werkzeug decides from the environ whether a
body without Content-Length may be read (``wsgi.input_terminated``), so only a real one shows
whether a chunked upload arrives."""

from __future__ import annotations

import hashlib

from flask import Flask, request

app = Flask(__name__)


def _summary(data: bytes) -> str:
    return f"{len(data)} {hashlib.sha256(data).hexdigest()}"


@app.post("/data")
def data() -> str:
    """The whole body, as most Flask views read it."""
    return _summary(request.get_data())


@app.post("/stream")
def stream() -> str:
    """The body read from ``request.stream`` in pieces."""
    digest = hashlib.sha256()
    total = 0
    while True:
        piece = request.stream.read(65536)
        if not piece:
            break
        total += len(piece)
        digest.update(piece)
    return f"{total} {digest.hexdigest()}"


@app.post("/upload")
def upload() -> str:
    """A multipart file upload, parsed by Werkzeug's form parser."""
    return _summary(request.files["file"].read())
