"""The receiver's HTTP face (Starlette): ``POST /hooks/gitlab``, ``GET /healthz``, ``GET /metrics``, the dashboard under ``/dashboard``.

A delivery is checked in this order, cheapest first; the first failure answers:

1. ``Content-Length`` over the limit -> 413; ``Content-Type`` not JSON -> 415;
   no ``X-Gitlab-Event`` -> 400; no ``X-Gitlab-Token`` -> 401.
2. The body is read up to the limit (413 beyond; large bodies only within the memory budget,
   else 503 + ``Retry-After``). A body of up to ``PARSE_FIRST_BYTES`` (a push is ~1-5 KB) is
   parsed first: orjson reads a push in a quarter of the time the byte scan below takes, and
   no body that small costs more to parse than about two requests cost to serve (0.35 ms at
   worst for 8 KB of empty objects). If it is an object naming its project, the token is
   checked against that project (the check below, on the parsed project) -> else 401. Any
   other body (larger, not JSON, not an object, no project) is checked, before anything
   parses it, against the projects the raw bytes name (``claims.py``, a byte scan) -> else 401:
   an unauthenticated sender never costs a parse of a larger body. A body longer than
   ``EARLY_CHECK_BYTES`` is checked the same
   way once that much of it has arrived, if its project's path is in it: a token that matches
   none of the projects named so far is refused at once (401, connection closed), so such a
   sender never costs the rest of the read either. (GitLab writes a payload's project, id
   before path, near its start, before commits and other large fields; a body naming no project
   in its first ``EARLY_CHECK_BYTES``, such as a tag push with a long message, is read whole.)
   The body must then be a JSON object (orjson; 400, naming the field
   that holds text that cannot be stored) naming its project (``project.path_with_namespace``).
3. The token must equal the project's derived token, keyed on its numeric id (current or,
   during a rotation overlap, previous secret; an old path-keyed token until the project's first
   id token, see ``routing.ProjectIds``), compared in constant time -> else 401. With a signing key configured,
   the Standard Webhooks signature must verify too -> else 401.
4. The event is routed (``admission.py``: by the intake process, off the event loop, unless
   its body was large enough to be parsed on a thread) and committed to the queue, *then*
   answered: 202 ``{"id", "status"}``
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
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.config import Settings
from conveyor.dashboard import PREFIX as DASHBOARD_PREFIX
from conveyor.dashboard import Dashboard
from conveyor.errors import QueueError
from conveyor.gitlab.events import (
    header_kind,
    project_id_of,
    project_ids_named,
    project_path_of,
)
from conveyor.receiver import metrics as metrics_mod
from conveyor.receiver.admission import Admission, RoutingFeed
from conveyor.receiver.claims import Claims, claimed_projects
from conveyor.receiver.dispatch import Dispatcher
from conveyor.receiver.metrics import Metrics
from conveyor.receiver.queue import (
    Checkpointer,
    Delivery,
    IntakeWriter,
    QueueStore,
    Refusal,
)
from conveyor.receiver.queue.location import (
    Location,
    NoCheckpoints,
    checkpointer,
    older_page_size,
    open_queue,
    server_lock,
)
from conveyor.receiver.retention import Pruner, RetentionPolicy
from conveyor.receiver.routing import Router
from conveyor.receiver.sources import Network, source_allowed
from conveyor.receiver.statuses import GitLabStatusPoster, StatusSender
from conveyor.receiver.verify import DEFAULT_TOLERANCE_S, check_signature, token_matches
from conveyor.receiver.worker import WorkerOptions, WorkerPool
from conveyor.tokens import accepted_tokens

log = logging.getLogger("conveyor.receiver")

HOOK_PATH = "/hooks/gitlab"
DEFAULT_MAX_BODY = 25 * 1024 * 1024  # GitLab sends payloads up to 25 MB
DEFAULT_BODY_MEMORY = 64 * 1024 * 1024
SMALL_BODY = 64 * 1024  # bodies up to this size are not counted against the body budget
INLINE_PARSE_BYTES = 256 * 1024  # larger bodies are parsed (and signatures checked) on a thread
PARSE_FIRST_BYTES = 8 * 1024  # bodies up to this size are parsed before the token check
DIAGNOSE_BYTES = 1024 * 1024  # up to this size an invalid body is re-read to name the bad field
EARLY_CHECK_BYTES = 64 * 1024  # a longer body's token is checked once this much has arrived
RETRY_AFTER_S = 5
HEALTH_TIMEOUT_S = 2.0
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class ReceiverOptions:
    """How the HTTP side behaves."""

    max_body_bytes: int = DEFAULT_MAX_BODY
    body_memory_bytes: int = DEFAULT_BODY_MEMORY  # bodies held at once, all requests together
    signing_keys: tuple[bytes, ...] = ()
    require_signature: bool = False
    signature_tolerance_s: float = DEFAULT_TOLERANCE_S
    run_workers: bool = True
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)  # see retention.py
    spec_files: tuple[Path, ...] = ()  # the served specs (the dashboard's deploys)
    dashboard_token: str | None = None  # CONVEYOR_DASHBOARD_TOKEN (see conveyor.dashboard.access)
    hook_sources: tuple[Network, ...] = ()  # --hook-source: empty, any address (see sources.py)
    parse_first_bytes: int = PARSE_FIRST_BYTES  # 0: every body is scanned before a parse


class Receiver:
    """Everything ``conveyor serve`` runs: intake writer, workers, status sender, metrics."""

    def __init__(
        self,
        settings: Settings,
        router: Router,
        db_path: Location,
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
        self.admission = Admission(
            router,
            post_statuses=self.worker_options.post_statuses,
            job_url=dispatcher.job_url,
        )
        self.budget = BodyBudget(self.options.body_memory_bytes)
        self.parse_slot = asyncio.Semaphore(1)
        self.statuses: StatusSender | None = None
        self.pool: WorkerPool | None = None
        self.intake: IntakeWriter | None = None
        self._reader: QueueStore | None = None
        self._lock = server_lock(db_path)
        self._checkpointer: Checkpointer | NoCheckpoints | None = None
        self._pruner: Pruner | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start intake (on ``loop``, the server's: see IntakeWriter), workers and statuses."""
        self._lock.acquire()
        recovery = open_queue(self.db_path)
        try:
            recovered = recovery.recover_orphans()
        finally:
            recovery.close()
        if recovered:
            log.warning(
                "requeued events interrupted by a previous stop", extra={"count": recovered}
            )
        older = older_page_size(self.db_path)
        if older is not None:
            log.warning(
                "the event queue keeps the page size it was made with, which commits slower",
                extra={
                    "page_size": older,
                    "hint": "stop the server and run `conveyor events compact` once",
                },
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
        statuses = self.statuses

        def committed() -> None:
            if self.pool is not None:
                self.pool.wake()
            if statuses is not None:
                statuses.wake()

        level = logging.getLevelName(log.getEffectiveLevel()).lower()
        self.intake = IntakeWriter(
            self.db_path,
            loop=loop,
            on_commit=committed,
            log_level=level,
            routing=RoutingFeed(self.admission),
        )
        self.pool = WorkerPool(
            self.db_path,
            self.router,
            self.dispatcher,
            self.metrics,
            self.worker_options,
            on_status=statuses.wake if statuses else None,
            writer=self.intake,
        )
        pool = self.pool
        self._checkpointer = checkpointer(self.db_path)
        self._checkpointer.start()
        self._pruner = Pruner(self.db_path, self.options.retention)
        self._pruner.start()
        self._reader = open_queue(self.db_path, synchronous="NORMAL")
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
        """Let workers finish or release their claims (their writes go through the intake
        writer, so it stops last), flush statuses, then flush the intake."""
        if self.pool is not None:
            self.pool.stop()
        if self.statuses is not None:
            self.statuses.stop()
        if self.intake is not None:
            self.intake.close(timeout_s=10)
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


@dataclass(frozen=True)
class _Answer:
    """What the hook answers: a status, a JSON object, extra headers."""

    status: int
    data: Mapping[str, Any]
    headers: tuple[tuple[bytes, bytes], ...] = ()

    async def send(self, send: Send) -> None:
        body = orjson.dumps(self.data)
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *self.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _reject(
    receiver: Receiver,
    status: int,
    reason: str,
    message: str,
    *,
    close: bool = False,
    retry_after: int | None = None,
) -> _Answer:
    """A 4xx/5xx with a reason. ``close``: the body was not read, so drop the connection."""
    receiver.metrics.inc("conveyor_webhooks_rejected_total", reason=reason)
    headers: list[tuple[bytes, bytes]] = []
    if close:
        headers.append((b"connection", b"close"))
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    return _Answer(status, {"error": message, "reason": reason}, tuple(headers))


class BodyBudget:
    """Request body bytes held in memory at once, across all requests (one event loop).

    The first ``free_bytes`` of each body are not counted (small deliveries never wait and
    are bounded by the connection cap); the rest is reserved before it is read.
    """

    def __init__(self, limit: int, free_bytes: int = SMALL_BODY) -> None:
        self.limit = limit
        self.free_bytes = free_bytes
        self.used = 0

    def take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        self.used -= size


class _Hold:
    """One delivery's share of the :class:`BodyBudget`, given back when it is answered."""

    def __init__(self, budget: BodyBudget) -> None:
        self.budget = budget
        self.held = 0

    def cover(self, total: int) -> bool:
        """Reserve enough for a body of ``total`` bytes; False if the budget is spent."""
        need = max(0, total - self.budget.free_bytes) - self.held
        if need <= 0:
            return True
        if not self.budget.take(need):
            return False
        self.held += need
        return True

    def release(self) -> None:
        self.budget.give(self.held)
        self.held = 0


class _Refused(Exception):
    def __init__(self, answer: _Answer) -> None:
        self.answer = answer


class _Disconnected(Exception):
    pass


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body as it arrives (ASGI ``http.request`` messages)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _read_body(
    receiver: Receiver,
    receive: Receive,
    declared: int | None,
    hold: _Hold,
    early: Callable[[bytes], _Answer | None] | None = None,
) -> bytes:
    """The whole body, within the size limit, the time limit and the memory budget.

    ``early``: called once with the first ``EARLY_CHECK_BYTES`` (or more) of a body that is
    longer; an answer it returns is given at once and the rest is not read.
    """
    opts = receiver.options

    def cover(total: int) -> None:
        if not hold.cover(total):
            raise _Refused(
                _reject(
                    receiver,
                    503,
                    "busy",
                    "too many large deliveries in flight; resend later",
                    close=True,
                    retry_after=RETRY_AFTER_S,
                )
            )

    chunks: list[bytes] = []
    size = 0
    if declared is not None:
        cover(declared)
    # The time a body may take is bounded by the HTTP protocol (conveyor.receiver.protocol).
    try:
        async for chunk in _chunks(receive):
            size += len(chunk)
            if size > opts.max_body_bytes:
                raise _Refused(_too_large(receiver))
            if declared is None:
                cover(size)
            chunks.append(chunk)
            if early is not None and size >= EARLY_CHECK_BYTES and size != declared:
                prefix = b"".join(chunks)
                chunks = [prefix]
                answer = early(prefix)
                if answer is not None:
                    raise _Refused(answer)
                early = None
    except _Disconnected:
        raise _Refused(_reject(receiver, 400, "disconnected", "client disconnected")) from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _wrong_token(receiver: Receiver, *, close: bool = False) -> _Answer:
    return _reject(receiver, 401, "token_invalid", "invalid X-Gitlab-Token", close=close)


def _too_large(receiver: Receiver) -> _Answer:
    limit = receiver.options.max_body_bytes
    return _reject(receiver, 413, "too_large", f"body over {limit} bytes", close=True)


async def _claims(receiver: Receiver, body: bytes) -> Claims:
    """``claimed_projects``; large bodies on a thread, one at a time, like :func:`_parse`.

    A 5 MB body is ~10 ms of byte scans, and unauthenticated senders can loop them: on the
    loop they would hold up every valid delivery. On the thread they take turns with the loop
    for the GIL (``sys.setswitchinterval`` in cli/serve.py bounds each turn).
    """
    if len(body) <= INLINE_PARSE_BYTES:
        return claimed_projects(body)
    async with receiver.parse_slot:
        return await asyncio.to_thread(claimed_projects, body)


def _parsed_first(body: bytes, limit: int) -> Mapping[str, Any] | None:
    """A body of up to ``limit`` bytes parsed, if it is a JSON object naming its project.

    ``None`` for any other body: it is authenticated from its raw bytes instead
    (:func:`_authenticate_raw`), and answered exactly as if it had never been parsed here.
    """
    if len(body) > limit:
        return None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, Mapping) or project_path_of(payload) is None:
        return None
    return payload


