"""Issue 10 (items 1, 4, 6, 7, body size): nothing a delivery carries wedges, crashes or
duplicates intake. Each test here failed on the receiver before the fix."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.errors import QueueError
from conveyor.receiver import queue as queue_mod
from conveyor.receiver.app import ReceiverOptions
from conveyor.receiver.queue import EventQueue, IntakeWriter, NewEvent, Status, open_database
from conveyor.receiver.queue import intake as intake_mod
from conveyor.receiver.verify import sign
from conveyor.receiver.worker import WorkerOptions
from conveyor.tokens import project_id_token, project_token
from tests.receiver import payloads as p
from tests.receiver.conftest import Running

HOOK = "/hooks/gitlab"
LONE = "\ud800"  # a lone surrogate: valid in a JSON escape, not storable as UTF-8 text


def raw_body(payload: dict[str, Any]) -> bytes:
    """JSON with ``\\ud800`` written as the escape GitLab's JSON could carry (ensure_ascii)."""
    return json.dumps(payload).encode()


def rows(running: Running) -> list[Any]:
    queue = running.queue()
    try:
        return queue.list_events(limit=1000)
    finally:
        queue.close()


def post(running: Running, payload: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return running.client.post(
        HOOK, content=raw_body(payload), headers=p.headers(payload, **kwargs), timeout=8
    )


# ----------------------------------------------------------------------------- item 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (p.push(branch="main" + LONE), "ref"),
        (p.push(after=p.SHA_B[:39] + LONE), "after"),
        (p.tag_push(tag="v1" + LONE), "ref"),
        (p.push(message="fix " + LONE), "commits[1].message"),
    ],
)
def test_unstorable_text_is_a_400_naming_the_field_and_intake_goes_on(
    start_receiver: Any, payload: dict[str, Any], field: str
) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    event = "Tag Push Hook" if payload["object_kind"] == "tag_push" else None
    answer = post(running, payload, event=event)
    assert answer.status_code == 400, answer.text
    assert answer.json()["reason"] == "unstorable"
    assert field in answer.json()["error"]
    good = post(running, p.push())
    assert good.status_code == 202
    assert [r.status for r in rows(running)] == [Status.QUEUED]
    assert running.client.get("/healthz").status_code == 200


def test_any_failure_inside_a_batch_fails_only_that_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_insert = intake_mod.insert_event

    def insert(conn: sqlite3.Connection, event: NewEvent, *rest: Any) -> Any:
        if event.ref == "refs/heads/boom":
            raise RuntimeError("injected failure")
        return real_insert(conn, event, *rest)

    monkeypatch.setattr(intake_mod, "insert_event", insert)
    store = queue_mod.BatchStore(tmp_path / "events.db")
    try:
        events = [
            _event("refs/heads/a", "a"),
            _event("refs/heads/boom", "b"),
            _event("refs/heads/c", "c"),
        ]
        outcomes, storage_error = store.commit(events)
        again, _ = store.commit([_event("refs/heads/d", "d")])
    finally:
        store.close()
    assert storage_error is None
    assert isinstance(outcomes[1], str) and "RuntimeError" in outcomes[1]
    assert [o.duplicate for o in (outcomes[0], outcomes[2], again[0])] == [False] * 3  # type: ignore[union-attr]


def test_a_killed_idle_intake_process_is_replaced_at_once(start_receiver: Any) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    intake = running.receiver.intake
    assert intake is not None and intake.pid is not None
    first = intake.pid
    os.kill(first, signal.SIGKILL)
    running.wait_for(lambda: intake.pid not in (None, first))  # seen with nothing in flight
    good = post(running, p.push())
    assert good.status_code == 202
    assert [r.ref for r in rows(running)] == ["refs/heads/main"]
    assert running.client.get("/healthz").status_code == 200


