"""The built-in jenkins plugin: renders each spec to a Jenkinsfile and a config.xml, and dispatches
received events as Jenkins builds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from conveyor.plugins.hookspecs import hookimpl
from conveyor.receiver.dispatch import DispatcherFactory
from conveyor.spec.model import Spec


@dataclass(frozen=True)
class File:
    path: str
    content: str


@hookimpl
def conveyor_render_files(spec: Spec) -> list[File]:
    from conveyor.jenkins.render import render

    job = render(spec)
    return [
        File(f"{job.job_path}/Jenkinsfile", job.jenkinsfile),
        File(f"{job.job_path}/config.xml", job.config_xml),
    ]


@hookimpl
def conveyor_spec_checks(spec: Spec) -> list[str]:
    """With ``webhook.target: jenkins``, what gitlab-plugin's trigger cannot express (the renderer
    refuses it too; ``validate`` says it first)."""
    from conveyor.jenkins.gitlab_trigger import inexpressible

    if spec.webhook.target != "jenkins":
        return []
    return [f"webhook.target: jenkins: {problem}" for problem in inexpressible(spec.triggers)]


@hookimpl
def conveyor_dispatchers() -> Mapping[str, DispatcherFactory]:
    from conveyor.jenkins.dispatcher import JenkinsDispatcher

    return {"jenkins": JenkinsDispatcher}
