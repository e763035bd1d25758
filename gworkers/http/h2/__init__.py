"""HTTP/2 over the h2 package (the ``http2`` extra), on the same ASGI stream as HTTP/1.1.

* ``negotiate.py``  which protocol a connection speaks: ALPN, the h2c preface, Upgrade: h2c
* ``connection.py`` the asyncio protocol: streams, their app Tasks, limits, timeouts, drain
* ``core.py``       the sans-IO connection over ``h2.connection.H2Connection``: settings,
                    flow control, refusals, GOAWAY
* ``frames.py``     frame headers read as bytes pass: header-block cap, flood budget
* ``request.py``    a request's header block checked and read for the scope
* ``deadlines.py``  the once-a-second stream checks: stalled responses, late request bodies
* ``scope.py``      the ASGI scope of a request (proxy trust, root_path as on HTTP/1.1)
* ``replies.py``    the server's own replies on a stream, the default response fields
* ``websocket.py``  RFC 8441: the WebSocket session over a stream (extended CONNECT)
* ``sink.py``       one ``ResponseSink`` per stream: HEADERS and DATA within the windows
"""
