"""What the tests of every dispatcher share (tests/jenkins, tests/runner, tests/receiver): a
:class:`~conveyor.receiver.dispatch.Progress` that records what it was told, and one dispatch job of
demo/app (the spec of :mod:`tests.receiver.test_dispatch_e2e`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.gitlab.events import parse_event
from conveyor.receiver.dispatch import DispatchJob
from conveyor.spec.load import load_spec
from tests.receiver import payloads as p
from tests.receiver.test_dispatch_e2e import SPEC


class Recorder:
    """A Progress that keeps what the dispatcher told it."""

    def __init__(self) -> None:
        self.states: list[dict[str, Any]] = []
        self.durable: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.urls: list[str | None] = []

    def remember(
        self, state: Mapping[str, Any], *, url: str | None = None, durable: bool = False
    ) -> None:
        self.states.append(dict(state))
        if durable:
            self.durable.append(dict(state))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def started(self, url: str | None) -> None:
        self.urls.append(url)

    def tick(self) -> None:
        return None


def job_for(tmp_path: Path, event_id: int, resume: dict[str, Any] | None) -> DispatchJob:
    spec_file = tmp_path / "app.yml"
    spec_file.write_text(SPEC)
    payload = p.push()
    return DispatchJob(
        event_id=event_id,
        event=parse_event("Push Hook", payload),
        spec=load_spec(spec_file).spec,
        attempt=2,
        resume=resume,
    )
