"""PostgreSQL restarting under load: deliveries during the outage are answered 503 (GitLab
resends), nothing acknowledged is lost, and intake recovers by itself when the database is back.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.receiver import payloads as p
from tests.receiver import pg
from tests.receiver import test_serve_process as serving

serve = serving.serve

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster() -> Iterator[Path]:
    """A cluster of this test's own: stopping it disturbs no other test. (Under /tmp itself: as
    root the server runs as `postgres`, which cannot enter pytest's private directories.)"""
    directory = Path(tempfile.mkdtemp(prefix="conveyor-pg-outage-"))
    try:
        pg.admin_url(directory)
        yield directory
    finally:
        pg.cluster("stop", directory)
        shutil.rmtree(directory, ignore_errors=True)


class Sender:
    """Distinct deliveries, one after another, each sent once; what each answer was."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[tuple[float, str, int]] = []  # (when, key, status; 0: no answer)
        self.acked: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        with httpx.Client(base_url=self.url, timeout=40) as client:
            while not self.stop.is_set():
                key = f"outage-{n}"
                payload = p.push(branch=f"release/{n}")
                try:
                    answer = client.post(
                        "/hooks/gitlab",
                        content=p.body(payload),
                        headers=p.headers(payload, key=key),
                    )
                    code = answer.status_code
                except httpx.TransportError:
                    code = 0
                self.answers.append((time.monotonic(), key, code))
                if 200 <= code < 300:
                    self.acked[key] = int(answer.json()["id"])
                n += 1
                time.sleep(0.01)


def test_database_restart_under_load_503s_then_recovers(serve: Any, cluster: Path) -> None:
    database = pg.admin_url(cluster)
    server = serve(
        "--dispatch", "none", "--workers", "1", "--log-level", "warning",
        extra_env={"CONVEYOR_QUEUE_URL": database},
    )  # fmt: skip
    sender = Sender(server.url)
    thread = threading.Thread(target=sender.run)
    thread.start()
    try:
        serving.wait(lambda: len(sender.acked) >= 50, timeout=60)
        down_at = time.monotonic()
        pg.cluster("stop", cluster)
        time.sleep(4)
        health_down = httpx.get(server.url + "/healthz", timeout=30).status_code
        up_at = time.monotonic()
        pg.cluster("start", cluster)
        acked_before = len(sender.acked)
        serving.wait(lambda: len(sender.acked) >= acked_before + 50, timeout=90)
        assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200
    finally:
        sender.stop.set()
        thread.join(60)
    codes = Counter(code for _, _, code in sender.answers)
    during = [code for when, _, code in sender.answers if down_at + 0.5 < when < up_at]
    assert during and set(during) == {503}, Counter(during)  # refused, never acked nor hung
    assert health_down == 503
    assert set(codes) <= {202, 503}, codes  # an outage is a 503, never a 500 or a dropped socket
    with psycopg.connect(database) as conn:
        stored = dict(conn.execute("SELECT idempotency_key, id FROM events").fetchall())
    assert {k: i for k, i in sender.acked.items() if stored.get(k) != i} == {}
    assert len(stored) == len(sender.acked)  # nothing refused was stored
