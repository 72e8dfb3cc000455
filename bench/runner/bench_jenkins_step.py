"""A stage through Jenkins' conditions versus ``conveyor run`` of the same stage, in one run.

The stage is examples/hello-web's ``test`` (its unit tests in python:3.11-slim). Three ways, interleaved
round by round on the same engine:

* ``local``: ``conveyor run examples/hello-web/conveyor.yml --stage test`` on this machine;
* ``jenkins``: what the rendered Jenkinsfile makes Jenkins do for that stage: docker-workflow's agent
  container (``docker run -t -d -u 1000:1000 -v socket --group-add GID -v WORKSPACE-VOLUME ...
  --entrypoint cat AGENT``), the stage's one ``sh`` body through ``docker exec`` with the build's
  variables only, then ``docker rm -f`` of the agent;
* ``startup``: the agent container alone (``run -d``, ``exec true``, ``rm -f``): the floor the thin
  Jenkinsfile adds.

Run: ``.venv/bin/python bench/runner/bench_jenkins_step.py --rounds 5``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import docker

from conveyor.jenkins.jenkinsfile import STAGE_STEP, spec_document
from conveyor.spec.load import load_spec

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scripts.agent_image import build_agent_image  # noqa: E402  (a developer tool, not in the package)

SPEC = ROOT / "examples/hello-web/conveyor.yml"
SHA = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
HOME = "/var/jenkins_home"
WS = f"{HOME}/workspace/demo_hello-web"


def _docker(*args: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, env=env, check=False, timeout=600
    )
    if done.returncode != 0:
        raise SystemExit(f"docker {args[0]} failed: {done.stderr or done.stdout}")


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"workspace/demo_hello-web/{name}")
            info.size, info.uid, info.gid, info.mode = len(data), 1000, 1000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    client = docker.from_env()
    tag = f"conveyor-bench-agent:{secrets.token_hex(4)}"
    volume = f"conveyor-bench-ws-{secrets.token_hex(4)}"
    build_agent_image(client, tag=tag)
    checkout = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    try:
        source = SPEC.parent
        for item in ("app.py", "test_app.py", "Dockerfile", "conveyor.yml"):
            shutil.copy(source / item, checkout / item)
        subprocess.run(["git", "init", "-q", "-b", "main", str(checkout)], check=True)
        files = {p.name: p.read_bytes() for p in checkout.iterdir() if p.is_file()}
        files[".conveyor/pipeline.yml"] = spec_document(load_spec(SPEC).spec).encode()
        client.volumes.create(volume)
        helper = client.containers.create("busybox:latest", ["true"], volumes=[f"{volume}:{HOME}"])
        helper.put_archive(HOME, _tar(files))
        helper.remove()
        gid = str(os.stat("/var/run/docker.sock").st_gid)
        conveyor = str(Path(sys.executable).with_name("conveyor"))
        state = checkout / ".state"
        build_env = {
            "gitlabActionType": "PUSH",
            "gitlabBranch": "main",
            "gitlabSourceBranch": "main",
            "gitlabAfter": SHA,
            "GIT_COMMIT": SHA,
            "BUILD_NUMBER": "1",
            "JOB_NAME": "demo/hello-web",
            "STAGE_NAME": "test",
            "WORKSPACE": WS,
        }
        env_args = [a for key in build_env for a in ("-e", key)]
        cli_env = {"PATH": os.environ["PATH"], **build_env}
        times: dict[str, list[float]] = {"local": [], "jenkins": [], "startup": []}

        def agent(name: str) -> None:
            _docker(
                "run", "-t", "-d", "-u", "1000:1000",
                "-v", "/var/run/docker.sock:/var/run/docker.sock", "--group-add", gid,
                "-v", f"{volume}:{HOME}", "-w", WS, "--name", name, "--entrypoint", "cat", tag,
            )  # fmt: skip

        for i in range(args.rounds + 1):  # round 0 warms caches and is not counted
            started = time.perf_counter()
            done = subprocess.run(
                [conveyor, "run", str(checkout / "conveyor.yml"), "--stage", "test",
                 "--workdir", str(checkout), "--branch", "main", "--sha", SHA,
                 "--state", str(state)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            local = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"conveyor run failed:\n{done.stdout}\n{done.stderr}")
            name = f"conveyor-bench-agent-{secrets.token_hex(3)}"
            started = time.perf_counter()
            agent(name)
            _docker("exec", "-u", "1000:1000", "-w", WS, *env_args, name, "sh", "-c", STAGE_STEP,
                    env=cli_env)  # fmt: skip
            _docker("rm", "-f", name)
            jenkins = time.perf_counter() - started
            name = f"conveyor-bench-agent-{secrets.token_hex(3)}"
            started = time.perf_counter()
            agent(name)
            _docker("exec", name, "true")
            _docker("rm", "-f", name)
            startup = time.perf_counter() - started
            if i:
                times["local"].append(local)
                times["jenkins"].append(jenkins)
                times["startup"].append(startup)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            json.dumps(
                {
                    "rounds": args.rounds,
                    "median_s": {k: round(v, 3) for k, v in med.items()},
                    "ratio_jenkins_over_local": round(med["jenkins"] / med["local"], 2),
                    "added_s": round(med["jenkins"] - med["local"], 3),
                    "all_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
                }
            )
        )
    finally:
        shutil.rmtree(checkout, ignore_errors=True)
        for c in client.containers.list(all=True, filters={"ancestor": tag}):
            c.remove(force=True)
        for c in client.containers.list(all=True, filters={"volume": volume}):
            c.remove(force=True)
        client.volumes.get(volume).remove(force=True)
        client.images.remove(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
