"""Commit statuses GitLab accepts: the outbox and its sender against the GitLab emulator.

The sender posts through python-gitlab over real HTTP to the emulator, which enforces GitLab's
status state machine (reuse while pending/running, legal moves only, 400 otherwise), protected
refs (403) and fork MR visibility. Each test drives the queue as the worker does (claim,
progress, retry, finish) and drains the sender between steps.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from conveyor.errors import GitLabForbiddenError, GitLabTransitionError
from conveyor.gitlab.client import GitLabClient
from conveyor.gitlab.events import parse_event
from conveyor.gitlab.status import (
    CommitStatusClient,
    legal_move,
    status_name,
    status_target,
)
from conveyor.receiver.metrics import Metrics
from conveyor.receiver.queue import (
    Claim,
    EventQueue,
    IntakeWriter,
    NewEvent,
    Status,
    StatusUpdate,
    database_path,
    open_database,
    short_ref,
)
from conveyor.receiver.queue.location import Location, open_queue
from conveyor.receiver.statuses import GitLabStatusPoster, StatusSender
from tests.emulators.gitlab import GitLabEmulator
from tests.receiver import payloads as p
from tests.receiver.stores import sql

HEADERS = {"push": "Push Hook", "tag_push": "Tag Push Hook", "merge_request": "Merge Request Hook"}


class World:
    """A queue, a sender posting to the emulator as ``user``, and the worker's moves."""

    def __init__(
        self, db: Location, gitlab: GitLabEmulator, user: str = "maintainer", timeout: float = 10.0
    ) -> None:
        self.db = db
        self.gitlab = gitlab
        self.queue = open_queue(db, synchronous="NORMAL")
        self.metrics = Metrics()
        poster = GitLabStatusPoster(gitlab.url, gitlab.tokens[user], timeout=timeout)
        self.sender = StatusSender(db, poster, self.metrics, backoff_s=0.0)
        self.app_id = gitlab.project("demo/app").id

    def store(self, payload: dict[str, Any], *, pending: bool = True) -> int:
        header = HEADERS[str(payload["object_kind"])]
        event = parse_event(header, payload)
        update = StatusUpdate("pending", "queued", target=status_target(event)) if pending else None
        writer = IntakeWriter(self.db)
        try:
            accepted = writer.submit(
                NewEvent(
                    event_header=header,
                    body=json.dumps(payload).encode(),
                    status=Status.QUEUED,
                    received_at=time.time(),
                    idempotency_key=uuid.uuid4().hex,
                    kind=event.kind.value,
                    project=event.project_path,
                    ref=event.ref,
                    sha=event.sha,
                    status_ref=short_ref(event.ref),
                    pending_status=update,
                )
            ).result(10)
        finally:
            writer.close()
        return accepted.event_id

    def claim(self, event_id: int) -> Claim:
        claim = self.queue.claim(f"w-{uuid.uuid4().hex[:6]}", lease_s=60)
        assert claim is not None and claim.record.id == event_id
        return claim

    def running(self, claim: Claim, url: str = "http://jenkins/job/app/1/") -> None:
        assert self.queue.progress(
            claim, result_url=url, status=StatusUpdate("running", "running", url)
        )

    def finish(self, claim: Claim, state: str = "success") -> None:
        assert self.queue.finish(
            claim,
            succeeded=state == "success",
            result_url=None,
            detail=state,
            status=StatusUpdate(state, f"build {state}"),
        )

    def drain(self) -> None:
        self.sender.drain(self.queue)

    def outbox(self, event_id: int) -> list[dict[str, Any]]:
        return self.queue.statuses_for(event_id)

    def refused(self) -> list[int]:
        """HTTP codes of status posts GitLab did not accept."""
        return [r.status for r in self.gitlab.log.records("POST", r"/statuses/") if r.status != 201]


@pytest.fixture
def world(store: Location, gitlab_emulator: GitLabEmulator) -> Any:
    """On both stores (the ``store`` fixture: sqlite | postgresql)."""
    w = World(store, gitlab_emulator)
    yield w
    w.queue.close()


def app_push(world: World, **kwargs: Any) -> dict[str, Any]:
    return p.for_project(p.push(**kwargs), world.app_id)


def app_mr(world: World, **kwargs: Any) -> dict[str, Any]:
    return p.for_project(p.merge_request(**kwargs), world.app_id)


