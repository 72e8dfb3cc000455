"""The dashboard's pages and actions (Starlette), mounted by ``conveyor serve`` at ``/dashboard``.

Pages are rendered on the server by Jinja2 with autoescaping on for every template: every string
from a payload, a log or a spec is text, never HTML. Every response carries a strict
Content-Security-Policy (no inline script or style; one static script streams logs). Who may
read and act is decided by :mod:`conveyor.dashboard.access`; actions are POSTs carrying the CSRF
token. Reads go through :mod:`conveyor.dashboard.reads` (own read-only connections, on a thread);
nothing here touches the intake writer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from conveyor.config import Settings
from conveyor.dashboard import access, reads
from conveyor.dashboard.decisions import decision_of
from conveyor.dashboard.deploys import Service, deploy_requests, roll_back, services
from conveyor.dashboard.health import Sampler, chart, series
from conveyor.dashboard.hooks import REFRESH_S, HookHealthCache
from conveyor.docker.deploy import DeployRequest
from conveyor.errors import ConveyorError
from conveyor.gitlab.events import EventKind
from conveyor.receiver.metrics import Metrics
from conveyor.receiver.queue import Status
from conveyor.receiver.queue.location import Location, PgLocation, open_queue
from conveyor.spec.load import load_spec

if TYPE_CHECKING:
    from conveyor.receiver.queue.postgres import Database

log = logging.getLogger("conveyor.dashboard")

PREFIX = "/dashboard"
HERE = Path(__file__).parent
STREAM_POLL_S = 0.25
BODY_SHOWN = 256 * 1024  # characters of a payload shown on its page
PG_CONNECTIONS = 4  # the dashboard's own pool on a PostgreSQL queue

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _ts(value: float | None) -> str:
    if not value:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}s" if value < 120 else f"{value / 60:.1f}min"


def _web_url(value: object) -> str | None:
    """``value`` if it is an http(s) URL (a link target), else None (shown as text, not linked)."""
    if not isinstance(value, str):
        return None
    try:
        scheme = urlsplit(value).scheme
    except ValueError:
        return None
    return value if scheme in ("http", "https") else None


def environment() -> jinja2.Environment:
    """The one place HTML is escaped: Jinja2 autoescaping, on for every template."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["ts"] = _ts
    env.filters["duration"] = _duration
    env.filters["web_url"] = _web_url
    return env


