"""What a durable commit costs the disk at this moment: appends, each followed by ``fdatasync``.

    .venv/bin/python bench/intake/disk.py [--syncs 300] [--bytes 2048]

Each step appends ``--bytes`` to a file (a small WAL append: it is the sync that is measured,
not the bytes) and calls ``os.fdatasync``, as SQLite does at each commit with
``synchronous=FULL``. The machine's disk moves this cost from day to day, and conveyor's intake
rate with it (adnanh/webhook stores nothing and does not pay it), so ``run.py`` prints it before
and after its measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def sync_cost(directory: Path, *, syncs: int = 300, size: int = 2048) -> dict[str, Any]:
    """p50, p90 and p99 (ms) of one append and its ``fdatasync`` in ``directory``."""
    block = os.urandom(size)
    times: list[float] = []
    with tempfile.NamedTemporaryFile(dir=directory, prefix="sync-") as handle:
        fd = handle.fileno()
        for _ in range(syncs):
            start = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            times.append((time.perf_counter() - start) * 1000)
    cuts = statistics.quantiles(times, n=100)
    return {
        "syncs": syncs,
        "bytes": size,
        "p50_ms": round(cuts[49], 3),
        "p90_ms": round(cuts[89], 3),
        "p99_ms": round(cuts[98], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--syncs", type=int, default=300)
    parser.add_argument("--bytes", type=int, default=2048)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    print(json.dumps(sync_cost(args.dir, syncs=args.syncs, size=args.bytes)))


if __name__ == "__main__":
    main()
