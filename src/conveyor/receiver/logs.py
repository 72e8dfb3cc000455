"""Structured logs for the receiver: one JSON object per line.

Fields: ``ts`` (UTC ISO-8601), ``level``, ``logger``, ``msg``, then every ``extra=`` field
given at the call (``event_id``, ``project``, ``status``...). Callers never pass secret
values (tokens, signatures) as fields.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TextIO

import orjson

_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime", "taskName"}
)


def json_line(
    created: float, level: str, logger: str, msg: str, fields: Mapping[str, object]
) -> str:
    """One log line (without its newline): the format :class:`JsonFormatter` writes."""
    data: dict[str, object] = {
        "ts": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "msg": msg,
        **fields,
    }
    return _dumps(data)


def _dumps(data: Mapping[str, object]) -> str:
    try:
        return orjson.dumps(data, default=str).decode()  # every event logs: keep it cheap
    except TypeError:  # text orjson refuses (a lone surrogate): the stdlib escapes it
        return json.dumps(data, default=str, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (:func:`json_line`)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            key: value
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        }
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return json_line(
            record.created, record.levelname.lower(), record.name, record.getMessage(), fields
        )


def setup_logging(
    level: str = "info",
    stream: TextIO | None = None,
    *,
    handler_class: type[logging.StreamHandler] = logging.StreamHandler,  # type: ignore[type-arg]
) -> None:
    """Send ``conveyor`` and ``uvicorn`` logs to ``stream`` (stderr) as JSON lines."""
    handler = handler_class(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    for name in ("conveyor", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(numeric)
        logger.propagate = False
    # Access logs would duplicate the receiver's own per-event line.
    logging.getLogger("uvicorn.access").disabled = True
