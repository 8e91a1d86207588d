"""uvicorn's httptools protocol with a deadline on each request's head.

uvicorn times out a connection only while it is idle between two requests: a client
that connects and sends nothing, or sends its request line and headers a byte at a
time, holds its connection (and a file descriptor) for as long as it likes. Enough of
them and the receiver can take no more connections, Alertmanager's included. Here a
new connection must have sent a whole request head within `header_timeout` seconds,
and so must each later request on it from its first byte: one that has begun gets
408 and is closed, one that sent nothing is closed. The body has its own deadline
(`server.body_timeout_seconds`, in the app).

One timer per event loop looks at every connection still reading a head, every
`header_timeout / 8` seconds, instead of a timer per request: a connection is cut
off between `header_timeout` and `header_timeout * 1.125` seconds.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _HeadDeadlines:
    """The connections of one event loop still reading a request head, by deadline."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.reading: dict[HeadDeadlineProtocol, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def begin(self, protocol: HeadDeadlineProtocol) -> None:
        """From now, unless this head's deadline already runs (its connection's)."""
        if protocol not in self.reading:
            self.reading[protocol] = self.loop.time() + self.timeout
            if self._timer is None:
                self._timer = self.loop.call_later(self.timeout / 8, self._look)

    def end(self, protocol: HeadDeadlineProtocol) -> None:
        self.reading.pop(protocol, None)

    def _look(self) -> None:
        now = self.loop.time()
        for protocol, deadline in list(self.reading.items()):
            if deadline <= now:
                del self.reading[protocol]
                protocol.head_timed_out()
        self._timer = self.loop.call_later(self.timeout / 8, self._look) if self.reading else None


# Per event loop (a server has one; tests may start several in turn).
_DEADLINES: dict[asyncio.AbstractEventLoop, _HeadDeadlines] = {}


def protocol_class(header_timeout: float) -> type[HeadDeadlineProtocol]:
    """The protocol class to give uvicorn (`http=`), with this deadline."""
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"header_timeout": header_timeout})


class HeadDeadlineProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        deadlines = _DEADLINES.get(self.loop)
        if deadlines is None or deadlines.timeout != self.header_timeout:
            for closed in [loop for loop in _DEADLINES if loop.is_closed()]:
                del _DEADLINES[closed]
            deadlines = _DEADLINES[self.loop] = _HeadDeadlines(self.loop, self.header_timeout)
        self._deadlines = deadlines
        self._reading = deadlines.reading
        self._began = False  # bytes of the request being read have arrived

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadlines.begin(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadlines.end(self)
        super().connection_lost(exc)

    # Called for every request: the deadline's own work is a dict lookup here and a
    # dict pop at the end of the head.
    def on_message_begin(self) -> None:
        HttpToolsProtocol.on_message_begin(self)
        self._began = True
        if self not in self._reading:
            self._deadlines.begin(self)

    def on_headers_complete(self) -> None:
        self._reading.pop(self, None)
        self._began = False
        HttpToolsProtocol.on_headers_complete(self)

    def head_timed_out(self) -> None:
        """Past the deadline: 408 to a request that has begun (unless an answer to the
        one before it is still being written), then close either way."""
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and not self.cycle.response_complete
        if self._began and not answering:
            body = b'{"error": "request head not received within %g s"}' % self.header_timeout
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
        self.transport.close()
