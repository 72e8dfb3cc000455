"""``conveyor run SPEC``: run a pipeline locally in Docker, as its Jenkins job would run it.

The event comes from ``--event FILE`` (a recorded GitLab payload) or from flags; flags left out are
read from git in ``--workdir``. Exit status: 0 when the run succeeded, else the failing stage's
exit code (1 when the run failed for another reason).

``--jenkins`` is the generated Jenkinsfile's step: one stage (or one ``post`` condition) of the
current Jenkins build, with the build's variables and engine (:mod:`conveyor.runner.step`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from conveyor.cli.options import state_dir, state_option
from conveyor.cli.output import err_console, print_json
from conveyor.config import load_settings
from conveyor.docker.gitfacts import git_facts
from conveyor.errors import UsageError
from conveyor.pipeline.context import Trigger
from conveyor.runner.execute import run_pipeline
from conveyor.runner.output import PlainOutput, make_output
from conveyor.runner.statuses import reporter_from_settings
from conveyor.runner.step import run_build_step
from conveyor.runner.trigger import read_event, trigger_from_event, trigger_from_flags
from conveyor.spec.load import load_spec


def _params(pairs: tuple[str, ...]) -> dict[str, bool | str]:
    out: dict[str, bool | str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--param {pair!r}: use NAME=VALUE")
        out[name] = value
    return out


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--event",
    "event_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A recorded GitLab webhook payload (push, tag push or merge request).",
)
@click.option("--branch", help="Branch to run as (default: the checkout's branch).")
@click.option("--sha", help="Commit to run as (default: the checkout's HEAD).")
@click.option("--tag", help="Run as a tag push of TAG.")
@click.option(
    "--stage",
    "stages",
    multiple=True,
    metavar="NAME",
    help="Run only this stage (repeatable); the others are skipped.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The checkout to run in (default: the current directory).",
)
@click.option("--param", "params", multiple=True, metavar="K=V", help="A build parameter.")
@state_option("the run history")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the result as JSON on stdout (the live log goes to stderr).",
)
@click.option(
    "--jenkins",
    is_flag=True,
    help="Run as a step of the current Jenkins build (what the generated Jenkinsfile calls): "
    "build variables, engine and secrets from the environment; Jenkins decided `when`.",
)
@click.option(
    "--post",
    "post",
    metavar="CONDITION",
    help="With --jenkins: run only this post condition of --stage (or of the pipeline).",
)
def command(
    spec: Path,
    event_file: Path | None,
    branch: str | None,
    sha: str | None,
    tag: str | None,
    stages: tuple[str, ...],
    workdir: Path | None,
    params: tuple[str, ...],
    state: Path | None,
    as_json: bool,
    jenkins: bool,
    post: str | None,
) -> None:
    """Run the pipeline SPEC locally: every stage in Docker, `when` decided as in Jenkins.

    Secrets (`secrets: {VAR: credentials-id}`) are read from the environment variable VAR.
    Commit statuses go to GitLab when CONVEYOR_GITLAB_URL and CONVEYOR_GITLAB_TOKEN are set.
    """
    loaded = load_spec(spec)
    if jenkins:
        if event_file or branch or sha or tag or params or state:
            raise UsageError(
                "--jenkins takes the event, parameters and state from the Jenkins build",
                hint="drop --event/--branch/--sha/--tag/--param/--state",
            )
        if len(stages) > 1:
            raise UsageError("--jenkins runs one stage: give --stage once")
        out = PlainOutput(sys.stderr if as_json else sys.stdout, summary=False)
        step = run_build_step(
            loaded, stage=stages[0] if stages else None, post=post, workdir=workdir, sink=out
        )
        if as_json:
            print_json(step.to_json())
        raise SystemExit(0 if step.succeeded else step.exit_code or 1)
    if post is not None:
        raise UsageError("--post is for --jenkins steps")
    settings = load_settings()
    directory = (workdir or Path.cwd()).resolve()
    trigger: Trigger
    if event_file is not None:
        if branch or sha or tag:
            raise UsageError("--event and --branch/--sha/--tag exclude each other")
        trigger = trigger_from_event(read_event(event_file))
    else:
        facts = git_facts(directory, sha=sha, branch=branch, tag=tag)
        trigger = trigger_from_flags(
            project=loaded.spec.project,
            sha=facts.sha,
            branch=facts.branch or None,
            tag=facts.tag or None,
        )
    sink = PlainOutput(sys.stderr, summary=False) if as_json else make_output()

    def warn(text: str) -> None:
        err_console.print(text, markup=False)

    result = run_pipeline(
        loaded,
        trigger,
        workdir=directory,
        state_dir=state_dir(state, settings),
        sink=sink,
        params=_params(params),
        only=stages,
        statuses=reporter_from_settings(settings, warn),
    )
    if as_json:
        print_json(result.to_json())
    raise SystemExit(result.exit_code if not result.succeeded else 0)
