"""One write a turn: an answer's head and body leave in one ``write`` (conveyor.receiver.protocol)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn

from conveyor.receiver.protocol import OneWritePerTurn, configured


class Recording(asyncio.Transport):
    """The underlying transport: what was written, in which calls, and when it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.calls.append(bytes(data))
        self.events.append("write")

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def abort(self) -> None:
        self.closing = True
        self.events.append("abort")

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0


async def _turn() -> None:
    await asyncio.sleep(0)


def test_writes_of_one_turn_leave_together_in_order() -> None:
    async def go() -> Recording:
        inner = Recording()
        outer = OneWritePerTurn(inner, asyncio.get_running_loop())
        outer.write(b"HTTP/1.1 202 Accepted\r\n\r\n")
        outer.write(memoryview(b'{"id": 1}'))
        assert inner.calls == [] and outer.get_write_buffer_size() == 34
        await _turn()
        outer.write(b"next")
        await _turn()
        return inner

    inner = asyncio.run(go())
    assert inner.calls == [b'HTTP/1.1 202 Accepted\r\n\r\n{"id": 1}', b"next"]


def test_close_sends_what_is_pending_first_and_abort_drops_it() -> None:
    async def go() -> tuple[Recording, Recording]:
        loop = asyncio.get_running_loop()
        closed, aborted = Recording(), Recording()
        one = OneWritePerTurn(closed, loop)
        one.write(b"answer")
        one.close()
        two = OneWritePerTurn(aborted, loop)
        two.write(b"answer")
        two.abort()
        await _turn()  # the flush scheduled by the first write finds nothing left
        return closed, aborted

    closed, aborted = asyncio.run(go())
    assert closed.events == ["write", "close"] and closed.calls == [b"answer"]
    assert aborted.events == ["abort"] and aborted.calls == []


def test_nothing_is_written_to_a_transport_already_closing() -> None:
    async def go() -> Recording:
        inner = Recording()
        outer = OneWritePerTurn(inner, asyncio.get_running_loop())
        outer.write(b"late")
        inner.closing = True  # the peer went away within the turn
        await _turn()
        return inner

    assert asyncio.run(go()).calls == []


async def _app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = f"answer to {scope['path']}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def test_a_real_server_answers_keep_alive_and_closing_requests_whole() -> None:
    """Through uvicorn with conveyor's protocol: two answers on one keep-alive connection, then
    one with ``Connection: close`` that arrives complete before the connection closes."""
    protocol = configured(
        header_timeout_s=5, max_header_bytes=65536, max_connections=16, body_timeout_s=5
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=port, http=protocol, lifespan="off", log_config=None
    )
    server = uvicorn.Server(config)

    async def client() -> bytes:
        while not server.started:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n")
        writer.write(b"GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(-1), 10)  # until the server closes
        writer.close()
        server.should_exit = True
        return data

    async def go() -> bytes:
        serving = asyncio.create_task(server.serve())
        try:
            return await client()
        finally:
            await serving

    data = asyncio.run(go())
    assert data.count(b"HTTP/1.1 200 OK") == 3
    for path in (b"/one", b"/two", b"/three"):
        assert b"answer to " + path in data
    assert data.endswith(b"answer to /three")
