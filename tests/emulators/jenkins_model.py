"""How Jenkins turns a posted config.xml into what it stores, and what a Declarative run saves.

Jenkins never stores the bytes it was sent: it unmarshals them into its object model with XStream
and writes the objects back (``AbstractItem.updateByXml``, jenkinsci/jenkins
core/src/main/java/hudson/model/AbstractItem.java:926-949; ``createItem`` likewise loads then saves).
This module is that object model for the classes conveyor writes, from their sources:

* XStream builds objects **without running constructors or field initialisers** (reference
  jenkins.md, "Stored config.xml is not byte-stable"): an absent primitive field is Java's default
  (``false``/``0``) and *is* written back; an absent object field is ``null`` and is not written.
* Fields are written in declaration order, superclass first; an element naming no field of the
  class is dropped with an error recorded ("Manage Old Data"), as ``RobustReflectionConverter`` does.
* A trigger without ``<spec>`` throws in ``Trigger.readResolve`` (``CronTabList.create(null)``,
  Trigger.java:198-207, CronTabList.java:111) and ``RobustCollectionConverter`` drops it from the
  list (RobustCollectionConverter.java:139-140).
* :func:`declarative_first_run` is pipeline-model-definition's ``Utils.updateJobProperties`` and
  ``updateRunAndJobActions`` (Utils.groovy:295-309, 580-721) applied to a stored job.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

GITLAB_PLUGIN = "gitlab-plugin@1.9.6"
WORKFLOW_JOB = "workflow-job@1400.v7fd111b_ec82f"
DECLARATIVE = "pipeline-model-definition@2.2218.v56d0cda_37c72"

TRIGGER_CLASS = "com.dabsquared.gitlabjenkins.GitLabPushTrigger"
CONNECTION_CLASS = "com.dabsquared.gitlabjenkins.connection.GitLabConnectionProperty"
TRIGGERS_PROPERTY = "org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty"
PARAMETERS_PROPERTY = "hudson.model.ParametersDefinitionProperty"
DISCARDER_PROPERTY = "jenkins.model.BuildDiscarderProperty"
CONCURRENT_PROPERTY = (
    "org.jenkinsci.plugins.workflow.job.properties.DisableConcurrentBuildsJobProperty"
)
DECLARATIVE_JOB_ACTION = (
    "org.jenkinsci.plugins.pipeline.modeldefinition.actions.DeclarativeJobAction"
)
TRACKER_ACTION = (
    "org.jenkinsci.plugins.pipeline.modeldefinition.actions.DeclarativeJobPropertyTrackerAction"
)


@dataclass(frozen=True)
class F:
    """One field: ``kind`` is ``bool``/``int`` (primitives: written even when absent), ``str``/``obj``
    (null when absent: not written), or ``secret`` (a hudson.util.Secret: encrypted on save)."""

    name: str
    kind: str = "str"
    default: str | None = None  # what an absent field reads as, when not Java's default


# Class -> its fields in XStream's order. ``closed`` classes drop unknown elements (every field
# is listed); the others keep unknown elements after the known ones.
@dataclass(frozen=True)
class Model:
    fields: tuple[F, ...]
    closed: bool = True
    extra: dict[str, str] = field(default_factory=dict)


_PARAM_BASE = (F("name"), F("description"))

CLASSES: dict[str, Model] = {
    # gitlab-plugin src/main/java/com/dabsquared/gitlabjenkins/GitLabPushTrigger.java:79-111
    # (after hudson.triggers.Trigger's own ``spec``, Trigger.java).
    TRIGGER_CLASS: Model(
        (
            F("spec"),
            F("triggerOnPush", "bool"),
            F("triggerToBranchDeleteRequest", "bool"),
            F("triggerOnMergeRequest", "bool"),
            F("triggerOnlyIfNewCommitsPushed", "bool"),
            F("triggerOnPipelineEvent", "bool"),
            F("triggerOnAcceptedMergeRequest", "bool"),
            F("triggerOnClosedMergeRequest", "bool"),
            F("triggerOnApprovedMergeRequest", "bool"),
            F("triggerOpenMergeRequestOnPush"),
            F("triggerOnNoteRequest", "bool"),
            F("noteRegex"),
            F("ciSkip", "bool"),
            F("skipWorkInProgressMergeRequest", "bool"),
            F("labelsThatForcesBuildIfAdded"),
            F("setBuildDescription", "bool"),
            F("branchFilterType"),
            F("includeBranchesSpec"),
            F("excludeBranchesSpec"),
            F("sourceBranchRegex"),
            F("targetBranchRegex"),
            F("mergeRequestLabelFilterConfig", "obj"),
            F("secretToken", "secret"),
            F("pendingBuildName"),
            F("cancelPendingBuildsOnUpdate", "bool"),
            F("cancelRunningBuildsOnUpdate", "bool"),
        )
    ),
    # GitLabConnectionProperty.java:39-41. The reference (jenkins.md) records that a stored job
    # shows ``<jobCredentialId/>`` after a save: modelled as an empty string when absent.
    CONNECTION_CLASS: Model(
        (
            F("gitLabConnection"),
            F("jobCredentialId", default=""),
            F("useAlternativeCredential", "bool"),
        )
    ),
    # core/src/main/java/hudson/tasks/LogRotator.java:90-115 (removeLastBuild since 2.474).
    "hudson.tasks.LogRotator": Model(
        (
            F("daysToKeep", "int"),
            F("numToKeep", "int"),
            F("artifactDaysToKeep"),
            F("artifactNumToKeep"),
            F("removeLastBuild", "bool"),
        )
    ),
    DISCARDER_PROPERTY: Model((F("strategy", "obj"),)),
    # workflow-job .../job/properties/DisableConcurrentBuildsJobProperty.java: ``private boolean
    # abortPrevious`` (setter ``setAbortPrevious``).
    CONCURRENT_PROPERTY: Model((F("abortPrevious", "bool"),)),
    PARAMETERS_PROPERTY: Model((F("parameterDefinitions", "obj"),)),
    TRIGGERS_PROPERTY: Model((F("triggers", "obj"),)),
    # core ParameterDefinition.java (name, description) + each subclass.
    "hudson.model.StringParameterDefinition": Model(
        (*_PARAM_BASE, F("defaultValue"), F("trim", "bool"))
    ),
    "hudson.model.TextParameterDefinition": Model(
        (*_PARAM_BASE, F("defaultValue"), F("trim", "bool"))
    ),
    "hudson.model.BooleanParameterDefinition": Model((*_PARAM_BASE, F("defaultValue", "bool"))),
    "hudson.model.ChoiceParameterDefinition": Model(
        (*_PARAM_BASE, F("choices", "obj"), F("defaultValue"))
    ),
    "org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition": Model(
        (F("script"), F("sandbox", "bool"))
    ),
    "org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition": Model(
        (F("scm", "obj"), F("scriptPath"), F("lightweight", "bool"))
    ),
    "hudson.plugins.git.BranchSpec": Model((F("name"),)),
}

# element tag (or class= attribute) -> plugin="name@version" Jenkins writes on save
PLUGIN_VERSIONS = {
    "flow-definition": WORKFLOW_JOB,
    "org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition": "workflow-cps@3894.vd0f0248b_a_fc4",
    "org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition": "workflow-cps@3894.vd0f0248b_a_fc4",
    "hudson.plugins.git.GitSCM": "git@5.2.2",
    TRIGGER_CLASS: GITLAB_PLUGIN,
    CONNECTION_CLASS: GITLAB_PLUGIN,
    TRIGGERS_PROPERTY: WORKFLOW_JOB,
    CONCURRENT_PROPERTY: WORKFLOW_JOB,
    DECLARATIVE_JOB_ACTION: DECLARATIVE,
    TRACKER_ACTION: DECLARATIVE,
    "com.cloudbees.hudson.plugins.folder.Folder": "cloudbees-folder@6.928.v7c780211d66e",
}


def class_of(elem: ET.Element) -> str:
    return elem.get("class") or elem.tag


@dataclass
class LoadReport:
    """What XStream could not load ("Manage Old Data"): one line per dropped element."""

    errors: list[str] = field(default_factory=list)


def _trigger_lists(root: ET.Element) -> Iterator[ET.Element]:
    for prop in root.iter(TRIGGERS_PROPERTY):
        holder = prop.find("triggers")
        if holder is not None:
            yield holder
    top = root.find("triggers")  # the freestyle form / WorkflowJob's deprecated field
    if top is not None:
        yield top


def load(root: ET.Element, report: LoadReport) -> ET.Element:
    """The object model of ``root`` as Jenkins would write it back (a new tree)."""
    root = copy.deepcopy(root)
    for holder in list(_trigger_lists(root)):
        for trigger in list(holder):
            if trigger.find("spec") is None:
                # Trigger.readResolve -> CronTabList.create(null) -> NullPointerException, which
                # RobustCollectionConverter.populateCollection catches and drops the element.
                holder.remove(trigger)
                report.errors.append(
                    f"{trigger.tag}: java.lang.NullPointerException in Trigger.readResolve "
                    "(no <spec>): dropped"
                )
    _load_fields(root, report)
    return root


def _load_fields(elem: ET.Element, report: LoadReport) -> None:
    for child in elem:
        _load_fields(child, report)
    model = CLASSES.get(class_of(elem))
    if model is None:
        return
    present = {c.tag: c for c in elem}
    ordered: list[ET.Element] = []
    for f in model.fields:
        child = present.pop(f.name, None)
        if child is None:
            if f.kind == "bool":
                child = _leaf(f.name, "false")
            elif f.kind == "int":
                child = _leaf(f.name, "0")
            elif f.default is not None:
                child = _leaf(f.name, f.default)
            else:
                continue  # a null object field is not written
        ordered.append(child)
    for tag, child in present.items():
        if model.closed:
            report.errors.append(f"{class_of(elem)}: no field {tag!r}: dropped")
        else:
            ordered.append(child)
    for child in list(elem):
        elem.remove(child)
    elem.extend(ordered)


def _leaf(tag: str, text: str | None, **attrs: str) -> ET.Element:
    elem = ET.Element(tag, attrs)
    elem.text = text
    return elem


def xstream_text(elem: ET.Element) -> str:
    """A canonical text of an object as XStream would marshal it (for ``isObjectsEqualsXStream``)."""
    parts: list[str] = []

    def walk(e: ET.Element) -> None:
        attrs = "".join(f" {k}={v!r}" for k, v in sorted(e.attrib.items()) if k != "plugin")
        parts.append(f"<{e.tag}{attrs}>")
        if len(e):
            for c in e:
                walk(c)
        else:
            parts.append(repr(e.text or ""))
        parts.append(f"</{e.tag}>")

    walk(elem)
    return "".join(parts)


# ------------------------------------------------------------------ a Declarative Jenkinsfile's declarations


class GroovyParseError(ValueError):
    pass


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


_TOKEN = re.compile(
    r"\s*(?:(?P<tq>'''(?:\\.|(?!''').|\n)*''')|(?P<sq>'(?:\\.|[^'\\\n])*')|(?P<dq>\"(?:\\.|[^\"\\\n])*\")"
    r"|(?P<num>-?\d+)|(?P<id>[A-Za-z_$][A-Za-z0-9_$]*)|(?P<p>[()\[\],:]))",
    re.DOTALL,
)
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "$": "$",
}


def _unescape(body: str) -> str:
    def sub(m: re.Match[str]) -> str:
        esc = m.group(1)
        if esc.startswith("u"):
            return chr(int(esc[1:], 16))
        return _ESCAPES.get(esc, "\\" + esc)

    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", sub, body, flags=re.DOTALL)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                raise GroovyParseError(f"cannot read {text[pos : pos + 30]!r}")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise GroovyParseError(f"expected {value!r}, got {tok!r}")
        self.i += 1
        return tok

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "tq":
            return _unescape(text[3:-3])
        if kind in ("sq", "dq"):
            return _unescape(text[1:-1])
        if kind == "num":
            return int(text)
        if kind == "id":
            if text in ("true", "false"):
                return text == "true"
            if self.peek() == ("p", "("):
                return self.call_rest(text)
            return Call(text, (), {})
        if text == "[":
            items: list[Any] = []
            while self.peek() != ("p", "]"):
                items.append(self.value())
                if self.peek() == ("p", ","):
                    self.take(",")
            self.take("]")
            return items
        raise GroovyParseError(f"unexpected {text!r}")

    def call_rest(self, name: str) -> Call:
        self.take("(")
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        while self.peek() != ("p", ")"):
            tok = self.peek()
            nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
            if tok is not None and tok[0] == "id" and nxt == ("p", ":"):
                self.i += 2
                kwargs[tok[1]] = self.value()
            else:
                args.append(self.value())
            if self.peek() == ("p", ","):
                self.take(",")
        self.take(")")
        return Call(name, tuple(args), kwargs)


def parse_call(statement: str) -> Call:
    """One Groovy method call statement: ``name(args)``, or the command form ``name arg``."""
    parser = _Parser(statement)
    kind, name = parser.take()
    if kind != "id":
        raise GroovyParseError(f"not a call: {statement!r}")
    if parser.peek() == ("p", "("):
        call = parser.call_rest(name)
    elif parser.peek() is None:
        call = Call(name, (), {})
    else:
        call = Call(name, (parser.value(),), {})
    if parser.peek() is not None:
        raise GroovyParseError(f"trailing text in {statement!r}")
    return call


def _skip_string(text: str, i: int) -> int:
    for quote in ("'''", '"""', "'", '"'):
        if text.startswith(quote, i):
            j = i + len(quote)
            while j < len(text):
                if text[j] == "\\":
                    j += 2
                    continue
                if text.startswith(quote, j):
                    return j + len(quote)
                j += 1
            return j
    return i


