"""``conveyor hooks token PROJECT``: the secret GitLab must send for a project's hook."""

from __future__ import annotations

import click

from conveyor.config import load_settings
from conveyor.gitlab.client import GitLabClient
from conveyor.tokens import job_trigger_token, project_id_token


@click.group()
def command() -> None:
    """GitLab webhook helpers."""


@command.command("token")
@click.argument("project")
@click.option(
    "--id",
    "project_id",
    type=click.IntRange(min=1),
    help="GitLab's numeric id of PROJECT (Settings > General): no GitLab request is made.",
)
@click.option(
    "--jenkins-job",
    metavar="JOB",
    help="For `webhook.target: jenkins`: print the trigger secret of this Jenkins job "
    "(the token GitLab sends to the gitlab-plugin endpoint) instead.",
)
def token(project: str, project_id: int | None, jenkins_job: str | None) -> None:
    """Print the token GitLab must send in X-Gitlab-Token for PROJECT (group/name).

    Derived from CONVEYOR_SECRET and the project's numeric id (it survives renames), nothing is
    stored. Without --id the id is read from GitLab (CONVEYOR_GITLAB_URL, CONVEYOR_GITLAB_TOKEN).
    `conveyor apply` writes it into the hook; use this to set a hook up by hand.
    """
    settings = load_settings()
    if jenkins_job:
        settings.require("secret")
        click.echo(job_trigger_token(settings.secret or "", jenkins_job))
        return
    if project_id is None:
        settings.require("secret", "gitlab_url", "gitlab_token")
        client = GitLabClient(settings.gitlab_url or "", settings.gitlab_token or "")
        project_id = client.get_project(project).id
    else:
        settings.require("secret")
    click.echo(project_id_token(settings.secret or "", project_id))
