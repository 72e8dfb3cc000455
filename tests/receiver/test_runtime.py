"""The long-running processes keep the imports' objects out of the garbage collector's walks."""

from __future__ import annotations

import gc
import logging
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


def test_settle_freezes_what_exists_and_still_collects_what_comes_after(unfrozen: None) -> None:
    frozen = runtime.settle()
    assert frozen > 1000 and gc.get_freeze_count() == frozen
    assert logging._srcfile is None and not logging.logThreads

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    made = Cycle()
    del made
    assert gc.collect() >= 1  # a cycle made after settle() is collected
    assert gc.get_freeze_count() == frozen


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