def test_a_killed_intake_process_fails_its_batch_and_the_next_delivery_is_stored(
    start_receiver: Any,
) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    intake = running.receiver.intake
    assert intake is not None and intake.pid is not None
    first = intake.pid
    os.kill(first, signal.SIGSTOP)  # the batch is written, never read
    answers: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: answers.append(post(running, p.push(branch="lost"))))
    sender.start()
    running.wait_for(lambda: bool(intake._flight))
    os.kill(first, signal.SIGKILL)
    sender.join(10)
    [failed] = answers
    assert failed.status_code == 503 and failed.json()["reason"] == "storage"
    assert failed.headers["retry-after"]
    good = post(running, p.push())
    assert good.status_code == 202
    assert intake.pid != first
    assert [r.ref for r in rows(running)] == ["refs/heads/main"]
    assert running.client.get("/healthz").status_code == 200


def test_an_intake_process_that_cannot_start_fails_fast_until_one_can(
    start_receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intake_mod, "RESTART_AFTER_S", 0.5)
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    intake = running.receiver.intake
    assert intake is not None and intake.pid is not None
    command = intake._command
    intake._command = [sys.executable, "-c", "raise SystemExit(3)"]  # a broken install, say
    os.kill(intake.pid, signal.SIGKILL)
    running.wait_for(lambda: intake.storage_error is not None)
    assert "did not start" in (intake.storage_error or "")
    started = time.monotonic()
    refused = post(running, p.push(branch="refused"))
    assert refused.status_code == 503 and refused.json()["reason"] == "storage"
    assert time.monotonic() - started < 2  # answered, not left waiting for a process
    health = running.client.get("/healthz")
    assert health.status_code == 503 and "did not start" in health.json()["intake"]["error"]
    intake._command = command
    time.sleep(0.6)
    assert post(running, p.push()).status_code == 202
    assert [r.ref for r in rows(running)] == ["refs/heads/main"]
    assert running.client.get("/healthz").status_code == 200


def test_a_batch_larger_than_the_pipe_never_blocks_the_event_loop(start_receiver: Any) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    intake = running.receiver.intake
    assert intake is not None and intake.pid is not None
    os.kill(intake.pid, signal.SIGSTOP)  # the pipe fills after 64 KB of the 3 MB batch
    answers: list[int] = []
    big = p.push(message="x" * 3_000_000)
    sender = threading.Thread(target=lambda: answers.append(post(running, big).status_code))
    try:
        sender.start()
        running.wait_for(lambda: bool(intake._flight))
        # The loop still serves: a write that blocked it would leave this unanswered.
        assert running.client.get("/metrics", timeout=5).status_code == 200
    finally:
        os.kill(intake.pid, signal.SIGCONT)
        sender.join(20)
    assert answers == [202]
    assert len(rows(running)) == 1


