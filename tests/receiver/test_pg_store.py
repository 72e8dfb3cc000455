"""What is particular to the PostgreSQL store: concurrent migrations, claims and lanes across
connections (as across hosts), the URL's password kept out of every message."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import psycopg
import pytest
from psycopg.sql import Literal

from conveyor.errors import QueueError
from conveyor.receiver.queue import NewEvent, Status
from conveyor.receiver.queue.location import PgLocation, migrate, resolve
from conveyor.receiver.queue.pg_queue import CLAIM_STEP, PgQueue
from conveyor.receiver.queue.postgres import SCHEMA_VERSION, Database, PgBatchStore
from tests.receiver import payloads, pg


@pytest.fixture
def url() -> Iterator[str]:
    created = pg.create_database()
    try:
        yield created
    finally:
        pg.drop_database(created)


def new(key: str, *, lane: str | None = None, targets: tuple[str, ...] = ()) -> NewEvent:
    return payloads.stored(key, sha="a" * 40, lane=lane, deploy_targets=targets)


def test_receivers_starting_at_once_migrate_once(url: str) -> None:
    barrier = threading.Barrier(6)

    def start() -> tuple[int, int]:
        barrier.wait()
        return migrate(PgLocation(url))

    with ThreadPoolExecutor(6) as pool:
        found = sorted(f.result() for f in [pool.submit(start) for _ in range(6)])
    assert found == [(0, SCHEMA_VERSION)] + [(SCHEMA_VERSION, SCHEMA_VERSION)] * 5
    with psycopg.connect(url) as conn:
        # each version's step ran once
        counted = conn.execute("SELECT count(*), count(DISTINCT version) FROM conveyor_schema")
        assert counted.fetchone() == (SCHEMA_VERSION, SCHEMA_VERSION)


def test_a_version_1_database_is_upgraded_in_place(url: str) -> None:
    intake = PgBatchStore(url)
    try:
        [stored], _ = intake.commit([new("a")])
    finally:
        intake.close()
    assert not isinstance(stored, str)
    put_id = stored.event_id
    with psycopg.connect(url) as conn:  # as a conveyor of schema 1 left it
        for added in ("events_commit", "events_fresh", "events_due"):
            conn.execute(f"DROP INDEX {added}")
        conn.execute(
            "CREATE INDEX events_runnable ON events(id) WHERE status IN ('queued', 'running')"
        )
        conn.execute("DELETE FROM conveyor_schema WHERE version > 1")
    assert migrate(PgLocation(url)) == (1, SCHEMA_VERSION)
    with psycopg.connect(url) as conn:
        names = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes")}
        [(kept,)] = conn.execute("SELECT id FROM events").fetchall()
    assert {"events_commit", "events_fresh", "events_due"} <= names and kept == put_id
    assert "events_runnable" not in names  # version 3: claims no longer walk it


def test_a_newer_schema_is_refused(url: str) -> None:
    migrate(PgLocation(url))
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO conveyor_schema VALUES (99)")
    with pytest.raises(QueueError, match="schema version 99"):
        Database(url)


def test_the_password_never_shows(url: str) -> None:
    secret = url.split(":")[2].split("@")[0]
    wrong = url.replace(secret, "Wr0ngPassw0rd-xyz")
    with pytest.raises(QueueError) as refused:
        Database(wrong, timeout_s=2)
    assert "Wr0ngPassw0rd-xyz" not in str(refused.value) and "127.0.0.1" in str(refused.value)
    location = resolve(url, pg.ROOT)
    assert secret not in str(location) and secret not in repr(location)
    down = "postgresql://conveyor:S3cretDown@127.0.0.1:1/queue"
    with pytest.raises(QueueError) as unreachable:
        Database(down, timeout_s=1)
    assert "S3cretDown" not in str(unreachable.value)
    assert "127.0.0.1:1/queue" in str(unreachable.value)


def test_concurrent_claimers_take_each_event_once_and_a_target_once(url: str) -> None:
    intake = PgBatchStore(url)
    events = [new(f"k{i}", targets=("prod",) if i % 10 == 0 else ()) for i in range(200)]
    outcomes, error = intake.commit(events)
    assert error is None
    intake.close()
    claimed: list[int] = []
    holding_prod: list[int] = []
    lock = threading.Lock()
    queue = PgQueue(url)

    def work(n: int) -> None:
        while True:
            claim = queue.claim(f"w{n}", lease_s=60)
            if claim is None:
                with lock:
                    if len(claimed) == len(events):
                        return
                time.sleep(0.01)
                continue
            prod = "prod" in claim.record.deploy_targets
            with lock:
                claimed.append(claim.record.id)
                if prod:
                    holding_prod.append(claim.record.id)
                    assert len(holding_prod) == 1, "two events hold one deploy target"
            if prod:
                time.sleep(0.01)
                with lock:
                    holding_prod.remove(claim.record.id)
            assert queue.finish(claim, succeeded=True, result_url=None, detail=None, status=None)

    with ThreadPoolExecutor(6) as pool:
        for f in [pool.submit(work, n) for n in range(6)]:
            f.result(120)
    assert sorted(claimed) == sorted(o.event_id for o in outcomes if not isinstance(o, str))
    assert queue.counts()[Status.DONE] == len(events)
    queue.close()


_TYPES = {"after": "bigint", "now": "double precision", "n": "bigint"}


def _pages(conn: psycopg.Connection[tuple[object, ...]], sql: str, args: dict[str, object]) -> int:
    """Pages (shared buffers) ``sql`` reads, planned with its values (the first 5 runs of a
    statement) and as a generic plan (psycopg prepares a statement run 5 times; PostgreSQL may
    then plan it once, without the values): the larger of the two."""
    names = list(args)
    prepared = sql
    for number, name in enumerate(names, 1):
        prepared = prepared.replace(f"%({name})s", f"${number}")
    types = ", ".join(_TYPES[name] for name in names)
    found = []
    for generic in (False, True):
        # a transaction of its own: the row locks an explained FOR UPDATE takes end with it
        with conn.transaction():
            if generic:
                conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                conn.execute(f"PREPARE claim_step ({types}) AS {prepared}")
                # EXECUTE takes no bound parameters: the values as literals
                values = ", ".join(Literal(args[name]).as_string(conn) for name in names)
                explain = f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE claim_step ({values})"
                [(plan,)] = conn.execute(explain)
                conn.execute("DEALLOCATE claim_step")
            else:
                [(plan,)] = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", args)
        top = plan[0]["Plan"]
        found.append(int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"]))
    return max(found)


def test_a_claim_reads_the_same_pages_however_many_retries_wait(url: str) -> None:
    """A claim step reads at most its 8 oldest new events, the due retries and the expired
    leases. It used to walk every queued event in id order, so that an idle claim (every
    event waiting for its retry: a dispatcher down) read each of them, every second, in every
    worker: 43 pages behind 1,000 and 171 behind 4,000. A first version of the fix did the
    same under a generic plan. Counted in pages (EXPLAIN's buffers for a claim step), not in
    time; the table vacuumed, as autovacuum keeps it."""

    def claim_pages(conn: psycopg.Connection[tuple[object, ...]]) -> int:
        conn.execute("VACUUM ANALYZE events")
        return _pages(conn, CLAIM_STEP, {"after": 0, "now": time.time(), "n": 8})

    def measure(backlog: int) -> tuple[int, int]:
        database = pg.create_database()
        intake = PgBatchStore(database)
        queue = PgQueue(database)
        try:
            outcomes, error = intake.commit([new(f"k{i}") for i in range(backlog)])
            first = outcomes[0]
            assert error is None and not isinstance(first, str)
            with psycopg.connect(database, autocommit=True) as conn:
                busy = claim_pages(conn)
                claim = queue.claim("w", lease_s=30)
                assert claim is not None and claim.record.id == first.event_id
                # every other queued event waits for its retry: nothing is due
                conn.execute("UPDATE events SET next_attempt_at = 9e9 WHERE status = 'queued'")
                idle = claim_pages(conn)
                assert queue.claim("w", lease_s=30) is None
        finally:
            queue.close()
            intake.close()
            pg.drop_database(database)
        return busy, idle

    (busy_short, idle_short), (busy_long, idle_long) = measure(1000), measure(4000)
    assert busy_long <= busy_short + 8, (busy_short, busy_long)
    assert idle_long <= idle_short + 8, (idle_short, idle_long)


def test_two_intakes_on_one_lane_leave_only_the_newest_queued(url: str) -> None:
    intakes = [PgBatchStore(url), PgBatchStore(url)]
    barrier = threading.Barrier(2)

    def send(n: int) -> None:
        for i in range(60):
            barrier.wait()  # both commit at once, every time
            _, error = intakes[n].commit([new(f"{n}-{i}", lane="L")])
            assert error is None

    with ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(send, n) for n in range(2)]:
            f.result(60)
    queue = PgQueue(url)
    records = queue.list_events(limit=300)
    assert [r.status for r in records].count(Status.QUEUED) == 1
    assert records[0].status is Status.QUEUED  # the newest one
    queue.close()
    for intake in intakes:
        intake.close()


def test_two_intakes_storing_a_merge_and_its_push_at_once_build_it_once(url: str) -> None:
    """The commit lock: each receiver gets one hook of the pair at the same moment, 40 times; no
    commit ends with both queued (without the lock each insert misses the other's)."""
    intakes = [PgBatchStore(url), PgBatchStore(url)]
    barrier = threading.Barrier(2)

    def hook(n: int, i: int) -> NewEvent:
        sha = f"{i:040x}"
        if n == 0:
            return replace(new(f"push-{i}"), sha=sha, kind="push")
        return replace(
            new(f"merge-{i}"),
            event_header="Merge Request Hook",
            kind="merge_request",
            sha=sha,
            merged=True,
        )

    def send(n: int) -> None:
        for i in range(40):
            barrier.wait()
            _, error = intakes[n].commit([hook(n, i)])
            assert error is None

    with ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(send, n) for n in range(2)]:
            f.result(60)
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT sha, count(*) FILTER (WHERE status = 'queued'),"
            " count(*) FILTER (WHERE status = 'ignored') FROM events GROUP BY sha"
        ).fetchall()
    assert len(rows) == 40 and {(q, i) for _, q, i in rows} == {(1, 1)}
    for intake in intakes:
        intake.close()


def test_a_value_the_database_refuses_fails_only_its_event(url: str) -> None:
    intake = PgBatchStore(url)
    bad = NewEvent(
        event_header="Push Hook",
        body=b"{}",
        status=Status.IGNORED,
        received_at=time.time(),
        idempotency_key="nul\x00key",
        project="demo/app",
        reason="test",
    )
    outcomes, error = intake.commit([new("a"), bad, new("b")])
    intake.close()
    assert error is None
    assert isinstance(outcomes[1], str) and "NUL" in outcomes[1]
    assert not isinstance(outcomes[0], str) and not isinstance(outcomes[2], str)
