"""A Jenkins build sees the right commit, branch and tag whoever started it (issue 11 items 6, 7).

* ``webhook.target: jenkins``: GitLab calls gitlab-plugin, which puts its cause's variables in the
  build's environment; the job declares no trigger parameters, so nothing overrides them (the Jenkins
  emulator applies parameters after the cause, Run.java:2412-2416). The Groovy conveyor renders for
  the commit/branch/tag (conveyor.pipeline.context) is evaluated by the real Groovy 2.4.21 on that
  environment, next to its Python twin.
* ``webhook.target: receiver``: the receiver's parameters give the same facts; a ``definition: scm``
  job's GitSCM branch is ``${CONVEYOR_REVISION}``, the event's commit.
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jenkins
import pytest
from pydantic import ValidationError

from conveyor.jenkins import groovy
from conveyor.jenkins.jenkinsfile import job_parameters
from conveyor.jenkins.render import render
from conveyor.pipeline.context import (
    GROOVY_BRANCH,
    GROOVY_COMMIT,
    GROOVY_TAG,
    TRIGGER_PARAMETERS,
    Trigger,
    branch_of,
    build_variables,
    commit_of,
    tag_of,
    trigger_parameters,
)
from tests.emulators.gitlab_plugin import post_hook
from tests.emulators.jenkins import JenkinsEmulator
from tests.groovy.harness import GROOVY_JAR, run_script
from tests.jenkins.specs import spec_of
from tests.jenkins.test_trigger_parity import mr, push, tag

TOKEN = "facts-token"


def _spec(target: str, **jenkins: Any) -> dict[str, Any]:
    return {
        "apiVersion": "conveyor/v1",
        "project": "demo/app",
        "triggers": {
            "push": {"branches": ["**"]},
            "tag_push": {},
            "merge_request": {"target_branches": ["**"]},
            "skip_ci": False,
        },
        "webhook": {"target": target},
        "jenkins": {"job": "app", **jenkins},
        "stages": [{"name": "t", "run": ["true"]}],
    }


def _groovy_values(envs: list[dict[str, str]], tmp_path: Path) -> list[tuple[str, str, str]]:
    """(commit, branch, tag) as the rendered Groovy reads them, for each environment."""
    lines = ["def cases = ["]
    lines += [f"    {groovy.map_literal(env)}," for env in envs]
    lines.append("]")
    lines.append(
        "cases.each { env -> println('R\\t' + "
        f"{GROOVY_COMMIT} + '\\t' + {GROOVY_BRANCH} + '\\t' + {GROOVY_TAG}) }}"
    )
    script = tmp_path / "facts.groovy"
    script.write_text("\n".join(lines) + "\n")
    stdout = run_script(script)
    rows = [line.split("\t")[1:] for line in stdout.splitlines() if line.startswith("R\t")]
    return [(c, b, t) for c, b, t in rows]


def test_target_jenkins_declares_no_trigger_parameters() -> None:
    spec = spec_of(_spec("jenkins"))
    names = {p.name for p in job_parameters(spec)}
    assert names.isdisjoint(TRIGGER_PARAMETERS)
    job = render(spec, trigger_token=TOKEN)
    assert (
        "gitlabBranch" not in job.config_xml
        and "gitlabBranch" not in job.jenkinsfile.split("parameters {")[1].split("}")[0]
    )
    receiver = {p.name for p in job_parameters(spec_of(_spec("receiver")))}
    assert "gitlabBranch" in receiver and "CONVEYOR_REVISION" not in receiver  # inline job


@pytest.mark.skipif(
    shutil.which("java") is None or not GROOVY_JAR.is_file(),
    reason="groovy 2.4.21 (apt-get install groovy) not installed",
)
def test_builds_from_gitlab_plugin_see_the_events_facts(
    tmp_path: Path, jenkins_emulator: JenkinsEmulator, jenkins_api: jenkins.Jenkins
) -> None:
    spec = spec_of(_spec("jenkins", parameters=[{"name": "DEPLOY", "type": "boolean"}]))
    jenkins_api.create_job("app", render(spec, trigger_token=TOKEN).config_xml)
    events = [push("feature/x"), tag("v1.2"), mr("open", "main")]
    expected: list[tuple[str, str, str]] = []
    for event, payload in events:
        assert post_hook(jenkins_emulator.url, "app", event, payload, TOKEN) == 200
        attrs = payload.get("object_attributes") or {}
        sha = payload.get("after") or attrs["last_commit"]["id"]
        ref = payload.get("ref", "")
        expected.append(
            (
                sha,
                attrs.get("source_branch") or ("" if ref.startswith("refs/tags/") else "feature/x"),
                ref[len("refs/tags/") :] if ref.startswith("refs/tags/") else "",
            )
        )
    envs = [b.environment for b in jenkins_emulator.triggered_builds("app")]
    assert len(envs) == 3
    assert envs[1]["gitlabBranch"] == "refs/tags/v1.2"  # as gitlab-plugin leaves a tag's ref
    assert all(env["DEPLOY"] == "false" for env in envs)  # the job's own parameter still applies
    python = [(commit_of(e), branch_of(e), tag_of(e)) for e in envs]
    assert python == expected
    assert _groovy_values(envs, tmp_path) == expected
    # the inline checkout builds that commit, not the configured branch's head
    script = ET.fromstring(render(spec, trigger_token=TOKEN).config_xml).findtext(
        "definition/script"
    )
    assert script is not None and f"branches: [[name: {GROOVY_COMMIT} ?: '*/main']]" in script


@pytest.mark.skipif(
    shutil.which("java") is None or not GROOVY_JAR.is_file(),
    reason="groovy 2.4.21 (apt-get install groovy) not installed",
)
def test_builds_from_the_receiver_see_the_same_facts(tmp_path: Path) -> None:
    sha = "c" * 40
    triggers = [
        Trigger(kind="push", project="demo/app", sha=sha, branch="feature/x"),
        Trigger(kind="tag_push", project="demo/app", sha=sha, tag="v1.2"),
        Trigger(
            kind="merge_request", project="demo/app", sha=sha, branch="f", target_branch="main"
        ),
    ]
    envs = [trigger_parameters(build_variables(t), event_id=1) for t in triggers]
    expected = [(sha, "feature/x", ""), (sha, "", "v1.2"), (sha, "f", "")]
    assert [(commit_of(e), branch_of(e), tag_of(e)) for e in envs] == expected
    assert _groovy_values(envs, tmp_path) == expected


def _expand(value: str, env: dict[str, str]) -> str:
    """hudson.EnvVars.expand for ``${NAME}`` (what BranchSpec.getExpandedName does, BranchSpec.java:144)."""
    return re.sub(
        r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), m.group(0)), value
    )


def test_receiver_scm_jobs_build_the_events_commit(
    jenkins_emulator: JenkinsEmulator, jenkins_api: jenkins.Jenkins
) -> None:
    data = _spec(
        "receiver", definition="scm", scm={"url": "https://gitlab.example.com/demo/app.git"}
    )
    spec = spec_of(data)
    config = render(spec).config_xml
    root = ET.fromstring(config.split("?>", 1)[1])
    branch = root.findtext("definition/scm/branches/hudson.plugins.git.BranchSpec/name")
    assert branch == "${CONVEYOR_REVISION}"
    assert root.findtext("definition/lightweight") == "false"
    jenkins_api.create_job("app", config)
    sha = "d" * 40
    trigger = Trigger(kind="push", project="demo/app", sha=sha, branch="feature/x")
    jenkins_api.build_job("app", trigger_parameters(build_variables(trigger), event_id=9))
    jenkins_api.build_job("app", {"CONVEYOR_EVENT_ID": ""})  # by hand: the defaults
    by_receiver, by_hand = jenkins_emulator.triggered_builds("app")
    assert _expand(branch, by_receiver.parameters) == sha
    assert _expand(branch, by_hand.parameters) == "*/main"
    # the Jenkinsfile declares the same parameter with the same default (Declarative keeps it)
    assert "string(name: 'CONVEYOR_REVISION', defaultValue: '*/main'" in render(spec).jenkinsfile


def test_jenkins_target_scm_jobs_keep_their_branch_and_lightweight_checkout() -> None:
    data = _spec(
        "jenkins", definition="scm", scm={"url": "https://gitlab.example.com/demo/app.git"}
    )
    root = ET.fromstring(render(spec_of(data)).config_xml.split("?>", 1)[1])
    # gitlab-plugin's own builds carry a RevisionParameterAction (AbstractWebHookTriggerHandler.java:113)
    assert root.findtext("definition/scm/branches/hudson.plugins.git.BranchSpec/name") == "*/main"
    assert root.findtext("definition/lightweight") == "true"


def test_explicit_lightweight_with_the_receiver_is_refused() -> None:
    data = _spec(
        "receiver",
        definition="scm",
        scm={"url": "https://gitlab.example.com/demo/app.git", "lightweight": True},
    )
    with pytest.raises(ValidationError, match="lightweight") as info:
        spec_of(data)
    assert info.value.errors()[0]["loc"] == ("jenkins", "scm", "lightweight")
