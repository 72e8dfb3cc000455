"""The SQLite queue's page size: a new file gets ``PAGE_SIZE``; an older file keeps its own (SQLite
cannot change it in WAL mode), ``serve`` says so at start, and ``conveyor events compact``
rewrites it (the server stopped) with every row kept and the freed pages given back."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conveyor.cli.main import cli
from conveyor.errors import QueueError
from conveyor.receiver.queue import NewEvent, database_path
from conveyor.receiver.queue.compact import compact, older_page_size
from conveyor.receiver.queue.intake import BatchStore
from conveyor.receiver.queue.location import open_queue
from conveyor.receiver.queue.store import PAGE_SIZE, ServerLock, open_database
from tests.receiver.test_retention import event as retention_event
from tests.receiver.test_retention import put, remaining


def event(i: int) -> NewEvent:
    return retention_event(i, time.time())


def pragma(db: Path, name: str) -> object:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


def old_queue(db: Path, page_size: int = 4096) -> None:
    """A queue file as conveyor made it before PAGE_SIZE: 4 KiB pages, WAL mode."""
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA page_size={page_size}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    open_database(db).close()  # the schema, as a server start writes it


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return database_path(tmp_path / "state")


def test_the_page_size_is_smaller_than_sqlites_default() -> None:
    assert PAGE_SIZE < 4096  # SQLite's default: the test below would not tell them apart


@pytest.mark.parametrize("first", ["intake", "worker"])
def test_a_new_queue_gets_the_page_size_whoever_creates_it(db: Path, first: str) -> None:
    if first == "intake":
        BatchStore(db).close()
    else:
        open_queue(db).close()
    assert pragma(db, "page_size") == PAGE_SIZE
    assert pragma(db, "journal_mode") == "wal"
    assert older_page_size(db) is None


def test_an_older_queue_keeps_its_pages_until_compacted(db: Path) -> None:
    old_queue(db)
    ids = put(db, [event(i) for i in range(400)])
    assert pragma(db, "page_size") == 4096  # opening it again changed nothing
    assert older_page_size(db) == 4096
    queue = open_queue(db)
    try:
        before = [(r.id, r.sha, r.status) for r in queue.list_events(limit=1000)]
        body = queue.get(ids[7])
    finally:
        queue.close()
    assert body is not None

    report = compact(db)

    assert (report.page_size_before, report.page_size_after) == (4096, PAGE_SIZE)
    assert report.bytes_after is not None and report.bytes_after < report.bytes_before
    assert pragma(db, "page_size") == PAGE_SIZE
    assert pragma(db, "journal_mode") == "wal"
    assert pragma(db, "integrity_check") == "ok"
    assert older_page_size(db) is None
    queue = open_queue(db)
    try:
        assert [(r.id, r.sha, r.status) for r in queue.list_events(limit=1000)] == before
        again = queue.get(ids[7])
    finally:
        queue.close()
    assert again is not None and again.body == body.body
    # ids go on from where they were, and new events commit into the rewritten file
    assert put(db, [event(1000)]) == [ids[-1] + 1]


def test_compact_gives_back_what_retention_freed(db: Path) -> None:
    open_queue(db).close()
    ids = put(db, [event(i) for i in range(600)])
    queue = open_queue(db)
    try:
        queue.delete_events(ids[:500])
    finally:
        queue.close()
    dry = compact(db, dry_run=True)
    assert dry.free_pages_before > 0 and dry.bytes_after is None
    assert pragma(db, "freelist_count") == dry.free_pages_before  # a dry run changes nothing
    done = compact(db)
    assert done.bytes_after is not None and done.bytes_after < done.bytes_before / 2
    assert pragma(db, "freelist_count") == 0
    assert remaining(db) == ids[500:]


def test_compact_refuses_a_queue_a_server_holds(db: Path) -> None:
    old_queue(db)
    lock = ServerLock(db)
    lock.acquire()
    try:
        with pytest.raises(QueueError, match="another `conveyor serve`"):
            compact(db)
    finally:
        lock.release()
    assert pragma(db, "page_size") == 4096


def test_compact_refuses_while_another_connection_reads(db: Path) -> None:
    old_queue(db)
    put(db, [event(1)])
    reader = sqlite3.connect(db)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM events").fetchone()  # holds a read lock
    try:
        with pytest.raises(QueueError, match="another process has it open"):
            compact(db)
    finally:
        reader.close()
    assert pragma(db, "page_size") == 4096
    assert pragma(db, "journal_mode") == "wal"
    assert remaining(db) == [1]


def test_events_compact_cli(db: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"CONVEYOR_STATE": str(tmp_path / "state"), "CONVEYOR_CONFIG": "/dev/null"}
    missing = runner.invoke(cli, ["events", "compact"], env=env)
    assert missing.exit_code == 1 and "no event queue at" in missing.output
    old_queue(db)
    put(db, [event(i) for i in range(20)])
    dry = runner.invoke(cli, ["events", "compact", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "would compact" in dry.output and f"4,096-byte pages -> {PAGE_SIZE}" in dry.output
    done = runner.invoke(cli, ["events", "compact", "--json"], env=env)
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert (report["page_size_before"], report["page_size_after"]) == (4096, PAGE_SIZE)
    assert report["dry_run"] is False and report["path"] == str(db)
    pg = runner.invoke(
        cli,
        ["events", "compact", "--queue", "postgresql://conveyor:s3cret@db.internal/conveyor"],
        env=env,
    )
    assert pg.exit_code == 1 and "is PostgreSQL" in pg.output
    assert "s3cret" not in pg.output


def test_serve_names_an_older_page_size_at_start(
    db: Path, start_receiver, caplog: pytest.LogCaptureFixture
) -> None:
    old_queue(db)
    with caplog.at_level(logging.WARNING, logger="conveyor.receiver"):
        running = start_receiver()
        assert running.client.get("/healthz").status_code == 200
    (record,) = [r for r in caplog.records if "page size" in r.getMessage()]
    assert record.__dict__["page_size"] == 4096
    assert "conveyor events compact" in record.__dict__["hint"]


def test_serve_is_quiet_about_a_current_queue(
    db: Path, start_receiver, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="conveyor.receiver"):
        running = start_receiver()
        assert running.client.get("/healthz").status_code == 200
    assert not [r for r in caplog.records if "page size" in r.getMessage()]
    assert pragma(db, "page_size") == PAGE_SIZE
