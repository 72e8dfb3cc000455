"""Render a spec as a Jenkins pipeline job ``config.xml`` (workflow-job), and compare job configs.

Pure. Every value goes through :mod:`conveyor.jenkins.xml` (the one XML escaper). The job carries:

* a ``<description>`` whose last line is the managed-by marker ``[managed by conveyor: <project>]``
  (Jenkins drops XML comments when it saves a job, the description survives; see :func:`is_managed`);
* ``GitLabConnectionProperty``; ``BuildDiscarderProperty`` and ``DisableConcurrentBuildsJobProperty``
  matching the Jenkinsfile's ``options`` (declarative sets them on the first run, so emitting them here
  keeps the stored config from drifting); ``ParametersDefinitionProperty`` with the same parameters as
  the Jenkinsfile (a ``parameters {}`` block only takes effect after one run);
* ``PipelineTriggersJobProperty`` with a ``GitLabPushTrigger`` whose settings decide like the spec's
  triggers (:mod:`conveyor.jenkins.gitlab_trigger`), every field written with ``<spec>`` first, so
  Jenkins neither drops the trigger on load nor rewrites it on save;
* the plugins' defaults Jenkins writes back when it saves the object model (``removeLastBuild``,
  ``useAlternativeCredential``, ``abortPrevious``), and no ``<actions>`` (a POST unmarshals onto the
  job and would otherwise wipe what a Declarative run saved there);
* ``CpsFlowDefinition`` (inline script, sandbox on) or ``CpsScmFlowDefinition`` (GitSCM + scriptPath;
  the branch is ``${CONVEYOR_REVISION}`` when conveyor's receiver triggers the job).

:func:`normalize_config_xml` is the comparison ``plan`` uses: it knows what Jenkins adds on its own.

The GitLab trigger's ``secretToken`` is written only when a token is passed in: the XML sent to Jenkins
(which encrypts it) has it, ``conveyor render`` to disk never does.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from conveyor.errors import RenderError
from conveyor.jenkins import gitlab_trigger, xml
from conveyor.jenkins.jenkinsfile import choices_in_order, job_parameters
from conveyor.pipeline.context import REVISION_BRANCH_SPEC
from conveyor.spec.model import Parameter, Spec, Triggers

MANAGED_MARKER = "[managed by conveyor: "
_MARKER_LINE = re.compile(r"\[managed by conveyor: ([^\]\n]+)\]\s*$")

GITLAB_TRIGGER = "com.dabsquared.gitlabjenkins.GitLabPushTrigger"
GITLAB_CONNECTION = "com.dabsquared.gitlabjenkins.connection.GitLabConnectionProperty"
TRIGGERS_PROPERTY = "org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty"
PARAMETERS_PROPERTY = "hudson.model.ParametersDefinitionProperty"
CONCURRENT_PROPERTY = (
    "org.jenkinsci.plugins.workflow.job.properties.DisableConcurrentBuildsJobProperty"
)
CPS_INLINE = "org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition"
CPS_SCM = "org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition"
SECRET_ELEMENTS = frozenset({"secretToken"})
SECRET_MASK = "********"

_PARAMETER_CLASS = {
    "boolean": "hudson.model.BooleanParameterDefinition",
    "string": "hudson.model.StringParameterDefinition",
    "text": "hudson.model.TextParameterDefinition",
    "choice": "hudson.model.ChoiceParameterDefinition",
}


def marker(project: str) -> str:
    """The description line that marks a job as managed by conveyor for ``project``."""
    return f"{MANAGED_MARKER}{project}]"


def description(spec: Spec) -> str:
    """The job description: the spec's text, then the managed-by marker as the last line."""
    text = spec.jenkins.description or spec.description
    return f"{text}\n\n{marker(spec.project)}" if text else marker(spec.project)


