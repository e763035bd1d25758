"""The app the deploy recipes serve (their ``main:app``): the suite's app plus a cached route.

``/cache`` answers with the validators a CDN keys on, so a test can check that nginx passes
Cache-Control and ETag through untouched.
"""

from tests.apps import app as _app
from tests.apps import respond


async def app(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/cache":
        return await respond(send, body=b"cacheable", headers=[
            (b"cache-control", b"public, max-age=60, stale-while-revalidate=30"),
            (b"etag", b'"v1"'),
        ])
    return await _app(scope, receive, send)