def _parsed_claims(payload: Mapping[str, Any]) -> Claims:
    """The project a parsed payload names, as :func:`_claims_authenticate` takes it: its path
    and every id it gives, as the byte scan finds them (a token for any of them passes this
    check; the payload's one id, or its path, is checked after it)."""
    path = project_path_of(payload)
    assert path is not None  # _parsed_first keeps only payloads naming a project
    return Claims(paths=(path,), invalid=(), ids=project_ids_named(payload))


async def _authenticate_raw(
    receiver: Receiver, token: str, body: bytes, now: datetime
) -> _Answer | None:
    """The token checked against the projects the raw ``body`` names (never parsed here)."""
    claims = await _claims(receiver, body)
    if not claims.paths:
        if claims.invalid:
            return _reject(
                receiver,
                400,
                "project_invalid",
                f"{claims.invalid[0]} is not valid Unicode text",
            )
        return _reject(
            receiver,
            401,
            "project_unknown",
            "payload names no project; the token cannot be verified",
        )
    if not _claims_authenticate(receiver, token, claims, now):
        return _wrong_token(receiver)
    return None


async def _parse(receiver: Receiver, body: bytes) -> Any:
    """``orjson.loads``; large bodies on a thread, one at a time (only after the token check)."""
    if len(body) <= INLINE_PARSE_BYTES:
        return orjson.loads(body)
    async with receiver.parse_slot:
        return await asyncio.to_thread(orjson.loads, body)


