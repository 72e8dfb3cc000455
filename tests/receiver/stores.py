"""Raw SQL on either store in tests (backdating rows, reading tables the API does not show)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg

from conveyor.receiver.queue.location import Location, PgLocation


def sql(db: Location, statement: str, rows: Sequence[Sequence[Any]] = ((),)) -> list[Any]:
    """Run ``statement`` (``?`` placeholders) once per row, committed; the last run's rows."""
    if isinstance(db, PgLocation):
        with psycopg.connect(db.url) as pg, pg.cursor() as cur:
            for row in rows:
                cur.execute(statement.replace("?", "%s"), row)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
    conn = sqlite3.connect(db)
    try:
        with conn:
            found: list[Any] = []
            for row in rows:
                found = [tuple(r) for r in conn.execute(statement, row).fetchall()]
            return found
    finally:
        conn.close()
