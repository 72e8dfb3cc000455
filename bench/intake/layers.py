"""Where conveyor's CPU a delivery goes, layer by layer: the same server with layers cut off.

    .venv/bin/python bench/intake/layers.py [--rounds 3]

Each round measures (``cpu_split.measure``: one ``wrk -t2 -c32 -d10s`` run, CPU per request by
process and thread), in alternating order:

* ``conveyor``: ``conveyor serve --dispatch none`` as shipped;
* ``no workers``: the same with ``--workers 0`` (nothing claims the stored events);
* ``no intake``: a copy of ``src`` whose hook answers 202 where it would hand the delivery to
  the intake process (headers, body, token, parse checks, metrics: all of the event loop's
  own work, no intake process work, nothing stored), ``--workers 0``;
* ``body only``: a copy whose hook answers 202 once the body is read (uvicorn, conveyor's
  protocol, the middleware and the body's reading: what any receiver on this stack pays);
* ``floor``: ``floor.py``, the stack's least durable receiver (its writer is a thread).

The copies are made here from ``src`` by replacing one line each (the run stops if the line is
not found); they are measurement devices only, never served to anyone. Each layer's share is
the difference between neighbours: the hook's checks (``no intake`` - ``body only``), the
intake round trip and the intake process (``no workers`` - ``no intake``), the workers
(``conveyor`` - ``no workers``). Differences of CPU per request, not of throughput: a server
answering twice as fast spends less per request on the event loop's own turns.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import cpu_split
import run
from run import payload

ROOT = Path(__file__).resolve().parents[2]
APP = Path("conveyor/receiver/app.py")
ANSWER = '{0}return _Answer(202, {{"id": 1, "status": "queued"}})  # layers.py: {1}\n'
CUTS = {
    # after the body is read: nothing of conveyor's checks
    "body only": "    body = await _read_body(receiver, receive, declared, hold, early)\n",
    # where the routed delivery would go to the intake process
    "no intake": "            del payload  # only the raw body is kept while the event is committed\n",
}


def cut_copy(name: str, anchor: str, into: Path) -> Path:
    """A copy of ``src`` whose hook answers 202 right after ``anchor``."""
    src = into / name.replace(" ", "-")
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    path = src / APP
    text = path.read_text()
    if text.count(anchor) != 1:
        raise SystemExit(f"layers.py: {APP} no longer has the line to cut after: {anchor!r}")
    indent = anchor[: len(anchor) - len(anchor.lstrip())]
    path.write_text(text.replace(anchor, anchor + ANSWER.format(indent, name)))
    return src


def total(row: dict[str, Any]) -> float:
    keys = ("loop_thread_user_us", "loop_thread_sys_us", "other_threads_us")
    return float(sum(row[k] for k in keys) + row["intake_user_us"] + row["intake_sys_us"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    run.ensure_tools()
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-layers-") as tmp_name:
        tmp = Path(tmp_name)
        body = tmp / "push.json"
        body.write_bytes(payload(1))
        copies = {name: cut_copy(name, anchor, tmp) for name, anchor in CUTS.items()}
        variants: list[tuple[str, str, Path | None, tuple[str, ...]]] = [
            ("conveyor", "conveyor", None, ()),
            ("no workers", "conveyor", None, ("--workers", "0")),
            ("no intake", "baseline", copies["no intake"], ("--workers", "0")),
            ("body only", "baseline", copies["body only"], ("--workers", "0")),
            ("floor", "floor", None, ()),
        ]
        rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for rnd in range(args.rounds):
            for label, kind, src, extra in variants if rnd % 2 == 0 else variants[::-1]:
                run.BASELINE_SRC = src
                row = {"variant": label, **cpu_split.measure(kind, tmp, body, extra)}
                row["total_us"] = round(total(row), 1)
                rows[label].append(row)
                print(json.dumps(row), flush=True)
    print(
        "\n| variant | 2xx/s | loop thread µs | other threads µs | intake process µs "
        "| total µs/request | idle % |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, _, _, _ in variants:
        got = rows[label]

        def med(key: str, got: list[dict[str, Any]] = got) -> float:
            return float(statistics.median(float(r[key]) for r in got))

        loop = statistics.median(r["loop_thread_user_us"] + r["loop_thread_sys_us"] for r in got)
        intake = statistics.median(r["intake_user_us"] + r["intake_sys_us"] for r in got)
        print(
            f"| {label} | {med('per_s'):,.0f} | {loop:.0f} | {med('other_threads_us'):.0f} "
            f"| {intake:.0f} | {med('total_us'):.0f} | {med('machine_idle_pct'):.0f} |"
        )
    print(f"\nmedians of {args.rounds} rounds; floor: its writer thread is under other threads")


if __name__ == "__main__":
    main()
