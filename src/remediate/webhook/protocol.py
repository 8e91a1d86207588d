"""uvicorn's httptools protocol with a deadline on each request's head.

uvicorn times out a connection only while it is idle between two requests: a client
that connects and sends nothing, or sends its request line and headers a byte at a
time, or sends a blank line after a request and nothing more, holds its connection
(and a file descriptor) for as long as it likes. Enough of them and the receiver can
take no more connections, Alertmanager's included. Here a new connection must have
sent a whole request head within `header_timeout` seconds, and so must each later
request on it from its first byte (a blank line counts): one that has begun gets 408
and is closed, one that sent nothing is closed. The clock stops while the server
itself holds things up (it is still answering the request before, or has stopped
reading while it does). The body has its own deadline (`server.body_timeout_seconds`,
in the app).

One timer per server looks at every connection still reading a head, every
`header_timeout / 8` seconds, instead of a timer per request: a connection is cut
off between `header_timeout` and `header_timeout * 1.125` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("remediate.http")


class _HeadDeadlines:
    """The connections of one server still reading a request head, by deadline."""

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
        self._timer = None
        now = self.loop.time()
        try:
            for protocol, deadline in list(self.reading.items()):
                if deadline > now:
                    continue
                if protocol.waiting_on_server():  # not the client's turn: the clock waits
                    self.reading[protocol] = now + self.timeout
                    continue
                del self.reading[protocol]
                try:
                    protocol.head_timed_out()
                except Exception:  # one connection's failure leaves the others watched
                    log.exception("closing a connection past its head deadline")
        finally:
            if self.reading:
                self._timer = self.loop.call_later(self.timeout / 8, self._look)


def protocol_class(header_timeout: float) -> type[HeadDeadlineProtocol]:
    """The protocol class to give uvicorn (`http=`), with this deadline."""
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"header_timeout": header_timeout})


class HeadDeadlineProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One per server (its state lives as long as it does), on its event loop.
        deadlines = getattr(self.server_state, "remediate_head_deadlines", None)
        if deadlines is None or deadlines.loop is not self.loop:
            deadlines = _HeadDeadlines(self.loop, self.header_timeout)
            self.server_state.remediate_head_deadlines = deadlines  # type: ignore[attr-defined]
        self._deadlines: _HeadDeadlines = deadlines
        self._reading = deadlines.reading
        self._began = False  # bytes of the request being read have arrived

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadlines.begin(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadlines.end(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        HttpToolsProtocol.data_received(self, data)
        # Bytes that began no request (the blank lines the parser skips between two)
        # stop uvicorn's keep-alive timer without starting anything: the head's clock
        # starts with them instead.
        if self not in self._reading and not self._busy() and not self.transport.is_closing():
            self._deadlines.begin(self)

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

    def _busy(self) -> bool:
        """A request of this connection is being answered, or waits its turn."""
        return (self.cycle is not None and not self.cycle.response_complete) or bool(self.pipeline)

    def waiting_on_server(self) -> bool:
        """The server holds the connection up: still answering, or not reading."""
        return self._busy() or self.flow.read_paused

    def head_timed_out(self) -> None:
        """Past the deadline: 408 to a request that has begun, then close."""
        if self.transport.is_closing():
            return
        if self._began:
            body = b'{"error": "request head not received within %g s"}' % self.header_timeout
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
        self.transport.close()
