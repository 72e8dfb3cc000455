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
def conveyor_render_files(spec: Spec, gitlab_url: str | None) -> list[File]:
    from conveyor.jenkins.render import render

    job = render(spec, gitlab_url=gitlab_url)
    return [
        File(f"{job.job_path}/Jenkinsfile", job.jenkinsfile),
        File(f"{job.job_path}/config.xml", job.config_xml),
    ]


@hookimpl
def conveyor_dispatchers() -> Mapping[str, DispatcherFactory]:
    from conveyor.jenkins.dispatcher import JenkinsDispatcher

    return {"jenkins": JenkinsDispatcher}