def managed_project(config_xml: str) -> str | None:
    """The project named by the managed-by marker of a job's config.xml, or None."""
    try:
        root = ET.fromstring(_without_declaration(config_xml))
    except ET.ParseError:
        return None
    found = root.find("description")
    if found is None or not found.text:
        return None
    match = _MARKER_LINE.search(found.text)
    return match.group(1) if match else None


def is_managed(config_xml: str) -> bool:
    """Does this config.xml (as stored by Jenkins) belong to a job conveyor manages?"""
    return managed_project(config_xml) is not None


# ------------------------------------------------------------------------------------------- triggers


def _trigger(parent: xml.Element, triggers: Triggers, token: str | None) -> None:
    """Every field of GitLabPushTrigger in its declaration order (GitLabPushTrigger.java:79-111), so
    what Jenkins writes back after loading it is what was sent. ``<spec>`` first, empty but present:
    without it ``Trigger.readResolve`` throws and Jenkins drops the trigger (Trigger.java:198-207)."""
    s = gitlab_trigger.settings(triggers)
    t = parent.add(GITLAB_TRIGGER, plugin="gitlab-plugin")
    fields: list[tuple[str, str]] = [
        ("spec", ""),
        ("triggerOnPush", _bool(s.on_push)),
        ("triggerToBranchDeleteRequest", "false"),
        ("triggerOnMergeRequest", _bool(s.on_merge_request)),
        ("triggerOnlyIfNewCommitsPushed", _bool(s.only_if_new_commits)),
        ("triggerOnPipelineEvent", "false"),
        ("triggerOnAcceptedMergeRequest", _bool(s.on_accepted)),
        ("triggerOnClosedMergeRequest", _bool(s.on_closed)),
        ("triggerOnApprovedMergeRequest", "false"),
        ("triggerOpenMergeRequestOnPush", s.open_merge_request_on_push),
        ("triggerOnNoteRequest", "false"),
        ("noteRegex", "Jenkins please retry a build"),
        ("ciSkip", "false"),  # gitlab-plugin's "[ci-skip]" is not the spec's skip_ci
        ("skipWorkInProgressMergeRequest", "false"),  # the receiver builds drafts too
        ("labelsThatForcesBuildIfAdded", ""),
        ("setBuildDescription", "true"),
        ("branchFilterType", s.filter_type),
        ("includeBranchesSpec", ""),
        ("excludeBranchesSpec", ""),
        ("sourceBranchRegex", ""),
        ("targetBranchRegex", s.target_regex),
    ]
    for tag, value in fields:
        t.add(tag, value)
    if token is not None:
        t.add("secretToken", token)
    t.add("pendingBuildName", "")
    t.add("cancelPendingBuildsOnUpdate", "false")
    t.add("cancelRunningBuildsOnUpdate", "false")


# ----------------------------------------------------------------------------------------- properties


def _parameter(parent: xml.Element, p: Parameter) -> None:
    e = parent.add(_PARAMETER_CLASS[p.type])
    e.add("name", p.name)
    e.add("description", p.description)
    if p.type == "boolean":
        e.add("defaultValue", _bool(bool(p.default)))
    elif p.type == "choice":
        choices = e.add("choices", **{"class": "java.util.Arrays$ArrayList"})
        array = choices.add("a", **{"class": "string-array"})
        for choice in choices_in_order(p):
            array.add("string", choice)
    else:
        e.add("defaultValue", p.default if isinstance(p.default, str) else "")
        e.add("trim", "false")


