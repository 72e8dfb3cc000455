"""Receiver intake on PostgreSQL beside SQLite and adnanh/webhook, the same load, one run.

    .venv/bin/python bench/intake/postgres.py [--rounds 1] [--duration 10] [--rate 500]

Servers (each fresh per measurement, on 127.0.0.1; PostgreSQL is the throwaway cluster of
``scripts/postgres.sh``, a fresh database per measurement):

* ``webhook``: Debian's adnanh/webhook (see run.py), storing nothing;
* ``sqlite x1``: ``conveyor serve --dispatch none`` on its default SQLite queue;
* ``postgresql x1``: the same with ``--queue postgresql://...``;
* ``postgresql x2``: two such receivers (2 workers each, their defaults) on one database behind a real
  caddy (round robin), the two-receiver set-up of the README; the load goes to caddy.

Measurements: ``wrk`` throughput (2xx/s; stored rows counted against the 2xx) and ``loadgen.py
rate`` at ``--rate``/s (p99 from each request's scheduled time), as in run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import psycopg  # noqa: E402
import run  # noqa: E402
from loadgen import payload  # noqa: E402


def admin_url() -> str:
    out = subprocess.run(
        [str(ROOT / "scripts" / "postgres.sh"), "start"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


class Setup:
    """One variant: its servers, the port the load goes to, and how many rows it stored."""

    def __init__(self, kind: str, tmp: Path, admin: str) -> None:
        self.kind = kind
        self.procs: list[subprocess.Popen[bytes]] = []
        self.servers: list[run.Server] = []
        self.url: str | None = None
        self._admin = admin
        if kind in ("webhook", "sqlite x1"):
            server = run.start("webhook" if kind == "webhook" else "conveyor", tmp)
            self.servers.append(server)
            self.port = server.port
            return
        name = "bench_" + uuid.uuid4().hex[:12]
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.url = admin.rsplit("/", 1)[0] + "/" + name
        count = 2 if kind == "postgresql x2" else 1
        os.environ["CONVEYOR_QUEUE_URL"] = self.url  # run.start passes os.environ on
        try:
            for _ in range(count):
                self.servers.append(run.start("conveyor", tmp))
        finally:
            del os.environ["CONVEYOR_QUEUE_URL"]
        if count == 1:
            self.port = self.servers[0].port
            return
        self.port = run.free_port()
        caddyfile = tmp / f"Caddyfile-{self.port}"
        upstreams = " ".join(f"127.0.0.1:{s.port}" for s in self.servers)
        caddyfile.write_text(
            "{\n  admin off\n  auto_https off\n}\n"
            f"http://127.0.0.1:{self.port} {{\n  reverse_proxy {upstreams} {{\n"
            "    lb_policy round_robin\n  }\n}\n"
        )
        env = {
            **os.environ,
            "HOME": str(tmp),
            "XDG_DATA_HOME": str(tmp),
            "XDG_CONFIG_HOME": str(tmp),
        }
        self.procs.append(
            subprocess.Popen(
                ["caddy", "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                import socket

                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)

    def rows(self) -> int:
        if self.url is None:
            return self.servers[0].rows()
        with psycopg.connect(self.url) as conn:
            row = conn.execute("SELECT count(*) FROM events").fetchone()
            return int(row[0]) if row else 0

    def cpu(self) -> float:
        return sum(run.cpu_seconds(s.proc.pid) for s in self.servers) + sum(
            run.cpu_seconds(p.pid) for p in self.procs
        )

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        for server in self.servers:
            server.stop()
        if self.url is not None:
            with psycopg.connect(self._admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.url.rsplit("/", 1)[1]}" WITH (FORCE)')


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process (the server's backends are not the receivers'
    children, so ``cpu_us_per_request`` leaves them out; this is the database's share)."""
    ticks = 0
    for pid in subprocess.run(
        ["pgrep", "-x", "postgres"], capture_output=True, text=True
    ).stdout.split():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def throughput(
    kind: str, tmp: Path, args: argparse.Namespace, body: Path, admin: str
) -> dict[str, Any]:
    setup = Setup(kind, tmp, admin)
    try:
        run.wrk(setup.port, body, 2, args.threads, args.connections)  # warm-up
        time.sleep(0.5)
        rows_before, cpu_before, db_before = setup.rows(), setup.cpu(), postgres_cpu()
        res = run.wrk(setup.port, body, args.duration, args.threads, args.connections)
        cpu = setup.cpu() - cpu_before
        db_cpu = postgres_cpu() - db_before
        time.sleep(1.0)
        stored = setup.rows() - rows_before
    finally:
        setup.stop()
    acked = res["requests"] - res["non2xx"]
    out: dict[str, Any] = {
        "server": kind,
        "mode": "wrk throughput",
        "per_s": round(acked / (res["duration_us"] / 1e6), 1),
        "non_2xx": res["non2xx"],
        "p50_ms": res["p50_us"] / 1000,
        "p99_ms": res["p99_us"] / 1000,
        "cpu_us_per_request": round(cpu / max(res["requests"], 1) * 1e6),
        "db_cpu_us_per_request": round(db_cpu / max(res["requests"], 1) * 1e6),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    if kind != "webhook":
        out["stored_covers_2xx"] = acked <= stored <= acked + args.connections
    return out


def fixed_rate(kind: str, tmp: Path, args: argparse.Namespace, admin: str) -> dict[str, Any]:
    setup = Setup(kind, tmp, admin)
    try:
        run.loadgen(setup.port, "throughput", "--count", "500", "--connections", "8")
        res = run.loadgen(
            setup.port, "rate", "--rate", str(args.rate), "--duration", str(args.duration)
        )
    finally:
        setup.stop()
    return {"server": kind, **res, "mode": "rate", "loadavg_1m": round(os.getloadavg()[0], 2)}


KINDS = ("webhook", "sqlite x1", "postgresql x1", "postgresql x2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=float, default=500.0)
    args = parser.parse_args()
    run.ensure_tools()
    admin = admin_url()
    print(f"# load average before: {os.getloadavg()}")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-pg-") as tmp_name:
        tmp = Path(tmp_name)
        body = tmp / "push.json"
        body.write_bytes(payload(1))
        for rnd in range(args.rounds):
            order = KINDS if rnd % 2 == 0 else tuple(reversed(KINDS))
            for kind in order:
                runs.append({"round": rnd + 1, **throughput(kind, tmp, args, body, admin)})
                print(json.dumps(runs[-1]), flush=True)
            for kind in order:
                runs.append({"round": rnd + 1, **fixed_rate(kind, tmp, args, admin)})
                print(json.dumps(runs[-1]), flush=True)
    print(
        "\n| round | server | wrk 2xx/s | p99 ms | receivers' CPU µs/req | PostgreSQL CPU µs/req"
        " | stored = 2xx | load |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        if r["mode"] == "wrk throughput":
            print(
                f"| {r['round']} | {r['server']} | {r['per_s']:,.0f} | {r['p99_ms']:.1f} |"
                f" {r['cpu_us_per_request']} | {r['db_cpu_us_per_request'] if r['db_cpu_us_per_request'] else '-'}"
                f" | {r.get('stored_covers_2xx', '-')} | {r['loadavg_1m']} |"
            )
    print("\n| round | server | rate | p99 ms | load |\n|---|---|---|---|---|")
    for r in runs:
        if r["mode"] == "rate":
            print(
                f"| {r['round']} | {r['server']} | {args.rate:g}/s |"
                f" {r.get('p99_ms', '-')} | {r['loadavg_1m']} |"
            )
    print(f"# load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
