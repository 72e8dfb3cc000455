"""A loopback load generator for the receiver: raw HTTP/1.1 keep-alive over asyncio.

Two bounded modes (both stop at ``--count`` requests or ``--duration`` seconds):

* ``throughput``: ``--connections`` closed-loop connections send as fast as answers come.
* ``rate``: open loop at ``--rate`` requests/s; latency is measured from each request's
  *scheduled* send time, so a stalled server shows up in the percentiles (no coordinated
  omission). Connections are added when all are busy, up to ``--max-connections``.

Every request is a distinct GitLab push delivery (its own ``Idempotency-Key``, a valid
derived ``X-Gitlab-Token``), so every 2xx is a stored event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from conveyor.tokens import project_token

PROJECT = "bench/app"
SHA_A = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
SHA_B = "b6568db1bc1dcd7f8b4d5a946b0b91f9dacd7327"


def payload(i: int) -> bytes:
    data = {
        "object_kind": "push",
        "event_name": "push",
        "before": SHA_A,
        "after": SHA_B,
        "ref": f"refs/heads/release/{i % 64}",
        "checkout_sha": SHA_B,
        "user_name": "Bench",
        "user_username": "bench",
        "project_id": 1,
        "project": {
            "id": 1,
            "path_with_namespace": PROJECT,
            "web_url": f"http://gitlab.example.com/{PROJECT}",
            "git_http_url": f"http://gitlab.example.com/{PROJECT}.git",
        },
        "commits": [
            {
                "id": SHA_B,
                "message": f"change number {i}\n\nwith a body line",
                "timestamp": "2026-01-03T23:36:29+02:00",
                "author": {"name": "Bench", "email": "bench@example.com"},
                "added": [],
                "modified": ["src/app.py"],
                "removed": [],
            }
        ],
        "total_commits_count": 1,
        "push_options": {},
    }
    return json.dumps(data).encode()


def requests(secret: str, host: str, port: int) -> Iterator[bytes]:
    token = project_token(secret, PROJECT)
    i = 0
    while True:
        body = payload(i)
        head = (
            "POST /hooks/gitlab HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Content-Type: application/json\r\n"
            "User-Agent: GitLab/17.5.0\r\n"
            "X-Gitlab-Event: Push Hook\r\n"
            f"X-Gitlab-Token: {token}\r\n"
            f"Idempotency-Key: {uuid.uuid4()}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        yield head.encode() + body
        i += 1


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


@dataclass
class Result:
    mode: str
    sent: int = 0
    accepted: int = 0
    other: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    def record(self, status: int, latency: float) -> None:
        self.sent += 1
        self.latencies.append(latency)
        if 200 <= status < 300:
            self.accepted += 1
        else:
            self.other[status] = self.other.get(status, 0) + 1

    def summary(self) -> dict[str, object]:
        lat = sorted(self.latencies)

        def pct(q: float) -> float:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2) if lat else 0.0

        return {
            "mode": self.mode,
            "sent": self.sent,
            "accepted": self.accepted,
            "non_2xx": self.other,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed, 2),
            "accepted_per_s": round(self.accepted / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "max_ms": round(lat[-1] * 1000, 2) if lat else 0.0,
        }


async def throughput(
    host: str, port: int, secret: str, *, count: int, duration: float, connections: int
) -> Result:
    result = Result("throughput")
    source = requests(secret, host, port)
    deadline = time.perf_counter() + duration
    remaining = [count]

    async def conn() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while remaining[0] > 0 and time.perf_counter() < deadline:
                remaining[0] -= 1
                start = time.perf_counter()
                writer.write(next(source))
                status = await read_response(reader)
                result.record(status, time.perf_counter() - start)
        except (OSError, asyncio.IncompleteReadError):
            result.errors += 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(conn() for _ in range(connections)))
    result.elapsed = time.perf_counter() - began
    return result


async def fixed_rate(
    host: str,
    port: int,
    secret: str,
    *,
    rate: float,
    count: int,
    duration: float,
    max_connections: int,
) -> Result:
    result = Result(f"rate {rate:g}/s")
    source = requests(secret, host, port)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(scheduled: float, data: bytes) -> None:
        nonlocal opened
        reused = bool(idle)
        if reused:
            reader, writer = idle.pop()
        else:
            opened += 1
            reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(data)
            status = await read_response(reader)
        except (OSError, asyncio.IncompleteReadError):
            writer.close()
            if not reused:
                result.errors += 1
                return
            # The server closed an idle keep-alive connection (uvicorn: after 5 s); the
            # request never reached it. Resend on a fresh connection, as any client would.
            try:
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(data)
                status = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError):
                result.errors += 1
                writer.close()
                return
        result.record(status, time.perf_counter() - scheduled)
        idle.append((reader, writer))

    total = min(count, int(rate * duration))
    began = time.perf_counter()
    for i in range(total):
        scheduled = began + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if opened >= max_connections and not idle:
            result.errors += 1  # the server is too far behind: count it, do not queue forever
            continue
        task = asyncio.create_task(one(scheduled, next(source)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    result.elapsed = time.perf_counter() - began
    for _, writer in idle:
        writer.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["throughput", "rate"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--max-connections", type=int, default=256)
    args = parser.parse_args()
    if args.mode == "throughput":
        res = asyncio.run(
            throughput(
                args.host,
                args.port,
                args.secret,
                count=args.count,
                duration=args.duration,
                connections=args.connections,
            )
        )
    else:
        res = asyncio.run(
            fixed_rate(
                args.host,
                args.port,
                args.secret,
                rate=args.rate,
                count=args.count,
                duration=args.duration,
                max_connections=args.max_connections,
            )
        )
    print(json.dumps(res.summary()))


if __name__ == "__main__":
    main()
