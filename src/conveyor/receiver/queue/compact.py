"""Rewrite a stopped receiver's SQLite queue: today's page size, and the pages retention freed.

A queue created by an older conveyor keeps the page size it was created with (4 KiB): SQLite
fixes it with the file, and a WAL-mode database cannot change it, even with ``VACUUM``
(https://www.sqlite.org/pragma.html#pragma_page_size). Retention's deletes leave free pages
that new events reuse, so the file never shrinks by itself either. :func:`compact` does both
at once, with the server stopped: it takes the server lock (so no ``conveyor serve`` can be
using the file), leaves WAL mode, sets :data:`~conveyor.receiver.queue.store.PAGE_SIZE`,
``VACUUM``\\ s (one transaction under a rollback journal: a crash or ``kill -9`` midway leaves
the old file, rolled back on the next open) and returns to WAL mode. Nothing in the queue
changes but its layout: every event, attempt and status keeps its row and id.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import QueueError
from conveyor.receiver.queue.store import PAGE_SIZE, ServerLock, open_database, read_pragma

_BUSY_MS = 5000  # another reader (a `conveyor events list`) gets this long to finish


@dataclass(frozen=True)
class CompactReport:
    """The queue file before and after (a dry run: before, and the page size it would get)."""

    path: Path
    page_size_before: int
    page_size_after: int
    bytes_before: int
    bytes_after: int | None
    free_pages_before: int
    dry_run: bool

    exit_code = 0

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "page_size_before": self.page_size_before,
            "page_size_after": self.page_size_after,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "free_pages_before": self.free_pages_before,
            "dry_run": self.dry_run,
        }

    def text_lines(self, *, verbose: bool = False) -> list[str]:
        pages = f"{self.page_size_before:,}-byte pages"
        if self.page_size_after != self.page_size_before:
            pages += f" -> {self.page_size_after:,}"
        free = f"{self.free_pages_before:,} free pages"
        if self.dry_run or self.bytes_after is None:
            return [
                f"would compact {self.path}: {self.bytes_before:,} bytes, {free}, {pages}",
            ]
        return [
            f"compacted {self.path}: {self.bytes_before:,} -> {self.bytes_after:,} bytes "
            f"({free} given back), {pages}"
        ]


def _size(path: Path) -> int:
    """The database and its WAL, as they stand on disk."""
    total = 0
    for part in (path, path.with_name(path.name + "-wal")):
        try:
            total += part.stat().st_size
        except FileNotFoundError:
            continue
    return total


def _pragma(conn: sqlite3.Connection, name: str) -> int:
    return int(conn.execute(f"PRAGMA {name}").fetchone()[0])


def older_page_size(path: Path) -> int | None:
    """The page size of an existing queue file when it is not :data:`PAGE_SIZE` (else ``None``):
    ``conveyor serve`` names it at start, since only :func:`compact` can change it."""
    if not path.exists():
        return None
    try:
        size = read_pragma(path, "page_size")
    except sqlite3.Error:
        return None
    return None if size == PAGE_SIZE else size


def compact(path: Path, *, dry_run: bool = False) -> CompactReport:
    """Rewrite the queue at ``path`` with :data:`PAGE_SIZE` pages and no free pages.

    Raises :class:`QueueError` when there is no queue there, when a ``conveyor serve`` holds it,
    when another process keeps it open past a few seconds, or when the disk cannot hold the
    copy ``VACUUM`` writes (about the queue's size, beside it and in the temporary directory).
    """
    if not path.exists():
        raise QueueError(
            f"no event queue at {path}",
            hint="point --state / CONVEYOR_STATE at the state directory of `conveyor serve`",
        )
    lock = ServerLock(path)
    lock.acquire()
    try:
        conn = open_database(path)
        try:
            return _compact(conn, path, dry_run=dry_run)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise QueueError(
                    f"cannot compact the event queue {path}: another process has it open",
                    hint="wait for `conveyor events` commands and workers using it to end",
                ) from None
            raise QueueError(
                f"cannot compact the event queue {path}: {exc}",
                hint="VACUUM needs free space about the queue's size, beside it and in $TMPDIR",
            ) from None
        except sqlite3.Error as exc:
            raise QueueError(f"cannot compact the event queue {path}: {exc}") from None
        finally:
            conn.close()
    finally:
        lock.release()


def _compact(conn: sqlite3.Connection, path: Path, *, dry_run: bool) -> CompactReport:
    conn.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = _size(path)
    page_size = _pragma(conn, "page_size")
    free = _pragma(conn, "freelist_count")
    if dry_run:
        return CompactReport(path, page_size, PAGE_SIZE, before, None, free, True)
    mode = str(conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]).lower()
    if mode != "delete":  # SQLite answers the mode it kept when others hold the file
        raise sqlite3.OperationalError("database is locked")
    try:
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        conn.execute("VACUUM")
    finally:
        conn.execute("PRAGMA journal_mode=WAL")
    return CompactReport(
        path, page_size, _pragma(conn, "page_size"), before, _size(path), free, False
    )