def test_a_batch_that_cannot_be_sent_fails_alone_and_the_writer_goes_on(
    start_receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    real = intake_mod.encode_frame

    def encode(message: tuple[Any, ...]) -> bytes:
        if message[0] == "batch" and b"refs/heads/boom" in message[1][0].body:
            raise RuntimeError("injected failure")
        return real(message)

    monkeypatch.setattr(intake_mod, "encode_frame", encode)
    failed = post(running, p.push(branch="boom"))
    assert failed.status_code == 503 and failed.json()["reason"] == "storage"
    assert post(running, p.push()).status_code == 202
    assert [r.ref for r in rows(running)] == ["refs/heads/main"]
    assert running.client.get("/healthz").status_code == 200


def _event(ref: str, key: str) -> NewEvent:
    return p.stored(key, ref=ref)


def test_a_failing_delivery_does_not_take_its_batch_with_it(tmp_path: Path) -> None:
    writer = IntakeWriter(tmp_path / "events.db")
    try:
        # One batch: the middle event cannot be stored (its text is not UTF-8).
        futures = [
            writer.submit(_event("refs/heads/a", "a")),
            writer.submit(_event("refs/heads/" + LONE, "b")),
            writer.submit(_event("refs/heads/c", "c")),
        ]
        outcomes = [f.exception(10) or f.result() for f in futures]
    finally:
        writer.close()
    assert isinstance(outcomes[1], QueueError)
    assert [getattr(o, "duplicate", None) for o in (outcomes[0], outcomes[2])] == [False, False]


def test_healthz_fails_while_the_writer_is_wedged(start_receiver: Any) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    intake = running.receiver.intake
    assert intake is not None and intake.pid is not None
    assert running.client.get("/healthz").status_code == 200
    os.kill(intake.pid, signal.SIGSTOP)  # the intake process hangs (a stuck disk, say)
    answers: list[int] = []
    sender = threading.Thread(
        target=lambda: answers.append(post(running, p.push(branch="wedge")).status_code)
    )
    try:
        sender.start()
        time.sleep(0.3)
        health = running.client.get("/healthz")
        assert health.status_code == 503
        assert "did not answer" in health.json()["intake"]["error"]
    finally:
        os.kill(intake.pid, signal.SIGCONT)
        sender.join(20)
    assert answers == [202]
    assert running.client.get("/healthz").status_code == 200


def test_a_stopped_writer_fails_healthz_and_deliveries_fast(start_receiver: Any) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    intake = running.receiver.intake
    assert intake is not None and intake.pid is not None
    pid = intake.pid
    intake.close()
    assert intake.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the intake process is gone, not left behind
    health = running.client.get("/healthz")
    assert health.status_code == 503 and "stopped" in health.json()["intake"]["error"]
    started = time.monotonic()
    answer = post(running, p.push())
    assert answer.status_code == 503 and time.monotonic() - started < 2


# ----------------------------------------------------------------------------- item 4


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["project"].update(path_with_namespace="demo/" + LONE),
        lambda d: (d.pop("project"), d["repository"].update(homepage="http://x/" + LONE)),
    ],
)
@pytest.mark.parametrize("token", ["anything", project_token(p.SECRET, "demo/app")])
def test_a_project_path_that_is_not_text_is_4xx_for_any_sender(
    start_receiver: Any, mutate: Any, token: str
) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    payload = p.push()
    mutate(payload)
    answer = running.client.post(
        HOOK, content=raw_body(payload), headers=p.headers(p.push(), token=token), timeout=8
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert rows(running) == []


# ----------------------------------------------------------------------------- item 7


def test_idempotency_keys_are_scoped_to_the_project(start_receiver: Any) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    first = post(running, p.push("demo/app"), key="shared-key")
    other = post(running, p.push("demo/backend/api"), key="shared-key")
    again = post(running, p.push("demo/app"), key="shared-key")
    assert first.status_code == 202 and other.status_code == 202
    assert other.json()["id"] != first.json()["id"]
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert sorted(r.project for r in rows(running)) == ["demo/app", "demo/backend/api"]


V1_SCHEMA = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY, idempotency_key TEXT, delivery_uuid TEXT, event_header TEXT NOT NULL,
    kind TEXT, project TEXT, ref TEXT, sha TEXT, lane TEXT, deploy_targets TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL, reason TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0, lease_owner TEXT, lease_expires REAL,
    last_error TEXT, result_url TEXT, dispatch_state TEXT, replay_of INTEGER,
    received_at REAL NOT NULL, started_at REAL, finished_at REAL, updated_at REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE UNIQUE INDEX events_idempotency ON events(idempotency_key);
CREATE INDEX events_status ON events(status, next_attempt_at);
CREATE INDEX events_lane ON events(lane, status);
CREATE TABLE deploy_locks (target TEXT PRIMARY KEY, event_id INTEGER NOT NULL,
    lease_expires REAL NOT NULL);
CREATE TABLE status_outbox (
    id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL, project TEXT NOT NULL, sha TEXT NOT NULL,
    ref TEXT, state TEXT NOT NULL, target_url TEXT, description TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL DEFAULT 0, sent_at REAL,
    gave_up INTEGER NOT NULL DEFAULT 0, last_error TEXT
);
CREATE INDEX outbox_pending ON status_outbox(sent_at, gave_up, id);
INSERT INTO events (idempotency_key, event_header, kind, project, ref, sha, status, received_at,
    updated_at, body)
VALUES ('old-key', 'Push Hook', 'push', 'demo/app', 'refs/heads/main', 'a', 'queued', 1, 1, X'7B7D');
PRAGMA user_version=1;
"""


def test_a_database_from_the_previous_version_is_migrated_and_keeps_working(
    tmp_path: Path,
) -> None:
    db = tmp_path / "events.db"
    raw = sqlite3.connect(db)
    raw.executescript(V1_SCHEMA)
    raw.close()
    # Several connections open at once, as serve does (writer, checkpointer, workers).
    conns = [open_database(db) for _ in range(3)]
    for conn in conns:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == queue_mod.SCHEMA_VERSION
        conn.close()
    writer = IntakeWriter(db)
    try:
        same = writer.submit(p.stored("old-key", ref=None)).result(10)
        other = writer.submit(p.stored("old-key", ref=None, project="demo/other")).result(10)
    finally:
        writer.close()
    assert same.duplicate and same.event_id == 1
    assert not other.duplicate
    queue = EventQueue(db)
    try:
        old = queue.get(1)
        assert old is not None and old.idempotency_key == "old-key" and old.webhook_id is None
        claim = queue.claim("w", lease_s=30)
        assert claim is not None and claim.record.id == 1
    finally:
        queue.close()


# ----------------------------------------------------------------------------- item 6

KEY = b"0123456789abcdef0123456789abcdef"


def _signed(payload: dict[str, Any], msg_id: str, key: str) -> dict[str, str]:
    hdrs = p.headers(payload, key=key)
    stamp = str(int(time.time()))
    hdrs.update(
        {
            "webhook-id": msg_id,
            "webhook-timestamp": stamp,
            "webhook-signature": sign(KEY, msg_id, stamp, p.body(payload)),
        }
    )
    return hdrs


@pytest.mark.parametrize("required", [True, False])
def test_a_signed_delivery_replayed_with_new_idempotency_keys_is_a_duplicate(
    start_receiver: Any, required: bool
) -> None:
    running = start_receiver(
        options=ReceiverOptions(signing_keys=(KEY,), require_signature=required),
        worker_options=WorkerOptions(workers=0),
    )
    payload = p.push()
    answers = [
        running.client.post(
            HOOK, content=p.body(payload), headers=_signed(payload, "msg_1", f"key-{i}")
        )
        for i in range(3)
    ]
    assert [a.status_code for a in answers] == [202, 200, 200]
    assert {a.json()["id"] for a in answers} == {answers[0].json()["id"]}
    assert answers[1].json()["duplicate"] is True
    # A new message (GitLab's next event) is not a duplicate.
    fresh = running.client.post(
        HOOK, content=p.body(payload), headers=_signed(payload, "msg_2", "key-9")
    )
    assert fresh.status_code == 202
    assert len(rows(running)) == 2
    # The same webhook-id in another project is that project's own message.
    api = p.push("demo/backend/api")
    elsewhere = running.client.post(
        HOOK, content=p.body(api), headers=_signed(api, "msg_1", "key-0")
    )
    assert elsewhere.status_code == 202


def test_an_unsigned_webhook_id_is_not_trusted_for_dedupe(start_receiver: Any) -> None:
    """Without a signing key the header is just a claim: it neither dedupes nor refuses."""
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    payload = p.push()
    for i in range(2):
        hdrs = p.headers(payload, key=f"k-{i}")
        hdrs["webhook-id"] = "msg_1"
        assert running.client.post(HOOK, content=p.body(payload), headers=hdrs).status_code == 202
    assert [r.webhook_id for r in rows(running)] == [None, None]


# ----------------------------------------------------------------------------- body size


def big_push(size: int) -> dict[str, Any]:
    payload = p.push()
    filler = "x" * 1000
    count = size // 1040
    payload["commits"] = (
        payload["commits"]
        + [{"id": p.SHA_A, "message": filler, "added": [], "modified": [], "removed": []}] * count
    )
    return payload


def test_a_20_mb_delivery_is_accepted(start_receiver: Any) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    payload = big_push(20 * 1000 * 1000)
    body = p.body(payload)
    assert len(body) > 20 * 1000 * 1000
    answer = running.client.post(HOOK, content=body, headers=p.headers(payload), timeout=60)
    assert answer.status_code == 202, answer.text
    [record] = rows(running)
    assert len(record.body) == len(body)


def _open_body(port: int, payload: dict[str, Any], length: int, sent: bytes) -> socket.socket:
    """A request whose head promises ``length`` bytes of body, of which ``sent`` is sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = "".join(
        f"{k}: {v}\r\n" for k, v in {**p.headers(payload), "Content-Length": str(length)}.items()
    )
    sock.sendall(f"POST {HOOK} HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + sent)
    return sock


def _status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]) if data else 0


