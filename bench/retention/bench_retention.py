"""Retention benchmark: the queue's size under the default policy, and intake with pruning on.

    .venv/bin/python bench/retention/bench_retention.py [--seconds 3600] [--prefill 200000]

``day``: events arrive at 100/s with *synthetic* timestamps (no waiting a day): each simulated
minute, 6,000 GitLab pushes of ~2.2 KB are committed through the real intake writer, then
marked done the way a dispatched event ends (3 sent commit statuses, 1 attempt record), and
one pruning pass with the default policy (30 days / 100,000 events) runs, as ``serve``'s
pruner does every minute. The database + WAL size is printed along the way. The count bound
takes over after 1,000 s; from then on SQLite reuses the freed pages, so the file stops
growing and a whole day ends at the same size (the run shows the plateau). The same per-event
bytes give the size of a day without retention.

``intake``: a real ``conveyor serve --dispatch none`` on loopback, its database prefilled with
``--prefill`` finished events 40 days old, measured with bench/intake/loadgen.py (closed loop,
32 connections, then open loop at 500/s), once with pruning off (``--retention-days 0
--retention-events 0``) and once with the default policy (the pruner deletes the prefill
while the load runs). Prints JSON lines and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from conveyor.receiver.queue import EventQueue, IntakeWriter, NewEvent, Status, database_path
from conveyor.receiver.retention import RetentionPolicy, prune

ROOT = Path(__file__).resolve().parents[2]
LOADGEN = ROOT / "bench" / "intake" / "loadgen.py"
SPEC = ROOT / "bench" / "intake" / "spec.yml"
SECRET = "bench-secret-not-real"
RATE = 100  # events/s
DAY = 86400.0


def body(i: int) -> bytes:
    """A GitLab push of about 2.2 KB (the issue's measured average)."""
    sha = f"{i:040x}"
    data = {
        "object_kind": "push",
        "event_name": "push",
        "before": "0" * 39 + "1",
        "after": sha,
        "ref": f"refs/heads/release/{i % 64}",
        "checkout_sha": sha,
        "user_name": "Bench User",
        "user_username": "bench",
        "user_email": "bench@example.com",
        "project_id": 1,
        "project": {
            "id": 1,
            "name": "app",
            "path_with_namespace": "bench/app",
            "web_url": "https://gitlab.example.com/bench/app",
            "git_http_url": "https://gitlab.example.com/bench/app.git",
            "git_ssh_url": "git@gitlab.example.com:bench/app.git",
            "default_branch": "main",
            "visibility_level": 0,
        },
        "commits": [
            {
                "id": sha,
                "message": f"change number {i}\n\n" + "a line of the commit body\n" * 20,
                "timestamp": "2026-01-03T23:36:29+02:00",
                "url": f"https://gitlab.example.com/bench/app/-/commit/{sha}",
                "author": {"name": "Bench User", "email": "bench@example.com"},
                "added": [],
                "modified": ["src/app.py", "README.md", "tests/test_app.py"],
                "removed": [],
            }
        ],
        "total_commits_count": 1,
        "push_options": {},
        "repository": {
            "name": "app",
            "url": "git@gitlab.example.com:bench/app.git",
            "homepage": "https://gitlab.example.com/bench/app",
        },
    }
    return json.dumps(data).encode()


def event(i: int, at: float) -> NewEvent:
    return NewEvent(
        event_header="Push Hook",
        body=body(i),
        status=Status.QUEUED,
        received_at=at,
        idempotency_key=f"bench-{i}",
        project="bench/app",
        ref=f"refs/heads/release/{i % 64}",
        sha=f"{i:040x}",
    )


def finish(db: Path, ids: list[int], at: float) -> None:
    """Mark events done as a dispatch leaves them: 3 sent statuses and an attempt each."""
    conn = sqlite3.connect(db, timeout=30)
    with conn:
        conn.executemany(
            "UPDATE events SET status = 'done', reason = 'bench/app #1: SUCCESS', attempts = 1,"
            ' dispatch_state = \'{"build_number": 1, "job": "bench/app", "next_build": 1,'
            " \"queue_id\": 1}', result_url = 'https://jenkins.example.com/job/bench/job/app/1/',"
            " started_at = ?, finished_at = ?, updated_at = ? WHERE id = ?",
            [(at, at, at, i) for i in ids],
        )
        conn.executemany(
            "INSERT INTO status_outbox (event_id, project, sha, ref, state, target_url,"
            " description, attempts, sent_at) VALUES (?, 'bench/app', ?, 'release/1', ?,"
            " 'https://jenkins.example.com/job/bench/job/app/1/', ?, 1, ?)",
            [
                (i, f"{i:040x}", state, state, at)
                for i in ids
                for state in ("pending", "running", "success")
            ],
        )
        conn.executemany(
            "INSERT INTO event_attempts (event_id, attempt, owner, started_at, ended_at,"
            " outcome, detail) VALUES (?, 1, 'bench-0', ?, ?, 'done', 'bench/app #1: SUCCESS')",
            [(i, at, at) for i in ids],
        )
    conn.close()


def size(db: Path) -> int:
    wal = db.with_name(db.name + "-wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def checkpoint(db: Path) -> None:
    conn = sqlite3.connect(db, timeout=30)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    conn.close()


def fill(db: Path, start: int, count: int, first_at: float, rate: float) -> None:
    writer = IntakeWriter(db)
    try:
        step = 6000
        for chunk in range(start, start + count, step):
            n = min(step, start + count - chunk)
            futures = [
                writer.submit(event(i, first_at + (i - start) / rate))
                for i in range(chunk, chunk + n)
            ]
            ids = [f.result(120).event_id for f in futures]
            finish(db, ids, first_at + (chunk + n - start) / rate)
    finally:
        writer.close()


def day(seconds: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    policy = RetentionPolicy()
    with tempfile.TemporaryDirectory(prefix="conveyor-retention-") as tmp:
        db = database_path(Path(tmp))
        t0 = time.time() - seconds  # the simulated day ends now
        writer = IntakeWriter(db)
        queue = EventQueue(db, synchronous="NORMAL")
        started = time.monotonic()
        try:
            for minute in range(seconds // 60):
                now = t0 + (minute + 1) * 60
                base = minute * 60 * RATE
                futures = [
                    writer.submit(event(i, t0 + i / RATE)) for i in range(base, base + 60 * RATE)
                ]
                ids = [f.result(120).event_id for f in futures]
                finish(db, ids, now)
                report = prune(queue, policy, now=now)
                checkpoint(db)
                if (minute + 1) % 5 == 0 or minute < 3:
                    total = queue.counts()
                    row = {
                        "part": "day",
                        "simulated_s": (minute + 1) * 60,
                        "events_received": base + 60 * RATE,
                        "events_kept": sum(total.values()),
                        "pruned_this_minute": report.events,
                        "db_plus_wal_mb": round(size(db) / 1e6, 1),
                        "wall_s": round(time.monotonic() - started, 1),
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            writer.close()
            queue.close()
    return rows


def per_event_bytes(count: int) -> float:
    with tempfile.TemporaryDirectory(prefix="conveyor-retention-") as tmp:
        db = database_path(Path(tmp))
        fill(db, 0, count, time.time(), RATE)
        checkpoint(db)
        return size(db) / count


def serve(state: Path, *retention: str) -> tuple[subprocess.Popen[bytes], int]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    cmd = [sys.executable, "-m", "conveyor.cli.main", "serve", str(SPEC), "--port", str(port)]
    cmd += ["--state", str(state), "--dispatch", "none", "--workers", "0"]
    cmd += ["--log-level", "warning", *retention]
    env = {**os.environ, "CONVEYOR_SECRET": SECRET, "CONVEYOR_CONFIG": os.devnull}
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("serve did not start")
        time.sleep(0.1)


def loadgen(port: int, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(LOADGEN), *args, "--port", str(port), "--secret", SECRET],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def count_rows(db: Path) -> int:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def intake(prefill: int, duration: float) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="conveyor-retention-") as tmp:
        template = Path(tmp) / "template"
        fill(database_path(template), 10**9, prefill, time.time() - 40 * DAY, RATE)
        checkpoint(database_path(template))
        variants = {
            "pruning off": ("--retention-days", "0", "--retention-events", "0"),
            "pruning on (default policy)": (),
        }
        for mode in (
            ["throughput", "--count", "100000", "--duration", str(duration), "--connections", "32"],
            ["rate", "--rate", "500", "--duration", str(duration)],
        ):
            for variant, flags in variants.items():
                state = Path(tmp) / "run"
                shutil.rmtree(state, ignore_errors=True)
                shutil.copytree(template, state)
                db = database_path(state)
                proc, port = serve(state, *flags)
                try:
                    before = count_rows(db)
                    result = loadgen(port, *mode)
                    result["deleted_during_run"] = before + int(result["accepted"]) - count_rows(db)  # type: ignore[call-overload]
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(60)
                result.update(part="intake", variant=variant)
                rows.append(result)
                print(json.dumps(result), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=3600, help="simulated seconds of arrivals")
    parser.add_argument("--prefill", type=int, default=200_000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--only", choices=["day", "intake"])
    args = parser.parse_args()
    print(f"# {platform.platform()} python {platform.python_version()} cpus={os.cpu_count()}")
    print(f"# sqlite {sqlite3.sqlite_version}; load average before: {os.getloadavg()}")
    if args.only in (None, "day"):
        rows = day(args.seconds)
        unbounded = per_event_bytes(20_000)
        print(f"# bytes per event without retention: {unbounded:.0f}")
        print(f"# a day at {RATE}/s without retention: {unbounded * RATE * DAY / 1e9:.1f} GB")
        print("\n| simulated time | received | kept | db + WAL |\n|---|---|---|---|")
        for row in rows:
            print(
                f"| {int(row['simulated_s']) // 60} min | {row['events_received']:,} |"  # type: ignore[str-format]
                f" {row['events_kept']:,} | {row['db_plus_wal_mb']} MB |"
            )
    if args.only in (None, "intake"):
        rows = intake(args.prefill, args.duration)
        print(
            "\n| mode | variant | 2xx/s | p50 ms | p99 ms | deleted during run |\n|---|---|---|---|---|---|"
        )
        for row in rows:
            print(
                f"| {row['mode']} | {row['variant']} | {row['accepted_per_s']} | {row['p50_ms']} |"
                f" {row['p99_ms']} | {row['deleted_during_run']:,} |"  # type: ignore[str-format]
            )


if __name__ == "__main__":
    main()
