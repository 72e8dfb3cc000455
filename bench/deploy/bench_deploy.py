"""Deploy benchmark: requests lost while redeploying a small web service under steady load.

Usage (from the repository root, Docker engine running)::

    .venv/bin/python bench/deploy/bench_deploy.py [--rate 150] [--seconds 16] [--deploy-at 4]

Three scenarios, one run, same load (a bounded open-loop generator on loopback: one request every
1/rate s, each on a fresh TCP connection, at most 32 in flight, 5 s timeout; a request is *lost* when
it errors, times out or answers anything but 200):

1. ``blue-green``: ``conveyor deploy SPEC --image v2`` (the real CLI, a subprocess) while the caddy
   proxy serves v1.
2. ``recreate``: the same through conveyor with ``strategy: recreate`` (stop old, start new, switch).
3. ``naive``: ``docker stop`` + ``docker rm`` + ``docker run -p`` of the new version, no proxy.

It also reports the time from starting ``deploy`` to the first v2 answer seen by the load, and the
wall time of the deploy command. Every container, image, network and state dir it creates is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[2]
PREFIX = f"conveyor-bench-{os.getpid()}"
START = (
    'trap "exit 0" TERM; echo $VERSION > /www/version; echo ok > /www/healthz; '
    "httpd -f -p 8080 -h /www & wait"
)


@dataclass(frozen=True)
class Sample:
    due: float
    sent: float
    done: float
    status: int  # 0: connection error / timeout
    body: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build(client: docker.DockerClient, tag: str, version: str) -> None:
    dockerfile = (
        f"FROM busybox:latest\nENV VERSION={version}\nRUN mkdir -p /www\n"
        f"CMD {json.dumps(['sh', '-c', START])}\n"
    ).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    buf.seek(0)
    client.images.build(fileobj=buf, custom_context=True, tag=tag, rm=True, forcerm=True)


def one(port: int, due: float) -> Sample:
    sent = time.monotonic()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/version", headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace").strip()
        conn.close()
        return Sample(due, sent, time.monotonic(), resp.status, body)
    except (OSError, http.client.HTTPException):
        return Sample(due, sent, time.monotonic(), 0, "")


def load(port: int, rate: float, seconds: float, t0: float) -> list[Sample]:
    """Open-loop load from ``t0`` for ``seconds`` at ``rate`` req/s, bounded to 32 in flight."""
    futures = []
    with ThreadPoolExecutor(max_workers=32) as pool:
        for i in range(int(rate * seconds)):
            due = t0 + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(one, port, due))
    return [f.result() for f in futures]


@dataclass(frozen=True)
class Outcome:
    scenario: str
    total: int
    lost: int
    statuses: dict[str, int]
    achieved_rate: float
    deploy_seconds: float
    to_new_version: float | None
    p99_ms: float
    lost_at: tuple[float, ...]  # when lost requests were sent, seconds after the deploy started


def measure(
    scenario: str, port: int, rate: float, seconds: float, deploy_at: float, action: list[list[str]]
) -> Outcome:
    t0 = time.monotonic() + 0.5
    results: list[Sample] = []
    runner = threading.Thread(target=lambda: results.extend(load(port, rate, seconds, t0)))
    runner.start()
    time.sleep(max(0.0, t0 + deploy_at - time.monotonic()))
    started = time.monotonic()
    for cmd in action:
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{scenario}: {' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    finished = time.monotonic()
    runner.join()
    statuses: dict[str, int] = {}
    for s in results:
        key = str(s.status) if s.status else "error"
        statuses[key] = statuses.get(key, 0) + 1
    lost = sum(1 for s in results if s.status != 200)
    first_new = min((s.done for s in results if s.body == "v2" and s.sent >= started), default=None)
    span = max(s.sent for s in results) - min(s.sent for s in results)
    latencies = sorted(s.done - s.sent for s in results)
    return Outcome(
        scenario=scenario,
        total=len(results),
        lost=lost,
        statuses=statuses,
        achieved_rate=len(results) / span if span else 0.0,
        deploy_seconds=finished - started,
        to_new_version=(first_new - started) if first_new else None,
        p99_ms=latencies[int(len(latencies) * 0.99) - 1] * 1000,
        lost_at=tuple(round(s.sent - started, 2) for s in results if s.status != 200),
    )


SPEC = """\
apiVersion: conveyor/v1
project: bench/web
jenkins: {{job: bench-web}}
stages:
  - name: deploy
    deploy:
      name: {name}
      strategy: {strategy}
      ports: ["{port}:8080"]
      health: {{http: /healthz, timeout: 20s, interval: 100ms}}
