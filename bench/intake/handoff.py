"""The intake handoff's cost on the event loop thread, without HTTP.

    .venv/bin/python bench/intake/handoff.py [--rounds 2] [--tasks 32] [--each 400]

``conveyor.receiver.app._hook`` (the hook's whole handler: headers, body, token, parse checks,
metrics, answer) is called by ``--tasks`` concurrent tasks on uvloop, ``--each`` deliveries a
task (the same ~800-byte push body as ``run.py``, distinct Idempotency-Keys), with either an
in-memory intake that answers "queued" after one loop turn (``memory``) or the real
:class:`~conveyor.receiver.queue.intake.IntakeWriter` and its intake process, committing each
delivery (``process``). Each round runs both, in alternating order, in fresh processes, and
reports the loop thread's CPU a delivery (``time.thread_time``) and the rate: the difference
is what handing a delivery to the intake process costs the loop, and the ``process`` rate is
the intake process's own limit when the loop has nothing else to do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def child(mode: str, tasks: int, each: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    import run
    import uvloop
    from loadgen import payload

    tmp = Path(tempfile.mkdtemp(prefix="conveyor-bench-handoff-"))
    (tmp / "none.toml").write_text("")
    os.environ.update(CONVEYOR_SECRET=run.SECRET, CONVEYOR_CONFIG=str(tmp / "none.toml"))
    from conveyor.cli.serve import build_receiver
    from conveyor.receiver import app as hook
    from conveyor.receiver.admission import RoutingFeed
    from conveyor.receiver.queue import Accepted, Delivery, Status
    from conveyor.receiver.queue.intake import IntakeWriter

    receiver = build_receiver(
        (run.SPEC,),
        state=tmp,
        dispatch="none",
        workers=0,
        max_body=25_000_000,
        require_signature=False,
    )
    body = payload(1)
    statuses: set[int] = set()

    class MemoryIntake:
        async def deliver(self, delivery: Delivery) -> Accepted:
            await asyncio.sleep(0)
            return Accepted(event_id=1, duplicate=False, status=Status.QUEUED)

    def scope(key: str) -> dict[str, Any]:
        headers = [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"x-gitlab-event", b"Push Hook"),
            (b"x-gitlab-token", run.TOKEN.encode()),
            (b"idempotency-key", key.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        path = "/hooks/gitlab"
        client = ("127.0.0.1", 5000)
        return {
            "type": "http",
            "method": "POST",
            "path": path,
            "client": client,
            "headers": headers,
        }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    async def sender(name: str, count: int) -> None:
        for i in range(count):
            await hook._hook(receiver, scope(f"{name}-{i}"), receive, send)  # type: ignore[arg-type]

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        if mode == "memory":
            receiver.intake = MemoryIntake()  # type: ignore[assignment]
        else:
            routing = RoutingFeed(receiver.admission)
            receiver.intake = await asyncio.to_thread(
                IntakeWriter, tmp / "events.db", loop=loop, routing=routing
            )
        try:
            await asyncio.gather(*(sender(f"warm{t}", 50) for t in range(tasks)))
            started, cpu = time.perf_counter(), time.thread_time()
            await asyncio.gather(*(sender(f"t{t}", each) for t in range(tasks)))
            wall, cpu = time.perf_counter() - started, time.thread_time() - cpu
        finally:
            if mode == "process":
                await asyncio.to_thread(receiver.intake.close)
        n = tasks * each
        return {
            "intake": mode,
            "per_s": round(n / wall),
            "loop_thread_us": round(cpu / n * 1e6, 1),
            "statuses": sorted(statuses),
        }

    return uvloop.run(main())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--each", type=int, default=400)
    args = parser.parse_args()
    modes = ["memory", "process"]
    for rnd in range(args.rounds):
        for mode in modes if rnd % 2 == 0 else modes[::-1]:
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(args.tasks), str(args.each)],
                capture_output=True,
                text=True,
                check=True,
            )
            print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
