"""Where a delivery's CPU goes: ``conveyor serve`` under wrk, split by process and thread.

    .venv/bin/python bench/intake/cpu_split.py [--rounds 3] [--baseline SRC]

One ``wrk -t2 -c32 -d10s`` run (as ``run.py``) against a fresh ``conveyor serve --dispatch none``,
then, per request: the serving process's user and system CPU (its event loop thread apart from
its other threads: the workers, the checkpointer, the pruner), the intake process's, wrk's
own, and how idle the machine stayed. ``--baseline SRC`` alternates with a server run from
another checkout's ``src``, so that each pair shares the machine's state of the moment.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import run
from run import payload

TICK = os.sysconf("SC_CLK_TCK")


def _ticks(stat: Path) -> tuple[int, int]:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def _threads(pid: int) -> dict[int, tuple[int, int]]:
    out: dict[int, tuple[int, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = _ticks(task / "stat")
        except OSError:  # the thread ended meanwhile
            continue
    return out


def _child(pid: int) -> int | None:
    """The intake process (started by whichever thread of ``pid`` ran the receiver's start);
    ``None`` for a server without one (the floor)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        if children:
            return int(children[0])
    return None


def _intake_ticks(pid: int | None) -> tuple[int, int]:
    return _ticks(Path(f"/proc/{pid}/stat")) if pid is not None else (0, 0)


def _machine() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return values[3] + values[4], sum(values)  # idle + iowait, all


def measure(kind: str, tmp: Path, body: Path, extra: Sequence[str] = ()) -> dict[str, Any]:
    """One wrk run against a fresh ``kind`` server (``extra``: more ``conveyor serve`` options)."""
    server = run.start(kind, tmp, extra)
    try:
        run.wrk(server.port, body, 2, 2, 32)  # warm-up
        intake = _child(server.proc.pid)
        if intake is None and kind != "floor":
            raise SystemExit(f"{kind}: conveyor serve has no intake process")
        threads0, intake0, machine0 = (
            _threads(server.proc.pid),
            _intake_ticks(intake),
            _machine(),
        )
        started = time.monotonic()
        usage0 = os.times()
        res = run.wrk(server.port, body, 10, 2, 32)
        usage1 = os.times()
        threads1, intake1, machine1 = (
            _threads(server.proc.pid),
            _intake_ticks(intake),
            _machine(),
        )
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    n = max(res["requests"], 1)

    def per(ticks: float) -> float:
        return round(ticks / TICK / n * 1e6, 1)

    def spent(tid: int) -> tuple[int, int]:
        (user1, sys1), (user0, sys0) = threads1[tid], threads0.get(tid, (0, 0))
        return user1 - user0, sys1 - sys0

    loop_user, loop_sys = spent(server.proc.pid)
    others = [sum(spent(tid)) for tid in threads1 if tid != server.proc.pid]
    wrk_cpu = (usage1.children_user - usage0.children_user) + (
        usage1.children_system - usage0.children_system
    )
    return {
        "server": kind,
        "per_s": round((res["requests"] - res["non2xx"]) / (res["duration_us"] / 1e6)),
        "loop_thread_user_us": per(loop_user),
        "loop_thread_sys_us": per(loop_sys),
        "other_threads_us": per(sum(others)),
        "busiest_other_thread_us": per(max(others, default=0)),
        "intake_user_us": per(intake1[0] - intake0[0]),
        "intake_sys_us": per(intake1[1] - intake0[1]),
        "wrk_us": round(wrk_cpu / n * 1e6, 1),
        "machine_idle_pct": round(
            100 * (machine1[0] - machine0[0]) / max(machine1[1] - machine0[1], 1)
        ),
        "seconds": round(elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another checkout's src, alternated")
    args = parser.parse_args()
    run.ensure_tools()
    kinds = ["conveyor"]
    if args.baseline is not None:
        run.BASELINE_SRC = args.baseline.resolve()
        kinds.append("baseline")
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-cpu-") as tmp_name:
        tmp = Path(tmp_name)
        body = tmp / "push.json"
        body.write_bytes(payload(1))
        for rnd in range(args.rounds):
            for kind in kinds if rnd % 2 == 0 else kinds[::-1]:
                print(json.dumps(measure(kind, tmp, body)), flush=True)


if __name__ == "__main__":
    main()