def block(text: str, name: str) -> str | None:
    """The body of the first top-level-looking ``name { ... }`` block inside ``pipeline {}``."""
    m = re.search(r"(?m)^\s*pipeline\s*\{", text)
    if m is None:
        return None
    depth = 0
    i = m.end() - 1
    while i < len(text):
        j = _skip_string(text, i)
        if j != i:
            i = j
            continue
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return None
        elif (
            depth == 1
            and re.match(rf"{re.escape(name)}\s*\{{", text[i:])
            and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))
        ):
            start = text.index("{", i) + 1
            k, d = start, 1
            while k < len(text) and d:
                k2 = _skip_string(text, k)
                if k2 != k:
                    k = k2
                    continue
                d += {"{": 1, "}": -1}.get(text[k], 0)
                k += 1
            return text[start : k - 1]
        i += 1
    return None


def _split_statements(body: str) -> list[str]:
    """Statements of a block: one a line, or several separated by ``;`` (outside strings)."""
    out: list[str] = []
    current = ""
    i = 0
    while i < len(body):
        j = _skip_string(body, i)
        if j != i:
            current += body[i:j]
            i = j
            continue
        if body[i] in ";\n":
            out.append(current)
            current = ""
        else:
            current += body[i]
        i += 1
    out.append(current)
    return [s.strip() for s in out if s.strip() and not s.strip().startswith("//")]


