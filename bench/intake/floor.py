"""The floor: the least a durable receiver costs on conveyor's stack, for ``run.py --floor``.

    python bench/intake/floor.py --port P --token T --db floor.db

uvicorn (httptools, uvloop) serving one bare ASGI callable: the whole body read, ``X-Gitlab-Token``
compared in constant time, the body parsed with orjson, one row per delivery inserted by a writer
thread into SQLite (WAL, ``synchronous=FULL``) and committed in a group before the 202, as
conveyor promises. Nothing else: no pre-auth scan, no ref or path checks, no routing, dedupe
only on the Idempotency-Key, no supersede, no attempts, no logs, no workers, no limits.

It is not a receiver anyone should run. It tells what conveyor's features cost above the
libraries underneath them, in the same run: the gap to this line is conveyor's own code.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import sqlite3
import threading
import time
from typing import Any

import orjson
import uvicorn

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, project TEXT, idempotency_key TEXT, ref TEXT, sha TEXT,
    body BLOB, status TEXT, received_at REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_key ON events(project, idempotency_key);
"""
_INSERT = (
    "INSERT INTO events (project, idempotency_key, ref, sha, body, status, received_at)"
    " VALUES (?, ?, ?, ?, ?, 'queued', ?) ON CONFLICT DO NOTHING RETURNING id"
)

Row = tuple[str, str, str, str, bytes, float]


class GroupCommit:
    """A thread committing every row waiting at a moment in one transaction."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self._waiting: list[tuple[Row, asyncio.Future[int]]] = []
        self._ready = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        threading.Thread(target=self._run, daemon=True).start()

    async def store(self, row: Row) -> int:
        self._loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = self._loop.create_future()
        with self._ready:
            self._waiting.append((row, future))
            self._ready.notify()
        return await future

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._waiting:
                    self._ready.wait()
                batch, self._waiting = self._waiting, []
            self._conn.execute("BEGIN IMMEDIATE")
            ids = []
            for row, _ in batch:
                found = self._conn.execute(_INSERT, row).fetchone()
                ids.append(int(found[0]) if found is not None else 0)
            self._conn.execute("COMMIT")
            assert self._loop is not None
            self._loop.call_soon_threadsafe(_settle, [f for _, f in batch], ids)


def _settle(futures: list[asyncio.Future[int]], ids: list[int]) -> None:
    for future, event_id in zip(futures, ids, strict=True):
        if not future.done():
            future.set_result(event_id)


def make_app(token: bytes, store: GroupCommit) -> Any:
    async def answer(send: Any, status: int, body: bytes) -> None:
        head = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz":
            await answer(send, 200, b'{"ok":true}')
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = dict(scope["headers"])
        if not hmac.compare_digest(headers.get(b"x-gitlab-token", b""), token):
            await answer(send, 401, b'{"error":"token"}')
            return
        try:
            event = orjson.loads(body)
            row: Row = (
                str(event["project"]["path_with_namespace"]),
                headers.get(b"idempotency-key", b"").decode("latin-1"),
                str(event["ref"]),
                str(event["after"]),
                body,
                time.time(),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await answer(send, 400, b'{"error":"payload"}')
            return
        event_id = await store.store(row)
        await answer(send, 202, orjson.dumps({"id": event_id, "status": "queued"}))

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    app = make_app(args.token.encode(), GroupCommit(args.db))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
