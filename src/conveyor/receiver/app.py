"""The receiver's HTTP face (Starlette): ``POST /hooks/gitlab``, ``GET /healthz``, ``GET /metrics``.

A delivery is checked in this order, cheapest first; the first failure answers:

1. ``Content-Length`` over the limit -> 413; ``Content-Type`` not JSON -> 415;
   no ``X-Gitlab-Event`` -> 400; no ``X-Gitlab-Token`` -> 401.
2. The body is read up to the limit (413 beyond), must be a JSON object (400) naming its
   project (``project.path_with_namespace``).
3. The token must equal the project's derived token, keyed on its numeric id (current or,
   during a rotation overlap, previous secret; an old path-keyed token until the project's first
   id token, see ``routing.ProjectIds``), compared in constant time -> else 401. With a signing key configured,
   the Standard Webhooks signature must verify too -> else 401.
4. The event is routed and committed to the queue, *then* answered: 202 ``{"id", "status"}``
   (``queued`` or ``ignored`` with a ``reason``), or 200 with ``"duplicate": true`` for a
   resend with a known ``Idempotency-Key``. A storage failure is the only 5xx (503: GitLab
   will resend).

Unknown projects: the token is derived from the master secret and the project id, so it
can be checked for *any* project, with or without a spec. A valid token for a project without
a spec means the hook is ours (someone with the secret registered it) but no spec is loaded:
the event is stored as ``ignored`` ("no spec for project") and answered 202, because GitLab
disables a hook after repeated 4xx. A wrong token is 401 whatever the project: nothing is
stored for an unauthenticated sender. The same holds for event kinds conveyor does not
build (``Note Hook``, ``Pipeline Hook``...): verified, stored as ignored, 202. A payload
that names no project cannot be verified at all: 401.

Nothing here logs or echoes the token or signature.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from conveyor.config import Settings
from conveyor.errors import QueueError
from conveyor.gitlab.events import (
    PayloadError,
    header_kind,
    parse_event,
    project_id_of,
    project_path_of,
)
from conveyor.gitlab.status import status_target
from conveyor.receiver import metrics as metrics_mod
from conveyor.receiver.dispatch import Dispatcher
from conveyor.receiver.metrics import Metrics
from conveyor.receiver.queue import (
    Accepted,
    Checkpointer,
    EventQueue,
    IntakeWriter,
    NewEvent,
    ServerLock,
    Status,
    StatusUpdate,
    short_ref,
)
from conveyor.receiver.retention import Pruner, RetentionPolicy
from conveyor.receiver.routing import Ignore, Router
from conveyor.receiver.statuses import GitLabStatusPoster, StatusSender
from conveyor.receiver.verify import DEFAULT_TOLERANCE_S, check_signature
from conveyor.receiver.worker import WorkerOptions, WorkerPool

log = logging.getLogger("conveyor.receiver")

HOOK_PATH = "/hooks/gitlab"
DEFAULT_MAX_BODY = 5 * 1024 * 1024
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class ReceiverOptions:
    """How the HTTP side behaves."""

    max_body_bytes: int = DEFAULT_MAX_BODY
    signing_keys: tuple[bytes, ...] = ()
    require_signature: bool = False
    signature_tolerance_s: float = DEFAULT_TOLERANCE_S
    store: bool = True  # False answers without storing: the benchmark's baseline only
    run_workers: bool = True
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)  # see retention.py


class Receiver:
    """Everything ``conveyor serve`` runs: intake writer, workers, status sender, metrics."""

    def __init__(
        self,
        settings: Settings,
        router: Router,
        db_path: Path,
        dispatcher: Dispatcher,
        *,
        options: ReceiverOptions | None = None,
        worker_options: WorkerOptions | None = None,
    ) -> None:
        self.settings = settings
        self.router = router
        self.db_path = db_path
        self.dispatcher = dispatcher
        self.options = options or ReceiverOptions()
        base = worker_options or WorkerOptions()
        # Commit statuses need GitLab settings; without them none are queued at all.
        self.worker_options = replace(
            base, post_statuses=settings.gitlab_configured and base.post_statuses
        )
        self.metrics = Metrics()
        self.statuses: StatusSender | None = None
        self.pool: WorkerPool | None = None
        self.intake: IntakeWriter | None = None
        self._reader: EventQueue | None = None
        self._lock = ServerLock(db_path)
        self._checkpointer: Checkpointer | None = None
        self._pruner: Pruner | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._lock.acquire()
        recovery = EventQueue(self.db_path)
        try:
            recovered = recovery.recover_orphans()
        finally:
            recovery.close()
        if recovered:
            log.warning(
                "requeued events interrupted by a previous stop", extra={"count": recovered}
            )
        if self.worker_options.post_statuses:
            assert self.settings.gitlab_url and self.settings.gitlab_token
            poster = GitLabStatusPoster(self.settings.gitlab_url, self.settings.gitlab_token)
            self.statuses = StatusSender(
                self.db_path,
                poster,
                self.metrics,
                retry_for_s=self.settings.status_retry_hours * 3600.0,
            )
        self.pool = WorkerPool(
            self.db_path,
            self.router,
            self.dispatcher,
            self.metrics,
            self.worker_options,
            on_status=self.statuses.wake if self.statuses else None,
        )
        pool = self.pool
        statuses = self.statuses

        def committed() -> None:
            pool.wake()
            if statuses is not None:
                statuses.wake()

        self.intake = IntakeWriter(self.db_path, on_commit=committed)
        self._checkpointer = Checkpointer(self.db_path)
        self._checkpointer.start()
        self._pruner = Pruner(self.db_path, self.options.retention)
        self._pruner.start()
        self._reader = EventQueue(self.db_path, synchronous="NORMAL")
        if self.options.run_workers:
            pool.start()
        if statuses is not None:
            statuses.start()
        log.info(
            "receiver started",
            extra={
                "db": str(self.db_path),
                "dispatcher": self.dispatcher.name,
                "projects": self.router.projects,
                "workers": self.worker_options.workers,
            },
        )

    def stop(self) -> None:
        """Flush the intake, let workers finish or release their claims, flush statuses."""
        if self.intake is not None:
            self.intake.close()
        if self.pool is not None:
            self.pool.stop()
        if self.statuses is not None:
            self.statuses.stop()
        if self._pruner is not None:
            self._pruner.stop()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        if self._reader is not None:
            self._reader.close()
        self._lock.release()
        log.info("receiver stopped")

    # ------------------------------------------------------------------ helpers

    def gauges(self) -> dict[str, dict[metrics_mod.Labels, float]]:
        out: dict[str, dict[metrics_mod.Labels, float]] = {}
        if self._reader is not None:
            counts = self._reader.counts()
            out["conveyor_events"] = {(("status", s.value),): float(n) for s, n in counts.items()}
        out["conveyor_workers_alive"] = {(): float(self.pool.alive if self.pool else 0)}
        return out


def _kind_label(event_header: str | None) -> str:
    if event_header is None:
        return "missing"
    kind = header_kind(event_header)
    return kind.value if kind is not None else "other"


def _reject(receiver: Receiver, status: int, reason: str, message: str) -> JSONResponse:
    receiver.metrics.inc("conveyor_webhooks_rejected_total", reason=reason)
    return JSONResponse({"error": message, "reason": reason}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None if it exceeds ``limit``."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _hook(receiver: Receiver, request: Request) -> Response:
    opts = receiver.options
    headers = request.headers
    event_header = headers.get("x-gitlab-event")
    receiver.metrics.inc("conveyor_webhooks_received_total", kind=_kind_label(event_header))
    length = headers.get("content-length")
    if length is not None:
        try:
            if int(length) > opts.max_body_bytes:
                return _reject(receiver, 413, "too_large", f"body over {opts.max_body_bytes} bytes")
        except ValueError:
            return _reject(receiver, 400, "bad_content_length", "invalid Content-Length")
    ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        return _reject(receiver, 415, "content_type", "Content-Type must be application/json")
    if not event_header or not event_header.strip():
        return _reject(receiver, 400, "event_header_missing", "missing X-Gitlab-Event header")
    token = headers.get("x-gitlab-token")
    if not token:
        return _reject(receiver, 401, "token_missing", "missing X-Gitlab-Token")
    idem_key = headers.get("idempotency-key") or None
    if idem_key is not None and len(idem_key) > MAX_KEY_LENGTH:
        return _reject(receiver, 400, "idempotency_key", "Idempotency-Key too long")
    try:
        body = await _read_body(request, opts.max_body_bytes)
    except ClientDisconnect:
        return _reject(receiver, 400, "disconnected", "client disconnected")
    if body is None:
        return _reject(receiver, 413, "too_large", f"body over {opts.max_body_bytes} bytes")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return _reject(receiver, 400, "not_json", "body is not valid JSON")
    if not isinstance(payload, Mapping):
        return _reject(receiver, 400, "not_object", "body must be a JSON object")
    project = project_path_of(payload)
    if project is None:
        return _reject(
            receiver,
            401,
            "project_unknown",
            "payload names no project; the token cannot be verified",
        )
    now = datetime.now(UTC)
    # keyed on the project id (routing.Router.check_token; path tokens of old hooks until retired)
    project_id = project_id_of(payload)
    if not receiver.router.check_token(receiver.settings, token, project_id, project, now):
        return _reject(receiver, 401, "token_invalid", "invalid X-Gitlab-Token")
    if opts.signing_keys or opts.require_signature:
        sig = check_signature(
            headers,
            body,
            opts.signing_keys,
            now=now.timestamp(),
            require=opts.require_signature,
            tolerance_s=opts.signature_tolerance_s,
        )
        if not sig.ok:
            return _reject(receiver, 401, sig.reason or "signature", "webhook signature not valid")
    new = _route(receiver, event_header.strip(), payload, body, idem_key, headers)
    if isinstance(new, Response):
        return new
    if not opts.store:
        return JSONResponse({"id": 0, "status": new.status.value}, status_code=202)
    assert receiver.intake is not None
    try:
        accepted: Accepted = await receiver.intake.store(new)
    except QueueError as exc:
        log.error("event not stored", extra={"error": exc.message, "project": project})
        receiver.metrics.inc("conveyor_webhooks_rejected_total", reason="storage")
        return JSONResponse({"error": "event could not be stored; resend"}, status_code=503)
    if accepted.duplicate:
        receiver.metrics.inc("conveyor_webhooks_deduplicated_total")
        log.info("duplicate delivery", extra={"event_id": accepted.event_id, "project": project})
        return JSONResponse(
            {"id": accepted.event_id, "status": accepted.status.value, "duplicate": True},
            status_code=200,
        )
    receiver.metrics.inc("conveyor_webhooks_accepted_total", outcome=new.status.value)
    log.info(
        "event stored",
        extra={
            "event_id": accepted.event_id,
            "project": project,
            "kind": new.kind,
            "ref": new.ref,
            "status": new.status.value,
            "reason": new.reason,
        },
    )
    answer: dict[str, Any] = {"id": accepted.event_id, "status": new.status.value}
    if new.reason:
        answer["reason"] = new.reason
    return JSONResponse(answer, status_code=202)


def _route(
    receiver: Receiver,
    event_header: str,
    payload: Mapping[str, Any],
    body: bytes,
    idem_key: str | None,
    headers: Mapping[str, str],
) -> NewEvent | Response:
    """Turn a verified delivery into the row to store (queued or ignored)."""
    common: dict[str, Any] = {
        "event_header": event_header,
        "body": body,
        "received_at": time.time(),
        "idempotency_key": idem_key,
        "delivery_uuid": headers.get("x-gitlab-webhook-uuid"),
        "project": project_path_of(payload),
    }
    if header_kind(event_header) is None:
        return NewEvent(
            status=Status.IGNORED, reason=f"event kind {event_header[:60]!r} not handled", **common
        )
    try:
        event = parse_event(event_header, payload)
    except PayloadError as exc:
        return _reject(receiver, 400, "payload", str(exc))
    common.update(kind=event.kind.value, project=event.project_path, ref=event.ref, sha=event.sha)
    decision = receiver.router.decide(event)
    if isinstance(decision, Ignore):
        return NewEvent(status=Status.IGNORED, reason=decision.reason, **common)
    pending = None
    if receiver.worker_options.post_statuses:
        pending = StatusUpdate(
            "pending",
            "queued by conveyor",
            receiver.dispatcher.job_url(decision.spec),
            target=status_target(event),
        )
    return NewEvent(
        status=Status.QUEUED,
        status_ref=short_ref(event.ref),
        lane=decision.lane,
        deploy_targets=decision.deploy_targets,
        pending_status=pending,
        **common,
    )


def create_app(receiver: Receiver, *, manage_lifecycle: bool = True) -> Starlette:
    """The ASGI app. With ``manage_lifecycle`` the app's lifespan starts and stops ``receiver``."""

    async def hook(request: Request) -> Response:
        started = time.perf_counter()
        try:
            return await _hook(receiver, request)
        finally:
            receiver.metrics.observe("conveyor_webhook_ack_seconds", time.perf_counter() - started)

    async def healthz(request: Request) -> Response:
        pool = receiver.pool
        workers = pool.alive if pool is not None else 0
        expected = receiver.worker_options.workers if receiver.options.run_workers else 0
        ok = receiver.intake is not None and workers >= expected
        return JSONResponse(
            {
                "status": "ok" if ok else "degraded",
                "workers": workers,
                "dispatcher": receiver.dispatcher.name,
                "projects": receiver.router.projects,
            },
            status_code=200 if ok else 503,
        )

    async def metrics(request: Request) -> Response:
        gauges = await asyncio.to_thread(receiver.gauges)
        return PlainTextResponse(
            receiver.metrics.render(gauges), media_type=metrics_mod.CONTENT_TYPE
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_lifecycle:
            await asyncio.to_thread(receiver.start)
        try:
            yield
        finally:
            if manage_lifecycle:
                await asyncio.to_thread(receiver.stop)

    return Starlette(
        routes=[
            Route(HOOK_PATH, hook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
