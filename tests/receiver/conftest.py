"""Fixtures: a real receiver served by uvicorn on 127.0.0.1 (a thread), specs, settings."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from conveyor.config import Settings
from conveyor.receiver.app import Receiver, ReceiverOptions, create_app
from conveyor.receiver.dispatch import Dispatcher, NoneDispatcher
from conveyor.receiver.queue import EventQueue, database_path
from conveyor.receiver.queue.location import Location, PgLocation
from conveyor.receiver.routing import Router
from conveyor.receiver.worker import WorkerOptions
from conveyor.spec.load import load_specs
from tests.receiver.payloads import SECRET
from tests.receiver.specs import write_specs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Running:
    url: str
    receiver: Receiver
    client: httpx.Client
    db: Path

    def queue(self) -> EventQueue:
        return EventQueue(self.db)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            time.sleep(0.02)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Location]:
    """The queue suite runs against both stores: a SQLite file in a fresh state dir, or a
    fresh database on the tests' PostgreSQL cluster (``scripts/postgres.sh``)."""
    if request.param == "sqlite":
        yield database_path(tmp_path / "state")
        return
    from tests.receiver import pg

    url = pg.create_database()
    try:
        yield PgLocation(url)
    finally:
        pg.drop_database(url)


@pytest.fixture
def spec_paths(tmp_path: Path) -> list[Path]:
    return write_specs(tmp_path / "specs")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(secret=SECRET, state_dir=tmp_path / "state")


@pytest.fixture
def start_receiver(
    tmp_path: Path, spec_paths: list[Path], settings: Settings
) -> Iterator[Callable[..., Running]]:
    """Factory: ``start_receiver(settings=..., dispatcher=..., options=..., worker_options=...)``."""
    servers: list[tuple[uvicorn.Server, threading.Thread, httpx.Client]] = []

    def start(
        *,
        settings: Settings = settings,
        dispatcher: Dispatcher | None = None,
        options: ReceiverOptions | None = None,
        worker_options: WorkerOptions | None = None,
        **_: Any,
    ) -> Running:
        router = Router(item.spec for item in load_specs(spec_paths))
        db = database_path(settings.state_dir)
        receiver = Receiver(
            settings,
            router,
            db,
            dispatcher or NoneDispatcher(),
            options=options,
            worker_options=worker_options or WorkerOptions(workers=2, poll_s=0.1),
        )
        port = free_port()
        config = uvicorn.Config(
            create_app(receiver), host="127.0.0.1", port=port, log_config=None, lifespan="on"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("receiver did not start")
            time.sleep(0.01)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        servers.append((server, thread, client))
        return Running(url=f"http://127.0.0.1:{port}", receiver=receiver, client=client, db=db)

    yield start
    for server, thread, client in servers:
        client.close()
        server.should_exit = True
        thread.join(30)
