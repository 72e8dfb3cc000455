"""Receiver intake benchmark: durable server vs the same server answering without storing.

    .venv/bin/python bench/intake/run.py [--count 20000] [--duration 15] [--rate 500]

Variants: ``durable`` (events committed to SQLite before the 2xx; no workers, so the queue
only grows: the acknowledgement path alone), ``durable+workers`` (the same with 2 workers
draining every event at once with ``--dispatch none``: claim, parse, finish, two more
transactions per event, competing for the same 2 cores), ``baseline`` (the same app answering
without storing). For each variant and each mode (closed-loop throughput, open-loop fixed
rate), a fresh server is started on loopback with an empty state directory, warmed up,
measured with ``loadgen.py``, then stopped. After each durable run the
stored rows are counted and must equal the 2xx answers. Prints one JSON line per run and a
Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).parent
SECRET = "bench-secret-not-real"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(state: Path, store: bool, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cmd = [
        sys.executable,
        str(HERE / "server.py"),
        "--port",
        str(port),
        "--state",
        str(state),
        "--workers",
        str(workers),
    ]
    if not store:
        cmd.append("--no-store")
    env = {**os.environ, "CONVEYOR_SECRET": SECRET}
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("server did not start")
        time.sleep(0.1)


def loadgen(port: int, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(HERE / "loadgen.py"), *args, "--port", str(port), "--secret", SECRET],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def stored_rows(state: Path) -> int:
    conn = sqlite3.connect(state / "receiver" / "events.db")
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def measure(variant: str, mode_args: list[str], warmup: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        state = Path(tmp)
        proc, port = start_server(
            state, store=variant != "baseline", workers=2 if variant == "durable+workers" else 0
        )
        try:
            loadgen(port, "throughput", "--count", str(warmup), "--connections", "8")
            result = loadgen(port, *mode_args)
            if variant != "baseline":
                time.sleep(0.5)
                result["stored_rows"] = stored_rows(state) - warmup
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        result["variant"] = variant
        return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--warmup", type=int, default=500)
    args = parser.parse_args()
    print(f"# {platform.platform()} python {platform.python_version()} cpus={os.cpu_count()}")
    print(f"# load average before: {os.getloadavg()}")
    runs: list[dict[str, object]] = []
    modes = {
        "throughput": [
            "throughput",
            "--count",
            str(args.count),
            "--duration",
            str(args.duration),
            "--connections",
            str(args.connections),
        ],
        "rate": [
            "rate",
            "--rate",
            str(args.rate),
            "--duration",
            str(args.duration),
            "--count",
            str(int(args.rate * args.duration)),
        ],
    }
    for _mode, mode_args in modes.items():
        for variant in ("durable", "durable+workers", "baseline"):
            result = measure(variant, mode_args, args.warmup)
            result["loadavg_1m"] = round(os.getloadavg()[0], 2)
            print(json.dumps(result), flush=True)
            runs.append(result)
    print()
    print(
        "| variant | mode | sent | 2xx | non-2xx | 2xx/s | p50 ms | p90 ms | p99 ms | max ms | stored |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r['variant']} | {r['mode']} | {r['sent']} | {r['accepted']} | {r['non_2xx'] or 0} |"
            f" {r['accepted_per_s']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | {r['max_ms']} |"
            f" {r.get('stored_rows', '-')} |"
        )
    by = {(str(r["variant"]), str(r["mode"]).split()[0]): r for r in runs}
    durable, baseline = by[("durable", "throughput")], by[("baseline", "throughput")]
    ratio = float(str(durable["accepted_per_s"])) / float(str(baseline["accepted_per_s"]))
    print(f"\ndurable/baseline throughput ratio: {ratio:.2f}")
    print(f"# load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