"""


def conveyor(*args: str) -> list[str]:
    return [sys.executable, "-m", "conveyor.cli.main", *args]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    engine = docker.from_env().version().get("Version", "?")
    caddy = subprocess.run(["caddy", "version"], capture_output=True, text=True, check=False)
    return (
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
        f"Docker engine {engine}, caddy {caddy.stdout.split(' ')[0].strip() or '?'}, "
        f"Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--seconds", type=float, default=16.0)
    parser.add_argument("--deploy-at", type=float, default=4.0)
    args = parser.parse_args()
    client = docker.from_env()
    v1, v2 = f"{PREFIX}-app:v1", f"{PREFIX}-app:v2"
    build(client, v1, "v1")
    build(client, v2, "v2")
    tmp = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    env_state = str(tmp / "state")
    os.environ["CONVEYOR_STATE"] = env_state
    outcomes: list[Outcome] = []
    names: list[str] = []
    try:
        for strategy in ("blue-green", "recreate"):
            name = f"{PREFIX}-{strategy}"
            names.append(name)
            port = free_port()
            spec = tmp / f"{strategy}.yml"
            spec.write_text(SPEC.format(name=name, strategy=strategy, port=port))
            subprocess.run(conveyor("deploy", str(spec), "--image", v1), check=True, cwd=ROOT)
            outcomes.append(
                measure(
                    strategy,
                    port,
                    args.rate,
                    args.seconds,
                    args.deploy_at,
                    [conveyor("deploy", str(spec), "--image", v2)],
                )
            )
        port = free_port()
        naive = f"{PREFIX}-naive"
        names.append(naive)

        def run(image: str) -> list[str]:
            return ["docker", "run", "-d", "--name", naive, "-p", f"{port}:8080", image]

        subprocess.run(run(v1), check=True, capture_output=True)
        time.sleep(0.5)
        outcomes.append(
            measure(
                "naive stop-then-start",
                port,
                args.rate,
                args.seconds,
                args.deploy_at,
                [["docker", "stop", naive], ["docker", "rm", naive], run(v2)],
            )
        )
    finally:
        from conveyor.docker.deploy.docker import remove_deploy

        for name in names:
            remove_deploy(client, name, volumes=True)
        for container in client.containers.list(
            all=True, ignore_removed=True, filters={"name": f"^{PREFIX}-naive$"}
        ):
            container.remove(force=True)
        for image in (v1, v2):
            with contextlib.suppress(docker.errors.DockerException):
                client.images.remove(image, force=True)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"machine: {machine()}")
    print(
        f"load: {args.rate:.0f} req/s open loop, fresh connection per request, {args.seconds:.0f} s, "
        f"redeploy at {args.deploy_at:.0f} s\n"
    )
    print(
        "| scenario | requests | lost | statuses | achieved req/s | p99 latency | deploy command | deploy -> v2 serving |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for o in outcomes:
        to_new = f"{o.to_new_version:.2f} s" if o.to_new_version is not None else "n/a"
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(o.statuses.items()))
        print(
            f"| {o.scenario} | {o.total} | **{o.lost}** | {statuses} | {o.achieved_rate:.1f} | "
            f"{o.p99_ms:.0f} ms | {o.deploy_seconds:.2f} s | {to_new} |"
        )
    for o in outcomes:
        if o.lost_at:
            shown = ", ".join(f"{t:+.2f}" for t in o.lost_at[:12])
            print(
                f"\n{o.scenario}: lost requests sent at {shown}{' ...' if len(o.lost_at) > 12 else ''} s"
            )


if __name__ == "__main__":
    main()