def _properties(root: xml.Element, spec: Spec, token: str | None) -> None:
    props = root.add("properties")
    connection = props.add(GITLAB_CONNECTION, plugin="gitlab-plugin")
    connection.add("gitLabConnection", spec.jenkins.connection)
    connection.add("useAlternativeCredential", "false")  # GitLabConnectionProperty.java:41
    options = spec.jenkins.options
    discarder = props.add("jenkins.model.BuildDiscarderProperty")
    strategy = discarder.add("strategy", **{"class": "hudson.tasks.LogRotator"})
    for tag, value in (
        ("daysToKeep", "-1"),
        ("numToKeep", str(options.keep_builds)),
        ("artifactDaysToKeep", "-1"),
        ("artifactNumToKeep", "-1"),
        ("removeLastBuild", "false"),  # LogRotator.java:115
    ):
        strategy.add(tag, value)
    if not options.concurrent:
        props.add(CONCURRENT_PROPERTY).add("abortPrevious", "false")
    definitions = props.add(PARAMETERS_PROPERTY).add("parameterDefinitions")
    for p in job_parameters(spec):
        _parameter(definitions, p)
    triggers = spec.triggers
    if triggers.push or triggers.tag_push or triggers.merge_request:
        _trigger(props.add(TRIGGERS_PROPERTY).add("triggers"), triggers, token)


# ----------------------------------------------------------------------------------------- definition


def _definition(root: xml.Element, spec: Spec, script: str, clone_url: str | None) -> None:
    if spec.jenkins.definition == "inline":
        d = root.add("definition", **{"class": CPS_INLINE, "plugin": "workflow-cps"})
        d.add("script", script)
        d.add("sandbox", "true")
        return
    scm_spec = spec.jenkins.scm
    url = scm_spec.url or clone_url
    if url is None:
        raise RenderError(
            f"{spec.project}: jenkins.definition is 'scm' but no clone URL is known",
            hint="set jenkins.scm.url in the spec, or CONVEYOR_GITLAB_URL to derive it",
        )
    d = root.add("definition", **{"class": CPS_SCM, "plugin": "workflow-cps"})
    scm = d.add("scm", **{"class": "hudson.plugins.git.GitSCM", "plugin": "git"})
    scm.add("configVersion", "2")
    remote = scm.add("userRemoteConfigs").add("hudson.plugins.git.UserRemoteConfig")
    remote.add("url", url)
    if scm_spec.credentials is not None:
        remote.add("credentialsId", scm_spec.credentials)
    branch = REVISION_BRANCH_SPEC if spec.webhook.target == "receiver" else scm_spec.branch
    scm.add("branches").add("hudson.plugins.git.BranchSpec").add("name", branch)
    scm.add("doGenerateSubmoduleConfigurations", "false")
    scm.add("submoduleCfg", **{"class": "empty-list"})
    scm.add("extensions")
    d.add("scriptPath", scm_spec.script_path)
    d.add("lightweight", _bool(_lightweight(spec)))


def _lightweight(spec: Spec) -> bool:
    """A lightweight checkout fetches ``refs/heads/<name>`` (GitSCMFileSystem.java:405-409) and cannot
    read the Jenkinsfile of a commit given by its SHA-1, which receiver-triggered builds pass as
    ``CONVEYOR_REVISION``: off for those jobs (an explicit ``true`` there is refused by validation,
    :mod:`conveyor.spec.rules`)."""
    return spec.jenkins.scm.lightweight if spec.webhook.target != "receiver" else False


def _bool(flag: bool) -> str:
    return "true" if flag else "false"


def render_config_xml(
    spec: Spec, jenkinsfile: str, *, trigger_token: str | None = None, clone_url: str | None = None
) -> str:
    """The job's config.xml. ``jenkinsfile`` is inlined for ``definition: inline``; ``trigger_token``
    (a secret) becomes the GitLab trigger's ``secretToken`` only when given. Triggers gitlab-plugin
    cannot express with ``webhook.target: jenkins`` never get here (:mod:`conveyor.spec.rules`)."""
    # No <actions>: POST config.xml unmarshals onto the job (AbstractItem.java:938), so Jenkins keeps
    # the actions a Declarative run saved; an empty <actions/> would wipe them.
    root = xml.Element("flow-definition", attrs={"plugin": "workflow-job"})
    root.add("description", description(spec))
    root.add("keepDependencies", "false")
    _properties(root, spec, trigger_token)
    _definition(root, spec, jenkinsfile, clone_url)
    root.add("disabled", "false")
    return xml.serialize(root)


# ------------------------------------------------------------------------------------------ normalize

