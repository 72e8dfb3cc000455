"""The intake process is the only writer on the hot path (issue 10, performance).

Workers' claims, leases and outcomes are sent to the intake process with the next batch of
deliveries (``WriterQueue`` -> ``IntakeWriter.call`` -> ``BatchStore.run``), so no connection in
the server's process takes SQLite's write lock while deliveries wait for theirs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conveyor.errors import QueueError
from conveyor.receiver.queue import BatchStore, EventQueue, IntakeWriter, NewEvent, Op, Status
from conveyor.receiver.queue import store as store_mod
from conveyor.receiver.worker import WorkerOptions
from tests.receiver import payloads as p


def _event(key: str, lane: str | None = None) -> NewEvent:
    return p.stored(key, sha="a" * 40, lane=lane)


def test_workers_write_nothing_in_the_servers_process(
    start_receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every transaction the workers need runs in the intake process: in the server's own
    process (this one) no worker opens a write transaction, yet every event is done."""
    writers: list[str] = []
    real = store_mod.transaction

    def spy(conn: Any, what: str) -> Any:
        writers.append(what)
        return real(conn, what)

    monkeypatch.setattr(store_mod, "transaction", spy)
    running = start_receiver(worker_options=WorkerOptions(workers=2, poll_s=0.05))
    writers.clear()  # startup's recovery pass is not the hot path
    for i in range(20):
        answer = running.client.post(
            "/hooks/gitlab",
            json=p.push(),
            headers=p.headers(p.push(), key=f"k-{i}"),
        )
        assert answer.status_code == 202, answer.text

    def all_done() -> bool:
        queue = running.queue()
        try:
            counts = queue.counts()
        finally:
            queue.close()
        return counts[Status.DONE] + counts[Status.SUPERSEDED] == 20

    running.wait_for(all_done)
    assert writers == []


def test_a_batch_runs_the_workers_writes_in_its_transaction(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    store = BatchStore(db)
    try:
        outcomes, error, results = store.run(
            [_event("a")], [Op("claim", ("w1",), {"lease_s": 60.0})]
        )
        assert error is None and not isinstance(outcomes[0], str)
        kind, claim = results[0]
        assert kind == "ok" and claim is not None and claim.record.id == outcomes[0].event_id
        finish = {"succeeded": True, "result_url": None, "detail": "ok", "status": None}
        _, _, results = store.run(
            [_event("b")],
            [
                Op("finish", (claim,), finish),
                Op("finish", (claim,), finish),  # a resend after a lost reply: not twice
                Op("delete_events", ([1],), {}),  # not a worker's write: refused
            ],
        )
        assert results[0] == ("ok", True)
        assert results[1] == ("ok", False)
        assert results[2][0] == "error" and "no such operation" in results[2][1]
    finally:
        store.close()
    queue = EventQueue(db)
    try:
        assert queue.get(1).status is Status.DONE  # type: ignore[union-attr]
        assert queue.get(2).status is Status.QUEUED  # type: ignore[union-attr]
        assert [a["outcome"] for a in queue.attempts_for(1)] == ["done"]
    finally:
        queue.close()


def test_a_failing_write_undoes_only_itself(tmp_path: Path) -> None:
    store = BatchStore(tmp_path / "events.db")
    try:
        outcomes, error, results = store.run(
            [_event("a")],
            [
                Op("claim", ("w1",), {"lease_s": "not a number"}),
                Op("claim", ("w2",), {"lease_s": 5.0}),
            ],
        )
        assert error is None and not isinstance(outcomes[0], str)
        assert results[0][0] == "error"
        assert results[1][0] == "ok" and results[1][1].owner == "w2"
    finally:
        store.close()


def test_call_fails_clearly_once_the_writer_is_stopped(tmp_path: Path) -> None:
    writer = IntakeWriter(tmp_path / "events.db")
    assert writer.call("claim", "w1", lease_s=5.0) is None  # an empty queue
    writer.close()
    with pytest.raises(QueueError, match="stopped"):
        writer.call("claim", "w1", lease_s=5.0)