def statements(body: str) -> list[Call]:
    return [parse_call(statement) for statement in _split_statements(body)]


def is_declarative(script: str) -> bool:
    return re.search(r"(?m)^\s*pipeline\s*\{", script) is not None


def _param_element(call: Call) -> ET.Element | None:
    """A Jenkinsfile ``parameters {}`` entry as the ParameterDefinition object it instantiates."""
    kw = call.kwargs
    name = kw.get("name", call.args[0] if call.args else "")
    description = kw.get("description") or None  # ParameterDefinition.setDescription: fixEmpty
    classes = {
        "string": "hudson.model.StringParameterDefinition",
        "text": "hudson.model.TextParameterDefinition",
        "booleanParam": "hudson.model.BooleanParameterDefinition",
        "choice": "hudson.model.ChoiceParameterDefinition",
    }
    cls = classes.get(call.name)
    if cls is None:
        return None
    e = ET.Element(cls)
    e.append(_leaf("name", name))
    if description is not None:
        e.append(_leaf("description", description))
    if call.name in ("string", "text"):
        default = kw.get("defaultValue") or None  # StringParameterDefinition: Util.fixEmpty
        if default is not None:
            e.append(_leaf("defaultValue", default))
        e.append(_leaf("trim", "true" if kw.get("trim") else "false"))
    elif call.name == "booleanParam":
        e.append(_leaf("defaultValue", "true" if kw.get("defaultValue") else "false"))
    else:
        # ChoiceParameterDefinition.setChoices(List) copies into a java.util.ArrayList (no class=)
        choices = ET.SubElement(e, "choices")
        for c in kw.get("choices") or []:
            choices.append(_leaf("string", str(c)))
    return e


