"""Kubernetes target benchmarks: rendering manifests for 1,000 specs (goal < 1 s on one core) and
``plan`` for 200 Kubernetes specs against the API emulator with 25 ms added to every request
(goal < 3 s).

    taskset -c 0 .venv/bin/python bench/kube/bench_kube.py render
    .venv/bin/python bench/kube/bench_kube.py plan

Render: the specs of tests/kubernetes/golden, copied under new names; loading and validation happen
before the clock; timed is :func:`render_manifests` plus the YAML text of every object (the writer's
cache emptied before each run). The peer in the same run is the same objects written by PyYAML's
libyaml dumper (``CSafeDumper``), what the renderer used before its own writer.
Plan: 200 deploys in namespace ``bench`` of a fresh emulator, half of them already applied (so the
plan has creates and no-change objects); each plan is a GET and a ``dryRun=All`` server-side apply
per object plus one listing per kind of the namespace. The peer in the same run is the same plan with
one request at a time (``--concurrency 1``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.emulators.kubernetes import KubernetesEmulator  # noqa: E402
from tests.kubernetes.conftest import write_kubeconfig  # noqa: E402

from conveyor.docker.deploy.model import DeployRequest  # noqa: E402
from conveyor.kubernetes.client import KubeClient  # noqa: E402
from conveyor.kubernetes.config import connect  # noqa: E402
from conveyor.kubernetes.manifests import _string, render_manifests  # noqa: E402
from conveyor.kubernetes.plan import plan_requests  # noqa: E402
from conveyor.spec.load import load_spec  # noqa: E402
from conveyor.spec.model import Deploy  # noqa: E402

GOLDEN = ROOT / "tests" / "kubernetes" / "golden"


def deploys(count: int) -> list[tuple[Deploy, str, str]]:
    bases = []
    for path in sorted(GOLDEN.glob("*/spec.yml")):
        spec = load_spec(path).spec
        bases += [s.deploy for s in spec.all_stages() if s.deploy is not None]
    out = []
    for i in range(count):
        base = bases[i % len(bases)]
        assert base is not None
        deploy = Deploy.model_validate({**base.model_dump(), "name": f"app-{i}"})
        out.append((deploy, f"bench/project-{i}", f"registry.example.com/bench/app-{i}:1.{i}"))
    return out


def bench_render(count: int, repeat: int) -> None:
    corpus = deploys(count)
    times, peer = [], []
    objects = size = 0
    for _ in range(repeat):
        _string.cache_clear()
        start = time.perf_counter()
        texts = [m.yaml() for d, p, i in corpus for m in render_manifests(d, project=p, image=i)]
        times.append(time.perf_counter() - start)
        objects, size = len(texts), sum(map(len, texts))
        start = time.perf_counter()
        for d, p, i in corpus:
            for m in render_manifests(d, project=p, image=i):
                yaml.dump(m.body, Dumper=yaml.CSafeDumper, sort_keys=False, width=1 << 30)
        peer.append(time.perf_counter() - start)
    print(
        f"python {platform.python_version()} on {platform.machine()}, cpus allowed: {len(os.sched_getaffinity(0))}"
    )
    print(f"{count} specs -> {objects} objects, {size / 1e6:.2f} MB of YAML")
    print(
        f"render:                  best {min(times):.3f} s, median {statistics.median(times):.3f} s over {repeat}"
    )
    print(
        f"peer (PyYAML CSafeDumper): best {min(peer):.3f} s, median {statistics.median(peer):.3f} s"
    )
    print(f"ratio {min(times) / min(peer):.2f}x")


def _serve(conn: Connection) -> None:
    """The emulator in its own process (as an apiserver is): the client's GIL is its own."""
    emulator = KubernetesEmulator(namespaces=("bench",), tick=3600.0).start()
    conn.send(emulator.url)
    while True:
        message = conn.recv()
        if message == "stop":
            break
        if message[0] == "latency":
            emulator.latency = message[1]
        elif message == "clear":
            emulator.log.clear()
        elif message == "log":
            conn.send((len(emulator.log), emulator.log.count_writes()))
        conn.send("ok") if message != "log" else None
    emulator.stop()


class Remote:
    def __init__(self) -> None:
        self.conn, child = multiprocessing.Pipe()
        self.process = multiprocessing.Process(target=_serve, args=(child,), daemon=True)
        self.process.start()
        self.url: str = self.conn.recv()

    def ask(self, message: object) -> object:
        self.conn.send(message)
        return self.conn.recv()

    def stop(self) -> None:
        self.conn.send("stop")
        self.process.join(timeout=10)


def bench_plan(count: int, latency: float, concurrency: int, peer: bool) -> None:
    emulator = Remote()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["KUBECONFIG"] = str(write_kubeconfig(Path(tmp) / "kubeconfig", emulator.url))
            requests = []
            for deploy, project, image in deploys(count):
                block = deploy.model_dump()
                block["kubernetes"] = {
                    **(block.get("kubernetes") or {}),
                    "namespace": "bench",
                    "context": None,
                }
                block["kubernetes"]["node_ports"] = {}
                block["kubernetes"]["service_type"] = "ClusterIP"
                requests.append(
                    DeployRequest(
                        Deploy.model_validate(block),
                        image,
                        project,
                        "bench.yml",
                        Path(tmp),
                        Path(tmp),
                    )
                )
            client = KubeClient(connect())
            for request in requests[::2]:  # half already there
                for manifest in render_manifests(
                    request.deploy, project=request.project, image=request.image
                ):
                    client.apply(manifest)
            client.close()
            emulator.ask(("latency", latency))
            runs = [(concurrency, "conveyor plan")] + (
                [(1, "one request at a time")] if peer else []
            )
            results = {}
            for workers, label in runs:
                emulator.ask("clear")
                start = time.perf_counter()
                plans = plan_requests(requests, concurrency=workers)
                elapsed = time.perf_counter() - start
                results[label] = elapsed
                changes = [c.action for p in plans for c in p.plan.changes]
                requests_made, writes = emulator.ask("log")  # type: ignore[misc]
                print(
                    f"{label} (concurrency {workers}): {elapsed:.2f} s, {requests_made} requests, "
                    f"{changes.count('create')} create / {changes.count('unchanged')} unchanged / "
                    f"{changes.count('update')} update, {writes} writes (all dryRun=All)"
                )
            if peer:
                print(f"ratio {results['conveyor plan'] / results['one request at a time']:.2f}x")
    finally:
        emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    render = sub.add_parser("render")
    render.add_argument("--count", type=int, default=1000)
    render.add_argument("--repeat", type=int, default=5)
    plan = sub.add_parser("plan")
    plan.add_argument("--count", type=int, default=200)
    plan.add_argument("--latency", type=float, default=0.025)
    plan.add_argument("--concurrency", type=int, default=16)
    plan.add_argument("--no-peer", action="store_true")
    args = parser.parse_args()
    if args.what == "render":
        bench_render(args.count, args.repeat)
    else:
        bench_plan(args.count, args.latency, args.concurrency, not args.no_peer)


if __name__ == "__main__":
    main()
