"""uvicorn's httptools protocol with the limits a public webhook endpoint needs.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) and answers 503 beyond
``limit_concurrency``, but a connection that never finishes its request head is kept forever
(no timer runs before the first request, and any byte received cancels the keep-alive timer), and
httptools accumulates header bytes without a limit. This subclass adds, per connection:

* a **header deadline**: the request head (request line and headers) must be complete within
  ``header_timeout_s`` of the connection opening or of the previous response; else the
  connection is closed (a trickle of one byte a second keeps nothing open).
* a **header size cap**: more than ``max_header_bytes`` received before the head is complete is
  answered 431 and closed.
* a **body deadline**: the body must be complete within ``body_timeout_s`` of the head; else
  the request is answered 408 (if nothing was answered yet) and the connection closed. A timer
  in the protocol costs nothing per request in the app, and it frees the body's memory budget.
* a **connection cap**: beyond ``max_connections`` open connections, the one that has waited
  longest without sending a complete request head is closed to make room (an idle or trickling
  attacker connection, never a request being processed); if every connection is busy, the new
  one is closed.

Body sizes and the bytes held in memory across all requests are bounded by the app.

It also sends each answer in **one write**: uvicorn writes a response's head and its body with
two ``transport.write`` calls, and uvloop sends each at once, so every answer cost two
``send`` system calls (about 15% of the receiver's CPU under load, profiled with py-spy).
:class:`OneWritePerTurn` joins the writes of one event-loop turn and sends them together at the
end of that turn; closing sends what is pending first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_408 = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 25\r\nconnection: close\r\n\r\n"
    b"body not received in time"
)
_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 31\r\nconnection: close\r\n\r\n"
    b"request header fields too large"
)


class OneWritePerTurn(asyncio.Transport):
    """A transport that joins the writes made in one event-loop turn into one ``write``."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._pending is None:
            self._pending = [bytes(data)]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(bytes(data))

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Send what this turn wrote (nothing if the connection is already closing)."""
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_write_buffer_size(self) -> int:
        pending = sum(len(data) for data in self._pending) if self._pending else 0
        return self._transport.get_write_buffer_size() + pending

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """See the module docstring. The limits are class attributes (set by :func:`configured`)."""

    header_timeout_s: ClassVar[float] = 10.0
    max_header_bytes: ClassVar[int] = 64 * 1024
    max_connections: ClassVar[int] = 512
    body_timeout_s: ClassVar[float] = 30.0
    # Connections waiting for a complete request head, oldest first (shared by the server).
    _waiting: ClassVar[dict[GuardedHttpToolsProtocol, None]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0

    # ------------------------------------------------------------------ waiting for a head

    def _await_head(self) -> None:
        self._head_bytes = 0
        self._waiting[self] = None
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _head_done(self) -> None:
        self._waiting.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self._waiting.pop(self, None)
        if not self.transport.is_closing():
            self.transport.close()

    def _body_done(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None:
            if not self.cycle.response_started:
                self.transport.write(_408)
            # The app's receive() now reports a disconnect, and whatever it sends is dropped.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()

    # ------------------------------------------------------------------ protocol callbacks

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = OneWritePerTurn(transport, self.loop)
        if len(self.connections) > self.max_connections:
            victim = next((c for c in self._waiting if c is not self), None)
            if victim is None:
                transport.close()
                return
            victim._head_timed_out()
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        self._body_done()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self in self._waiting:
            if self._head_bytes > self.max_header_bytes:
                self._head_done()
                self.transport.write(_431)
                self.transport.close()
                return
            self._head_bytes += len(data)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._head_done()
        super().on_headers_complete()
        self._body_done()
        self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_timed_out)

    def on_message_complete(self) -> None:
        self._body_done()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.timeout_keep_alive_task is None:
            return  # a pipelined request was started: its head is already complete
        if not self.transport.is_closing():
            self._await_head()


def configured(
    *,
    header_timeout_s: float,
    max_header_bytes: int,
    max_connections: int,
    body_timeout_s: float,
) -> type[GuardedHttpToolsProtocol]:
    """A protocol class with these limits (uvicorn instantiates it once per connection)."""
    return type(
        "ConveyorHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout_s": header_timeout_s,
            "max_header_bytes": max_header_bytes,
            "max_connections": max_connections,
            "body_timeout_s": body_timeout_s,
            "_waiting": {},
        },
    )
