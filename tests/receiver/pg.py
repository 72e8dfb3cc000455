"""The tests' PostgreSQL: the throwaway cluster ``scripts/postgres.sh`` starts (initdb on a free
loopback port, one per checkout) and a fresh database per test."""

from __future__ import annotations

import os
import subprocess
import uuid
from functools import cache
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]


def _script(command: str, directory: Path | None) -> str:
    env = dict(os.environ)
    if directory is not None:
        env["CONVEYOR_TEST_PG_DIR"] = str(directory)
    out = subprocess.run(
        [str(ROOT / "scripts" / "postgres.sh"), command],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    return out.stdout.strip()


@cache
def admin_url(directory: Path | None = None) -> str:
    """The cluster's admin URL (starting it, and installing PostgreSQL, if needed); a cluster of
    its own in ``directory`` when given (the outage tests stop theirs)."""
    return _script("start", directory).splitlines()[-1]


def url_of(name: str) -> str:
    return admin_url().rsplit("/", 1)[0] + "/" + name


def create_database() -> str:
    """A new empty database; its URL."""
    name = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url_of(name)


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cluster(command: str, directory: Path) -> None:
    """``stop`` or ``start`` the cluster in ``directory`` (the outage tests)."""
    _script(command, directory)
