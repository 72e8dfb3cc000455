"""``conveyor hooks token PROJECT``: the secret GitLab must send for a project's hook."""

from __future__ import annotations

import click

from conveyor.config import load_settings
from conveyor.sync.targets import job_trigger_token
from conveyor.tokens import project_token


@click.group()
def command() -> None:
    """GitLab webhook helpers."""


@command.command("token")
@click.argument("project")
@click.option(
    "--jenkins-job",
    metavar="JOB",
    help="For `webhook.target: jenkins`: print the trigger secret of this Jenkins job "
    "(the token GitLab sends to the gitlab-plugin endpoint) instead.",
)
def token(project: str, jenkins_job: str | None) -> None:
    """Print the token GitLab must send in X-Gitlab-Token for PROJECT (group/name).

    Derived from CONVEYOR_SECRET: the same secret always gives the same token, nothing is stored.
    `conveyor apply` writes it into the hook; use this to set a hook up by hand.
    """
    settings = load_settings()
    settings.require("secret")
    secret = settings.secret or ""
    if jenkins_job:
        click.echo(job_trigger_token(secret, jenkins_job))
    else:
        click.echo(project_token(secret, project))
