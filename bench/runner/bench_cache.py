"""Benchmark: a stage's cache volume makes the second run faster.

The stage fills its cache the way a dependency fetch does when the cache is cold (here: produce and
compress a ~50 MB artefact with busybox, deterministic and offline), and reuses it when warm. Each
round uses a fresh volume: run 1 is cold, run 2 warm. Reports stage and whole-run durations.

    .venv/bin/python bench/runner/bench_cache.py [--rounds 3]

Needs a Docker engine and the local busybox image (scripts/base-images.sh). Removes its volume and
temp dirs.
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import statistics
import subprocess
import tempfile
from pathlib import Path

from conveyor.pipeline.context import Trigger
from conveyor.runner.execute import run_pipeline
from conveyor.runner.output import PlainOutput
from conveyor.spec.model import Spec

FILL = (
    "if [ -s /cache/deps.gz ]; then echo cache-hit; else "
    "seq 1 6000000 | gzip -6 > /cache/deps.gz; echo cache-miss; fi; "
    "gzip -dc /cache/deps.gz | tail -1"
)


def spec_for(volume: str) -> Spec:
    return Spec.model_validate(
        {
            "apiVersion": "conveyor/v1",
            "project": "bench/cache",
            "jenkins": {"job": "bench/cache", "agent": {"image": "busybox", "docker": "none"}},
            "stages": [
                {"name": "deps", "run": [FILL], "cache": [{"volume": volume, "path": "/cache"}]}
            ],
        }
    )


def one_round(workdir: Path, state: Path) -> tuple[float, float, float, float]:
    volume = f"conveyor-bench-{secrets.token_hex(4)}-cache"
    trigger = Trigger(kind="push", project="bench/cache", sha="b" * 40, branch="main")
    try:
        out: list[tuple[float, float]] = []
        for expected in ("cache-miss", "cache-hit"):
            log = io.StringIO()
            result = run_pipeline(
                spec_for(volume),
                trigger,
                workdir=workdir,
                state_dir=state,
                sink=PlainOutput(log, summary=False),
                environ=os.environ,
            )
            assert result.succeeded and expected in log.getvalue(), log.getvalue()
            out.append((result.stages[0].duration, result.duration))
        return out[0][0], out[1][0], out[0][1], out[1][1]
    finally:
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True, check=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        for _ in range(args.rounds):
            rows.append(one_round(Path(tmp), Path(tmp) / "state"))
    cold = [r[0] for r in rows]
    warm = [r[1] for r in rows]
    print("round  cold-stage  warm-stage  cold-run  warm-run")
    for i, (cs, ws, cr, wr) in enumerate(rows, 1):
        print(f"{i:>5}  {cs:9.2f}s  {ws:9.2f}s  {cr:7.2f}s  {wr:7.2f}s")
    print(
        f"median stage: cold {statistics.median(cold):.2f}s, warm {statistics.median(warm):.2f}s "
        f"({statistics.median(cold) / statistics.median(warm):.1f}x faster)"
    )


if __name__ == "__main__":
    main()
