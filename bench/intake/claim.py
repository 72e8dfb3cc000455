"""A worker's claim and finish against the length of the backlog, on the SQLite or PostgreSQL queue.

    .venv/bin/python bench/intake/claim.py [--backlogs 1000,10000,50000] [--claims 200]
                                           [--baseline SRC] [--postgresql]

For each backlog: a fresh queue holding that many queued events and as many finished ones
(written with one ``executemany``, not through the intake), then ``--claims`` times
``EventQueue.claim`` and ``finish`` in a row, as one worker does with ``--dispatch none``
(``synchronous=NORMAL``, the workers' setting). Reported: the wall time of one claim and finish,
and SQLite VM instructions of one claim (a progress handler every 10 instructions), which do not
depend on the machine's speed; then, every queued event put an hour into its retry backoff (a
dispatcher down), the wall time of a claim that finds nothing due (what each idle worker's poll
costs). ``--baseline SRC`` measures another checkout's ``src`` too
(``git archive HEAD src | tar -x -C /tmp/base``), each in a process of its own.

``--postgresql``: the same on a fresh database of the throwaway cluster of
``scripts/postgres.sh`` (``PgQueue``; rows written with one ``executemany``, then ``VACUUM
ANALYZE``, as autovacuum would leave the table, and again once the retries are put off;
``synchronous_commit=off`` on that database: a commit's WAL flush is the disk's time). No
instruction count there: the wall times, and the pages (shared buffers) an idle claim step
reads, from ``EXPLAIN (ANALYZE, BUFFERS)`` where the checkout names its statement
(``pg_queue.CLAIM_STEP``).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent.parent / "src"


def claim_and_finish(queue: Any, claims: int) -> float:
    """Seconds ``claims`` claims and finishes in a row take, as one ``--dispatch none`` worker."""
    started = time.perf_counter()
    for _ in range(claims):
        claim = queue.claim("w", lease_s=60)
        assert claim is not None
        queue.finish(claim, succeeded=True, result_url=None, detail=None, status=None)
    return time.perf_counter() - started


def claims_finding_nothing(queue: Any, claims: int) -> float:
    """Seconds ``claims`` claims take that find nothing due (an idle worker's polls)."""
    started = time.perf_counter()
    for _ in range(claims):
        assert queue.claim("w", lease_s=60) is None
    return time.perf_counter() - started


def child(backlog: int, claims: int) -> dict[str, Any]:
    from conveyor.receiver.queue import open_database
    from conveyor.receiver.queue.events import EventQueue

    db = Path(tempfile.mkdtemp(prefix="conveyor-bench-claim-")) / "events.db"
    open_database(db, synchronous="NORMAL").close()  # the schema
    raw = sqlite3.connect(db)
    now = time.time()
    raw.executemany(
        "INSERT INTO events (event_header, kind, project, deploy_targets, status, received_at,"
        " updated_at, body) VALUES ('Push Hook', 'push', 'demo/app', '[]', ?, ?, ?, ?)",
        [("done" if i % 2 else "queued", now, now, b"{}") for i in range(2 * backlog)],
    )
    raw.commit()
    raw.close()
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    conn = open_database(db, synchronous="NORMAL")
    queue = EventQueue(db, synchronous="NORMAL")
    counted = EventQueue(db, conn=conn)
    conn.set_progress_handler(count, 10)
    claim = counted.claim("counted", lease_s=60)
    assert claim is not None
    conn.set_progress_handler(None, 0)
    counted.finish(claim, succeeded=True, result_url=None, detail=None, status=None)
    elapsed = claim_and_finish(queue, claims)
    # every queued event waiting for its retry (a dispatcher down): an idle worker's claim
    conn.execute("UPDATE events SET next_attempt_at = ? WHERE status = 'queued'", (now + 3600,))
    conn.commit()
    idle = claims_finding_nothing(queue, claims)
    queue.close()
    conn.close()
    return {
        "backlog": backlog,
        "claim_and_finish_us": round(elapsed / claims * 1e6),
        "vm_instructions_per_claim": steps[0] * 10,
        "idle_claim_us": round(idle / claims * 1e6),
    }


def pg_child(backlog: int, claims: int, admin: str) -> dict[str, Any]:
    import uuid

    import psycopg

    from conveyor.receiver.queue import pg_queue
    from conveyor.receiver.queue.location import PgLocation, migrate

    name = "bench_claim_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        # the commits' WAL flush is the disk's time (it moved these figures by half): not counted
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        migrate(PgLocation(url))
        now = time.time()
        with psycopg.connect(url, autocommit=True) as conn:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO events (event_header, kind, project, deploy_targets, status,"
                    " received_at, updated_at, body) VALUES"
                    " ('Push Hook', 'push', 'demo/app', '[]', %s, %s, %s, %s)",
                    [("done" if i % 2 else "queued", now, now, b"{}") for i in range(2 * backlog)],
                )
            conn.execute("VACUUM ANALYZE events")
            queue = pg_queue.PgQueue(url)
            elapsed = claim_and_finish(queue, claims)
            conn.execute(
                "UPDATE events SET next_attempt_at = %s WHERE status = 'queued'", (now + 3600,)
            )
            conn.execute("VACUUM ANALYZE events")
            idle = claims_finding_nothing(queue, claims)
            queue.close()
            pages = None
            if hasattr(pg_queue, "CLAIM_STEP"):
                step = {"after": 0, "now": time.time(), "n": 8}
                plan = conn.execute(
                    f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {pg_queue.CLAIM_STEP}", step
                ).fetchone()
                assert plan is not None
                top = plan[0][0]["Plan"]
                pages = int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return {
        "backlog": backlog,
        "claim_and_finish_us": round(elapsed / claims * 1e6),
        "idle_claim_us": round(idle / claims * 1e6),
        "idle_claim_pages": pages,
    }


def measure(src: Path, backlog: int, claims: int, admin: str | None) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from run import last_json

    cmd = [sys.executable, __file__, "--child", str(backlog), "--claims", str(claims)]
    if admin is not None:
        cmd += ["--admin", admin]
    return last_json(cmd, {**os.environ, "PYTHONPATH": str(src)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlogs", default="1000,10000,50000")
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--baseline", type=Path, help="another checkout's src, measured too")
    parser.add_argument("--postgresql", action="store_true", help="the PostgreSQL queue")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--admin", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        if args.admin is not None:
            print(json.dumps(pg_child(args.child, args.claims, args.admin)))
        else:
            print(json.dumps(child(args.child, args.claims)))
        return
    backlogs = [int(b) for b in args.backlogs.split(",")]
    if any(b <= args.claims for b in backlogs):
        raise SystemExit("every backlog must hold more than --claims queued events")
    sources = [("conveyor", SRC)] + ([("baseline", args.baseline)] if args.baseline else [])
    if args.postgresql:
        pg_table(backlogs, sources, args.claims)
        return
    print(
        "| src | queued (and as many done) | claim + finish µs | VM instructions a claim"
        " | a claim finding nothing due µs |"
    )
    print("|---|---|---|---|---|")
    for backlog in backlogs:
        for name, src in sources:
            r = measure(src, backlog, args.claims, None)
            print(
                f"| {name} | {backlog:,} | {r['claim_and_finish_us']:,}"
                f" | {r['vm_instructions_per_claim']:,} | {r['idle_claim_us']:,} |",
                flush=True,
            )


def pg_table(backlogs: list[int], sources: list[tuple[str, Path]], claims: int) -> None:
    sys.path.insert(0, str(HERE))
    from postgres import admin_url  # the throwaway cluster, as postgres.py starts it

    admin = admin_url()
    print(
        "| src | queued (and as many done) | claim + finish µs | a claim finding nothing due µs"
        " | pages an idle claim step reads |"
    )
    print("|---|---|---|---|---|")
    for backlog in backlogs:
        for name, src in sources:
            r = measure(src, backlog, claims, admin)
            pages = "-" if r["idle_claim_pages"] is None else f"{r['idle_claim_pages']:,}"
            print(
                f"| {name} | {backlog:,} | {r['claim_and_finish_us']:,}"
                f" | {r['idle_claim_us']:,} | {pages} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
