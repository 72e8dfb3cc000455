"""Dashboard bench: the events page over 100,000 stored events, and intake with a page streaming
a live log vs without (same run, rounds alternated).

    .venv/bin/python bench/dashboard/run.py [--events 100000] [--repeat 21] [--count 3000]

Both parts run a real ``conveyor serve --dispatch none`` on 127.0.0.1 (free port, temp state).
Part 1 fills the queue directly (SQLite, before the server starts), then times GET requests on
one keep-alive connection: render time as the client sees it, median of ``--repeat``.
Part 2 drives intake with ``bench/intake/loadgen.py throughput`` (16 connections, ``--count``
deliveries per round), alternating rounds without and with an SSE client streaming a running
run's log (``/dashboard/runs/N/stream``) that a writer (:class:`conveyor.runner.live.LiveLog`,
as in a real run) feeds 50 lines/s. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from conveyor.receiver.queue import open_database
from conveyor.runner.history import History
from conveyor.runner.live import LiveLog
from conveyor.runner.output import PlainOutput

ROOT = Path(__file__).resolve().parents[2]
SECRET = "bench-secret-not-real"
SPEC = ROOT / "bench" / "intake" / "spec.yml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, state: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
        (state.parent / "none.toml").write_text("")
        env |= {"CONVEYOR_SECRET": SECRET, "CONVEYOR_CONFIG": str(state.parent / "none.toml")}
        cmd = [
            sys.executable,
            "-m",
            "conveyor.cli.main",
            "serve",
            str(SPEC),
            "--port",
            str(self.port),
            "--state",
            str(state),
            "--log-level",
            "warning",
            *args,
        ]
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise SystemExit("serve did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def fill(state: Path, n: int) -> None:
    conn = open_database(state / "receiver" / "events.db", synchronous="NORMAL")
    now = time.time()
    statuses = ["done"] * 90 + ["ignored"] * 8 + ["failed"]
    rows = []
    for i in range(n):
        status = "dead" if i % 1000 == 0 else statuses[i % len(statuses)]
        project = "bench/other" if i % 10 == 0 else "bench/app"
        rows.append(
            (
                f"k{i}",
                "Push Hook",
                "push",
                project,
                f"refs/heads/b{i % 50}",
                "a" * 40,
                status,
                "branch not in triggers" if status == "ignored" else None,
                "boom" if status in ("dead", "failed") else None,
                now - (n - i),
                now,
                b'{"object_kind": "push"}',
            )
        )
    with conn:
        conn.executemany(
            "INSERT INTO events (idempotency_key, event_header, kind, project, ref, sha, status,"
            " reason, last_error, received_at, updated_at, body) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
    conn.close()


def time_pages(url: str, repeat: int, n: int) -> dict[str, dict[str, float]]:
    pages = {
        "first page": "/dashboard/events",
        "deep page (before=n/2)": f"/dashboard/events?before={n // 2}",
        "status=dead (0.1%)": "/dashboard/events?status=dead",
        "project=bench/other": "/dashboard/events?project=bench/other",
    }
    out = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for label, path in pages.items():
            client.get(path)  # warm
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                answer = client.get(path)
                times.append((time.perf_counter() - start) * 1000)
                assert answer.status_code == 200 and answer.text.count('<tr class="status-') == 50
            times.sort()
            out[label] = {
                "median_ms": round(statistics.median(times), 1),
                "p90_ms": round(times[int(0.9 * (len(times) - 1))], 1),
            }
    return out


def loadgen(port: int, count: int) -> dict[str, object]:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "intake" / "loadgen.py"),
            "throughput",
            "--port",
            str(port),
            "--secret",
            SECRET,
            "--count",
            str(count),
            "--connections",
            "16",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def feed(live: LiveLog, stop: threading.Event) -> None:
    """A running stage's output: 50 lines/s through the runner's live log."""
    i = 0
    while not stop.wait(0.02):
        i += 1
        live.line("test", f"log line {i}")


def follow(url: str, stop: threading.Event, streamed: list[int]) -> None:
    """A dashboard page's stream of that log (as the page's EventSource reads it)."""
    with httpx.stream("GET", url, timeout=None) as answer:
        for line in answer.iter_lines():
            if line.startswith("event: line"):
                streamed[0] += 1
            if stop.is_set():
                return


def intake(tmp: Path, count: int, rounds: int) -> dict[str, object]:
    state = tmp / "intake" / "state"
    state.mkdir(parents=True)
    server = Server(state, "--dispatch", "none")
    history = History(state)
    number = history.start("bench/app", str(SPEC), {"ref": "main"})
    live = LiveLog(history, PlainOutput(open(os.devnull, "w")))  # noqa: SIM115
    live.run_started(number, "bench/app")
    live.stage_started("test")
    results: dict[str, list[float]] = {"without": [], "with": []}
    streamed: list[int] = [0]
    stream_url = f"{server.url}/dashboard/runs/{number}/stream"
    try:
        for _ in range(rounds):
            for mode in ("without", "with"):
                stop = threading.Event()
                threads = []
                if mode == "with":
                    threads = [
                        threading.Thread(target=feed, args=(live, stop)),
                        threading.Thread(target=follow, args=(stream_url, stop, streamed)),
                    ]
                    for t in threads:
                        t.start()
                    time.sleep(1)
                res = loadgen(server.port, count)
                stop.set()
                for t in threads:
                    t.join(10)
                results[mode].append(float(res["accepted_per_s"]))  # type: ignore[arg-type]
    finally:
        server.stop()
    without, with_ = statistics.median(results["without"]), statistics.median(results["with"])
    return {
        "accepted_per_s": results,
        "median_without": without,
        "median_with": with_,
        "ratio_with_over_without": round(with_ / without, 3),
        "lines_streamed": streamed[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--part", choices=["all", "pages", "intake"], default="all")
    args = parser.parse_args()
    out: dict[str, object] = {"events": args.events, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.part in ("all", "pages"):
            state = tmp / "pages" / "state"
            state.mkdir(parents=True)
            fill(state, args.events)
            server = Server(state, "--dispatch", "none", "--workers", "0")
            try:
                out["pages"] = time_pages(server.url, args.repeat, args.events)
            finally:
                server.stop()
        if args.part in ("all", "intake"):
            out["intake"] = intake(tmp, args.count, args.rounds)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
