"""Instructions a delivery costs the intake process, counted by valgrind: the same on a busy machine.

    .venv/bin/python bench/intake/instructions.py [--baseline SRC] [--parts admit,store,serve]

Timings on this machine move ±25% from one minute to the next, and about 3x between days
(bench/RESULTS.md); a change worth 10% of the intake process's CPU cannot be seen in them.
Instructions can: ``valgrind --tool=callgrind`` counts every instruction a run executes, and
gives the same count on a busy machine as on a quiet one. Each part runs twice, for ``--small``
and ``--large`` deliveries (the same ~800-byte push body as ``run.py``, distinct
Idempotency-Keys, batches of ``--batch``); the difference over the extra deliveries is the cost
of one, without the interpreter's start and the imports:

* ``admit``: :meth:`conveyor.receiver.admission.Admission.admit` (parse, check, route);
* ``store``: the above, then :class:`conveyor.receiver.queue.intake.BatchStore` commits the
  events (``synchronous=OFF``: an fsync is the disk's time, not instructions); the store's own
  share is ``store`` minus ``admit``;
* ``serve``: ``intake_process.serve`` over in-memory pipes: unpickling the batches, routing,
  storing, the replies and the ``event stored`` log lines: the intake process's whole work.

``--baseline SRC`` counts another checkout's ``src`` too (``git archive HEAD src | tar -x -C
/tmp/base``) and reports the ratio. valgrind is installed with apt-get when missing (as root).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = ("admit", "store", "serve")


def child(part: str, count: int, batch: int) -> None:
    """The measured run (in valgrind): ``count`` deliveries through ``part``."""
    sys.path.insert(0, str(HERE))
    from loadgen import payload

    from conveyor.receiver import intake_process
    from conveyor.receiver.admission import Admission, RoutingFeed
    from conveyor.receiver.logs import setup_logging
    from conveyor.receiver.queue import Delivery, write_frame
    from conveyor.receiver.queue.intake import BatchStore
    from conveyor.receiver.routing import ProjectIds, Router
    from conveyor.spec.load import load_spec

    spec = load_spec(HERE / "spec.yml").spec
    admission = Admission(
        Router((spec,), ProjectIds.of({})), post_statuses=False, job_url=lambda spec: None
    )
    body = payload(1)
    now = time.time()
    deliveries = [
        Delivery("Push Hook", body, now, idempotency_key=f"key-{i}") for i in range(count)
    ]
    if part == "admit":
        for delivery in deliveries:
            admission.admit(delivery)
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = BatchStore(Path(tmp) / "queue.db")
        store._conn.execute("PRAGMA synchronous=OFF")
        if part == "store":
            events = [admission.admit(delivery) for delivery in deliveries]
            for start in range(0, count, batch):
                store.run(events[start : start + batch], [])
            return
        inbox = io.BytesIO()
        write_frame(inbox, ("routing", RoutingFeed(admission).setup()))
        for start in range(0, count, batch):
            write_frame(inbox, ("batch", deliveries[start : start + batch], []))
        inbox.seek(0)
        with open(os.devnull, "w", encoding="utf-8") as sink:
            setup_logging("info", sink, handler_class=intake_process.BatchedHandler)
            intake_process.serve(store, inbox, io.BytesIO())


def count_instructions(src: Path | None, part: str, count: int, batch: int) -> int:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/callgrind.out",
                sys.executable,
                __file__,
                "--child",
                part,
                str(count),
                str(batch),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"valgrind gave no count for {part}:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def per_delivery(src: Path | None, part: str, args: argparse.Namespace) -> float:
    small = count_instructions(src, part, args.small, args.batch)
    large = count_instructions(src, part, args.large, args.batch)
    return (large - small) / (args.large - args.small)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, help="another checkout's src, counted too")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--small", type=int, default=400)
    parser.add_argument("--large", type=int, default=1600)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    if any(p not in PARTS for p in parts):
        raise SystemExit(f"--parts: choose from {', '.join(PARTS)}")
    if shutil.which("valgrind") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "valgrind"], check=True)
    sources: list[tuple[str, Path | None]] = [("conveyor", None)]
    if args.baseline is not None:
        sources.append(("baseline", args.baseline.resolve()))
    jobs = [(name, src, part) for part in parts for name, src in sources]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = dict(
            zip(
                [(name, part) for name, _, part in jobs],
                pool.map(lambda job: per_delivery(job[1], job[2], args), jobs),
                strict=True,
            )
        )
    print(f"# {args.large - args.small} deliveries counted, batches of {args.batch}\n")
    names = [name for name, _ in sources]
    print("| part | " + " | ".join(f"{n} instructions/delivery" for n in names) + " | ratio |")
    print("|---|" + "---|" * len(names) + "---|")
    for part in parts:
        row = [f"{counts[(n, part)]:,.0f}" for n in names]
        ratio = (
            f"{counts[('conveyor', part)] / counts[('baseline', part)]:.3f}"
            if args.baseline is not None
            else "-"
        )
        print(f"| {part} | " + " | ".join(row) + f" | {ratio} |")
    if "admit" in parts and "store" in parts:
        own = {n: counts[(n, "store")] - counts[(n, "admit")] for n in names}
        ratio = f"{own['conveyor'] / own['baseline']:.3f}" if args.baseline is not None else "-"
        print("| store - admit | " + " | ".join(f"{own[n]:,.0f}" for n in names) + f" | {ratio} |")


if __name__ == "__main__":
    main()
