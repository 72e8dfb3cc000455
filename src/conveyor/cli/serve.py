"""``conveyor serve PATH...``: run the webhook receiver (uvicorn) over the specs under PATH.

The state directory (the event queue lives in ``<state>/receiver/events.db``) is ``--state``,
else ``CONVEYOR_STATE``, else the per-user default, the same resolution ``conveyor events``
uses, so both find the same queue without flags. An optional GitLab signing token
(``whsec_...``) is read from ``CONVEYOR_WEBHOOK_SIGNING_TOKEN`` (never from a flag, so it does
not show in process lists).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click
import uvicorn

from conveyor.cli.options import state_dir, state_option
from conveyor.config import load_settings
from conveyor.dashboard import TOKEN_ENV as DASHBOARD_TOKEN_ENV
from conveyor.errors import ConfigError
from conveyor.receiver import runtime
from conveyor.receiver.app import (
    DEFAULT_BODY_MEMORY,
    DEFAULT_MAX_BODY,
    Receiver,
    ReceiverOptions,
    create_app,
)
from conveyor.receiver.dispatch import make_dispatcher
from conveyor.receiver.logs import setup_logging
from conveyor.receiver.protocol import configured
from conveyor.receiver.queue.location import QUEUE_URL_ENV, resolve, state_of
from conveyor.receiver.retention import RetentionPolicy
from conveyor.receiver.routing import ProjectIds, Router
from conveyor.receiver.sources import SOURCES_ENV, parse_sources
from conveyor.receiver.verify import decode_signing_key
from conveyor.receiver.worker import WorkerOptions
from conveyor.spec.load import load_specs

SIGNING_TOKEN_ENV = "CONVEYOR_WEBHOOK_SIGNING_TOKEN"
SWITCH_INTERVAL_S = 0.001  # see run_server


def signing_keys(env: Mapping[str, str]) -> tuple[bytes, ...]:
    raw = env.get(SIGNING_TOKEN_ENV, "")
    keys: list[bytes] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            keys.append(decode_signing_key(part))
        except ValueError as exc:
            raise ConfigError(f"{SIGNING_TOKEN_ENV}: {exc}") from None
    return tuple(keys)


def build_receiver(
    paths: tuple[Path, ...],
    *,
    state: Path | None,
    dispatch: str,
    workers: int,
    max_body: int,
    require_signature: bool,
    body_memory: int = DEFAULT_BODY_MEMORY,
    grace: float = 20.0,
    env: Mapping[str, str] | None = None,
    retention_days: float | None = None,
    retention_events: int | None = None,
    queue: str | None = None,
    lease: float = 60.0,
    hook_sources: tuple[str, ...] = (),
) -> Receiver:
    """Everything ``serve`` needs, checked before a port is opened (raises ConveyorError)."""
    env = os.environ if env is None else env
    if hook_sources:
        sources = parse_sources(hook_sources)
    else:
        sources = parse_sources([env.get(SOURCES_ENV, "")], origin=SOURCES_ENV)
    settings = load_settings(env)
    settings.require("secret")
    # --state moves the whole state (queue and local run history), not the queue alone
    settings = dataclasses.replace(settings, state_dir=state_dir(state, settings))
    loaded = load_specs(list(paths))
    db = resolve(queue, state_dir(state, settings), env)
    ids = ProjectIds(state_of(db, state_dir(state, settings)) / "project-ids.json")
    router = Router((item.spec for item in loaded), ids)
    dispatcher = make_dispatcher(dispatch, settings)
    keys = signing_keys(env)
    if require_signature and not keys:
        raise ConfigError(
            f"--require-signature needs {SIGNING_TOKEN_ENV} (the hook's whsec_ token)"
        )
    return Receiver(
        settings,
        router,
        db,
        dispatcher,
        options=ReceiverOptions(
            max_body_bytes=max_body,
            body_memory_bytes=max(body_memory, max_body),
            signing_keys=keys,
            require_signature=require_signature,
            spec_files=tuple(item.path for item in loaded),
            dashboard_token=env.get(DASHBOARD_TOKEN_ENV) or None,
            hook_sources=sources,
            retention=RetentionPolicy.of(
                settings.retention_days if retention_days is None else retention_days,
                settings.retention_events if retention_events is None else retention_events,
            ),
        ),
        worker_options=WorkerOptions(workers=workers, grace_s=grace, lease_s=lease),
    )


@dataclass(frozen=True)
class Limits:
    """What one connection may cost before it is dropped (see conveyor.receiver.protocol)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_header_bytes: int = 64 * 1024
    idle_timeout_s: float = 5.0
    max_connections: int = 512