def _not_json(body: bytes, error: ValueError) -> tuple[str, str]:
    """(reason, message) for a body orjson refused; names the field holding unstorable text."""
    if len(body) <= DIAGNOSE_BYTES:
        try:
            loose = json.loads(body)  # accepts lone surrogates, which cannot be stored
        except (ValueError, RecursionError):
            loose = None
        field = first_invalid_text(loose)
        if field is not None:
            return (
                "unstorable",
                f"{field} holds a lone surrogate (not valid Unicode text); it cannot be stored",
            )
    return "not_json", f"body is not valid JSON: {error}"


def first_invalid_text(value: Any) -> str | None:
    """The path (``commits[0].message``) of the first key or string that is not valid UTF-8."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not _encodable(item):
                return path or "body"
        elif isinstance(item, dict):
            for key, inner in reversed(list(item.items())):
                inner_path = f"{path}.{key}" if path else str(key)
                if not _encodable(key):
                    return f"a key in {path or 'the body'}"
                stack.append((inner_path, inner))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", inner) for i, inner in reversed(list(enumerate(item))))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _claims_authenticate(receiver: Receiver, token: str, claims: Claims, now: datetime) -> bool:
    """Whether ``token`` could pass ``Router.check_token`` for a project the raw body names.

    A superset of that check, without its side effects (it learns ids): the id tokens of the
    claimed ids, and the path tokens of the claimed paths (or of their specs' paths).
    """
    settings = receiver.settings
    for project_id in claims.ids:
        if token_matches(token, accepted_tokens(settings, project_id, (), now)):
            return True
    legacy: list[str] = []
    for path in claims.paths:
        for claimed_id in (*claims.ids, None):
            spec = receiver.router.spec_for(path, claimed_id)
            legacy.append(spec.project if spec is not None else path)
    try:
        return token_matches(
            token, accepted_tokens(settings, None, list(dict.fromkeys(legacy)), now)
        )
    except UnicodeError:  # a path that is not text cannot have a token
        return False


async def _hook(receiver: Receiver, scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /hooks/gitlab`` as a bare ASGI handler (the hot path: no framework layers)."""
    started = time.perf_counter()
    hold = _Hold(receiver.budget)
    try:
        try:
            answer = await _deliver(receiver, scope, receive, hold)
        except _Refused as refused:
            answer = refused.answer
        finally:
            hold.release()
        await answer.send(send)
    finally:
        receiver.metrics.observe("conveyor_webhook_ack_seconds", time.perf_counter() - started)


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name (the first of repeated ones, as Starlette does)."""
    out: dict[str, str] = {}
    for name, value in scope["headers"]:
        out.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


async def _deliver(receiver: Receiver, scope: Scope, receive: Receive, hold: _Hold) -> _Answer:
    opts = receiver.options
    headers = _headers(scope)
    event_header = headers.get("x-gitlab-event")
    receiver.metrics.inc("conveyor_webhooks_received_total", kind=_kind_label(event_header))
    if opts.hook_sources and not source_allowed(scope.get("client"), opts.hook_sources):
        return _reject(
            receiver,
            403,
            "source_not_allowed",
            "deliveries are accepted only from the configured GitLab addresses (--hook-source)",
            close=True,
        )
    length = headers.get("content-length")
    declared: int | None = None
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            return _reject(
                receiver, 400, "bad_content_length", "invalid Content-Length", close=True
            )
        if declared > opts.max_body_bytes:
            return _too_large(receiver)
    ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        return _reject(
            receiver, 415, "content_type", "Content-Type must be application/json", close=True
        )
    if not event_header or not event_header.strip():
        return _reject(
            receiver, 400, "event_header_missing", "missing X-Gitlab-Event header", close=True
        )
    token = headers.get("x-gitlab-token")
    if not token:
        return _reject(receiver, 401, "token_missing", "missing X-Gitlab-Token", close=True)
    idem_key = headers.get("idempotency-key") or None
    if idem_key is not None and len(idem_key) > MAX_KEY_LENGTH:
        return _reject(receiver, 400, "idempotency_key", "Idempotency-Key too long", close=True)

    def early(prefix: bytes) -> _Answer | None:
        claims = claimed_projects(prefix)
        if not claims.paths or _claims_authenticate(receiver, token, claims, datetime.now(UTC)):
            return None  # no project named yet (read on), or one this token may be for
        return _wrong_token(receiver, close=True)

    body = await _read_body(receiver, receive, declared, hold, early)
    now = datetime.now(UTC)
    # Authenticate from what is cheap: a small body's parse, else the projects the raw body
    # names (a byte scan), so an unauthenticated sender never makes us parse a large body.
    payload = _parsed_first(body, opts.parse_first_bytes)
    signed = bool(opts.signing_keys or opts.require_signature)
    if payload is None:
        refusal = await _authenticate_raw(receiver, token, body, now)
        if refusal is not None:
            return refusal
    elif signed and not _claims_authenticate(receiver, token, _parsed_claims(payload), now):
        # Before the signature, as for the scanned bodies. Without one to check, the token
        # check below is the next step anyway: this one would repeat it.
        return _wrong_token(receiver)
    webhook_id: str | None = None
    if signed:
        check = functools.partial(
            check_signature,
            headers,
            body,
            opts.signing_keys,
            now=now.timestamp(),
            require=opts.require_signature,
            tolerance_s=opts.signature_tolerance_s,
        )
        sig = check() if len(body) <= INLINE_PARSE_BYTES else await asyncio.to_thread(check)
        if not sig.ok:
            return _reject(receiver, 401, sig.reason or "signature", "webhook signature not valid")
        webhook_id = sig.webhook_id
    if payload is None:
        try:
            payload = await _parse(receiver, body)
        except orjson.JSONDecodeError as exc:
            reason, message = _not_json(body, exc)
            return _reject(receiver, 400, reason, message)
    if not isinstance(payload, Mapping):
        return _reject(receiver, 400, "not_object", "body must be a JSON object")
    project = project_path_of(payload)
    if project is None:
        return _reject(receiver, 401, "project_unknown", "payload names no project")
    # keyed on the project id (routing.Router.check_token; path tokens of old hooks until retired)
    project_id = project_id_of(payload)
    if not receiver.router.check_token(receiver.settings, token, project_id, project, now):
        return _wrong_token(receiver)
    delivery = Delivery(
        event_header=event_header.strip(),
        body=body,
        received_at=time.time(),
        idempotency_key=idem_key,
        delivery_uuid=headers.get("x-gitlab-webhook-uuid"),
        webhook_id=webhook_id,
    )
    assert receiver.intake is not None
    try:
        if len(body) <= INLINE_PARSE_BYTES:
            # routed by the intake process, off this loop (see conveyor.receiver.admission)
            del payload  # only the raw body is kept while the event is committed
            outcome = await receiver.intake.deliver(delivery)
        else:  # parsed on a thread here already: routed here, not parsed again over there
            routed = receiver.admission.admit(delivery, payload)
            del payload
            if isinstance(routed, Refusal):
                outcome = routed
            else:
                outcome = await receiver.intake.store(routed)
    except QueueError as exc:
        log.error("event not stored", extra={"error": exc.message, "project": project})
        return _reject(
            receiver,
            503,
            "storage",
            "event could not be stored; resend",
            retry_after=RETRY_AFTER_S,
        )
    if isinstance(outcome, Refusal):
        return _reject(receiver, 400, outcome.reason, outcome.message)
    accepted = outcome
    if accepted.duplicate:
        receiver.metrics.inc("conveyor_webhooks_deduplicated_total")
        log.info("duplicate delivery", extra={"event_id": accepted.event_id, "project": project})
        return _Answer(
            200, {"id": accepted.event_id, "status": accepted.status.value, "duplicate": True}
        )
    receiver.metrics.inc("conveyor_webhooks_accepted_total", outcome=accepted.status.value)
    # The "event stored" line is written by the intake process, which committed it.
    answer: dict[str, Any] = {"id": accepted.event_id, "status": accepted.status.value}
    if accepted.reason:
        answer["reason"] = accepted.reason
    return _Answer(202, answer)


def create_app(receiver: Receiver, *, manage_lifecycle: bool = True) -> ASGIApp:
    """The ASGI app. With ``manage_lifecycle`` the app's lifespan starts and stops ``receiver``."""

    async def not_allowed(request: Request) -> Response:
        raise AssertionError("POST /hooks/gitlab is served by _hook")  # pragma: no cover

    async def healthz(request: Request) -> Response:
        pool = receiver.pool
        workers = pool.alive if pool is not None else 0
        expected = receiver.worker_options.workers if receiver.options.run_workers else 0
        # Intake is healthy only if a probe makes the round trip through the intake process
        # (behind any waiting batch) and its last commit did not fail.
        intake: dict[str, Any] = {"ok": False}
        if receiver.intake is not None:
            try:
                seconds = await receiver.intake.probe(HEALTH_TIMEOUT_S)
            except QueueError as exc:
                intake["error"] = exc.message
            else:
                intake = {"ok": True, "round_trip_ms": round(seconds * 1000, 2)}
        ok = intake["ok"] and workers >= expected
        return JSONResponse(
            {
                "status": "ok" if ok else "degraded",
                "intake": intake,
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

    dashboard = Dashboard(
        queue=receiver.db_path,
        state_dir=receiver.settings.state_dir,
        metrics=receiver.metrics,
        spec_files=receiver.options.spec_files,
        token=receiver.options.dashboard_token,
        settings=receiver.settings,
        wake=lambda: receiver.pool.wake() if receiver.pool is not None else None,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_lifecycle:
            await asyncio.to_thread(receiver.start, asyncio.get_running_loop())
        dashboard.start()
        try:
            yield
        finally:
            dashboard.stop()
            if manage_lifecycle:
                await asyncio.to_thread(receiver.stop)

    framework = Starlette(
        routes=[
            # POST is answered by _hook before Starlette; this route makes other methods 405.
            Route(HOOK_PATH, not_allowed, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Mount(DASHBOARD_PREFIX, app=dashboard.asgi()),
        ],
        lifespan=lifespan,
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == HOOK_PATH and scope["method"] == "POST":
            await _hook(receiver, scope, receive, send)
        else:
            await framework(scope, receive, send)

    return app
