"""The HTTP plumbing both emulators share: a threaded server, a request log and fault injection.

An emulator is an :class:`EmulatorServer` subclass that implements :meth:`EmulatorServer.route`,
turning a parsed :class:`Request` into a :class:`Response`. Everything else (threads, keep-alive,
global latency, scheduled faults, the request log) lives here once.
"""

from __future__ import annotations

import abc
import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Request:
    """One parsed request. ``path`` is the raw (still percent-encoded) path without the query."""

    method: str
    path: str
    query: dict[str, str]
    query_items: tuple[tuple[str, str], ...]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    base_url: str  # scheme://host:port the client used

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        if not self.body:
            return {}
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(
        cls, status: int, payload: Any, headers: list[tuple[str, str]] | None = None
    ) -> Response:
        hdrs = [("Content-Type", "application/json")]
        hdrs.extend(headers or [])
        return cls(status, json.dumps(payload).encode("utf-8"), hdrs)

    @classmethod
    def text(
        cls, status: int, text: str, content_type: str = "text/plain;charset=utf-8"
    ) -> Response:
        return cls(status, text.encode("utf-8"), [("Content-Type", content_type)])


@dataclass(frozen=True)
class RequestRecord:
    """What the log keeps of one request. ``status`` is 0 when the connection was dropped."""

    method: str
    path: str  # decoded path
    query: dict[str, str]
    body: bytes
    status: int
    headers: dict[str, str]

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


class RequestLog:
    """Thread-safe, ordered log of every request an emulator answered (or dropped)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def records(
        self, method: str | None = None, path_regex: str | None = None
    ) -> list[RequestRecord]:
        with self._lock:
            items = list(self._records)
        pattern = re.compile(path_regex) if path_regex else None
        return [
            r
            for r in items
            if (method is None or r.method == method.upper())
            and (pattern is None or pattern.search(r.path))
        ]

    def writes(self, path_regex: str | None = None) -> list[RequestRecord]:
        return [r for r in self.records(path_regex=path_regex) if r.is_write]

    def count_writes(self, path_regex: str | None = None) -> int:
        """Number of POST/PUT/PATCH/DELETE requests (optionally only paths matching the regex)."""
        return len(self.writes(path_regex))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.records())


@dataclass
class Fault:
    """A fault applied to the next ``times`` requests matching ``method`` and ``path`` (regexes).

    ``status`` answers with that code (and ``Retry-After`` if ``retry_after`` is set) instead of
    handling the request; ``delay`` sleeps first and then handles (or answers ``status``);
    ``drop`` closes the connection without answering, before the request is handled;
    ``lose_answer`` handles the request (its effect happens) and then closes the connection
    without answering: the client cannot tell whether it worked (a timeout, a proxy reset);
    ``hold`` handles the request and waits that long before answering (the effect is there,
    the client does not know yet).
    """

    method: str
    path: str
    times: int
    status: int | None = None
    retry_after: int | None = None
    delay: float = 0.0
    drop: bool = False
    hits: int = 0
    lose_answer: bool = False
    hold: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return bool(re.fullmatch(self.method, method, re.IGNORECASE)) and bool(
            re.search(self.path, path)
        )


class FaultInjector:
    """Thread-safe schedule of faults. The first pending matching fault wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        method: str = ".*",
        path: str = ".*",
        *,
        times: int = 1,
        status: int | None = None,
        retry_after: int | None = None,
        delay: float = 0.0,
        drop: bool = False,
        lose_answer: bool = False,
        hold: float = 0.0,
    ) -> Fault:
        if status is None and not drop and not lose_answer and delay <= 0 and hold <= 0:
            raise ValueError("a fault needs a status, a delay, a hold, drop or lose_answer")
        fault = Fault(
            method,
            path,
            times,
            status,
            retry_after,
            delay,
            drop,
            lose_answer=lose_answer,
            hold=hold,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def rate_limit(
        self, method: str = ".*", path: str = ".*", *, times: int = 1, retry_after: int = 1
    ) -> Fault:
        return self.add(method, path, times=times, status=429, retry_after=retry_after)

    def error(
        self, method: str = ".*", path: str = ".*", *, status: int = 500, times: int = 1
    ) -> Fault:
        return self.add(method, path, times=times, status=status)

    def slow(self, method: str = ".*", path: str = ".*", *, delay: float, times: int = 1) -> Fault:
        return self.add(method, path, times=times, delay=delay)

    def drop(self, method: str = ".*", path: str = ".*", *, times: int = 1) -> Fault:
        return self.add(method, path, times=times, drop=True)

    def lose_answer(self, method: str = ".*", path: str = ".*", *, times: int = 1) -> Fault:
        return self.add(method, path, times=times, lose_answer=True)

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.hits < fault.times and fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    def pending(self) -> int:
        with self._lock:
            return sum(f.times - f.hits for f in self._faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True
    emulator: EmulatorServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 60
    disable_nagle_algorithm = True  # real Jetty/GitLab set TCP_NODELAY

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        emulator = self.server.emulator
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        raw_query = split.query
        items = tuple(parse_qsl(raw_query, keep_blank_values=True))
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        request = Request(
            method=self.command,
            path=split.path,
            query=dict(items),
            query_items=items,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            base_url=f"http://{host}",
        )
        if emulator.latency > 0:
            time.sleep(emulator.latency)
        fault = emulator.faults.take(request.method, unquote(request.path))
        response: Response | None = None
        if fault is not None:
            if fault.delay > 0:
                time.sleep(fault.delay)
            if fault.lose_answer:
                with contextlib.suppress(Exception):
                    emulator.route(request)
            if fault.drop or fault.lose_answer:
                emulator.log.append(self._record(request, 0))
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault.status is not None:
                extra = (
                    [("Retry-After", str(fault.retry_after))]
                    if fault.retry_after is not None
                    else []
                )
                response = emulator.fault_response(fault.status, extra)
        if response is None:
            try:
                response = emulator.route(request)
            except Exception as exc:  # an emulator bug must surface as a 500, not a hang
                response = Response.text(500, f"emulator error: {type(exc).__name__}: {exc}")
        emulator.log.append(self._record(request, response.status))
        if fault is not None and fault.hold > 0:
            time.sleep(fault.hold)
        self._send(response)

    def _record(self, request: Request, status: int) -> RequestRecord:
        return RequestRecord(
            method=request.method,
            path=unquote(request.path),
            query=request.query,
            body=request.body,
            status=status,
            headers=request.headers,
        )

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        names = {k.lower() for k, _ in response.headers}
        for name, value in response.headers:
            # header values must be latin-1 on the wire; never let a bad one kill the response
            self.send_header(name, value.encode("latin-1", "replace").decode("latin-1"))
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class EmulatorServer(abc.ABC):
    """Base of both emulators: owns the HTTP server thread, the log, the faults and the latency."""

    def __init__(self) -> None:
        self.log = RequestLog()
        self.faults = FaultInjector()
        self.latency = 0.0  # seconds added to every request (benchmarks)
        self.lock = threading.RLock()  # guards the emulator's state
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> EmulatorServer:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.emulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what an emulator provides ---------------------------------------------------------
    @abc.abstractmethod
    def route(self, request: Request) -> Response:
        """Answer one request (faults and latency are already applied)."""

    def fault_response(self, status: int, headers: list[tuple[str, str]]) -> Response:
        return Response.text(status, f"injected fault {status}")