def run_server(receiver: Receiver, *, host: str, port: int, limits: Limits | None = None) -> None:
    """Serve ``receiver`` with uvicorn until SIGINT/SIGTERM (then shut down gracefully)."""
    limits = limits or Limits()
    config = uvicorn.Config(
        create_app(receiver),
        host=host,
        port=port,
        loop="uvloop",
        http=configured(
            header_timeout_s=limits.header_timeout_s,
            max_header_bytes=limits.max_header_bytes,
            max_connections=limits.max_connections,
            body_timeout_s=limits.body_timeout_s,
        ),
        timeout_keep_alive=max(1, round(limits.idle_timeout_s)),
        # Requests beyond this many at once are answered 503 by uvicorn; connections beyond
        # max_connections are closed by the protocol first (oldest idle one goes).
        limit_concurrency=limits.max_connections + 1,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=30,
    )
    # A thread holding the GIL (a large body's scan or parse, a worker, the intake writer)
    # yields it to the event loop after this long, not CPython's default 5 ms: valid
    # deliveries wait less behind them.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    runtime.settle()  # logging fields off, the imports' objects out of the collector's way
    uvicorn.Server(config).run()


@click.command("serve")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@state_option("the event queue and the local run history")
@click.option(
    "--queue",
    "queue",
    metavar="URL",
    help=f"A postgresql:// URL: share the queue with other receivers and workers (default: "
    f"${QUEUE_URL_ENV}, else SQLite in the state directory).",
)
@click.option(
    "--dispatch",
    default="auto",
    show_default=True,
    help="auto | jenkins | local | none, or a plugin's dispatch target. "
    "auto: jenkins when CONVEYOR_JENKINS_* are set, else local.",
)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(0, 64))
@click.option(
    "--max-body",
    default=DEFAULT_MAX_BODY,
    show_default=True,
    type=click.IntRange(1024),
    help="Largest accepted payload in bytes (413 beyond; GitLab sends up to 25 MB).",
)
@click.option(
    "--body-memory",
    default=DEFAULT_BODY_MEMORY,
    show_default=True,
    type=click.IntRange(1024),
    help="Bytes of large bodies held in memory at once, all requests together "
    "(503 + Retry-After beyond; at least --max-body).",
)
@click.option(
    "--body-timeout",
    default=Limits.body_timeout_s,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds a request body may take to arrive (408 beyond).",
)
@click.option(
    "--header-timeout",
    default=Limits.header_timeout_s,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds a connection may take to send a complete request head (closed beyond).",
)
@click.option(
    "--idle-timeout",
    default=Limits.idle_timeout_s,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds an idle keep-alive connection is kept.",
)
@click.option(
    "--max-connections",
    default=Limits.max_connections,
    show_default=True,
    type=click.IntRange(8),
    help="Open connections at most (the longest-idle one is closed to make room).",
)
@click.option(
    "--hook-source",
    "hook_sources",
    multiple=True,
    metavar="CIDR",
    help=f"Accept deliveries only from these addresses or networks (repeat, or comma-separate; "
    f"default ${SOURCES_ENV}, else any): GitLab's webhook addresses. Others get 403 before their "
    "body is read.",
)
@click.option(
    "--require-signature", is_flag=True, help=f"Refuse unsigned deliveries ({SIGNING_TOKEN_ENV})."
)
@click.option(
    "--grace",
    default=20.0,
    show_default=True,
    type=click.FloatRange(0),
    help="On SIGTERM, seconds running work may take to finish before it is released.",
)
@click.option(
    "--lease",
    default=60.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds a worker's claim (and its deploy locks) lasts without a heartbeat: how long "
    "a crashed worker's events wait before another worker takes them.",
)
@click.option(
    "--retention-days",
    type=click.FloatRange(0),
    help="Delete finished events older than this (default $CONVEYOR_RETENTION_DAYS, else 30; 0: no age limit).",
)
@click.option(
    "--retention-events",
    type=click.IntRange(0),
    help="Keep at most this many events (default $CONVEYOR_RETENTION_EVENTS, else 100000; 0: no limit).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def command(
    paths: tuple[Path, ...],
    host: str,
    port: int,
    state: Path | None,
    queue: str | None,
    dispatch: str,
    workers: int,
    max_body: int,
    body_memory: int,
    body_timeout: float,
    header_timeout: float,
    idle_timeout: float,
    max_connections: int,
    hook_sources: tuple[str, ...],
    require_signature: bool,
    grace: float,
    lease: float,
    retention_days: float | None,
    retention_events: int | None,
    log_level: str,
) -> None:
    """Receive GitLab webhooks for the specs under PATH... and dispatch their builds."""
    setup_logging(log_level)
    receiver = build_receiver(
        paths,
        state=state,
        dispatch=dispatch,
        workers=workers,
        max_body=max_body,
        body_memory=body_memory,
        require_signature=require_signature,
        grace=grace,
        retention_days=retention_days,
        retention_events=retention_events,
        queue=queue,
        lease=lease,
        hook_sources=hook_sources,
    )
    limits = Limits(
        header_timeout_s=header_timeout,
        body_timeout_s=body_timeout,
        idle_timeout_s=idle_timeout,
        max_connections=max_connections,
    )
    run_server(receiver, host=host, port=port, limits=limits)
