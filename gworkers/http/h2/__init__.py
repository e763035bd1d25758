"""HTTP/2 (RFC 9113, the ``http2`` extra), on the same ASGI stream as HTTP/1.1.

* ``negotiate.py``   which protocol a connection speaks: ALPN, the h2c preface, Upgrade: h2c
* ``connection.py``  the asyncio protocol: streams, their app Tasks, limits, timeouts, drain
* ``core.py``        the sans-IO connection, reading half: frames in, stream states, errors
* ``sending.py``     its writing half: HEADERS and DATA within the windows, resets, GOAWAY
* ``streams.py``     what a stream is (windows, open/half-closed), how closed ones closed
* ``settings.py``    our SETTINGS and the client's
* ``handler.py``     what the core reports to the connection (the interface)
* ``frames.py``      frame types, error codes, the frames we write, the flood budget
* ``hpack_codec.py`` HPACK (RFC 7541): decoder with a block cache, stateless encoder
* ``request.py``     a request's header block checked and read for the scope
* ``deadlines.py``   the once-a-second stream checks: stalled responses, late request bodies
* ``scope.py``       the ASGI scope of a request (proxy trust, root_path as on HTTP/1.1)
* ``replies.py``     the server's own replies on a stream, the default response fields
* ``websocket.py``   RFC 8441: the WebSocket session over a stream (extended CONNECT)
* ``sink.py``        one ``ResponseSink`` per stream: a response as HEADERS and DATA
"""
