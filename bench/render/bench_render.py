"""Render 1,000 specs (Jenkinsfile + config.xml) and report the time; the target is under 2 s.

Run on one core:  taskset -c 0 .venv/bin/python bench/render/bench_render.py
The specs are the examples in pipelines/ (templates merged), each copied 250 times under new
project and job names; loading and validation happen before the clock starts: only ``render`` is timed.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

from conveyor.jenkins.render import render
from conveyor.spec.load import load_spec
from conveyor.spec.model import Spec

ROOT = Path(__file__).resolve().parents[2]


def specs(count: int) -> list[Spec]:
    bases = [load_spec(p).spec for p in sorted((ROOT / "pipelines").glob("*.yml"))]
    out = []
    for i in range(count):
        base = bases[i % len(bases)]
        data = base.model_dump(by_alias=True, exclude={"extends"})
        data["project"] = f"bench/project-{i}"
        data["jenkins"]["job"] = f"bench/job-{i}"
        out.append(Spec.model_validate(data))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    corpus = specs(args.count)
    times = []
    size = 0
    for _ in range(args.repeat):
        start = time.perf_counter()
        jobs = [render(s) for s in corpus]
        times.append(time.perf_counter() - start)
        size = sum(len(j.jenkinsfile) + len(j.config_xml) for j in jobs)
    print(f"python {platform.python_version()} on {platform.machine()}")
    print(f"{args.count} specs rendered (Jenkinsfile + config.xml, {size / 1e6:.1f} MB of text)")
    print(
        f"best {min(times):.3f} s, median {statistics.median(times):.3f} s over {args.repeat} runs"
    )


if __name__ == "__main__":
    main()