def _option_property(call: Call) -> ET.Element | None:
    """An ``options {}`` entry that instantiates a JobProperty (wrappers such as ``timeout`` and
    ``timestamps`` do not), as that object."""
    if call.name == "buildDiscarder" and call.args and isinstance(call.args[0], Call):
        rotator = call.args[0]
        prop = ET.Element(DISCARDER_PROPERTY)
        strategy = ET.SubElement(prop, "strategy", {"class": "hudson.tasks.LogRotator"})

        def parse(key: str) -> str:  # LogRotator.parse: null or not a number -> -1
            try:
                return str(int(str(rotator.kwargs.get(key))))
            except ValueError:
                return "-1"

        for tag, key in (
            ("daysToKeep", "daysToKeepStr"),
            ("numToKeep", "numToKeepStr"),
            ("artifactDaysToKeep", "artifactDaysToKeepStr"),
            ("artifactNumToKeep", "artifactNumToKeepStr"),
        ):
            strategy.append(_leaf(tag, parse(key)))
        strategy.append(_leaf("removeLastBuild", "false"))
        return prop
    if call.name == "disableConcurrentBuilds":
        prop = ET.Element(CONCURRENT_PROPERTY)
        prop.append(_leaf("abortPrevious", "true" if call.kwargs.get("abortPrevious") else "false"))
        return prop
    if call.name == "gitLabConnection":
        prop = ET.Element(CONNECTION_CLASS)
        name = call.kwargs.get("gitLabConnection", call.args[0] if call.args else None)
        if name is not None:
            prop.append(_leaf("gitLabConnection", name))
        if "jobCredentialId" in call.kwargs:
            prop.append(_leaf("jobCredentialId", call.kwargs["jobCredentialId"]))
        prop.append(
            _leaf(
                "useAlternativeCredential",
                "true" if call.kwargs.get("useAlternativeCredential") else "false",
            )
        )
        return prop
    return None