# Children of these elements form ordered lists; elsewhere children are named fields, compared as a set.
_ORDERED = frozenset(
    {"parameterDefinitions", "a", "userRemoteConfigs", "branches", "extensions", "choices"}
)
_DROP_ATTRS = frozenset({"plugin"})

# What Jenkins adds on its own, which a comparison must not count as drift.
#: Actions pipeline-model-definition saves on a job's first Declarative run (Utils.groovy:305-306,
#: 703-712): they record what the Jenkinsfile declared, not configuration conveyor manages.
JENKINS_OWN_ACTIONS = ("org.jenkinsci.plugins.pipeline.modeldefinition.actions.",)
#: Fields Jenkins writes when it saves the object model, at the value they have when conveyor leaves
#: them out (XStream's Java defaults: it runs no initialisers). A field at another value is drift.
JENKINS_DEFAULTS: dict[str, dict[str, str]] = {
    "hudson.tasks.LogRotator": {"removeLastBuild": "false"},  # LogRotator.java:115
    GITLAB_CONNECTION: {"useAlternativeCredential": "false"},  # GitLabConnectionProperty.java:41
    CONCURRENT_PROPERTY: {"abortPrevious": "false"},
    "hudson.model.StringParameterDefinition": {"trim": "false"},
    "hudson.model.TextParameterDefinition": {"trim": "false"},
}


def _without_declaration(text: str) -> str:
    # expat does not accept version='1.1', which Jenkins writes; the declaration carries nothing we need.
    return re.sub(r"^\s*<\?xml[^>]*\?>", "", text, count=1)


def _choices(node: ET.Element) -> xml.Element:
    # ChoiceParameterDefinition keeps a List<String>: Jenkins writes it as java.util.Arrays$ArrayList
    # (a string-array inside) or, once a Jenkinsfile's choice() set it, as a plain ArrayList.
    element = xml.Element("choices")
    element.children = [xml.Element("string", s.text or "") for s in node.iter("string")]
    return element


def _normalize(node: ET.Element, parent_tag: str = "") -> xml.Element | None:
    if node.tag == "choices":
        return _choices(node)
    if parent_tag == "actions" and str(node.tag).startswith(JENKINS_OWN_ACTIONS):
        return None
    attrs = {k: v for k, v in sorted(node.attrib.items()) if k not in _DROP_ATTRS}
    defaults = JENKINS_DEFAULTS.get(node.get("class") or str(node.tag), {})
    children = [
        c
        for c in (
            _normalize(child, str(node.tag))
            for child in node
            if defaults.get(str(child.tag)) != (child.text or "").strip() or len(child)
        )
        if c is not None
    ]
    if node.tag not in _ORDERED:
        tags = [c.tag for c in children]
        if len(set(tags)) == len(tags):
            children.sort(key=lambda c: c.tag)
    text = node.text if node.text and node.text.strip() else None
    if node.tag in SECRET_ELEMENTS and text is not None:
        text = SECRET_MASK
    if not children and text is None and not (set(attrs) - {"class"}):
        return None  # an empty element means the same as an absent one (Jenkins drops defaults)
    element = xml.Element(str(node.tag), text if not children else None, attrs)
    element.children = children
    return element


def normalize_config_xml(config_xml: str) -> str:
    """A canonical form of a job config for comparison and readable diffs: no XML declaration, no
    ``plugin=`` attributes, sorted attributes, no whitespace-only text, no empty elements, named fields
    sorted (lists keep their order), secret values masked, and what Jenkins adds by itself left out
    (:data:`JENKINS_OWN_ACTIONS`, :data:`JENKINS_DEFAULTS`, the form of choice lists). Raises
    RenderError on malformed XML."""
    try:
        root = ET.fromstring(_without_declaration(config_xml))
    except ET.ParseError as exc:
        raise RenderError(f"config.xml is not well-formed XML: {exc}") from exc
    normalized = _normalize(root) or xml.Element(str(root.tag))
    return xml.serialize(normalized, declaration=False)