def test_large_bodies_beyond_the_memory_budget_get_503_retry_after(start_receiver: Any) -> None:
    mib = 1024 * 1024
    running = start_receiver(
        options=ReceiverOptions(max_body_bytes=2 * mib, body_memory_bytes=3 * mib),
        worker_options=WorkerOptions(workers=0),
    )
    port = int(running.url.rsplit(":", 1)[1])
    payload = p.push()
    held = [_open_body(port, payload, 2 * mib - 10, b"{" * 1000) for _ in range(1)]
    try:
        time.sleep(0.3)
        refused = running.client.post(
            HOOK,
            content=p.body(payload) + b" " * (2 * mib - 100 - len(p.body(payload))),
            headers=p.headers(payload),
        )
        assert refused.status_code == 503 and refused.json()["reason"] == "busy"
        assert refused.headers["retry-after"] == "5"
        # Small deliveries are not held back by the large ones.
        assert post(running, p.push()).status_code == 202
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    again = running.client.post(
        HOOK,
        content=p.body(payload) + b" " * (2 * mib - 100 - len(p.body(payload))),
        headers=p.headers(payload, key="after"),
    )
    assert again.status_code == 202


# ------------------------------------------------- large unauthenticated bodies (item 5)

FIVE_MB = 5 * 1000 * 1000


