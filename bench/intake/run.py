"""Receiver intake: ``conveyor serve`` against adnanh/webhook, the same load, one run.

    .venv/bin/python bench/intake/run.py [--rounds 2] [--duration 10] [--rate 500]

Servers (each fresh per measurement, on 127.0.0.1):

* ``conveyor``: the real CLI, ``conveyor serve bench/intake/spec.yml --dispatch none`` with its
  defaults (2 workers draining the queue, info logs to a file): every 2xx is an event committed
  to SQLite (WAL, ``synchronous=FULL``, group commit) before the answer.
* ``webhook``: Debian's adnanh/webhook 2.8.0, one hook checking ``X-Gitlab-Token`` and running
  ``/bin/true`` per delivery (what people deploy for this); it stores nothing.

Measurements, each for both servers:

* throughput: ``wrk -t2 -c32 -d10s`` with ``wrk.lua`` (the same ~800-byte push body, a distinct
  ``Idempotency-Key`` per request). Also the server's CPU time per request (``/proc``, children
  included: webhook's forks count), which the other work on a shared machine disturbs less.
* fixed rate: ``loadgen.py rate`` (our own open-loop generator: latency from each request's
  *scheduled* time, so stalls are not hidden; wrk2 is not in Debian) at ``--rate``/s.
* hostile: 4 unauthenticated senders looping 5 MB bodies (``hostile.py``) while valid
  deliveries arrive at 100/s (``loadgen.py rate``); the same without them beside it, and with
  the bodies padded so that their project comes after the 5 MB (``--padded``). Two more runs
  tell the receiver's share from the machine's: ``webhook`` under the same attack (the peer),
  and ``conveyor`` while the attack hits a ``webhook`` beside it instead (``attack on``): the
  attack's CPU is spent on the same 2 cores, but none of it in conveyor.

* ``--floor``: one more server, ``floor.py``: uvicorn, orjson and SQLite group commit with none
  of conveyor's checks, in throughput and fixed rate only. The gap from conveyor to it is
  conveyor's own code; the gap from it to webhook is the stack's.
* ``--baseline SRC``: a third server, ``conveyor serve`` run from another checkout's ``src``
  (e.g. ``git archive main src | tar -x -C /tmp/main``), measured the same way in the same run:
  the code before a change beside it, on the same (possibly busy) machine.

After every conveyor run the stored rows are counted against the 2xx answers. The disk's cost of
a durable commit (``disk.py``: an append and its ``fdatasync``) is printed before and after:
conveyor pays it, webhook does not, and it moves from day to day. ``wrk`` and
``webhook`` are installed with apt-get when missing (as root). Prints JSON lines, then Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SPEC = HERE / "spec.yml"
SECRET = "bench-secret-not-real"
sys.path.insert(0, str(HERE))

from disk import sync_cost  # noqa: E402
from loadgen import PROJECT, payload  # noqa: E402

from conveyor.tokens import project_token  # noqa: E402

TOKEN = project_token(SECRET, PROJECT)


def ensure_tools() -> None:
    missing = [name for name in ("wrk", "webhook") if shutil.which(name) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"bench needs {missing}: sudo apt-get install -y {' '.join(missing)}")
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its children: waited-for ones (webhook's forks) and live ones
    (conveyor's intake process)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:  # the thread ended meanwhile
            continue
        for child in children:
            try:
                child_fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # the child ended meanwhile (webhook's forks)
                continue
            ticks += sum(int(v) for v in child_fields[11:13])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    kind: str
    proc: subprocess.Popen[bytes]
    port: int
    state: Path

    def rows(self) -> int:
        if self.kind == "webhook":
            return 0
        db = self.state / ("floor.db" if self.kind == "floor" else "receiver/events.db")
        conn = sqlite3.connect(db)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        finally:
            conn.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


BASELINE_SRC: Path | None = None  # --baseline


def start(kind: str, tmp: Path, extra: Sequence[str] = ()) -> Server:
    """Start ``kind``; ``extra``: more ``conveyor serve`` options (conveyor and baseline)."""
    port = free_port()
    state = tmp / f"{kind}-{port}"
    state.mkdir()
    log = (state / "server.log").open("wb")
    if kind in ("conveyor", "baseline"):
        (state / "none.toml").write_text("")
        env = {**os.environ, "CONVEYOR_SECRET": SECRET, "CONVEYOR_CONFIG": str(state / "none.toml")}
        if kind == "baseline":
            assert BASELINE_SRC is not None
            env["PYTHONPATH"] = str(BASELINE_SRC)
        cmd = [sys.executable, "-m", "conveyor.cli.main", "serve", str(SPEC), "--dispatch", "none"]
        cmd += ["--port", str(port), "--state", str(state), *extra]
    elif kind == "floor":
        env = dict(os.environ)
        cmd = [sys.executable, str(HERE / "floor.py"), "--port", str(port), "--token", TOKEN]
        cmd += ["--db", str(state / "floor.db")]
    else:
        hooks = [
            {
                "id": "gitlab",
                "execute-command": "/bin/true",
                "trigger-rule": {
                    "match": {
                        "type": "value",
                        "value": TOKEN,
                        "parameter": {"source": "header", "name": "X-Gitlab-Token"},
                    }
                },
            }
        ]
        (state / "hooks.json").write_text(json.dumps(hooks))
        env = dict(os.environ)
        cmd = [
            "webhook",
            "-hooks",
            str(state / "hooks.json"),
            "-ip",
            "127.0.0.1",
            "-port",
            str(port),
        ]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(kind, proc, port, state)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise SystemExit(f"{kind} did not start: {(state / 'server.log').read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if kind == "webhook":
                    return server
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return server
        except OSError:
            pass
        time.sleep(0.1)


def wrk(
    port: int, body_file: Path, duration: float, threads: int, connections: int
) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration:g}s",
            "-s",
            str(HERE / "wrk.lua"),
            f"http://127.0.0.1:{port}/hooks/gitlab",
            "--",
            TOKEN,
            str(body_file),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("JSON "))
    data: dict[str, Any] = json.loads(line[5:])
    return data


def last_json(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd``; the JSON object on the last line it printed."""
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return data


