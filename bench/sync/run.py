"""Sync benchmark: 200 specs against the GitLab and Jenkins emulators, 25 ms added to every request.

1. ``conveyor apply`` first run (creates 200 Jenkins jobs and 200 GitLab hooks, drift checks included),
2. ``conveyor apply`` again (no change: must make zero writes, target < 3 s),
3. Jenkins Job Builder (``jenkins-jobs update``) creating the same 200 jobs (same names, same
   Jenkinsfile as an inline pipeline ``dsl``) on the same Jenkins emulator, after the jobs were removed,
   at its default (1 worker) and with ``--workers`` equal to conveyor's ``--concurrency``.

Every tool runs as its own process (``python -m``), so interpreter start-up counts for both.
Usage: ``.venv/bin/python -m bench.sync.run [--specs 200] [--latency 0.025] [--concurrency 8]``.
Prints a Markdown section; ``--write`` replaces the "## Sync" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.emulators.fixtures import (  # noqa: E402
    JENKINS_API_TOKEN,
    JENKINS_USER,
    seed_jenkins,
)
from tests.emulators.gitlab import GitLabEmulator  # noqa: E402
from tests.emulators.jenkins import JenkinsEmulator  # noqa: E402
from tests.emulators.server import _Handler  # noqa: E402

from conveyor.jenkins.render import render  # noqa: E402
from conveyor.spec.load import load_specs  # noqa: E402

GITLAB_TOKEN = "glpat-bench-maintainer-0000"
# the no-change figure before hook health and id-keyed tokens (bench/RESULTS.md, 2026-11-28)
BEFORE_HEALTH_S = 1.40
BEFORE_HEALTH_REQUESTS = 402
SECRET = "bench-master-secret-0123456789"


def spec_text(i: int) -> str:
    return textwrap.dedent(f"""\
        apiVersion: conveyor/v1
        project: bench/app-{i:03d}
        triggers:
          push:
            branches: ["main", "release/*"]
          merge_request: {{}}
        jenkins:
          job: bench-app-{i:03d}
        stages:
          - name: test
            run: ["make test"]
          - name: package
            run: ["make package"]
        """)


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"failed: {' '.join(cmd)} (exit {proc.returncode})")
    return elapsed


def jjb_files(work: Path, specs_dir: Path, url: str) -> tuple[Path, Path]:
    ini = work / "jenkins_jobs.ini"
    ini.write_text(
        textwrap.dedent(f"""\
        [job_builder]
        ignore_cache=True
        keep_descriptions=False
        [jenkins]
        url={url}
        user={JENKINS_USER}
        password={JENKINS_API_TOKEN}
        query_plugins_info=False
        """),
        encoding="utf-8",
    )
    jobs: list[str] = []
    for loaded in load_specs([specs_dir]):
        # JJB formats strings with str.format: double the braces
        script = render(loaded.spec).jenkinsfile.replace("{", "{{").replace("}", "}}")
        jobs.append(
            f"- job:\n    name: {loaded.spec.jenkins.job}\n    project-type: pipeline\n"
            f"    sandbox: true\n    dsl: |\n" + textwrap.indent(script, "      ")
        )
    yaml_file = work / "jobs.yaml"
    yaml_file.write_text("\n".join(jobs), encoding="utf-8")
    return ini, yaml_file


def remove_jobs(jenkins: JenkinsEmulator) -> None:
    with jenkins.lock:
        jenkins.root.children.clear()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--specs", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.025)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument(
        "--nagle",
        action="store_true",
        help="keep Nagle's algorithm on the emulators' sockets (their default): every response is "
        "written as headers + body, and Nagle + delayed ACK add ~40 ms to each request, which real "
        "Jenkins (Jetty) and GitLab (Workhorse) avoid with TCP_NODELAY",
    )
    parser.add_argument("--crumbs", default="session", help="Jenkins emulator crumb mode")
    parser.add_argument("--repeat", type=int, default=1, help="no-change runs (median)")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="a `src` directory of an earlier conveyor (e.g. `git archive main src`): its "
        "no-change apply is timed too, in the same run, against the same state",
    )
    args = parser.parse_args()
    _Handler.disable_nagle_algorithm = not args.nagle
    if args.crumbs not in ("strict", "session", "disabled"):
        parser.error("--crumbs: strict, session or disabled")

    load_before = os.getloadavg()[0]
    gitlab = GitLabEmulator()
    gitlab.add_user("maintainer", GITLAB_TOKEN)
    for i in range(args.specs):
        gitlab.add_project(f"bench/app-{i:03d}", members={"maintainer": "maintainer"})
    # Real Jenkins (>= 2.96) exempts API-token requests from CSRF crumbs ("session" mode). In the
    # emulator's "strict" mode JJB --workers fails: its threads share one python-jenkins object,
    # fetch crumbs concurrently and send a crumb bound to another thread's session (403).
    # conveyor has one python-jenkins object per thread and works in both modes.
    jenkins = seed_jenkins(JenkinsEmulator(crumb_mode=args.crumbs))
    gitlab.start()
    jenkins.start()
    gitlab.latency = jenkins.latency = args.latency
    python = str(ROOT / ".venv" / "bin" / "python")
    try:
        with tempfile.TemporaryDirectory(prefix="conveyor-bench-sync-") as tmp:
            work = Path(tmp)
            specs_dir = work / "pipelines"
            for i in range(args.specs):
                path = specs_dir / "bench" / f"app-{i:03d}.yml"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(spec_text(i), encoding="utf-8")
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")},
                "HOME": str(work / "home"),
                "CONVEYOR_CONFIG": str(work / "empty.toml"),
                "CONVEYOR_GITLAB_URL": gitlab.url,
                "CONVEYOR_GITLAB_TOKEN": GITLAB_TOKEN,
                "CONVEYOR_JENKINS_URL": jenkins.url,
                "CONVEYOR_JENKINS_USER": JENKINS_USER,
                "CONVEYOR_JENKINS_TOKEN": JENKINS_API_TOKEN,
                "CONVEYOR_WEBHOOK_URL": "https://conveyor.example.com",
                "CONVEYOR_SECRET": SECRET,
                "PYTHONPATH": str(ROOT / "src"),
            }
            (work / "empty.toml").write_text("", encoding="utf-8")
            apply_cmd = [
                python,
                "-c",
                "import sys; from conveyor.cli.apply import command; "
                "command(sys.argv[1:], prog_name='conveyor apply')",
                str(specs_dir),
                "--concurrency",
                str(args.concurrency),
            ]

            first = timed(apply_cmd, env, work)
            first_writes = (jenkins.log.count_writes(), gitlab.log.count_writes())
            first_requests = len(jenkins.log) + len(gitlab.log)
            assert len(jenkins.root.children) == args.specs
            # no-change runs, alternating with the baseline code (--baseline-src) when given, so
            # both see the same machine load; medians are reported
            seconds: list[float] = []
            baselines: list[float] = []
            second_writes = second_requests = 0
            baseline: tuple[float, int, int] | None = None
            for _ in range(args.repeat):
                jenkins.log.clear()
                gitlab.log.clear()
                seconds.append(timed(apply_cmd, env, work))
                second_writes = max(
                    second_writes, jenkins.log.count_writes() + gitlab.log.count_writes()
                )
                second_requests = len(jenkins.log) + len(gitlab.log)
                if args.baseline_src is not None:
                    jenkins.log.clear()
                    gitlab.log.clear()
                    old_env = {**env, "PYTHONPATH": str(args.baseline_src.resolve())}
                    baselines.append(timed(apply_cmd, old_env, work))
                    baseline = (
                        statistics.median(baselines),
                        len(jenkins.log) + len(gitlab.log),
                        jenkins.log.count_writes() + gitlab.log.count_writes(),
                    )
            second = statistics.median(seconds)

            ini, jobs_yaml = jjb_files(work, specs_dir, jenkins.url)
            jjb = [
                str(ROOT / ".venv" / "bin" / "jenkins-jobs"),
                "--conf",
                str(ini),
                "--ignore-cache",
                "update",
            ]
            remove_jobs(jenkins)
            jenkins.log.clear()
            jjb_default = timed([*jjb, str(jobs_yaml)], env, work)
            jjb_default_requests = len(jenkins.log)
            assert len(jenkins.root.children) == args.specs
            remove_jobs(jenkins)
            jenkins.log.clear()
            jjb_workers = timed(
                [*jjb, "--workers", str(args.concurrency), str(jobs_yaml)], env, work
            )
            jjb_workers_requests = len(jenkins.log)
            assert len(jenkins.root.children) == args.specs
    finally:
        gitlab.stop()
        jenkins.stop()

    best_jjb = min(jjb_default, jjb_workers)
    sockets = (
        "Nagle on (the emulators' default: +~40 ms per request from delayed ACKs)"
        if args.nagle
        else "TCP_NODELAY, as real Jenkins (Jetty) and GitLab (Workhorse) use"
    )
    no_change_ok = "met" if second < 3 and second_writes == 0 else "MISSED"
    first_ok = "met" if first <= best_jjb else "MISSED"
    w = args.concurrency
    rows = [
        "| run | wall time | requests | writes |",
        "|---|---|---|---|",
        f"| conveyor apply, first run (Jenkins + GitLab + drift checks) | {first:.2f} s "
        f"| {first_requests} | {first_writes[0]} Jenkins + {first_writes[1]} GitLab |",
        f"| conveyor apply, no change (median of {args.repeat}) | {second:.2f} s "
        f"| {second_requests} | {second_writes} |",
        f"| JJB `jenkins-jobs update` (default, 1 worker), Jenkins only | {jjb_default:.2f} s "
        f"| {jjb_default_requests} | 200 Jenkins |",
        f"| JJB `jenkins-jobs update --workers {w}`, Jenkins only | {jjb_workers:.2f} s "
        f"| {jjb_workers_requests} | 200 Jenkins |",
    ]
    lines = [
        "## Sync",
        "",
        f"`python -m bench.sync.run` ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores shared with other helpers' work): {args.specs} specs, GitLab and "
        f"Jenkins emulators over real HTTP with {args.latency * 1000:.0f} ms added to every "
        f"request; every tool runs as its own process; conveyor `--concurrency {w}`. "
        f"Emulator sockets: {sockets}. Jenkins crumbs: `{args.crumbs}`. Load average (1 min) "
        f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run.",
        "",
        *rows,
        "",
        f"- no-change apply: {second:.2f} s, {second_writes} writes "
        f"(target < 3 s and 0 writes): **{no_change_ok}**. It now also reads each hook's health "
        "(`alert_status`, `disabled_until`, `token_present`: they come with the hook list) and "
        "each project (its numeric id keys the hook token; its canonical path shows renames): "
        f"{second:.2f} s and {second_requests} requests against {BEFORE_HEALTH_S:.2f} s and "
        f"{BEFORE_HEALTH_REQUESTS} requests before (2026-11-28, same machine and command) = "
        f"**{second / BEFORE_HEALTH_S:.2f}x**"
        + (
            f"; the code before this change (`--baseline-src`, runs alternating with these), "
            f"same state: median {baseline[0]:.2f} s, {baseline[1]} requests, {baseline[2]} "
            f"writes = **{second / baseline[0]:.2f}x**. All no-change runs: "
            + ", ".join(f"{x:.2f}" for x in seconds)
            + " s; baseline: "
            + ", ".join(f"{x:.2f}" for x in baselines)
            + " s."
            if baseline is not None
            else "."
        ),
        f"- first apply / fastest JJB run (Jenkins half only): {first:.2f} s / {best_jjb:.2f} s = "
        f"**{first / best_jjb:.2f}x** (target <= 1): **{first_ok}**; "
        f"vs JJB at its default: {first / jjb_default:.2f}x.",
        "- conveyor reads each server on its own pool of `--concurrency` threads, so both halves "
        "overlap; JJB asks `job_exists` before and after each create (about 5 requests a job).",
        "- `--nagle` keeps the emulators' default sockets: every request then costs ~40 ms more for "
        "every tool (Nagle + delayed ACK on the split headers/body write).",
        "- In `--crumbs strict` mode (crumbs demanded even with an API token) JJB `--workers` fails "
        "with 403: its threads share one python-jenkins object and race on the crumb and session "
        "cookie. conveyor keeps one python-jenkins object per thread.",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if args.write:
        results = ROOT / "bench" / "RESULTS.md"
        text = results.read_text(encoding="utf-8") if results.exists() else "# Benchmarks\n"
        pattern = re.compile(r"^## Sync\n.*?(?=^## |\Z)", re.S | re.M)
        if pattern.search(text):
            text = pattern.sub(lambda _: section + "\n", text)
        else:
            text = text.rstrip("\n") + "\n\n" + section
        results.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