def _parse_time(value: str | None) -> float | None:
    """A filter's time (``YYYY-MM-DDTHH:MM``, UTC, as a datetime-local input sends it)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@dataclass
class Dashboard:
    """Everything the pages read: the queue, the run history, the metrics, the served specs."""

    queue: Location  # the event queue (SQLite file or PostgreSQL), see read()
    state_dir: Path
    metrics: Metrics
    spec_files: tuple[Path, ...] = ()
    token: str | None = None
    wake: Callable[[], None] = lambda: None  # after a replay: wake the workers
    sample_interval_s: float = 10.0
    settings: Settings | None = None  # GitLab settings present: the hooks' health is shown
    hook_interval_s: float = REFRESH_S
    env: jinja2.Environment = field(default_factory=environment)

    def __post_init__(self) -> None:
        self.sampler = Sampler(self.metrics, interval_s=self.sample_interval_s)
        self._specs = {}
        for path in self.spec_files:
            loaded = load_spec(path)
            self._specs[loaded.spec.project] = loaded
        self._deploys: dict[str, DeployRequest] | None = None
        self._pg: Database | None = None
        self._pg_lock = threading.Lock()
        self.hooks = HookHealthCache(
            self.settings, list(self._specs.values()), interval_s=self.hook_interval_s
        )

    def start(self) -> None:
        self.sampler.start()
        self.hooks.start()

    def stop(self) -> None:
        self.sampler.stop()
        self.hooks.stop()
        with self._pg_lock:
            if self._pg is not None:
                self._pg.close()
                self._pg = None

    # ------------------------------------------------------------------ plumbing

    def access_of(self, request: Request) -> access.Access:
        host = request.client.host if request.client else None
        if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
            host = None  # proxied: the peer is the proxy, not the client
        presented = access.credentials_of(
            request.headers.get("authorization"), request.cookies.get(access.SESSION_COOKIE)
        )
        return access.decide(host, self.token, presented)

    def page(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        level = self.access_of(request)
        html = self.env.get_template(name).render(
            prefix=PREFIX,
            can_act=level is access.Access.ACT,
            token_set=bool(self.token),
            csrf=access.csrf_token(self.token) if self.token and level is access.Access.ACT else "",
            **context,
        )
        return Response(html, status_code=status_code, media_type="text/html; charset=utf-8")

    def error(self, request: Request, status_code: int, message: str) -> Response:
        return self.page(request, "error.html", status_code, message=message)

    async def read(self, what: Callable[..., Any], *args: Any, runs: bool = False) -> Any:
        """``what(source, *args)`` on a thread: ``source`` is a read-only SQLite connection to the
        run history (``runs=True``), else a :class:`reads.Reader` on the event queue, whichever
        store it is."""
        queue = self.queue

        def call() -> Any:
            if runs:
                with reads.read_only(reads.runs_path(self.state_dir)) as conn:
                    return what(conn, *args)
            if isinstance(queue, Path):
                with reads.read_only(queue) as conn:
                    return what(reads.SqliteReader(conn), *args)
            return what(reads.PgReader(self._pg_database(queue)), *args)

        return await asyncio.to_thread(call)

    def _pg_database(self, location: PgLocation) -> Database:
        """The dashboard's own small pool on the PostgreSQL queue (not the workers')."""
        with self._pg_lock:
            if self._pg is None:
                from conveyor.receiver.queue.postgres import Database

                self._pg = Database(location.url, max_size=PG_CONNECTIONS)
            return self._pg

    def guarded(
        self, handler: Callable[[Request], Awaitable[Response]], *, act: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            level = self.access_of(request)
            if level is access.Access.REFUSE:
                return Response(
                    "the dashboard answers loopback only unless CONVEYOR_DASHBOARD_TOKEN is set\n",
                    status_code=403,
                    media_type="text/plain",
                )
            if level is access.Access.LOGIN:
                if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                    return RedirectResponse(f"{PREFIX}/login", status_code=303)
                return Response(
                    "log in or send the token as a bearer\n", 401, media_type="text/plain"
                )
            if act:
                if level is not access.Access.ACT:
                    return self.error(
                        request, 403, "actions need CONVEYOR_DASHBOARD_TOKEN: log in first"
                    )
                form = await request.form()
                given = form.get(access.CSRF_FIELD)
                if not access.csrf_ok(self.token, given if isinstance(given, str) else None):
                    return self.error(request, 403, "the form's CSRF token is missing or wrong")
            try:
                return await handler(request)
            except ConveyorError as exc:  # a read that failed (a queue not readable here)
                return self.error(request, 503, exc.message)

        return endpoint

    # ------------------------------------------------------------------ pages

    async def events(self, request: Request) -> Response:
        q = request.query_params
        filters = reads.EventFilter(
            project=q.get("project") or None,
            kind=q.get("kind") or None,
            status=q.get("status") or None,
            since=_parse_time(q.get("since")),
            until=_parse_time(q.get("until")),
            before=_int(q.get("before")),
        )
        page: reads.EventPage = await self.read(reads.list_events, filters)
        kept = {k: v for k, v in q.items() if k != "before" and v}
        more = urlencode({**kept, "before": page.next_before}) if page.next_before else None
        rows = [{**row, "decision": decision_of(row)} for row in page.rows]
        return self.page(
            request,
            "events.html",
            rows=rows,
            projects=sorted(self._specs),
            kinds=[k.value for k in EventKind],
            query=kept,
            more=more,
            statuses=[s.value for s in Status],
        )

    async def event(self, request: Request) -> Response:
        event_id = int(request.path_params["event_id"])
        event = await self.read(reads.get_event, event_id)
        if event is None:
            return self.error(request, 404, f"no event {event_id}")
        attempts = await self.read(reads.attempts_for, event_id)
        statuses = await self.read(reads.statuses_for, event_id)
        replays = await self.read(reads.replays_of, event_id)
        body = event.pop("body")
        try:
            payload = json.loads(body)
            shown = json.dumps(payload, indent=2, ensure_ascii=False)
        except ValueError:
            payload, shown = None, body
        commits = []
        if isinstance(payload, dict) and isinstance(payload.get("commits"), list):
            commits = [c for c in payload["commits"][:20] if isinstance(c, dict)]
        local = (event.get("dispatch_state") or {}).get("local") or {}
        spec = self._specs.get(event.get("project") or "")
        return self.page(
            request,
            "event.html",
            event=event,
            decision=decision_of(event),
            attempts=attempts,
            statuses=statuses,
            replays=replays,
            payload=shown[:BODY_SHOWN],
            truncated=len(shown) > BODY_SHOWN,
            commits=commits,
            run=local.get("run"),
            spec=spec,
        )

    async def replay(self, request: Request) -> Response:
        event_id = int(request.path_params["event_id"])

        def do() -> int:
            queue = open_queue(self.queue, synchronous="NORMAL")
            try:
                return queue.replay(event_id)
            finally:
                queue.close()

        try:
            new_id = await asyncio.to_thread(do)
        except ConveyorError as exc:
            return self.error(request, 409, exc.message)
        self.wake()
        log.info("event replayed from the dashboard", extra={"event": event_id, "new": new_id})
        return RedirectResponse(f"{PREFIX}/events/{new_id}", status_code=303)

    async def runs(self, request: Request) -> Response:
        if not reads.runs_path(self.state_dir).exists():
            return self.page(request, "runs.html", runs=[])
        rows = await self.read(reads.list_runs, runs=True)
        return self.page(request, "runs.html", runs=rows)

    async def run(self, request: Request) -> Response:
        number = int(request.path_params["number"])
        if not reads.runs_path(self.state_dir).exists():
            return self.error(request, 404, f"no run #{number}")
        run = await self.read(reads.get_run, number, runs=True)
        if run is None:
            return self.error(request, 404, f"no run #{number}")
        lines = await self.read(reads.live_lines, number, 0, 1_000_000, runs=True)
        stages = reads.stages_of(run, lines)
        top = [s for s in stages if s.parent is None]
        branches = {s.name: [b for b in stages if b.parent == s.name] for s in top}
        return self.page(
            request,
            "run.html",
            run=run,
            stages=stages,
            top=top,
            branches=branches,
            last_seq=lines[-1].seq if lines else 0,
            full_log=run["log"] if not lines else "",
        )

    async def stream(self, request: Request) -> Response:
        """The run's live lines after ``after`` (or ``Last-Event-ID``) as server-sent events,
        until the run has ended and every line is sent (then an ``end`` event)."""
        number = int(request.path_params["number"])
        after = (
            _int(request.headers.get("last-event-id"))
            or _int(request.query_params.get("after"))
            or 0
        )

        path = reads.runs_path(self.state_dir)

        async def events() -> AsyncIterator[bytes]:
            # one connection for the whole stream, polled (two indexed queries per poll)
            conn = await asyncio.to_thread(reads.connect_read_only, path)
            try:
                seq = after
                while True:
                    status = await asyncio.to_thread(reads.run_status, conn, number)
                    lines = await asyncio.to_thread(reads.live_lines, conn, number, seq)
                    for line in lines:
                        seq = line.seq
                        data = json.dumps(
                            {"seq": seq, "stage": line.stage, "kind": line.kind, "text": line.text}
                        )
                        yield f"id: {seq}\nevent: line\ndata: {data}\n\n".encode()
                    if lines:
                        continue
                    if status != "running":
                        end = json.dumps({"status": status or "missing"})
                        yield f"event: end\ndata: {end}\n\n".encode()
                        return
                    yield b": idle\n\n"
                    await asyncio.sleep(STREAM_POLL_S)
            finally:
                conn.close()

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"}
        )

    def deploy_requests(self) -> dict[str, DeployRequest]:
        if self._deploys is None:
            self._deploys = deploy_requests(self.spec_files, self.state_dir)
        return self._deploys

    async def deploys(self, request: Request) -> Response:
        try:
            found: list[Service] = await asyncio.to_thread(lambda: services(self.deploy_requests()))
        except ConveyorError as exc:
            return self.error(request, 500, exc.message)
        return self.page(
            request, "deploys.html", services=found, notice=request.query_params.get("notice")
        )

    async def rollback(self, request: Request) -> Response:
        form = await request.form()
        key = form.get("service")
        target = self.deploy_requests().get(key) if isinstance(key, str) else None
        if target is None:
            return self.error(request, 404, "no such deploy")
        try:
            result = await asyncio.to_thread(roll_back, target)
        except ConveyorError as exc:
            return self.error(request, 409, f"rollback of {target.name} failed: {exc.message}")
        log.info(
            "rolled back from the dashboard", extra={"deploy": result.name, "image": result.image}
        )
        notice = urlencode({"notice": f"{result.name} rolled back to {result.image}"})
        return RedirectResponse(f"{PREFIX}/deploys?{notice}", status_code=303)

    async def health(self, request: Request) -> Response:
        points = series(self.sampler.samples())
        now = points[-1].at if points else 0.0
        rate = chart([(p.at, p.rate) for p in points], now=now)
        latency = chart([(p.at, p.latency_ms) for p in points if p.latency_ms is not None], now=now)
        counts = await self.read(reads.counts)
        dead = await self.read(reads.dead_letters)
        depth = counts.get("queued", 0) + counts.get("running", 0)
        return self.page(
            request,
            "health.html",
            rate=rate,
            latency=latency,
            counts=counts,
            depth=depth,
            dead=[{**row, "decision": decision_of(row)} for row in dead],
            received=self.metrics.total("conveyor_webhooks_received_total"),
            duplicates=self.metrics.total("conveyor_webhooks_deduplicated_total"),
            interval=self.sample_interval_s,
            hooks_shown=self.hooks.enabled,
            hooks=self.hooks.report(),
        )

    async def login_form(self, request: Request) -> Response:
        return self.page(request, "login.html", failed=False)

    async def login(self, request: Request) -> Response:
        form = await request.form()
        given = form.get("token")
        if (
            not self.token
            or not isinstance(given, str)
            or not access.authenticated(self.token, access.Credentials(bearer=given))
        ):
            return self.page(request, "login.html", 401, failed=True)
        response = RedirectResponse(f"{PREFIX}/events", status_code=303)
        response.set_cookie(
            access.SESSION_COOKIE,
            access.session_value(self.token),
            httponly=True,
            samesite="strict",
            path=PREFIX,
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(access.SESSION_COOKIE, path=PREFIX)
        return response

    async def index(self, request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/events", status_code=303)

    # ------------------------------------------------------------------ the app

    def asgi(self) -> Any:
        """The dashboard as an ASGI app, to be mounted at :data:`PREFIX`."""
        g = self.guarded
        inner = Starlette(
            routes=[
                Route("/", g(self.index)),
                Route("/events", g(self.events)),
                Route("/events/{event_id:int}", g(self.event)),
                Route("/events/{event_id:int}/replay", g(self.replay, act=True), methods=["POST"]),
                Route("/runs", g(self.runs)),
                Route("/runs/{number:int}", g(self.run)),
                Route("/runs/{number:int}/stream", g(self.stream)),
                Route("/deploys", g(self.deploys)),
                Route("/deploys/rollback", g(self.rollback, act=True), methods=["POST"]),
                Route("/health", g(self.health)),
                Route("/login", self.login_form, methods=["GET"]),
                Route("/login", self.login, methods=["POST"]),
                Route("/logout", self.logout, methods=["POST"]),
                Mount("/static", StaticFiles(directory=HERE / "static")),
            ],
        )

        async def secured(scope: Any, receive: Any, send: Any) -> None:
            async def send_secured(message: Any) -> None:
                if message["type"] == "http.response.start":
                    headers = list(message.get("headers", []))
                    headers += [
                        (k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()
                    ]
                    message = {**message, "headers": headers}
                await send(message)

            await inner(scope, receive, send_secured)

        return secured