def _promised(port: int, headers: dict[str, str], length: int, sent: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = "".join(f"{k}: {v}\r\n" for k, v in {**headers, "Content-Length": str(length)}.items())
    sock.sendall(f"POST {HOOK} HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + sent)
    return sock


def _answer_within(sock: socket.socket, seconds: float) -> bytes:
    sock.settimeout(seconds)
    try:
        return sock.recv(65536)
    except TimeoutError:
        return b""


def test_a_large_body_with_a_wrong_token_is_refused_before_it_is_read(
    start_receiver: Any,
) -> None:
    """A 5 MB delivery whose first 100 KB name its project and whose token matches none of
    them is answered 401 then, and closed: the other 4.9 MB are never read."""
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    port = int(running.url.rsplit(":", 1)[1])
    body = p.body(big_push(FIVE_MB))
    headers = p.headers(p.push(), token="not-the-token")
    with _promised(port, headers, len(body), body[:100_000]) as sock:
        answer = _answer_within(sock, 5)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"token_invalid" in answer and b"connection: close" in answer.lower()
    assert rows(running) == []


def test_a_large_body_naming_no_project_early_is_read_whole_then_judged(
    start_receiver: Any,
) -> None:
    """A body that names no project in its first 64 KB (a tag with a long message comes first)
    cannot be judged early: it is read whole, then refused or accepted as any other."""
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    port = int(running.url.rsplit(":", 1)[1])
    tag = p.tag_push()
    payload = {"message": "m" * 200_000}  # a tag's message, before the project
    payload.update((k, v) for k, v in tag.items() if k != "message")
    body = p.body(payload)
    assert body.index(b"path_with_namespace") > 200_000
    with _promised(port, p.headers(payload, token="wrong"), len(body), body[:100_000]) as sock:
        assert _answer_within(sock, 1.0) == b""  # still reading
        sock.sendall(body[100_000:])
        assert _answer_within(sock, 10).startswith(b"HTTP/1.1 401")
    with _promised(port, p.headers(payload), len(body), body) as sock:
        assert _answer_within(sock, 10).startswith(b"HTTP/1.1 202")


@pytest.mark.parametrize("scheme", ["path token", "id token"])
def test_a_large_body_with_the_right_token_is_read_and_accepted(
    start_receiver: Any, scheme: str
) -> None:
    running = start_receiver(worker_options=WorkerOptions(workers=0))
    payload = big_push(2 * 1000 * 1000)
    token = project_id_token(p.SECRET, 15) if scheme == "id token" else None
    answer = running.client.post(
        HOOK, content=p.body(payload), headers=p.headers(payload, token=token), timeout=30
    )
    assert answer.status_code == 202, answer.text
