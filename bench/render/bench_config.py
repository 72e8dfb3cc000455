"""CPU time to render 1,000 specs, the config.xml share, and plan's drift comparison.

Run on one core:  taskset -c 0 .venv/bin/python bench/render/bench_config.py
Baseline in the same session: the same script with ``PYTHONPATH=<checkout of main>/src``.
Measures process CPU time (``time.process_time``), which a machine shared with other work disturbs
far less than wall time. Same corpus as bench_render.py (the pipelines/ examples, 1,000 copies).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

from bench_render import specs  # type: ignore[import-not-found]

from conveyor.jenkins.config_xml import normalize_config_xml, render_config_xml
from conveyor.jenkins.jenkinsfile import render_jenkinsfile
from conveyor.jenkins.render import render

CLONE = "https://gitlab.example.com/bench.git"


def cpu(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    corpus = specs(args.count)
    files = [render_jenkinsfile(s, clone_url=CLONE) for s in corpus]
    configs = [render_config_xml(s, f, clone_url=CLONE) for s, f in zip(corpus, files, strict=True)]
    rows = {
        "render (Jenkinsfile + config.xml)": lambda: [render(s, gitlab_url=CLONE) for s in corpus],
        "config.xml only": lambda: [
            render_config_xml(s, f, clone_url=CLONE) for s, f in zip(corpus, files, strict=True)
        ],
        "plan comparison (normalise both sides)": lambda: [
            normalize_config_xml(c) == normalize_config_xml(c) for c in configs
        ],
    }
    print(
        f"python {platform.python_version()}, {args.count} specs, CPU s best/median of {args.repeat}"
    )
    for name, fn in rows.items():
        best, median = cpu(fn, args.repeat)
        print(f"{name}: best {best:.3f} s, median {median:.3f} s")


if __name__ == "__main__":
    main()