@dataclass(frozen=True)
class Declared:
    properties: list[ET.Element]
    triggers: list[ET.Element]
    parameters: list[ET.Element]


def declarations(script: str) -> Declared:
    """The job properties, triggers and parameters a Declarative Jenkinsfile declares."""
    props: list[ET.Element] = []
    for call in statements(block(script, "options") or ""):
        prop = _option_property(call)
        if prop is not None:
            props.append(prop)
    params = [
        p
        for p in (_param_element(c) for c in statements(block(script, "parameters") or ""))
        if p is not None
    ]
    declared_triggers = statements(block(script, "triggers") or "")
    if declared_triggers:
        # conveyor keeps the GitLab trigger in config.xml; a Jenkinsfile `triggers {}` block would be
        # instantiated through DataBoundConstructors (initialisers run), which is not modelled here
        raise GroovyParseError(
            f"triggers {{}} in a Jenkinsfile is not modelled: {[c.name for c in declared_triggers]}"
        )
    return Declared(props, [], params)


# ------------------------------------------------------------------ Utils.updateJobProperties


def _tracker(root: ET.Element) -> ET.Element | None:
    actions = root.find("actions")
    return actions.find(TRACKER_ACTION) if actions is not None else None


def _tracked(tracker: ET.Element | None, name: str) -> set[str]:
    if tracker is None:
        return set()
    holder = tracker.find(name)
    return {s.text or "" for s in holder.iter("string")} if holder is not None else set()


def _new_tracker(declared: Declared) -> ET.Element:
    # DeclarativeJobPropertyTrackerAction.java: descriptor ids of properties/triggers, parameter
    # names, option names; HashSets (written here sorted).
    tracker = ET.Element(TRACKER_ACTION)
    for tag, values in (
        ("jobProperties", sorted(p.tag for p in declared.properties)),
        ("triggers", sorted(t.tag for t in declared.triggers)),
        ("parameters", sorted(p.findtext("name") or "" for p in declared.parameters)),
        ("options", []),
    ):
        holder = ET.SubElement(tracker, tag)
        for v in values:
            holder.append(_leaf("string", v))
    return tracker


