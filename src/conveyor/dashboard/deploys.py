"""The deploys the dashboard shows and rolls back: every deploy stage of the served specs, its
history as recorded on its engine (:mod:`conveyor.docker.history`) and the library rollback
(:func:`conveyor.docker.deploy.rollback`, the call behind ``conveyor rollback``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from conveyor.docker.deploy import DeployRequest, DeployResult, history_of, rollback
from conveyor.docker.deploy.stage import request_from_file
from conveyor.docker.history import DeployRecord
from conveyor.errors import ConveyorError
from conveyor.spec.load import load_spec


@dataclass(frozen=True)
class Service:
    """One deploy stage of one spec and what its engine recorded (``error``: why it could not be read)."""

    key: str  # "<spec file>::<stage>": what a rollback form names
    request: DeployRequest
    records: list[DeployRecord] = field(default_factory=list)
    current: int | None = None  # id of the record serving now
    error: str | None = None


def deploy_requests(spec_files: tuple[Path, ...], state_dir: Path) -> dict[str, DeployRequest]:
    """key -> request for every deploy stage of the specs (in spec and stage order)."""
    out: dict[str, DeployRequest] = {}
    for path in spec_files:
        loaded = load_spec(path)
        for stage in loaded.spec.all_stages():
            if stage.deploy is None:
                continue
            out[f"{path}::{stage.name}"] = request_from_file(
                path, stage.name, workdir=path.parent, state_dir=state_dir, need_image=False
            )
    return out


def services(requests: dict[str, DeployRequest], limit: int = 20) -> list[Service]:
    """Each deploy's history on its engine (Docker I/O: call it on a thread)."""
    out: list[Service] = []
    for key, request in requests.items():
        try:
            client = request.engine.connect()
            try:
                history = history_of(client, request)
                records = history.records(limit=limit)
                current = history.current()
            finally:
                client.close()
        except ConveyorError as exc:
            out.append(Service(key, request, error=exc.message))
            continue
        out.append(Service(key, request, records, current.id if current else None))
    return out


def roll_back(request: DeployRequest) -> DeployResult:
    """Roll ``request``'s deploy back to its previous good version (Docker I/O)."""
    return rollback(request)
