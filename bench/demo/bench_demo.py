"""Time the demo loop: from the second push event to the new version serving, warm build cache.

Runs `conveyor demo --json` ROUNDS times in one state directory (the first round warms the build
cache and is reported separately), then `conveyor demo --down`. Prints a Markdown section for
bench/RESULTS.md. Target: second push -> new version serving in under 20 s with a warm cache, and
zero failed requests during every switch.

    .venv/bin/python bench/demo/bench_demo.py --rounds 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path


def conveyor(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    return subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", *args, "--state", str(state)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="conveyor-bench-demo-"))
    rounds = []
    try:
        for _ in range(args.rounds):
            res = conveyor(state, "demo", "--json")
            if res.returncode != 0:
                sys.exit(f"demo failed:\n{res.stderr[-3000:]}")
            rounds.append(json.loads(res.stdout))
    finally:
        conveyor(state, "demo", "--down")
    warm = rounds[1:] or rounds
    switch = [r["switch_seconds"] for r in warm]
    push1 = [s["seconds"] for r in warm for s in r["steps"] if s["name"].startswith("push 1")]
    requests = [r["probe"]["requests"] for r in rounds]
    failures = [r["probe"]["failures"] for r in rounds]
    print("## Demo loop\n")
    print(
        "`conveyor demo` end to end (receiver, local runner, registry with auth, blue-green deploy "
        "behind caddy); a probe sends 50 requests/s to the service during the second push.\n"
    )
    print(f"- Command: `.venv/bin/python bench/demo/bench_demo.py --rounds {args.rounds}`")
    print(f"- Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(
        f"- Result ({datetime.now(UTC):%Y-%m-%d}): second push -> new version serving, warm cache: "
        f"**median {statistics.median(switch):.1f} s** (rounds: "
        + ", ".join(f"{s:.1f}" for s in switch)
        + " s; target < 20 s)"
    )
    print(
        f"- First round (fresh state directory; the engine may hold layers of earlier runs): switch {rounds[0]['switch_seconds']:.1f} s"
    )
    print(
        "- First push (test, build, push, first deploy), warm: median "
        f"{statistics.median(push1):.1f} s"
    )
    print(f"- Requests during the switches: {requests}; failed: {failures} (must be all 0)")


if __name__ == "__main__":
    main()