def declarative_first_run(
    root: ET.Element, script: str, previous_build_tracker: ET.Element | None
) -> bool:
    """Apply what a Declarative run does to its job (``root`` is changed in place). Returns True when
    the job is saved (``bc.commit()``, Utils.groovy:714-716)."""
    declared = declarations(script)
    changed = False
    actions = root.find("actions")
    if actions is None:
        actions = ET.Element("actions")
        root.insert(0, actions)
    # Utils.groovy:305-307: job.addAction(new DeclarativeJobAction()) when absent.
    if actions.find(DECLARATIVE_JOB_ACTION) is None:
        actions.append(ET.Element(DECLARATIVE_JOB_ACTION))
        changed = True
    previous = _tracker(root)
    if previous is None:  # Utils.groovy:606-612: fall back to the previous completed build
        previous = previous_build_tracker
    prev_props = _tracked(previous, "jobProperties")
    prev_params = _tracked(previous, "parameters")
    prev_triggers = _tracked(previous, "triggers")

    props = root.find("properties")
    if props is None:
        props = ET.SubElement(root, "properties")
    special = {TRIGGERS_PROPERTY, PARAMETERS_PROPERTY}
    existing = [p for p in props if p.tag not in special]

    # getPropertiesToApply (Utils.groovy:880-891): a TreeSet by descriptor id holding the existing
    # ones (minus those the previous Jenkinsfile declared); addAll keeps an existing equal-id entry.
    to_apply: dict[str, ET.Element] = {}
    for p in existing:
        if p.tag not in prev_props:
            to_apply.setdefault(p.tag, p)
    for p in declared.properties:
        to_apply.setdefault(p.tag, p)
    current = list(to_apply.values())
    current_ids = {p.tag for p in current}
    counts: dict[str, int] = {}
    for p in existing:
        counts[p.tag] = counts.get(p.tag, 0) + 1
    by_id = {p.tag: p for p in existing}
    to_remove = [p for p in existing if p.tag not in current_ids]  # Utils.groovy:927-931
    to_update = [  # Utils.groovy:902-916
        p
        for p in current
        if p.tag not in by_id or counts[p.tag] > 1 or xstream_text(p) != xstream_text(by_id[p.tag])
    ]

    # Triggers (Utils.groovy:796-807, 820-832): by descriptor id, previous Jenkinsfile's removed.
    trig_prop = props.find(TRIGGERS_PROPERTY)
    trig_holder = trig_prop.find("triggers") if trig_prop is not None else None
    existing_triggers = list(trig_holder) if trig_holder is not None else []
    triggers = [t for t in existing_triggers if t.tag not in prev_triggers]
    triggers += [t for t in declared.triggers if t.tag not in {x.tag for x in triggers}]
    triggers_changed = [xstream_text(t) for t in triggers] != [
        xstream_text(t) for t in existing_triggers
    ]

    # Parameters (Utils.groovy:848-864, 732-762): the Jenkinsfile's, then existing ones it did not
    # name and the previous Jenkinsfile did not declare.
    param_prop = props.find(PARAMETERS_PROPERTY)
    param_holder = param_prop.find("parameterDefinitions") if param_prop is not None else None
    existing_params = list(param_holder) if param_holder is not None else []
    seen = {p.findtext("name") for p in declared.parameters}
    params = list(declared.parameters) + [
        p
        for p in existing_params
        if p.findtext("name") not in seen and p.findtext("name") not in prev_params
    ]
    old = {p.findtext("name"): xstream_text(p) for p in existing_params}
    new = {p.findtext("name"): xstream_text(p) for p in params}
    params_changed = old != new

    if triggers_changed:  # Utils.groovy:669-675
        if trig_prop is not None:
            props.remove(trig_prop)
        if triggers:
            holder = ET.SubElement(ET.SubElement(props, TRIGGERS_PROPERTY), "triggers")
            holder.extend(triggers)
        changed = True
    if params_changed:  # Utils.groovy:678-684: remove, then add (the property moves last)
        if param_prop is not None:
            props.remove(param_prop)
        if params:
            holder = ET.SubElement(
                ET.SubElement(props, PARAMETERS_PROPERTY), "parameterDefinitions"
            )
            holder.extend(params)
        changed = True
    for p in to_remove:  # Utils.groovy:687-690
        props.remove(p)
        changed = True
    for p in to_update:  # Utils.groovy:693-701
        for old_p in [x for x in props if x.tag == p.tag]:
            props.remove(old_p)
        props.append(p)
        changed = True
    # Utils.groovy:704-712: replace the tracker when it differs from the previous one.
    tracker = _new_tracker(declared)
    if previous is None or xstream_text(previous) != xstream_text(tracker):
        old_tracker = actions.find(TRACKER_ACTION)
        if old_tracker is not None:
            actions.remove(old_tracker)
        actions.append(tracker)
        changed = True
    return changed


def tracker_of(root: ET.Element) -> ET.Element | None:
    found = _tracker(root)
    return copy.deepcopy(found) if found is not None else None