# ----------------------------------------------------------------------------- pure rules
def test_names_are_per_event_kind_and_stable() -> None:
    assert status_name("push") == "conveyor/push"
    assert status_name("tag_push") == "conveyor/tag_push"
    assert status_name("merge_request", "test") == "conveyor/merge_request/test"
    assert len(status_name("push", "s" * 400)) == 255
    assert status_name("") == "conveyor/build"


@pytest.mark.parametrize(
    ("current", "wanted", "legal"),
    [
        (None, "running", True),
        ("success", "pending", True),  # a finished status is not reused: a new one starts
        ("pending", "running", True),
        ("pending", "pending", False),
        ("running", "running", False),
        ("running", "pending", False),
        ("running", "skipped", False),
        ("running", "failed", True),
    ],
)
def test_legal_moves_match_gitlab(
    gitlab_emulator: GitLabEmulator, current: str | None, wanted: str, legal: bool
) -> None:
    assert legal_move(current, wanted) is legal
    statuses = CommitStatusClient(
        GitLabClient(gitlab_emulator.url, gitlab_emulator.tokens["developer"])
    )
    if current is not None:
        statuses.post_status("demo/app", p.SHA_A, current, "n", ref="main")
    if legal:
        statuses.post_status("demo/app", p.SHA_A, wanted, "n", ref="main")
    else:
        with pytest.raises(GitLabTransitionError) as info:
            statuses.post_status("demo/app", p.SHA_A, wanted, "n", ref="main")
        assert info.value.current == current


# ----------------------------------------------------------------------------- item 3
def test_retry_and_resume_post_running_once(world: World) -> None:
    event_id = world.store(app_push(world))
    world.drain()
    claim = world.claim(event_id)
    world.running(claim)
    world.drain()
    assert world.queue.retry_later(claim, error="jenkins went away", delay_s=0)
    claim = world.claim(event_id)  # the retry (or a resume) reports running again
    world.running(claim)
    world.drain()
    world.finish(claim)
    world.drain()
    assert world.refused() == []
    assert [s.state for s in world.gitlab.statuses("demo/app", p.SHA_B)] == [
        "pending",
        "running",
        "success",
    ]
    (record,) = world.gitlab.commit_statuses("demo/app", p.SHA_B)
    assert (record.name, record.ref, record.state) == ("conveyor/push", "main", "success")
    rows = world.outbox(event_id)
    assert [r["dropped"] for r in rows] == [None, None, "the status is already running", None]
    assert not any(r["gave_up"] for r in rows)


def test_push_and_mr_of_one_commit_keep_their_own_statuses(world: World) -> None:
    push = world.store(app_push(world, branch="feature/login", after=p.SHA_C))
    mr = world.store(app_mr(world, source="feature/login", sha=p.SHA_C))
    world.drain()
    push_claim = world.claim(push)
    mr_claim = world.claim(mr)
    world.running(push_claim, "http://jenkins/push/1/")
    world.running(mr_claim, "http://jenkins/mr/1/")
    world.drain()
    world.finish(push_claim, "success")
    world.finish(mr_claim, "failed")
    world.drain()
    assert world.refused() == []
    records = {r.name: r for r in world.gitlab.commit_statuses("demo/app", p.SHA_C)}
    assert set(records) == {"conveyor/push", "conveyor/merge_request"}
    assert records["conveyor/push"].state == "success"
    assert records["conveyor/push"].target_url == "http://jenkins/push/1/"
    assert records["conveyor/merge_request"].state == "failed"
    assert records["conveyor/merge_request"].target_url == "http://jenkins/mr/1/"


def test_an_older_build_never_overwrites_a_newer_one(world: World) -> None:
    older = world.store(app_push(world))
    world.drain()
    older_claim = world.claim(older)
    world.running(older_claim, "http://jenkins/1/")
    world.drain()
    newer = world.store(app_push(world))  # the same commit on the same branch again (replay)
    world.drain()
    world.finish(older_claim, "failed")  # the old build ends after the new one was queued
    newer_claim = world.claim(newer)
    world.running(newer_claim, "http://jenkins/2/")
    world.drain()
    world.finish(newer_claim, "success")
    world.drain()
    assert world.refused() == []
    posted = [(s.state, s.status_id) for s in world.gitlab.statuses("demo/app", p.SHA_B)]
    states = [state for state, _ in posted]
    # The old status is closed when the new build takes over; its late "failed" is not posted.
    assert states == ["pending", "running", "canceled", "pending", "running", "success"]
    assert posted[2][1] == posted[0][1] and posted[3][1] != posted[0][1]
    last = world.gitlab.commit_statuses("demo/app", p.SHA_B)[-1]
    assert (last.state, last.target_url) == ("success", "http://jenkins/2/")
    dropped = [r["dropped"] for r in world.outbox(older) if r["dropped"]]
    assert dropped == [f"a newer build (event {newer}) reports on this status"]