def loadgen(port: int, *args: str) -> dict[str, Any]:
    return last_json(
        [sys.executable, str(HERE / "loadgen.py"), *args, "--port", str(port), "--secret", SECRET]
    )


def throughput(kind: str, tmp: Path, args: argparse.Namespace, body_file: Path) -> dict[str, Any]:
    server = start(kind, tmp)
    try:
        wrk(server.port, body_file, 2, args.threads, args.connections)  # warm-up
        time.sleep(0.5)
        rows_before, cpu_before = server.rows(), cpu_seconds(server.proc.pid)
        res = wrk(server.port, body_file, args.duration, args.threads, args.connections)
        cpu = cpu_seconds(server.proc.pid) - cpu_before
        time.sleep(0.5)
        stored = server.rows() - rows_before
    finally:
        server.stop()
    acked = res["requests"] - res["non2xx"]
    out: dict[str, Any] = {
        "server": kind,
        "mode": "wrk throughput",
        "requests": res["requests"],
        "non_2xx": res["non2xx"],
        "socket_errors": res["connect_err"]
        + res["read_err"]
        + res["write_err"]
        + res["timeout_err"],
        "per_s": round(acked / (res["duration_us"] / 1e6), 1),
        "p50_ms": res["p50_us"] / 1000,
        "p99_ms": res["p99_us"] / 1000,
        "cpu_us_per_request": round(cpu / max(res["requests"], 1) * 1e6),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    if kind != "webhook":
        out["stored"] = stored
        # wrk abandons the requests in flight when its time is up: they may be stored unanswered.
        out["stored_covers_2xx"] = acked <= stored <= acked + args.connections
    return out


def fixed_rate(kind: str, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    server = start(kind, tmp)
    try:
        loadgen(server.port, "throughput", "--count", "500", "--connections", "8")
        res = loadgen(
            server.port, "rate", "--rate", str(args.rate), "--duration", str(args.duration)
        )
    finally:
        server.stop()
    return {"server": kind, **res, "loadavg_1m": round(os.getloadavg()[0], 2)}


def hostile(
    tmp: Path,
    args: argparse.Namespace,
    senders: int,
    kind: str,
    *,
    padded: bool = False,
    attacked: str | None = None,
) -> dict[str, Any]:
    """Valid deliveries at 100/s to ``kind`` while ``senders`` attack it, or, with ``attacked``,
    a server of that kind started beside it (the control: the attack's load, elsewhere)."""
    server = start(kind, tmp)
    target = server
    attack = None
    try:
        if attacked is not None:
            target = start(attacked, tmp)
        loadgen(server.port, "throughput", "--count", "500", "--connections", "8")
        if senders:
            attack = subprocess.Popen(
                [
                    *(sys.executable, str(HERE / "hostile.py"), "--port", str(target.port)),
                    *("--senders", str(senders), "--duration", str(args.duration + 2)),
                    *(("--padded",) if padded else ()),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(1)
        res = loadgen(server.port, "rate", "--rate", "100", "--duration", str(args.duration))
        if attack is not None:
            res.update(json.loads(attack.communicate(timeout=60)[0].strip().splitlines()[-1]))
    finally:
        if attack is not None and attack.poll() is None:
            attack.kill()
        server.stop()
        if target is not server:
            target.stop()
    return {
        "server": kind,
        "hostile_senders": senders,
        "padded": padded,
        "attack_on": attacked or kind,
        **res,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--skip-hostile", action="store_true")
    parser.add_argument("--floor", action="store_true", help="measure floor.py as well")
    parser.add_argument(
        "--baseline", type=Path, help="another checkout's src/: its conveyor is measured too"
    )
    args = parser.parse_args()
    global BASELINE_SRC
    BASELINE_SRC = args.baseline.resolve() if args.baseline else None
    kinds = (
        "webhook",
        "conveyor",
        *(("baseline",) if BASELINE_SRC else ()),
        *(("floor",) if args.floor else ()),
    )
    ensure_tools()
    webhook_version = subprocess.run(["webhook", "-version"], capture_output=True, text=True)
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    print(f"# {platform.platform()} python {platform.python_version()} cpus={os.cpu_count()}")
    print(
        f"# {webhook_version.stdout.strip()}; {(wrk_version.stdout or wrk_version.stderr).splitlines()[0]}"
    )
    print(f"# load average before: {os.getloadavg()}")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-intake-") as tmp_name:
        tmp = Path(tmp_name)
        body_file = tmp / "push.json"
        body_file.write_bytes(payload(1))
        print(f"# disk before (append + fdatasync, disk.py): {json.dumps(sync_cost(tmp))}")
        for rnd in range(args.rounds):
            order = kinds if rnd % 2 == 0 else kinds[::-1]
            for kind in order:
                runs.append({"round": rnd + 1, **throughput(kind, tmp, args, body_file)})
                print(json.dumps(runs[-1]), flush=True)
            for kind in order:
                runs.append({"round": rnd + 1, **fixed_rate(kind, tmp, args)})
                print(json.dumps(runs[-1]), flush=True)
        if not args.skip_hostile:
            for senders, padded in ((0, False), (4, False), (4, True)):
                for kind in (k for k in kinds[1:] if k != "floor"):
                    runs.append(hostile(tmp, args, senders, kind, padded=padded))
                    print(json.dumps(runs[-1]), flush=True)
            # the peer under the same attack, and conveyor beside an attack it does not receive
            for kind, attacked in (("webhook", None), ("conveyor", "webhook")):
                runs.append(hostile(tmp, args, 4, kind, attacked=attacked))
                print(json.dumps(runs[-1]), flush=True)
        print(f"# disk after: {json.dumps(sync_cost(tmp))}")
    report(runs, body_file_size=len(payload(1)))
    print(f"# load average after: {os.getloadavg()}")


def report(runs: list[dict[str, Any]], body_file_size: int) -> None:
    print(f"\nbody: {body_file_size} bytes\n")
    print("| round | server | wrk 2xx/s | p50 ms | p99 ms | CPU µs/req | stored = 2xx | load |")
    print("|---|---|---|---|---|---|---|---|")
    tput = [r for r in runs if r.get("mode") == "wrk throughput"]
    for r in tput:
        print(
            f"| {r['round']} | {r['server']} | {r['per_s']:,.0f} | {r['p50_ms']:.1f} |"
            f" {r['p99_ms']:.1f} | {r['cpu_us_per_request']} | {r.get('stored_covers_2xx', '-')} |"
            f" {r['loadavg_1m']} |"
        )
    print("\n| round | server | rate | 2xx | p50 ms | p99 ms | max ms | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        if str(r.get("mode", "")).startswith("rate") and "hostile_senders" not in r:
            print(
                f"| {r['round']} | {r['server']} | {r['mode']} | {r['accepted']}/{r['sent']} |"
                f" {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | {r['loadavg_1m']} |"
            )
    for r in runs:
        if "hostile_senders" in r:
            print(
                f"{r['server']}, hostile senders {r['hostile_senders']}"
                f"{' (padded: project after 5 MB)' if r.get('padded') else ''}"
                f"{'' if r['attack_on'] == r['server'] else ' attacking ' + r['attack_on']}:"
                f" valid 2xx {r['accepted']}/{r['sent']},"
                f" p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms;"
                f" hostile answers {r.get('statuses', {})}"
            )

    def median(kind: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in tput if r["server"] == kind)

    for kind in sorted({r["server"] for r in tput} - {"webhook"}):
        ratio = median(kind, "per_s") / median("webhook", "per_s")
        cpu_ratio = median("webhook", "cpu_us_per_request") / median(kind, "cpu_us_per_request")
        print(
            f"\n{kind}/webhook throughput (medians): {ratio:.2f}x;"
            f" by CPU per request (webhook/{kind}): {cpu_ratio:.2f}x"
        )


if __name__ == "__main__":
    main()
