"""Hostile strings in every spec field that reaches the output (property-based, Groovy 2.4.21 parser).

For each generated spec the Jenkinsfile still parses and keeps the declarative rules, the literal the
Groovy parser reads equals the input exactly, and config.xml gives the value back exactly. Characters
XML 1.0 cannot carry are rejected with a RenderError naming the field (they are fine in fields that only
reach the Jenkinsfile, where the Groovy escaper writes them as unicode escapes).
"""

from __future__ import annotations

import shlex
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from conveyor.jenkins.config_xml import GITLAB_TRIGGER, managed_project, marker
from conveyor.jenkins.jenkinsfile import (
    PREPARE_STAGE,
    STAGE_STEP,
    post_step,
    spec_document,
)
from conveyor.jenkins.render import render
from conveyor.pipeline.match import patterns_to_regex
from conveyor.runner.plan import POST_ORDER
from conveyor.spec.load import format_loc, load_spec
from tests.groovy.declarative import (
    check_jenkinsfile,
    const_arg,
    find_calls,
    find_stage,
    folded,
    named_arg,
    walk,
)
from tests.groovy.harness import GroovyParser
from tests.jenkins.specs import spec_of

XML_FORBIDDEN = "".join(chr(c) for c in range(0x20) if chr(c) not in "\t\n\r") + "\ufffe\uffff"
TRIGGERS = (
    "properties/org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty/triggers"
)

NASTY = [
    "'",
    '"',
    "$",
    "${x}",
    "${env.SECRET}",
    "$(id)",
    "`id`",
    "\\",
    "\\\\",
    "'''",
    '"""',
    "\n",
    "\r",
    "\r\n",
    "\t",
    "<",
    ">",
    "&",
    "&amp;",
    "]]>",
    "<!--",
    "-->",
    "\u2028",
    "\u0085",
    "\x7f",
    "\u00e9",
    "\U0001f600",
    "\U0001d518",
    "\\u0041",
    "\\n",
    "/*",
    "*/",
    "//",
    "#",
    "{sha}",
    " ",
    "\ufeff",
]


def hostile(*, xml_safe: bool, max_size: int = 12) -> st.SearchStrategy[str]:
    forbidden = XML_FORBIDDEN if xml_safe else ""
    chars = st.characters(exclude_categories=("Cs",), exclude_characters=forbidden)
    pieces = st.one_of(st.sampled_from(NASTY), st.text(chars, min_size=1, max_size=4))
    return st.lists(pieces, min_size=1, max_size=max_size).map("".join)


ANY = hostile(xml_safe=False)
XML_SAFE = hostile(xml_safe=True)
# image references and registry hosts are validated as such (conveyor.spec.rules): no hostile text there
IMAGES = st.sampled_from(
    ["conveyor-agent:1", "localhost:5000/team/agent:2.0-x", "busybox@sha256:" + "a" * 64]
)