def test_order_is_kept_per_status_while_one_waits_for_a_retry(world: World) -> None:
    world.gitlab.faults.error("POST", r"/statuses/", status=503)
    older = world.store(app_push(world))
    newer = world.store(app_push(world))
    world.drain()  # the older pending fails: the newer waits behind it
    assert world.gitlab.statuses("demo/app", p.SHA_B) == []
    world.drain()  # the failed older pending is superseded by the newer one: not posted
    assert [s.state for s in world.gitlab.statuses("demo/app", p.SHA_B)] == ["pending"]
    assert world.refused() == [503]
    assert [r["dropped"] for r in world.outbox(older)] == ["superseded by a later status"]
    assert world.outbox(newer)[0]["sent_at"] is not None


def test_a_refused_move_is_resynced_from_gitlab_not_dropped(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # Someone else (a hand-run script, a second receiver) left the status running.
    other = GitLabClient(world.gitlab.url, world.gitlab.tokens["maintainer"])
    CommitStatusClient(other).post_status(
        world.app_id, p.SHA_B, "running", "conveyor/push", ref="main"
    )
    event_id = world.store(app_push(world))
    world.drain()
    claim = world.claim(event_id)
    world.running(claim)
    world.finish(claim)
    world.drain()
    assert world.refused() == [400]  # the one surprise, learnt from
    assert "re-planning" in caplog.text
    rows = world.outbox(event_id)
    assert rows[0]["sent_at"] is not None and not rows[0]["gave_up"]
    assert not any(r["gave_up"] for r in rows)
    records = world.gitlab.commit_statuses("demo/app", p.SHA_B)
    assert [r.state for r in records] == ["canceled", "success"]
    assert 'conveyor_status_posts_total{outcome="resynced"} 1' in world.metrics.render({})


# ----------------------------------------------------------------------------- item 10
def test_final_status_is_retried_for_hours_not_dropped(world: World) -> None:
    event_id = world.store(app_push(world), pending=False)
    claim = world.claim(event_id)
    world.finish(claim)
    world.gitlab.faults.error("POST", r"/statuses/", status=502, times=12)
    for _ in range(12):  # the old sender gave up after 8 attempts (~4 minutes of backoff)
        world.drain()
    (row,) = world.outbox(event_id)
    assert row["attempts"] == 12 and not row["gave_up"] and row["sent_at"] is None
    world.drain()
    (row,) = world.outbox(event_id)
    assert row["sent_at"] is not None
    assert [s.state for s in world.gitlab.statuses("demo/app", p.SHA_B)] == ["success"]


def test_a_retried_final_that_got_through_is_not_posted_twice(
    store: Location, gitlab_emulator: GitLabEmulator
) -> None:
    w = World(store, gitlab_emulator, timeout=0.3)
    event_id = w.store(app_push(w), pending=False)
    w.finish(w.claim(event_id))
    gitlab_emulator.faults.slow("POST", r"/statuses/", delay=0.8)  # GitLab takes it, too late
    w.drain()
    (row,) = w.outbox(event_id)
    assert row["attempts"] == 1 and row["sent_at"] is None and not row["gave_up"]
    time.sleep(0.8)
    w.drain()
    (row,) = w.outbox(event_id)
    assert row["sent_at"] is not None
    assert len(gitlab_emulator.log.records("POST", r"/statuses/")) == 1
    assert [r.state for r in gitlab_emulator.commit_statuses("demo/app", p.SHA_B)] == ["success"]
    w.queue.close()


def test_backoff_grows_to_its_cap_and_the_window_ends_retries(
    store: Location, gitlab_emulator: GitLabEmulator
) -> None:
    w = World(store, gitlab_emulator)
    w.sender = StatusSender(
        w.db,
        GitLabStatusPoster(gitlab_emulator.url, gitlab_emulator.tokens["maintainer"]),
        w.metrics,
        backoff_s=2.0,
        backoff_cap_s=30.0,
        retry_for_s=3600.0,
    )
    event_id = w.store(app_push(w), pending=False)
    w.finish(w.claim(event_id))
    gitlab_emulator.faults.error("POST", r"/statuses/", status=503, times=6)
    delays = []
    for _ in range(6):
        sql(w.db, "UPDATE status_outbox SET next_at = 0")
        before = time.time()
        w.drain()
        [(next_at,)] = sql(w.db, "SELECT next_at FROM status_outbox")
        delays.append(round(next_at - before))
    assert delays == [2, 4, 8, 16, 30, 30]
    # An hour after it was written, the next failure gives it up (and says so).
    sql(w.db, "UPDATE status_outbox SET next_at = 0, created_at = created_at - 3600")
    gitlab_emulator.faults.error("POST", r"/statuses/", status=503)
    w.drain()
    (row,) = w.outbox(event_id)
    assert row["gave_up"] and "503" in row["last_error"]
    w.queue.close()


def test_forbidden_on_a_protected_branch_names_push_or_merge_rights(
    store: Location, gitlab_emulator: GitLabEmulator
) -> None:
    gitlab_emulator.protect_branch("demo/app", "main", push="maintainer", merge="maintainer")
    w = World(store, gitlab_emulator, user="developer")
    event_id = w.store(app_push(w))  # the payload says ref_protected: true
    w.drain()
    (row,) = w.outbox(event_id)
    assert row["gave_up"]
    assert (
        "'Allowed to push and merge' or 'Allowed to merge' on the protected branch 'main'"
        in (row["last_error"])
    )
    assert "Developer role is not enough" in row["last_error"]
    w.queue.close()


def test_forbidden_messages_for_tags_and_unknown_protection(
    gitlab_emulator: GitLabEmulator,
) -> None:
    gitlab_emulator.add_pipeline("demo/app", p.SHA_C, "v1.0.0", tag=True)
    gitlab_emulator.protect_tag("demo/app", "v*")
    statuses = CommitStatusClient(
        GitLabClient(gitlab_emulator.url, gitlab_emulator.tokens["developer"])
    )
    with pytest.raises(
        GitLabForbiddenError, match=r"'Allowed to create' on the protected tag 'v1\.0\.0'"
    ):
        statuses.post_status(
            "demo/app", p.SHA_C, "success", "n", ref="v1.0.0", protected=True, tag=True
        )
    gitlab_emulator.protect_branch("demo/app", "main")
    with pytest.raises(
        GitLabForbiddenError, match="Developer role, and if 'main' is a protected branch"
    ):
        statuses.post_status("demo/app", p.SHA_C, "success", "n", ref="main", protected=None)


# ----------------------------------------------------------------------------- item 6
def test_fork_merge_request_statuses_go_to_the_source_project(world: World) -> None:
    fork = world.gitlab.fork_project("demo/app", "contrib/app", members={"maintainer": "developer"})
    iid = world.gitlab.add_merge_request(
        "demo/app",
        source_project="contrib/app",
        source_branch="fix",
        target_branch="main",
        sha=p.SHA_C,
    )
    payload = p.for_project(
        p.merge_request(source="fix", sha=p.SHA_C, iid=iid), world.app_id, source_project_id=fork.id
    )
    event_id = world.store(payload)
    world.drain()
    claim = world.claim(event_id)
    world.running(claim)
    world.finish(claim)
    world.drain()
    assert world.refused() == []
    assert world.gitlab.commit_statuses("demo/app") == []
    (record,) = world.gitlab.commit_statuses("contrib/app", p.SHA_C)
    assert (record.ref, record.name, record.state) == ("fix", "conveyor/merge_request", "success")
    shown = world.gitlab.merge_request_pipeline("demo/app", iid)
    assert shown is not None and shown["status"] == "success"


# ----------------------------------------------------------------------------- the queue
def test_a_queue_from_before_gains_the_outbox_columns(tmp_path: Path) -> None:
    db = database_path(tmp_path / "state")
    db.parent.mkdir(parents=True)
    old = sqlite3.connect(db)
    old.executescript(
        # (version 1's events had these columns too; later migrations index them)
        "CREATE TABLE events (id INTEGER PRIMARY KEY, event_header TEXT, kind TEXT, body BLOB,"
        " project TEXT, idempotency_key TEXT, sha TEXT, status TEXT, next_attempt_at REAL);"
        "CREATE TABLE status_outbox (id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL,"
        " project TEXT NOT NULL, sha TEXT NOT NULL, ref TEXT, state TEXT NOT NULL,"
        " target_url TEXT, description TEXT, attempts INTEGER NOT NULL DEFAULT 0,"
        " next_at REAL NOT NULL DEFAULT 0, sent_at REAL, gave_up INTEGER NOT NULL DEFAULT 0,"
        " last_error TEXT);"
        "INSERT INTO status_outbox (event_id, project, sha, ref, state)"
        " VALUES (1, 'demo/app', 'aaaaaaa', 'main', 'pending');"
        "PRAGMA user_version=1;"
    )
    old.close()
    conn = open_database(db)
    columns = {r["name"] for r in conn.execute("PRAGMA table_info(status_outbox)")}
    assert {"target_project", "name", "dropped", "created_at"} <= columns
    conn.close()
    queue = EventQueue(db)
    (item,) = queue.pending_statuses()
    assert (item.target_project, item.name) == ("demo/app", "conveyor/build")
    queue.close()


# ----------------------------------------------------------------------------- inputs
def test_retry_window_setting_is_validated() -> None:
    from conveyor.config import load_settings
    from conveyor.errors import ConfigError

    assert load_settings({}).status_retry_hours == 6.0
    assert load_settings({"CONVEYOR_STATUS_RETRY_HOURS": "0.5"}).status_retry_hours == 0.5
    for bad in ("soon", "0", "-3", "1000", "nan"):
        with pytest.raises(ConfigError, match="CONVEYOR_STATUS_RETRY_HOURS"):
            load_settings({"CONVEYOR_STATUS_RETRY_HOURS": bad})


def test_targets_from_payloads() -> None:
    fork_mr = p.for_project(p.merge_request(source="fix"), 15, source_project_id=99)
    mr = status_target(parse_event("Merge Request Hook", fork_mr))
    assert (mr.project, mr.ref, mr.name, mr.protected) == (
        "99",
        "fix",
        "conveyor/merge_request",
        None,
    )
    push = status_target(parse_event("Push Hook", p.push(branch="main")))
    assert (push.project, push.ref, push.name, push.protected) == (
        "15",
        "main",
        "conveyor/push",
        True,
    )
    tag = status_target(parse_event("Tag Push Hook", p.tag_push(tag="v2")))
    assert (tag.ref, tag.name, tag.tag) == ("v2", "conveyor/tag_push", True)
    old = p.push()
    del old["project_id"], old["project"]["id"], old["ref_protected"]
    legacy = status_target(parse_event("Push Hook", old))  # older GitLab: path, protection unknown
    assert (legacy.project, legacy.protected) == ("demo/app", None)
    hostile = p.merge_request()
    hostile["object_attributes"]["source_project_id"] = "1; DROP"
    assert status_target(parse_event("Merge Request Hook", hostile)).project == "15"


def test_finished_heads_are_forgotten_after_a_while_active_ones_kept(world: World) -> None:
    done = world.store(app_push(world))
    world.store(app_push(world, branch="release/1", after=p.SHA_C))  # stays pending
    world.finish(world.claim(done))
    world.drain()
    sql(world.db, "UPDATE status_heads SET updated_at = updated_at - 40 * 86400")
    assert world.queue.prune_status_heads(older_than_s=30 * 86400) == 1
    remaining = sql(world.db, "SELECT ref, state FROM status_heads")
    assert remaining == [("release/1", "pending")]


def test_served_fork_mr_reports_to_the_fork_end_to_end(
    start_receiver: Any, gitlab_emulator: GitLabEmulator, tmp_path: Path
) -> None:
    from conveyor.config import Settings
    from conveyor.receiver.worker import WorkerOptions
    from tests.receiver.test_app import send

    fork = gitlab_emulator.fork_project(
        "demo/app", "contrib/app", members={"maintainer": "developer"}
    )
    iid = gitlab_emulator.add_merge_request(
        "demo/app",
        source_project="contrib/app",
        source_branch="fix",
        target_branch="main",
        sha=p.SHA_C,
    )
    settings = Settings(
        secret=p.SECRET,
        state_dir=tmp_path / "served",
        gitlab_url=gitlab_emulator.url,
        gitlab_token=gitlab_emulator.tokens["maintainer"],
    )
    running = start_receiver(
        settings=settings, worker_options=WorkerOptions(workers=1, poll_s=0.05)
    )
    payload = p.for_project(
        p.merge_request(source="fix", sha=p.SHA_C, iid=iid),
        gitlab_emulator.project("demo/app").id,
        source_project_id=fork.id,
    )
    assert send(running, payload).status_code == 202
    running.wait_for(
        lambda: (
            [s.state for s in gitlab_emulator.commit_statuses("contrib/app", p.SHA_C)]
            == ["success"]
        )
    )
    assert [s.state for s in gitlab_emulator.statuses("contrib/app", p.SHA_C)] == [
        "pending",
        "success",
    ]
    assert gitlab_emulator.commit_statuses("demo/app") == []
    shown = gitlab_emulator.merge_request_pipeline("demo/app", iid)
    assert shown is not None and shown["status"] == "success"
