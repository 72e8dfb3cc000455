"""Build benchmark: conveyor's SDK build (`build_image`) vs the `docker build` CLI (DOCKER_BUILDKIT=0,
the same classic builder) for the same context, cold (--no-cache) and warm (every step cached),
interleaved in one run. Target: SDK time <= 1.10x CLI time, cold and warm.

    .venv/bin/python bench/build/bench_build.py [--rounds 5] [--write]

The context: a small web app on debian:bookworm-slim (local base image) with a dependency layer,
~300 source files (~8 MB) and a few RUN steps that do real work offline. `--write` replaces the
"## Build" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import docker

from conveyor.docker.build import BuildRequest, build_image
from conveyor.docker.engine import connect

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "RESULTS.md"
PREFIX = "conveyor-bench-build"
BENCH_LABEL = "conveyor.bench"
LABELS = {
    "org.opencontainers.image.revision": "0" * 40,
    "org.opencontainers.image.source": "bench",
    BENCH_LABEL: "build",
}
ARGS = {"APP_VERSION": "1.0.0"}
DOCKERFILE = """\
FROM debian:bookworm-slim
ARG APP_VERSION=dev
WORKDIR /app
COPY deps/ /app/deps/
RUN cat deps/*.txt | sort > /app/deps.lock && gzip -k -9 /app/deps.lock
RUN dd if=/dev/urandom of=/app/blob bs=1M count=16 status=none && sha256sum /app/blob > /app/blob.sum
COPY src/ /app/src/
RUN find /app/src -type f | wc -l > /app/files && tar -czf /app/src.tgz -C /app src
RUN echo "$APP_VERSION" > /app/VERSION
CMD ["cat", "/app/VERSION"]
"""


def make_context(path: Path) -> None:
    rng = random.Random(42)
    (path / "deps").mkdir(parents=True)
    (path / "src").mkdir()
    (path / "Dockerfile").write_text(DOCKERFILE)
    (path / ".dockerignore").write_text("*.pyc\n.git\n")
    for i in range(20):
        (path / "deps" / f"req{i}.txt").write_text("\n".join(f"pkg{j}=={i}.{j}" for j in range(50)))
    for i in range(300):
        sub = path / "src" / f"mod{i % 12}"
        sub.mkdir(exist_ok=True)
        (sub / f"file{i}.py").write_text(
            "".join(f"x_{k} = {rng.random()!r}  # {'pad' * 20}\n" for k in range(350))
        )


def sdk_build(client: docker.DockerClient, context: Path, tag: str, nocache: bool) -> float:
    request = BuildRequest(context=context, tags=(tag,), args=ARGS, labels=LABELS, nocache=nocache)
    started = time.perf_counter()
    build_image(client, request, use_cache_images=False)
    return time.perf_counter() - started


def cli_build(context: Path, tag: str, nocache: bool) -> float:
    cmd = ["docker", "build", "-q", "-t", tag]
    for key, value in ARGS.items():
        cmd += ["--build-arg", f"{key}={value}"]
    for key, value in LABELS.items():
        cmd += ["--label", f"{key}={value}"]
    if nocache:
        cmd.append("--no-cache")
    cmd.append(str(context))
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def cleanup(client: docker.DockerClient) -> None:
    """Remove every image this benchmark built: the tags and the ones a --no-cache rebuild untagged."""
    for image in client.images.list(filters={"label": f"{BENCH_LABEL}=build"}):
        client.images.remove(image.id, force=True)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    docker_version = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        f"{cpu}, {os.cpu_count()} vCPUs shared with other work, {platform.system()} "
        f"{platform.release()}, Docker {docker_version} (classic builder, overlay2), "
        f"Python {platform.python_version()}"
    )


def run(rounds: int) -> dict[str, list[float]]:
    client = connect()
    times: dict[str, list[float]] = {"sdk_cold": [], "cli_cold": [], "sdk_warm": [], "cli_warm": []}
    tmp = Path(tempfile.mkdtemp(prefix="conveyor-bench-build-"))
    try:
        context = tmp / "ctx"
        make_context(context)
        # prime both paths once (base image in page cache, layers present for the warm runs)
        sdk_build(client, context, f"{PREFIX}:sdk", nocache=False)
        cli_build(context, f"{PREFIX}:cli", nocache=False)
        for i in range(rounds):
            order = [("sdk", True), ("cli", True), ("sdk", False), ("cli", False)]
            if i % 2:  # alternate who goes first
                order = [("cli", True), ("sdk", True), ("cli", False), ("sdk", False)]
            for who, cold in order:
                tag = f"{PREFIX}:{who}"
                seconds = (
                    sdk_build(client, context, tag, cold)
                    if who == "sdk"
                    else cli_build(context, tag, cold)
                )
                times[f"{who}_{'cold' if cold else 'warm'}"].append(seconds)
                print(
                    f"round {i + 1} {who} {'cold' if cold else 'warm'}: {seconds:.3f} s", flush=True
                )
    finally:
        cleanup(client)
        client.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return times


def section(times: dict[str, list[float]], rounds: int) -> str:
    med = {k: statistics.median(v) for k, v in times.items()}
    cold, warm = med["sdk_cold"] / med["cli_cold"], med["sdk_warm"] / med["cli_warm"]

    def fmt(values: list[float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values)

    verdict = "met" if cold <= 1.10 and warm <= 1.10 else "NOT met"
    return f"""## Build

SDK build (`conveyor.docker.build.build_image`: low-level `client.api.build` streaming, .dockerignore
via the SDK) against `DOCKER_BUILDKIT=0 docker build` for the same context, same build args and labels,
interleaved in one run (order alternating each round). Cold = `--no-cache` (every step runs); warm =
every step from the cache (context still tarred and sent). Context: debian:bookworm-slim app, 10 steps,
~300 source files (~8 MB), RUN steps that gzip/tar/hash real data offline.

- Command: `.venv/bin/python bench/build/bench_build.py --rounds {rounds} --write`
- Machine: {machine()}
- Result ({datetime.now(UTC).date()}), medians of {rounds} rounds:
  - cold: SDK **{med["sdk_cold"]:.2f} s** vs CLI **{med["cli_cold"]:.2f} s** -> ratio **{cold:.3f}x**
  - warm: SDK **{med["sdk_warm"]:.2f} s** vs CLI **{med["cli_warm"]:.2f} s** -> ratio **{warm:.3f}x**
  - target <= 1.10x: **{verdict}**
  - raw (s): sdk cold {fmt(times["sdk_cold"])}; cli cold {fmt(times["cli_cold"])};
    sdk warm {fmt(times["sdk_warm"])}; cli warm {fmt(times["cli_warm"])}
  - the spread comes from other work on the shared vCPUs; interleaving keeps both sides under the
    same load, and the medians compare like with like
"""


def write_section(text: str) -> None:
    current = RESULTS.read_text() if RESULTS.exists() else ""
    lines = current.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == "## Build"), None)
    if start is None:
        RESULTS.write_text(current.rstrip("\n") + ("\n\n" if current else "") + text)
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    RESULTS.write_text("".join(lines[:start]) + text + ("\n" + tail if tail else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    times = run(args.rounds)
    text = section(times, args.rounds)
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