@st.composite
def hostile_specs(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(
        st.lists(ANY.map(lambda s: s[:100]), min_size=4, max_size=4, unique_by=lambda s: s)
    )
    if "conveyor: prepare" in names:
        names = [n + "x" for n in names]
    return {
        "apiVersion": "conveyor/v1",
        "project": "demo/app",
        "description": draw(XML_SAFE),
        "triggers": {
            "push": {"branches": [draw(XML_SAFE)], "exclude": [draw(XML_SAFE)]},
            "merge_request": {"target_branches": [draw(XML_SAFE)]},
        },
        "environment": {"GLOBAL": draw(ANY)},
        "secrets": {"TOKEN": draw(ANY)},
        "jenkins": {
            "job": "demo/app",
            "connection": draw(XML_SAFE),
            "agent": {"image": draw(IMAGES), "args": [draw(ANY)]},
            "parameters": [
                {
                    "name": "S",
                    "type": "string",
                    "default": draw(XML_SAFE),
                    "description": draw(XML_SAFE),
                },
                {
                    "name": "C",
                    "type": "choice",
                    "choices": [draw(XML_SAFE), "fixed"],
                    "description": draw(XML_SAFE),
                },
            ],
        },
        "stages": [
            {
                "name": names[0],
                "image": draw(IMAGES),
                "run": [draw(ANY), draw(ANY)],
                "environment": {"LOCAL": draw(ANY)},
                "secrets": {"STAGE_SECRET": draw(ANY)},
                "when": {"branch": [draw(ANY)]},
                "post": {"always": [draw(ANY)], "failure": [draw(ANY)]},
            },
            {
                "name": names[1],
                "build": {},
                "push": {"registry": "registry.example.com:5000", "credentials": draw(ANY)},
            },
            {"name": names[2], "deploy": {"name": "app", "strategy": "recreate"}},
            {"name": names[3], "run": [draw(ANY)]},
        ],
        "post": {"cleanup": [draw(ANY)]},
    }


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=hostile_specs())
def test_hostile_strings_survive_exactly(groovy_parser: GroovyParser, data: dict[str, Any]) -> None:
    spec = spec_of(data)
    job = render(spec)
    parsed = groovy_parser.parse_text(job.jenkinsfile)
    assert parsed.ok, parsed.errors
    assert check_jenkinsfile(parsed.tree, parsed.methods) == []
    assert job.jenkinsfile.isascii()
    tree = parsed.tree
    stages = data["stages"]

    # Groovy: the literals the parser reads are the inputs; no spec text is ever in an `sh` body
    bodies = {STAGE_STEP} | {post_step(c, stage=s) for c in POST_ORDER for s in (True, False)}
    assert {const_arg(c) for c in find_calls(tree, "sh")} <= bodies
    first = find_stage(tree, stages[0]["name"])
    assert [const_arg(c) for c in find_calls([_section(first, "steps")], "sh")] == [STAGE_STEP]
    (status,) = find_calls([first], "gitlabCommitStatus")
    assert named_arg(status, "name") == stages[0]["name"]
    envs = {a["assign"]["var"]: a["value"] for a in _assignments(tree)}
    assert "GLOBAL" not in envs and "LOCAL" not in envs  # the executor applies them, literally
    assert const_arg(envs["TOKEN"]) == data["secrets"]["TOKEN"]
    assert const_arg(envs["STAGE_SECRET"]) == stages[0]["secrets"]["STAGE_SECRET"]
    (agent,) = find_calls(tree, "agent")
    assert agent["args"] == [{"var": "any"}]  # the node; the agent image is the helper's
    (image,) = find_calls(parsed.methods, "image")
    assert const_arg(image) == data["jenkins"]["agent"]["image"]
    (args,) = [
        n
        for n in walk(parsed.methods)
        if n.get("assign") == {"var": "args"} and "const" in n["value"]
    ]
    assert folded(args["value"]) == shlex.quote(data["jenkins"]["agent"]["args"][0])
    for name in (stages[1]["name"], stages[2]["name"], stages[3]["name"]):
        assert [const_arg(c) for c in find_calls([find_stage(tree, name)], "sh")] == [STAGE_STEP]
    creds = {named_arg(c, "credentialsId") for c in find_calls(tree, "usernamePassword")}
    assert creds == {stages[1]["push"]["credentials"]}
    (connection,) = find_calls(tree, "gitLabConnection")
    assert const_arg(connection) == data["jenkins"]["connection"]
    (when_expr,) = find_calls([first], "expression")
    assert patterns_to_regex(stages[0]["when"]["branch"]) in parsed.strings
    assert when_expr["args"][0]["closure"][0]["return"]
    params = {
        named_arg(c, "name"): c for c in find_calls(tree, "string") + find_calls(tree, "choice")
    }
    assert named_arg(params["S"], "defaultValue") == data["jenkins"]["parameters"][0]["default"]
    assert named_arg(params["S"], "description") == data["jenkins"]["parameters"][0]["description"]
    (write,) = find_calls(tree, "writeFile")
    assert named_arg(write, "text") == spec_document(spec)

    # config.xml: the values come back exactly
    root = ET.fromstring(job.config_xml.encode("utf-8"))
    assert root.findtext("definition/script") == job.jenkinsfile
    assert root.findtext("description") == f"{data['description']}\n\n{marker('demo/app')}"
    assert managed_project(job.config_xml) == "demo/app"
    assert (
        root.findtext(
            "properties/com.dabsquared.gitlabjenkins.connection.GitLabConnectionProperty/gitLabConnection"
        )
        == data["jenkins"]["connection"]
    )
    defs = root.find("properties/hudson.model.ParametersDefinitionProperty/parameterDefinitions")
    assert defs is not None
    s_param, c_param = list(defs)[:2]  # the spec's own, before the trigger parameters
    assert (s_param.findtext("defaultValue") or "") == data["jenkins"]["parameters"][0]["default"]
    assert (s_param.findtext("description") or "") == data["jenkins"]["parameters"][0][
        "description"
    ]
    choices = [c.text or "" for c in c_param.iterfind("choices/a/string")]
    assert sorted(choices) == sorted(data["jenkins"]["parameters"][1]["choices"])
    regex = root.findtext(f"{TRIGGERS}/{GITLAB_TRIGGER}/targetBranchRegex")
    # gitlab-plugin's one branch filter is the push trigger's (gitlab_trigger.branch_filter)
    branches = data["triggers"]["push"]["branches"]
    if "**" not in branches:
        assert regex is not None and patterns_to_regex(list(dict.fromkeys(branches))) in regex


