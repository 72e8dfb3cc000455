"""Issue 10 item 3: a real ``conveyor serve`` under the slow-client attack that took it to 922 MB.

All on 127.0.0.1, bounded in count and time: 150 connections each sending all but the last 100
bytes of a 5 MB body, 50 header trickles, 1,000 idle connections, and a valid delivery every
50 ms throughout. Must hold: the RSS stays under a stated bound, trickles and idle connections
are closed, and every valid delivery is answered 202.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.receiver import payloads as p
from tests.receiver.test_serve_process import serve  # noqa: F401  (the fixture)

HEADER_TIMEOUT_S = 2.0
MAX_CONNECTIONS = 300
# What the receiver may grow by under the attack (it grew by 843 MB before): the 64 MiB body
# budget (``--body-memory``) plus per-connection buffers.
RSS_BOUND_MB = 150


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def delivery(i: int) -> bytes:
    payload = p.push(branch=f"release/{i}")
    body = p.body(payload)
    head = "".join(f"{k}: {v}\r\n" for k, v in p.headers(payload, key=f"valid-{i}").items())
    return (
        f"POST /hooks/gitlab HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


async def status_of(reader: asyncio.StreamReader) -> int:
    line = await reader.readline()
    return int(line.split(b" ", 2)[1]) if line else 0


async def attack(port: int, pid: int) -> dict[str, Any]:
    samples: list[float] = []
    stop = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def sample() -> None:
        while not stop.is_set():
            samples.append(rss_mb(pid))
            await asyncio.sleep(0.05)

    async def open_conn() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        held.append(writer)
        return reader, writer

    size = 5 * 1000 * 1000
    prefix = b'{"project": {"path_with_namespace": "demo/app"}, "x": "'
    filler = memoryview(prefix + b"a" * (size - 100 - len(prefix)))  # shared, sent in slices

    async def almost_whole_body() -> None:
        payload = p.push()
        head = "".join(f"{k}: {v}\r\n" for k, v in p.headers(payload).items())
        try:
            _, writer = await open_conn()
            writer.write(
                f"POST /hooks/gitlab HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {size}\r\n\r\n".encode()
            )
            async with asyncio.timeout(15):
                for at in range(0, len(filler), 256 * 1024):
                    writer.write(filler[at : at + 256 * 1024])
                    await writer.drain()
        except (OSError, TimeoutError):
            pass  # refused (503 + close) or held: both are the server's choice

    trickle_lifetimes: list[float] = []

    async def trickle() -> None:
        reader, writer = await open_conn()
        started = time.monotonic()
        try:
            writer.write(b"POST /hooks/gitlab HTTP/1.1\r\n")
            while time.monotonic() - started < 20:
                writer.write(b"X")
                await writer.drain()
                try:
                    if await asyncio.wait_for(reader.read(100), 0.2) == b"":
                        break
                except TimeoutError:
                    continue
        except OSError:
            pass
        trickle_lifetimes.append(time.monotonic() - started)

    idle_closed = 0

    async def idle() -> None:
        nonlocal idle_closed
        try:
            reader, _ = await open_conn()
            if await asyncio.wait_for(reader.read(100), 15) == b"":
                idle_closed += 1
        except (OSError, TimeoutError):
            pass

    answers: list[int] = []
    latencies: list[float] = []

    async def valid(i: int) -> None:
        started = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(delivery(i))
            answers.append(await asyncio.wait_for(status_of(reader), 10))
            writer.close()
        except (OSError, TimeoutError) as exc:
            answers.append(-1)
            print("valid delivery failed:", repr(exc))
        latencies.append(time.monotonic() - started)

    sampler = asyncio.create_task(sample())
    baseline = rss_mb(pid)
    tasks = []
    for _ in range(10):  # 1,000 idle connections, in bursts: beyond the cap the oldest go
        tasks += [asyncio.create_task(idle()) for _ in range(100)]
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    # The newest connections now: only the header deadline can close these.
    tasks += [asyncio.create_task(trickle()) for _ in range(50)]
    await asyncio.sleep(0.1)
    tasks += [asyncio.create_task(almost_whole_body()) for _ in range(150)]
    valid_tasks = []
    for i in range(120):  # 6 s of valid deliveries while the attack goes on
        valid_tasks.append(asyncio.create_task(valid(i)))
        await asyncio.sleep(0.05)
    await asyncio.gather(*valid_tasks)
    await asyncio.wait(tasks, timeout=20)
    stop.set()
    await sampler
    for writer in held:
        writer.close()
    return {
        "baseline": baseline,
        "peak": max(samples),
        "answers": answers,
        "latencies": latencies,
        "trickles": trickle_lifetimes,
        "idle_closed": idle_closed,
    }


@pytest.mark.slow
def test_slow_clients_cannot_exhaust_memory_or_connections(serve: Any, tmp_path: Path) -> None:  # noqa: F811
    server = serve(
        "--dispatch",
        "none",
        "--workers",
        "0",
        "--log-level",
        "warning",
        "--header-timeout",
        str(HEADER_TIMEOUT_S),
        "--max-connections",
        str(MAX_CONNECTIONS),
    )
    for _ in range(20):  # warm up: the baseline is a receiver that has served deliveries
        payload = p.push()
        httpx.post(
            server.url + "/hooks/gitlab", content=p.body(payload), headers=p.headers(payload)
        )
    result = asyncio.run(attack(server.port, server.proc.pid))
    latencies = sorted(result["latencies"])
    print(
        f"RSS {result['baseline']:.0f} -> peak {result['peak']:.0f} MB;"
        f" valid p50 {latencies[len(latencies) // 2] * 1000:.1f} ms,"
        f" max {latencies[-1] * 1000:.1f} ms; trickles closed after"
        f" {min(result['trickles']):.2f}-{max(result['trickles']):.2f} s"
    )
    assert result["answers"] == [202] * 120, result["answers"]
    growth = result["peak"] - result["baseline"]
    assert growth < RSS_BOUND_MB, f"RSS grew by {growth:.0f} MB"
    # Every trickle was closed by the header deadline.
    assert len(result["trickles"]) == 50
    assert min(result["trickles"]) > HEADER_TIMEOUT_S - 0.5
    assert max(result["trickles"]) < HEADER_TIMEOUT_S + 3
    # Idle connections beyond the cap were closed, and the rest by the header deadline.
    assert result["idle_closed"] == 1000
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_a_body_that_stops_arriving_is_answered_408_and_closed(serve: Any) -> None:  # noqa: F811
    server = serve("--dispatch", "none", "--workers", "0", "--body-timeout", "1")
    payload = p.push()
    head = "".join(f"{k}: {v}\r\n" for k, v in p.headers(payload).items())
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            f"POST /hooks/gitlab HTTP/1.1\r\nHost: x\r\n{head}Content-Length: 5000\r\n\r\n".encode()
            + b'{"ref": '
        )
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert time.monotonic() - started < 5
    good = httpx.post(
        server.url + "/hooks/gitlab", content=p.body(payload), headers=p.headers(payload)
    )
    assert good.status_code == 202


@pytest.mark.slow
def test_sigterm_does_not_hang_on_a_wedged_intake(serve: Any) -> None:  # noqa: F811
    server = serve("--dispatch", "none", "--workers", "0")
    tasks = Path(f"/proc/{server.proc.pid}/task").iterdir()
    [intake] = [int(c) for task in tasks for c in (task / "children").read_text().split()]
    os.kill(intake, signal.SIGSTOP)
    payload = p.push()
    answers: list[Any] = []

    def deliver() -> None:
        try:
            answers.append(
                httpx.post(
                    server.url + "/hooks/gitlab",
                    content=p.body(payload),
                    headers=p.headers(payload),
                    timeout=90,
                ).status_code
            )
        except httpx.TransportError as exc:
            answers.append(type(exc).__name__)

    sender = threading.Thread(target=deliver)
    sender.start()
    time.sleep(0.5)
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(75)
    sender.join(10)
    assert time.monotonic() - started < 75
    assert answers and answers[0] != 202  # never acknowledged: GitLab resends it
    assert (
        not Path(f"/proc/{intake}").exists()
        or "Z" in Path(f"/proc/{intake}/stat").read_text().split()[2]
    )
