"""Deploy history, kept on the engine the deploy runs on, so every agent on every machine sees it.

Where it lives, for deploy ``web`` on its engine (:mod:`conveyor.docker.deploy.engine`):

* the named volume ``web-history`` (labels ``conveyor.deploy=web``, ``conveyor.role=history``) holds
  ``deploys.jsonl``, one JSON record per line, oldest first, and target files a rollback needs (the
  compose target keeps its last applied ``compose.yml`` there);
* the container ``web-history`` (never started) mounts it at ``/history``; records are read and written
  with the engine's archive API (what ``docker cp`` uses), so no process runs and no image is pulled. Its
  image ``conveyor-history:1`` is imported on first use from an in-memory tarball of one empty directory;
* the container ``web-lock`` exists while a deploy or rollback of ``web`` runs (see :meth:`lock`);
* the app containers (or the Swarm service) carry ``conveyor.version``, ``conveyor.image_id`` and
  ``conveyor.record`` (the history record that created them): what serves now is visible on the engine
  itself, ``docker ps --filter label=conveyor.deploy=web``.

Why a volume: the history must outlive every container of the deploy (blue and green are replaced on
each deploy, ``compose down`` removes the project's containers), must work on every target (a plain
engine, a compose host, a Swarm manager: Swarm configs exist only in swarm mode) and must be writable
more than once (labels are fixed when an object is created). A named volume is all three and survives
restarts of the engine. Only an explicit ``docker volume rm web-history`` (or a prune of unused
volumes after the holder container was removed) deletes it. The ``--state`` directory is no longer
where history lives: a state directory inside an agent container dies with the container, which is
how ``rollback`` used to find nothing. A history written by earlier versions in
``<state>/deploys.sqlite`` is read (never written) and copied to the engine the first time a deploy
name has no history there (:meth:`DeployHistory.migrate_from`).

A record is opened (``running``) before a deploy touches anything and closed with ``success`` or
``failure`` and a message, so an interrupted deploy stays visible. ``rollback`` asks
:meth:`DeployHistory.rollback_target` for the last good version: the newest successful image that
differs from the one now serving.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import sqlite3
import tarfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import docker
import docker.errors
from docker.models.containers import Container

from conveyor.docker.engine import docker_errors
from conveyor.errors import DeployError

Result = Literal["running", "success", "failure"]

HISTORY_IMAGE = "conveyor-history:1"
MOUNT = "/history"
RECORDS_FILE = "deploys.jsonl"
MAX_RECORDS = 500  # per deploy name; older records are dropped
MAX_MESSAGE = 4000  # characters of a record's message kept
LOCK_STALE_AFTER = 3600.0  # seconds: a lock older than this is taken over
LEGACY_DB = "deploys.sqlite"

LABEL_DEPLOY = "conveyor.deploy"
LABEL_ROLE = "conveyor.role"


@dataclass(frozen=True)
class DeployRecord:
    """One deploy or rollback of a deploy name (``id`` counts per name from 1)."""

    id: int
    name: str
    target: str
    action: str
    spec: str
    project: str
    image: str
    image_id: str
    digest: str
    previous_image: str | None
    started: datetime
    finished: datetime | None
    result: Result
    message: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started"] = self.started.isoformat()
        data["finished"] = self.finished.isoformat() if self.finished else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeployRecord:
        finished = data.get("finished")
        return cls(
            id=int(data["id"]),
            name=str(data["name"]),
            target=str(data["target"]),
            action=str(data["action"]),
            spec=str(data.get("spec", "")),
            project=str(data.get("project", "")),
            image=str(data["image"]),
            image_id=str(data.get("image_id", "")),
            digest=str(data.get("digest", "")),
            previous_image=data.get("previous_image"),
            started=datetime.fromisoformat(str(data["started"])),
            finished=datetime.fromisoformat(str(finished)) if finished else None,
            result=data["result"],
            message=str(data.get("message", "")),
        )


def _now() -> datetime:
    return datetime.now(UTC)


def volume_name(name: str) -> str:
    return f"{name}-history"


def holder_name(name: str) -> str:
    return f"{name}-history"


def lock_name(name: str) -> str:
    return f"{name}-lock"


def _tar(files: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = int(_now().timestamp())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def ensure_history_image(client: docker.DockerClient) -> str:
    """Import ``conveyor-history:1`` (one empty ``/history`` directory) unless the engine has it."""
    with docker_errors(f"inspect {HISTORY_IMAGE}"):
        try:
            client.images.get(HISTORY_IMAGE)
            return HISTORY_IMAGE
        except docker.errors.ImageNotFound:
            pass
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(MOUNT.strip("/"))
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
    repository, tag = HISTORY_IMAGE.split(":")
    with docker_errors(f"import {HISTORY_IMAGE}"):
        client.api.import_image_from_data(
            buf.getvalue(),
            repository=repository,
            tag=tag,
            changes=[f"LABEL {LABEL_ROLE}=history-image"],
        )
    return HISTORY_IMAGE


class DeployHistory:
    """The history of deploy ``name`` on the engine of ``client`` (created by the first :meth:`start`).

    ``labels`` (the deploy request's labels) are put on the volume and containers it creates.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.labels = {
            **(labels or {}),
            LABEL_DEPLOY: name,
            LABEL_ROLE: "history",
        }

    # ------------------------------------------------------------------ the volume and its holder

    def exists(self) -> bool:
        """Whether this engine holds any history of the deploy (nothing is created to find out)."""
        with docker_errors(f"look up volume {volume_name(self.name)}"):
            try:
                self.client.volumes.get(volume_name(self.name))
                return True
            except docker.errors.NotFound:
                return False

    def _holder(self, create: bool) -> Container | None:
        name = holder_name(self.name)
        with docker_errors(f"look up {name}"):
            try:
                return self.client.containers.get(name)
            except docker.errors.NotFound:
                pass
        if not create and not self.exists():
            return None
        image = ensure_history_image(self.client)
        with docker_errors(f"create the history volume {volume_name(self.name)}"):
            try:
                self.client.volumes.get(volume_name(self.name))
            except docker.errors.NotFound:
                self.client.volumes.create(volume_name(self.name), labels=self.labels)
        with docker_errors(f"create the history holder {name}"):
            try:
                return self.client.containers.create(
                    image,
                    ["history"],  # never started: the archive API needs a container, not a process
                    name=name,
                    labels=self.labels,
                    volumes={volume_name(self.name): {"bind": MOUNT, "mode": "rw"}},
                    network_mode="none",
                )
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # another process created it at the same moment
                    raise
                return self.client.containers.get(name)

    def read_file(self, path: str) -> bytes | None:
        """The content of ``path`` in the history volume, None when absent."""
        holder = self._holder(create=False)
        if holder is None:
            return None
        with docker_errors(f"read {path} from {volume_name(self.name)}"):
            try:
                chunks, _ = holder.get_archive(f"{MOUNT}/{path}")
            except docker.errors.NotFound:
                return None
            raw = b"".join(chunks)
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            member = tar.next()
            handle = tar.extractfile(member) if member is not None else None
            return handle.read() if handle is not None else None

    def write_file(self, path: str, data: bytes) -> None:
        """Replace ``path`` in the history volume with ``data``."""
        holder = self._holder(create=True)
        assert holder is not None
        with docker_errors(f"write {path} to {volume_name(self.name)}"):
            holder.put_archive(MOUNT, _tar({path: data}))

    # ------------------------------------------------------------------ records

    def _load(self) -> list[DeployRecord]:
        raw = self.read_file(RECORDS_FILE)
        if raw is None:
            return []
        records: list[DeployRecord] = []
        for line in raw.decode("utf-8", "replace").splitlines():
            if not line.strip():
                continue
            try:
                records.append(DeployRecord.from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line from an interrupted write: the rest is still good
        return records

    def _save(self, records: list[DeployRecord]) -> None:
        kept = records[-MAX_RECORDS:]
        text = "".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in kept)
        self.write_file(RECORDS_FILE, text.encode())

    def start(
        self,
        *,
        target: str,
        action: str,
        spec: str,
        project: str,
        image: str,
        previous_image: str | None,
    ) -> int:
        """Open a ``running`` record; returns its id for :meth:`finish`. Call it under :meth:`lock`."""
        records = self._load()
        record = DeployRecord(
            id=(records[-1].id + 1) if records else 1,
            name=self.name,
            target=target,
            action=action,
            spec=spec,
            project=project,
            image=image,
            image_id="",
            digest="",
            previous_image=previous_image,
            started=_now(),
            finished=None,
            result="running",
            message="",
        )
        self._save([*records, record])
        return record.id

    def finish(
        self,
        record_id: int,
        result: Result,
        message: str = "",
        *,
        image_id: str = "",
        digest: str = "",
    ) -> None:
        records = self._load()
        for i, record in enumerate(records):
            if record.id == record_id:
                records[i] = replace(
                    record,
                    result=result,
                    message=message[-MAX_MESSAGE:],
                    finished=_now(),
                    image_id=image_id or record.image_id,
                    digest=digest or record.digest,
                )
                self._save(records)
                return

    def records(self, limit: int = 50) -> list[DeployRecord]:
        """The newest ``limit`` records, newest first."""
        return list(reversed(self._load()))[:limit]

    def current(self) -> DeployRecord | None:
        """The newest successful record: the version that should be serving now."""
        return next((r for r in self.records(MAX_RECORDS) if r.result == "success"), None)

    def rollback_target(self) -> DeployRecord:
        """The last good version before the current one (newest success with a different image)."""
        successes = [r for r in self.records(MAX_RECORDS) if r.result == "success"]
        if not successes:
            raise DeployError(
                f"deploy {self.name!r} has no successful deploy to roll back from",
                hint="`conveyor history SPEC` lists what this engine has recorded",
            )
        current = successes[0]
        for record in successes[1:]:
            if (record.image, record.image_id) != (current.image, current.image_id):
                return record
        raise DeployError(
            f"deploy {self.name!r} has no earlier good version than {current.image}",
            hint="`conveyor history SPEC` lists what was deployed",
        )

    # ------------------------------------------------------------------ migration of local history

    def migrate_from(self, state_dir: Path) -> int:
        """Copy this name's records from an old local ``<state_dir>/deploys.sqlite`` when the engine
        has no history of the name yet; returns how many were copied. The local file is only read."""
        path = state_dir / LEGACY_DB
        if not path.is_file() or self.exists():
            return 0
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        except sqlite3.Error:
            return 0
        try:
            db.row_factory = sqlite3.Row
            rows = db.execute(
                "SELECT * FROM deploys WHERE name = ? ORDER BY id", (self.name,)
            ).fetchall()
        except sqlite3.Error:
            return 0
        finally:
            db.close()
        if not rows:
            return 0
        records = [
            DeployRecord.from_json({**dict(row), "id": index})
            for index, row in enumerate(rows, start=1)
        ]
        self._save(records)
        return len(records)

    # ------------------------------------------------------------------ one deploy at a time

    @contextmanager
    def lock(self, stale_after: float = LOCK_STALE_AFTER) -> Iterator[None]:
        """One deploy or rollback of the name at a time, engine-wide: the container ``<name>-lock``.

        Container names are unique on an engine, so creating it is an atomic test-and-set for every
        client of that engine, on any machine. A lock left by a process that died is taken over when
        it is older than ``stale_after`` seconds, or at once when its owner ran on this host and its
        process is gone.
        """
        name = lock_name(self.name)
        owner = f"{socket.gethostname()}:{os.getpid()}"
        labels = {**self.labels, LABEL_ROLE: "lock", "conveyor.owner": owner}
        image = ensure_history_image(self.client)
        container: Container | None = None
        for _ in range(3):
            since = _now()
            with docker_errors(f"create the deploy lock {name}"):
                try:
                    container = self.client.containers.create(
                        image,
                        ["lock"],
                        name=name,
                        labels={**labels, "conveyor.since": since.isoformat()},
                        network_mode="none",
                    )
                    break
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:
                        raise
            held = self._held(name)
            if held is None:
                continue  # released meanwhile
            held_owner, held_since = held
            if self._stale(held_owner, held_since, stale_after):
                with (
                    docker_errors(f"take over the stale lock {name}"),
                    contextlib.suppress(docker.errors.NotFound),
                ):
                    self.client.containers.get(name).remove(force=True)
                continue
            raise DeployError(
                f"another deploy of {self.name!r} is running (since {held_since:%Y-%m-%d %H:%M:%S} "
                f"UTC, by {held_owner})",
                hint=f"wait for it to finish; if none is running, `docker rm {name}` on that engine",
            )
        if container is None:
            raise DeployError(f"could not take the deploy lock {name}")
        try:
            yield
        finally:
            with (
                docker_errors(f"release the deploy lock {name}"),
                contextlib.suppress(docker.errors.NotFound),
            ):
                container.remove(force=True)

    def _held(self, name: str) -> tuple[str, datetime] | None:
        with docker_errors(f"inspect the deploy lock {name}"):
            try:
                labels = self.client.containers.get(name).labels
            except docker.errors.NotFound:
                return None
        try:
            since = datetime.fromisoformat(labels.get("conveyor.since", ""))
        except ValueError:
            since = datetime.fromtimestamp(0, UTC)
        return labels.get("conveyor.owner", "unknown"), since

    @staticmethod
    def _stale(owner: str, since: datetime, stale_after: float) -> bool:
        if (_now() - since).total_seconds() > stale_after:
            return True
        host, _, pid = owner.rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