def _section(stage: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in stage["args"][1]["closure"] if c.get("call") == name]
    return found


def _assignments(tree: list[Any]) -> list[dict[str, Any]]:
    out = []
    for env in find_calls(tree, "environment"):
        out.extend(a for a in env["args"][0]["closure"] if "assign" in a)
    return out


@settings(max_examples=25, deadline=None)
@given(data=hostile_specs())
def test_hostile_spec_document_reads_back(data: dict[str, Any]) -> None:
    spec = spec_of(data)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.yml"
        path.write_text(spec_document(spec), encoding="utf-8")
        assert load_spec(path).spec == spec


@settings(max_examples=30, deadline=None)
@given(text=XML_SAFE, scm=st.tuples(XML_SAFE, XML_SAFE, XML_SAFE, XML_SAFE))
def test_hostile_scm_and_description_in_config_xml(text: str, scm: tuple[str, ...]) -> None:
    url, credentials, branch, script_path = scm
    data = {
        "apiVersion": "conveyor/v1",
        "project": "demo/app",
        "jenkins": {
            "job": "demo/app",
            "description": text,
            "definition": "scm",
            "scm": {
                "url": url,
                "credentials": credentials,
                "branch": branch,
                "script_path": script_path,
            },
        },
        "stages": [{"name": "t", "run": ["true"]}],
    }
    job = render(spec_of(data), trigger_token=text)
    root = ET.fromstring(job.config_xml.encode("utf-8"))
    assert root.findtext("description") == f"{text}\n\n{marker('demo/app')}"
    remote = "definition/scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig"
    assert root.findtext(f"{remote}/url") == url
    assert root.findtext(f"{remote}/credentialsId") == credentials
    # a receiver-triggered job builds the event's commit; the spec's branch is the default
    assert (
        root.findtext("definition/scm/branches/hudson.plugins.git.BranchSpec/name")
        == "${CONVEYOR_REVISION}"
    )
    (revision,) = [
        d
        for d in root.iter("hudson.model.StringParameterDefinition")
        if d.findtext("name") == "CONVEYOR_REVISION"
    ]
    assert revision.findtext("defaultValue") == branch
    assert root.findtext("definition/scriptPath") == script_path
    assert root.findtext(f"{TRIGGERS}/{GITLAB_TRIGGER}/secretToken") == text


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x0b", "\x1f", "\ufffe"])
@pytest.mark.parametrize(
    ("field", "place"),
    [
        ("jenkins.description", lambda d, v: d["jenkins"].update(description=v)),
        ("jenkins.connection", lambda d, v: d["jenkins"].update(connection="c" + v)),
        (
            "jenkins.parameters[0].default",
            lambda d, v: d["jenkins"].update(parameters=[{"name": "P", "default": v}]),
        ),
    ],
)
def test_characters_xml_cannot_carry_are_rejected(char: str, field: str, place: Any) -> None:
    data: dict[str, Any] = {
        "apiVersion": "conveyor/v1",
        "project": "demo/app",
        "jenkins": {"job": "demo/app"},
        "stages": [{"name": "t", "run": ["true"]}],
    }
    place(data, char)
    # validation refuses it at the field (conveyor.spec.rules), so render never sees it
    with pytest.raises(ValidationError) as info:
        spec_of(data)
    (error,) = info.value.errors()
    assert format_loc(error["loc"]) == field and f"U+{ord(char):04X}" in error["msg"]


def test_control_characters_are_fine_where_only_groovy_sees_them(
    groovy_parser: GroovyParser,
) -> None:
    command = "printf '\x00\x01\x1b[0m'\x7f"
    data: dict[str, Any] = {
        "apiVersion": "conveyor/v1",
        "project": "demo/app",
        "jenkins": {"job": "demo/app"},
        "stages": [{"name": "t\x01", "run": [command]}],
    }
    job = render(spec_of(data))
    parsed = groovy_parser.parse_text(job.jenkinsfile)
    assert parsed.ok
    assert [const_arg(c) for c in find_calls(parsed.tree, "sh")] == [STAGE_STEP]
    (stage,) = [c for c in find_calls(parsed.tree, "stage") if const_arg(c) != PREPARE_STAGE]
    assert const_arg(stage) == "t\x01"
    (write,) = find_calls(parsed.tree, "writeFile")
    assert named_arg(write, "text") == spec_document(spec_of(data))
    assert ET.fromstring(job.config_xml.encode()).findtext("definition/script") == job.jenkinsfile
