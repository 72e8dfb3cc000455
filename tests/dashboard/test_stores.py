"""The event pages on both queue stores: a real ``conveyor serve`` on the SQLite queue and on the
tests' PostgreSQL (``scripts/postgres.sh``), read over plain HTTP."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.errors import QueueError
from conveyor.receiver.queue.postgres import Database
from tests.receiver import payloads as p
from tests.receiver.specs import write_specs


@pytest.fixture
def specs(tmp_path: Path) -> list[Path]:
    return write_specs(tmp_path / "specs")


@pytest.fixture
def pg_url() -> Iterator[str]:
    from tests.receiver import pg

    url = pg.create_database()
    try:
        yield url
    finally:
        pg.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def queue_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "sqlite":
        return {}
    url: str = request.getfixturevalue("pg_url")
    return {"CONVEYOR_QUEUE_URL": url}


def get(url: str) -> str:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def test_event_pages_read_either_store(
    serve: Any, specs: list[Path], queue_env: dict[str, str]
) -> None:
    server = serve(specs, "--dispatch", "none", "--workers", "0", **queue_env)
    older = server.send(p.push(branch="main", after=p.SHA_B)).json()["id"]
    newer = server.send(p.push(branch="main", after=p.SHA_C)).json()["id"]
    ignored = server.send(p.push(branch="feature/nope", after=p.SHA_A)).json()["id"]

    listed = get(server.url + "/dashboard/events")
    assert re.findall(r'data-id="(\d+)"', listed) == [str(ignored), str(newer), str(older)]
    only = get(server.url + "/dashboard/events?status=ignored")
    assert re.findall(r'data-id="(\d+)"', only) == [str(ignored)]

    page = get(f"{server.url}/dashboard/events/{older}")
    assert f"superseded by event {newer}" in page
    assert "idempotency key" in page
    assert p.headers(p.push())["X-Gitlab-Token"] not in page

    health = get(server.url + "/dashboard/health")
    assert re.search(r'id="depth">1<', health), health  # the newer push waits for a worker
    for text in (listed, page, health):
        password = queue_env.get("CONVEYOR_QUEUE_URL", "@").rsplit("@", 1)[0].rsplit(":", 1)[-1]
        assert not queue_env or password not in text


def test_replay_from_the_page_on_postgresql(serve: Any, specs: list[Path], pg_url: str) -> None:
    from tests.dashboard.conftest import TOKEN

    server = serve(
        specs,
        "--dispatch",
        "none",
        "--workers",
        "0",
        CONVEYOR_QUEUE_URL=pg_url,
        CONVEYOR_DASHBOARD_TOKEN=TOKEN,
    )
    event = server.send(p.push(branch="main")).json()["id"]
    client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"})
    with client:
        page = client.get(f"/dashboard/events/{event}", timeout=10).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None, page
        answer = client.post(
            f"/dashboard/events/{event}/replay", data={"csrf": csrf[1]}, timeout=10
        )
        assert answer.status_code == 303, answer.text
        new_id = int(answer.headers["location"].rsplit("/", 1)[1])
        deadline = time.monotonic() + 10
        while f"replay of event {event}" not in (
            replayed := client.get(f"/dashboard/events/{new_id}", timeout=10).text
        ):
            assert time.monotonic() < deadline, replayed
            time.sleep(0.1)


def test_postgresql_reads_refuse_writes(pg_url: str) -> None:
    from conveyor.dashboard.reads import PgReader

    db = Database(pg_url, max_size=1)
    try:
        reader = PgReader(db)
        assert reader.rows("SELECT COUNT(*) AS n FROM events WHERE id > ?", (0,)) == [{"n": 0}]
        with pytest.raises(QueueError, match="ReadOnlySqlTransaction"):
            reader.rows("DELETE FROM events WHERE id > ?", (0,))
    finally:
        db.close()
