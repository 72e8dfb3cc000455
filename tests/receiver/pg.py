"""The tests' PostgreSQL: the throwaway cluster ``scripts/postgres.sh`` starts (initdb on a free
loopback port, one per checkout) and a fresh database per test."""

from __future__ import annotations

import subprocess
import uuid
from functools import cache
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]


@cache
def admin_url() -> str:
    """The cluster's admin URL (starting it, and installing PostgreSQL, if needed)."""
    out = subprocess.run(
        [str(ROOT / "scripts" / "postgres.sh"), "start"],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return out.stdout.strip().splitlines()[-1]


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


def cluster(command: str) -> None:
    """``stop``, ``start`` or ``restart`` the cluster (the outage tests)."""
    subprocess.run(
        [str(ROOT / "scripts" / "postgres.sh"), command],
        check=True,
        capture_output=True,
        timeout=120,
    )
