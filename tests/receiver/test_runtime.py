"""The long-running processes keep the imports' objects out of the garbage collector's walks."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor.cli import serve as serve_cli
from conveyor.receiver import intake_process, runtime


@pytest.fixture
def unfrozen() -> Iterator[None]:
    saved = (logging._srcfile, logging.logThreads, logging.logProcesses)
    yield
    gc.unfreeze()
    logging._srcfile, logging.logThreads, logging.logProcesses = saved


def _collectable(obj: object) -> bool:
    """Whether the collector's generations hold ``obj`` (frozen objects are in none of them)."""
    return any(o is obj for o in gc.get_objects())


def test_settle_freezes_what_exists_and_still_collects_what_comes_after(unfrozen: None) -> None:
    class Cycle:
        def __init__(self) -> None:
            self.me = self

    before = Cycle()  # kept alive: it must be frozen, and stay frozen through a collection
    assert _collectable(before)
    frozen = runtime.settle()
    # The count itself only falls afterwards, as frozen objects are freed by reference count
    # (whatever an earlier test left dying): what is frozen is checked object by object.
    assert frozen > 1000 and 0 < gc.get_freeze_count() <= frozen
    assert not _collectable(before)
    assert logging._srcfile is None and not logging.logThreads

    made = Cycle()
    gone = weakref.ref(made)
    del made
    assert gone() is not None  # a cycle: reference counts alone never free it
    gc.collect()
    assert gone() is None  # a cycle made after settle() is collected
    assert not _collectable(before)  # and the collection left the frozen objects frozen


def test_the_server_and_the_intake_process_settle_before_serving(
    unfrozen: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    monkeypatch.setattr(runtime, "settle", lambda: order.append("settle") or 0)
    monkeypatch.setattr(serve_cli.uvicorn.Server, "run", lambda self: order.append("serve"))
    monkeypatch.setattr(serve_cli, "create_app", lambda receiver: object())
    serve_cli.run_server(Any, host="127.0.0.1", port=0)  # type: ignore[arg-type]
    assert order == ["settle", "serve"]

    order.clear()

    class Store:
        def close(self) -> None:
            order.append("close")

    monkeypatch.setattr(intake_process, "open_intake", lambda location: Store())
    monkeypatch.setattr(intake_process, "serve", lambda *args: order.append("serve"))
    monkeypatch.setattr(intake_process, "setup_logging", lambda *a, **k: None)
    monkeypatch.setattr(intake_process, "write_frame", lambda *a: None)
    monkeypatch.setattr(intake_process.sys, "argv", ["intake", "/tmp/none.db", "info"])
    intake_process.main()
    assert order == ["settle", "serve", "close"]
