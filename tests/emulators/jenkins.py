"""A strict Jenkins REST emulator: folders, pipeline jobs, config.xml, builds, queue, crumbs.

Behaviour follows /work/shared/reference/jenkins.md, as python-jenkins 1.8 drives it:

* HTTP Basic auth with a user's API token (or password: "session-style" auth); wrong credentials
  -> 401; anonymous requests -> 403 unless ``anonymous_read`` (then only ``GET /`` is allowed).
  Every response carries ``X-Jenkins``.
* Crumbs: ``/crumbIssuer/api/json`` hands out a crumb bound to a ``JSESSIONID`` cookie.
  ``crumb_mode="strict"`` (default) demands a valid ``Jenkins-Crumb`` on *every* POST,
  ``"session"`` only on password-authenticated POSTs (API-token requests are exempt, as since
  Jenkins 2.96), ``"disabled"`` turns the issuer off (404).
* Stored config.xml is rewritten like Jenkins does on save: XML 1.1 declaration,
  ``plugin="name@version"`` attributes, ``<actions/>`` added, ``<secretToken>`` encrypted to
  ``{AQAAABAAAAAQ...}``, ``'``/``"`` escaped in text, two-space re-indentation.
* Builds run on a clock: a queue item shows ``why`` for ``queue_delay`` seconds, then
  ``executable``; the build is ``building`` for ``build_duration`` seconds, then has
  ``next_result(job)`` (default ``SUCCESS``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import re
import secrets
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from tests.emulators import gitlab_plugin, jenkins_model
from tests.emulators.server import EmulatorServer, Request, Response

JENKINS_VERSION = "2.452.1"
CRUMB_FIELD = "Jenkins-Crumb"
FOLDER_CLASS = "com.cloudbees.hudson.plugins.folder.Folder"
ROOT_CLASSES = {
    "flow-definition": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
    "project": "hudson.model.FreeStyleProject",
    FOLDER_CLASS: FOLDER_CLASS,
}
RUN_CLASSES = {
    "flow-definition": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
    "project": "hudson.model.FreeStyleBuild",
}
# element tag (or its class= attribute) -> plugin="name@version" that Jenkins writes on save
PLUGIN_VERSIONS = jenkins_model.PLUGIN_VERSIONS
SECRET_TAGS = frozenset({"secretToken"})
UNSAFE_NAME_CHARS = set("?*/\\%!@#$^&|<>[]:;")
# Jenkins' messages use typographic quotes
LQ, RQ, LDQ, RDQ = "\u2018", "\u2019", "\u201c", "\u201d"
_ASCII_QUOTES = str.maketrans(LQ + RQ + LDQ + RDQ, "''\"\"")
RESULTS = ("SUCCESS", "FAILURE", "UNSTABLE", "ABORTED", "NOT_BUILT")


class JenkinsHttpError(Exception):
    def __init__(
        self, status: int, message: str, headers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


# ---------------------------------------------------------------------- config.xml rewriting
def encrypt_secret(value: str) -> str:
    """Deterministic stand-in for Jenkins' Secret encryption: ``{AQAAABAAAAAQ...}``."""
    digest = hashlib.sha256(b"conveyor-emulator-secret\0" + value.encode("utf-8")).digest()
    return "{AQAAABAAAAAQ" + base64.b64encode(digest + digest[:16]).decode("ascii") + "}"


def is_encrypted(value: str) -> bool:
    return value.startswith("{AQAAAB") and value.endswith("}")


def _escape_text(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )


def _escape_attr(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


def _serialize(elem: ET.Element, depth: int, out: list[str]) -> None:
    pad = "  " * depth
    attrs = "".join(f' {k}="{_escape_attr(v)}"' for k, v in elem.attrib.items())
    children = list(elem)
    text = elem.text or ""
    if not children:
        if text:
            out.append(f"{pad}<{elem.tag}{attrs}>{_escape_text(text)}</{elem.tag}>")
        else:
            out.append(f"{pad}<{elem.tag}{attrs}/>")
        return
    out.append(f"{pad}<{elem.tag}{attrs}>")
    for child in children:
        _serialize(child, depth + 1, out)
    out.append(f"{pad}</{elem.tag}>")


def parse_config(body: bytes) -> ET.Element:
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise JenkinsHttpError(500, f"java.io.IOException: Unable to read\n{exc}") from None


def rewrite_config(
    root: ET.Element,
    secrets_seen: dict[str, str],
    report: jenkins_model.LoadReport | None = None,
) -> str:
    """Return the config as Jenkins would store it. ``secrets_seen`` maps ciphertext -> plaintext.

    The posted XML is first loaded into Jenkins' object model (:func:`jenkins_model.load`: defaults of
    absent primitive fields written, unknown fields and triggers without ``<spec>`` dropped into
    ``report``), then written back (AbstractItem.java:948, ``configXmlFile.write(this)``)."""
    root = jenkins_model.load(root, report if report is not None else jenkins_model.LoadReport())
    for elem in root.iter():
        key = elem.get("class") or elem.tag
        plugin = PLUGIN_VERSIONS.get(key) or PLUGIN_VERSIONS.get(elem.tag)
        if plugin is not None:
            elem.set("plugin", plugin)
        if elem.tag in SECRET_TAGS and elem.text and elem.text.strip():
            value = elem.text.strip()
            if not is_encrypted(value):
                cipher = encrypt_secret(value)
                secrets_seen[cipher] = value
                elem.text = cipher
        if list(elem) and elem.text is not None and not elem.text.strip():
            elem.text = None
        elem.tail = None
    if root.tag == "flow-definition" and root.find("actions") is None:
        root.insert(0, ET.Element("actions"))
    out: list[str] = ["<?xml version='1.1' encoding='UTF-8'?>"]
    _serialize(root, 0, out)
    return "\n".join(out)


def update_by_xml(current: ET.Element, posted: ET.Element) -> ET.Element:
    """``POST config.xml`` unmarshals *onto the existing job* (AbstractItem.java:938,
    ``unmarshal(..., this, ...)``): a top-level field the posted XML leaves out keeps its current
    value (the job's ``<actions>`` after a Declarative run, for one)."""
    merged = copy.deepcopy(posted)
    given = {child.tag for child in posted}
    for index, child in enumerate(current):
        if child.tag not in given:
            merged.insert(min(index, len(merged)), copy.deepcopy(child))
    return merged


def check_name(name: str | None) -> str:
    if name is None or not name.strip():
        raise JenkinsHttpError(400, "No name is specified")
    name = name.strip()
    for ch in name:
        if ch in UNSAFE_NAME_CHARS:
            raise JenkinsHttpError(400, f"{LQ}{ch}{RQ} is an unsafe character")
    if name in (".", ".."):
        raise JenkinsHttpError(400, f"{LDQ}{name}{RDQ} is not an allowed name")
    if name.endswith("."):
        raise JenkinsHttpError(400, f"A name cannot end with {LQ}.{RQ}")
    return name


# ---------------------------------------------------------------------- model
@dataclass
class Build:
    job: str  # full name
    number: int
    queue_id: int
    parameters: dict[str, str]
    user: str
    queued_at: float
    started_at: float
    finished_at: float
    result: str
    console: str

    def building(self, now: float) -> bool:
        return self.started_at <= now < self.finished_at


@dataclass
class Item:
    name: str
    kind: str  # root element tag: flow-definition | project | Folder class
    config: str
    parent: Item | None
    children: dict[str, Item] = field(default_factory=dict)
    builds: list[Build] = field(default_factory=list)
    next_build_number: int = 1
    # "Manage Old Data": what XStream could not load when the job was last saved (jenkins_model.load)
    old_data: list[str] = field(default_factory=list)
    # the DeclarativeJobPropertyTrackerAction of the last build (Utils.groovy:606-612 falls back to it)
    last_tracker: ET.Element | None = None

    @property
    def is_folder(self) -> bool:
        return self.kind == FOLDER_CLASS

    @property
    def full_name(self) -> str:
        parts: list[str] = []
        item: Item | None = self
        while item is not None and item.parent is not None:
            parts.append(item.name)
            item = item.parent
        return "/".join(reversed(parts))

    @property
    def url_path(self) -> str:
        if self.parent is None:
            return "/"
        return "/" + "".join(f"job/{quote(p)}/" for p in self.full_name.split("/"))

    @property
    def java_class(self) -> str:
        return ROOT_CLASSES.get(self.kind, "hudson.model.Hudson")

    def root_element(self) -> ET.Element:
        return ET.fromstring(self.config.encode("utf-8"))

    @property
    def disabled(self) -> bool:
        if self.is_folder or self.parent is None:
            return False
        return (self.root_element().findtext("disabled") or "").strip() == "true"

    def parameter_definitions(self) -> list[dict[str, Any]]:
        if self.is_folder or self.parent is None:
            return []
        root = self.root_element()
        defs: list[dict[str, Any]] = []
        for holder in root.iter("hudson.model.ParametersDefinitionProperty"):
            container = holder.find("parameterDefinitions")
            for pdef in list(container) if container is not None else []:
                name = pdef.findtext("name") or ""
                default = pdef.findtext("defaultValue")
                if default is None:
                    choice = pdef.find(".//string")
                    default = choice.text if choice is not None else ""
                defs.append(
                    {
                        "name": name,
                        "type": pdef.tag.rsplit(".", 1)[-1],
                        "class": pdef.tag,
                        "default": default or "",
                        "description": pdef.findtext("description") or "",
                    }
                )
        return defs


@dataclass(frozen=True)
class TriggeredBuild:
    """What tests inspect: one build request Jenkins accepted."""

    job: str
    number: int
    queue_id: int
    parameters: dict[str, str]
    user: str
    # the build's environment where it matters here: gitlab-plugin's cause variables, then the
    # parameter values on top (Run.java:2412-2416); empty for builds started through the REST API
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HookOutcome:
    """What gitlab-plugin made of one ``POST /project/<job>`` (tests compare it with the receiver)."""

    job: str
    event: str
    status: int
    build: bool
    reason: str


@dataclass
class _User:
    name: str
    api_token: str
    password: str | None


class JenkinsEmulator(EmulatorServer):
    """Jenkins over real HTTP. State guarded by ``self.lock``."""

    def __init__(
        self,
        *,
        crumb_mode: str = "strict",
        anonymous_read: bool = False,
        queue_delay: float = 0.0,
        build_duration: float = 0.0,
        left_item_ttl: float = 300.0,
    ) -> None:
        super().__init__()
        if crumb_mode not in ("strict", "session", "disabled"):
            raise ValueError(f"crumb_mode must be strict, session or disabled, not {crumb_mode!r}")
        self.crumb_mode = crumb_mode
        self.anonymous_read = anonymous_read
        self.queue_delay = queue_delay
        self.build_duration = build_duration
        # hudson.model.Queue keeps an item that left the queue (it started, or was cancelled)
        # in `leftItems`, a cache with expireAfterWrite(5 * 60, SECONDS): after that,
        # queue/item/<id>/api/json is 404 and only the build (its `queueId`) remembers it.
        self.left_item_ttl = left_item_ttl
        self.default_result = "SUCCESS"
        self._results: dict[str, list[str]] = {}
        self._users: dict[str, _User] = {}
        self.tokens: dict[str, str] = {}  # user -> API token (for tests)
        self._crumb_salt = secrets.token_hex(8)
        self._sessions: dict[str, str] = {}  # session id -> user
        self._queue_ids = itertools.count(1)
        self._queue: dict[int, Build] = {}
        self._triggered: list[TriggeredBuild] = []
        self._secrets: dict[str, str] = {}
        self.root = Item("", "hudson", "", None)
        # (clone URL, script path) -> the Jenkinsfile a CpsScmFlowDefinition job reads (the repository)
        self.scm_files: dict[tuple[str, str], str] = {}
        self.hook_outcomes: list[HookOutcome] = []
        # (job, sha) pairs gitlab-plugin would find already built (isLastCommitNotYetBuild)
        self.built_commits: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ seeding / inspection
    def add_user(self, name: str, api_token: str, *, password: str | None = None) -> None:
        with self.lock:
            self._users[name] = _User(name, api_token, password)
            self.tokens[name] = api_token

    def next_result(self, job: str, *results: str) -> None:
        """Queue results for the next builds of ``job`` (else ``default_result``)."""
        for result in results:
            if result not in RESULTS:
                raise ValueError(result)
        with self.lock:
            self._results.setdefault(job, []).extend(results)

    def item(self, full_name: str) -> Item:
        with self.lock:
            item = self.root
            for part in full_name.split("/"):
                item = item.children[part]
            return item

    def has_item(self, full_name: str) -> bool:
        try:
            self.item(full_name)
        except KeyError:
            return False
        return True

    def stored_config(self, full_name: str) -> str:
        return self.item(full_name).config

    def hand_edit(self, full_name: str, new_config: str) -> None:
        """Simulate a UI save: the new XML is stored through Jenkins' rewriting."""
        with self.lock:
            item = self.item(full_name)
            root = parse_config(new_config.encode("utf-8"))
            report = jenkins_model.LoadReport()
            item.config = rewrite_config(root, self._secrets, report)
            item.old_data = report.errors

    def secret_plaintext(self, ciphertext: str) -> str:
        return self._secrets[ciphertext]

    def triggered_builds(self, job: str | None = None) -> list[TriggeredBuild]:
        with self.lock:
            return [t for t in self._triggered if job is None or t.job == job]

    def create_item_directly(self, full_name: str, config_xml: str) -> Item:
        """Create a job or folder without HTTP (pre-existing state, someone else's jobs)."""
        with self.lock:
            parent_name, _, short = full_name.rpartition("/")
            parent = self.item(parent_name) if parent_name else self.root
            return self._create(parent, short, config_xml.encode("utf-8"))

    # ------------------------------------------------------------------ HTTP plumbing
    def fault_response(self, status: int, headers: list[tuple[str, str]]) -> Response:
        response = Response.text(
            status, f"<html><body>Error {status}</body></html>", "text/html;charset=utf-8"
        )
        response.headers.extend(headers)
        response.headers.append(("X-Jenkins", JENKINS_VERSION))
        return response

    def route(self, request: Request) -> Response:
        try:
            with self.lock:
                response = self._route(request)
        except JenkinsHttpError as exc:
            response = Response.text(exc.status, exc.message)
            response.headers.extend(exc.headers)
            if exc.status == 400:
                plain = exc.message.translate(_ASCII_QUOTES)
                response.headers.append(("X-Error", plain))
        response.headers.append(("X-Jenkins", JENKINS_VERSION))
        return response

    def _authenticate(self, request: Request) -> tuple[str | None, str]:
        """Return (user, how) with how in anonymous | token | password."""
        auth = request.header("Authorization")
        if not auth:
            return None, "anonymous"
        if not auth.startswith("Basic "):
            raise JenkinsHttpError(401, "Unauthorized")
        try:
            user, _, secret = base64.b64decode(auth[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            raise JenkinsHttpError(401, "Unauthorized") from None
        known = self._users.get(user)
        if known is not None and secret == known.api_token:
            return user, "token"
        if known is not None and known.password is not None and secret == known.password:
            return user, "password"
        raise JenkinsHttpError(401, f"Invalid password/token for user: {user}")

    @staticmethod
    def _session_id(request: Request) -> str | None:
        for part in (request.header("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name.startswith("JSESSIONID"):
                return value
        return None

    def _crumb_for(self, user: str, session: str) -> str:
        return hashlib.sha256(f"{self._crumb_salt}:{user}:{session}".encode()).hexdigest()

    def _check_crumb(self, request: Request, user: str, how: str) -> None:
        # CrumbFilter.doFilter (core/src/main/java/hudson/security/csrf/CrumbFilter.java): a POST
        # without a valid crumb is answered sendError(403, "No valid crumb was included in the
        # request") and never passed down the filter chain, so the action behind it does nothing.
        if self.crumb_mode == "disabled" or (self.crumb_mode == "session" and how == "token"):
            return
        session = self._session_id(request)
        sent = request.header(CRUMB_FIELD)
        if (
            session is None
            or self._sessions.get(session) != user
            or sent != self._crumb_for(user, session)
        ):
            raise JenkinsHttpError(403, "No valid crumb was included in the request")

    def _route(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/project/") and request.method == "POST":
            # gitlab-plugin's GitLabWebHook is an UnprotectedRootAction, exempt from crumbs
            return self._gitlab_hook(request)
        user, how = self._authenticate(request)
        if user is None:
            if path == "/" and request.method == "GET" and self.anonymous_read:
                return Response.text(
                    200, "<html>Dashboard [Jenkins]</html>", "text/html;charset=utf-8"
                )
            raise JenkinsHttpError(403, "Authentication required")
        if path.rstrip("/") == "/crumbIssuer/api/json" and request.method == "GET":
            if self.crumb_mode == "disabled":
                raise JenkinsHttpError(404, "Not Found")
            session = self._session_id(request)
            headers: list[tuple[str, str]] = []
            if session is None or self._sessions.get(session) != user:
                session = secrets.token_hex(12)
                self._sessions[session] = user
                headers.append(("Set-Cookie", f"JSESSIONID.emu={session}; Path=/; HttpOnly"))
            body = {
                "_class": "hudson.security.csrf.DefaultCrumbIssuer",
                "crumb": self._crumb_for(user, session),
                "crumbRequestField": CRUMB_FIELD,
            }
            return Response.json(200, body, headers)
        if request.method == "POST":
            self._check_crumb(request, user, how)
        segments = [unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []
        if segments == ["me", "api", "json"]:
            return Response.json(200, {"_class": "hudson.model.User", "id": user, "fullName": user})
        if segments[:2] == ["queue", "item"] and len(segments) >= 3 and segments[2].isdigit():
            return self._queue_item(request, int(segments[2]), segments[3:])
        if segments == ["queue", "api", "json"]:
            now = time.monotonic()
            items = [b for b in self._queue.values() if now < b.started_at]
            return self._json(
                request,
                {
                    "_class": "hudson.model.Queue",
                    "items": [self._queue_json(request, b) for b in items],
                },
            )
        item = self.root
        i = 0
        while i < len(segments) and segments[i] == "job":
            if i + 1 >= len(segments) or (not item.is_folder and item.parent is not None):
                raise JenkinsHttpError(404, "Not Found")
            child = item.children.get(segments[i + 1])
            if child is None:
                raise JenkinsHttpError(404, "Not Found")
            item = child
            i += 2
        return self._item_action(request, user, item, segments[i:])

    # ------------------------------------------------------------------ JSON helpers
    def _json(self, request: Request, payload: dict[str, Any]) -> Response:
        tree = request.query.get("tree")
        if tree:
            payload = _apply_tree(payload, _parse_tree(tree))
        return Response.json(200, payload)

    def _item_summary(self, request: Request, item: Item, nested: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "_class": item.java_class,
            "name": item.name,
            "url": request.base_url + item.url_path,
        }
        if item.is_folder:
            if nested:
                data["jobs"] = [
                    self._item_summary(request, c, True) for c in item.children.values()
                ]
        else:
            data["color"] = self._color(item)
        return data

    def _color(self, item: Item) -> str:
        if item.disabled:
            return "disabled"
        now = time.monotonic()
        done = [b for b in item.builds if b.finished_at <= now]
        running = any(b.building(now) for b in item.builds)
        base = {
            "SUCCESS": "blue",
            "FAILURE": "red",
            "UNSTABLE": "yellow",
            "ABORTED": "aborted",
        }.get(done[-1].result if done else "", "notbuilt")
        return base + ("_anime" if running else "")

    def _container_json(self, request: Request, item: Item) -> dict[str, Any]:
        nested = "tree" in request.query
        jobs = [self._item_summary(request, c, nested) for c in item.children.values()]
        if item.parent is None:
            return {
                "_class": "hudson.model.Hudson",
                "mode": "NORMAL",
                "nodeDescription": "the Jenkins controller's built-in node",
                "nodeName": "",
                "numExecutors": 2,
                "jobs": jobs,
                "url": request.base_url + "/",
                "useCrumbs": self.crumb_mode != "disabled",
                "useSecurity": True,
                "views": [
                    {"_class": "hudson.model.AllView", "name": "all", "url": request.base_url + "/"}
                ],
            }
        return {
            "_class": item.java_class,
            "name": item.name,
            "fullName": item.full_name,
            "displayName": item.name,
            "fullDisplayName": item.full_name.replace("/", " » "),
            "description": item.root_element().findtext("description"),
            "url": request.base_url + item.url_path,
            "jobs": jobs,
        }

    def _build_ref(
        self, request: Request, item: Item, build: Build | None
    ) -> dict[str, Any] | None:
        if build is None:
            return None
        return {
            "_class": RUN_CLASSES.get(item.kind, "hudson.model.Run"),
            "number": build.number,
            "url": f"{request.base_url}{item.url_path}{build.number}/",
        }

    def _job_json(self, request: Request, item: Item) -> dict[str, Any]:
        now = time.monotonic()
        started = [b for b in item.builds if b.started_at <= now]
        completed = [b for b in started if b.finished_at <= now]
        queued = [b for b in item.builds if b.started_at > now]
        params = item.parameter_definitions()
        properties: list[dict[str, Any]] = []
        if params:
            properties.append(
                {
                    "_class": "hudson.model.ParametersDefinitionProperty",
                    "parameterDefinitions": [
                        {
                            "_class": p["class"],
                            "name": p["name"],
                            "type": p["type"],
                            "description": p["description"],
                            "defaultParameterValue": {"name": p["name"], "value": p["default"]},
                        }
                        for p in params
                    ],
                }
            )

        def last(builds: list[Build], result: str | None = None) -> dict[str, Any] | None:
            chosen = [b for b in builds if result is None or b.result == result]
            return self._build_ref(request, item, chosen[-1] if chosen else None)

        refs = [self._build_ref(request, item, b) for b in reversed(started)]
        if "tree" in request.query:
            # ?tree= walks the exported beans whatever the depth (stapler's TreePruner), so
            # builds[number,queueId,actions[parameters[name,value]]] reaches each Run's fields.
            refs = [self._build_json(request, item, b) for b in reversed(started)]
        return {
            "_class": item.java_class,
            "name": item.name,
            "fullName": item.full_name,
            "displayName": item.name,
            "fullDisplayName": item.full_name.replace("/", " » "),
            "description": item.root_element().findtext("description"),
            "url": request.base_url + item.url_path,
            "buildable": not item.disabled,
            "color": self._color(item),
            "inQueue": bool(queued),
            "nextBuildNumber": item.next_build_number,
            "builds": refs[:100],
            "allBuilds": refs,
            "firstBuild": self._build_ref(request, item, started[0] if started else None),
            "lastBuild": last(started),
            "lastCompletedBuild": last(completed),
            "lastSuccessfulBuild": last(completed, "SUCCESS"),
            "lastFailedBuild": last(completed, "FAILURE"),
            "property": properties,
            "queueItem": self._queue_json(request, queued[0]) if queued else None,
            "healthReport": [],
        }

    def _build_json(self, request: Request, item: Item, build: Build) -> dict[str, Any]:
        now = time.monotonic()
        building = build.building(now)
        return {
            "_class": RUN_CLASSES.get(item.kind, "hudson.model.Run"),
            "number": build.number,
            "id": str(build.number),
            "url": f"{request.base_url}{item.url_path}{build.number}/",
            "displayName": f"#{build.number}",
            "fullDisplayName": f"{item.full_name.replace('/', ' » ')} #{build.number}",
            "building": building,
            "inProgress": building,
            "result": None if building else build.result,
            "queueId": build.queue_id,
            "duration": 0 if building else int((build.finished_at - build.started_at) * 1000),
            "timestamp": int(time.time() * 1000),
            "actions": [
                {
                    "_class": "hudson.model.ParametersAction",
                    "parameters": [
                        {"_class": "hudson.model.StringParameterValue", "name": k, "value": v}
                        for k, v in build.parameters.items()
                    ],
                },
                {
                    "_class": "hudson.model.CauseAction",
                    "causes": [
                        {
                            "_class": "hudson.model.Cause$UserIdCause",
                            "shortDescription": f"Started by user {build.user}",
                            "userId": build.user,
                        }
                    ],
                },
            ],
        }

    def _queue_json(self, request: Request, build: Build) -> dict[str, Any]:
        try:
            item = self.item(build.job)
        except KeyError:  # the job was deleted after the build was queued
            raise JenkinsHttpError(404, "Not Found") from None
        task = {
            "_class": item.java_class,
            "name": item.name,
            "url": request.base_url + item.url_path,
        }
        params = "".join(f"\n{k}={v}" for k, v in build.parameters.items())
        # Queue.Item is Actionable: its ParametersAction is exported like a build's
        # (ParametersAction.getParameters is @Exported, each StringParameterValue with its
        # _class, name and value).
        actions = [
            {
                "_class": "hudson.model.ParametersAction",
                "parameters": [
                    {"_class": "hudson.model.StringParameterValue", "name": k, "value": v}
                    for k, v in build.parameters.items()
                ],
            }
        ]
        if time.monotonic() < build.started_at:
            return {
                "_class": "hudson.model.Queue$WaitingItem",
                "id": build.queue_id,
                "blocked": False,
                "buildable": False,
                "stuck": False,
                "params": params,
                "why": "In the quiet period. Expires in "
                f"{max(0, int((build.started_at - time.monotonic()) * 1000))} ms",
                "task": task,
                "actions": actions,
                "inQueueSince": int(time.time() * 1000),
            }
        return {
            "_class": "hudson.model.Queue$LeftItem",
            "id": build.queue_id,
            "blocked": False,
            "buildable": False,
            "stuck": False,
            "params": params,
            "why": None,
            "cancelled": False,
            "task": task,
            "actions": actions,
            "executable": self._build_ref(request, item, build),
        }

    def _queue_item(self, request: Request, queue_id: int, rest: list[str]) -> Response:
        build = self._queue.get(queue_id)
        if build is None or rest != ["api", "json"] or request.method != "GET":
            raise JenkinsHttpError(404, "Not Found")
        if time.monotonic() > build.started_at + self.left_item_ttl:  # leftItems expired
            raise JenkinsHttpError(404, "Not Found")
        return self._json(request, self._queue_json(request, build))

    # ------------------------------------------------------------------ item actions
    def _redirect(self, request: Request, path: str) -> Response:
        return Response(302, b"", [("Location", request.base_url + path)])

    def _item_action(self, request: Request, user: str, item: Item, rest: list[str]) -> Response:
        method = request.method
        is_container = item.is_folder or item.parent is None
        if not rest and method == "GET":
            return Response.text(
                200,
                f"<html>{item.full_name or 'Dashboard'} [Jenkins]</html>",
                "text/html;charset=utf-8",
            )
        if rest == ["api", "json"] and method == "GET":
            payload = (
                self._container_json(request, item)
                if is_container
                else self._job_json(request, item)
            )
            return self._json(request, payload)
        if rest == ["createItem"] and method == "POST" and is_container:
            return self._create_item(request, item)
        if item.parent is None:
            raise JenkinsHttpError(404, "Not Found")
        if rest == ["config.xml"]:
            if method == "GET":
                return Response.text(200, item.config, "application/xml")
            if method == "POST":
                root = parse_config(request.body)
                if root.tag != item.kind:
                    raise JenkinsHttpError(
                        500,
                        f"java.io.IOException: Expecting class {item.java_class} but got "
                        f"{ROOT_CLASSES.get(root.tag, root.tag)} instead",
                    )
                report = jenkins_model.LoadReport()
                merged = update_by_xml(item.root_element(), root)
                item.config = rewrite_config(merged, self._secrets, report)
                item.old_data = report.errors
                return Response(200)
        if rest == ["doDelete"] and method == "POST":
            assert item.parent is not None
            del item.parent.children[item.name]
            return self._redirect(request, item.parent.url_path)
        if rest in (["disable"], ["enable"]) and method == "POST" and not item.is_folder:
            self._set_disabled(item, rest[0] == "disable")
            return self._redirect(request, item.url_path)
        if rest in (["build"], ["buildWithParameters"]) and method == "POST" and not item.is_folder:
            return self._build(request, user, item, with_params=rest[0] == "buildWithParameters")
        if len(rest) >= 2 and not item.is_folder:
            build = self._find_build(item, rest[0])
            if rest[1:] == ["api", "json"] and method == "GET":
                return self._json(request, self._build_json(request, item, build))
            if rest[1:] == ["consoleText"] and method == "GET":
                return Response.text(200, self._console(build))
        raise JenkinsHttpError(404, "Not Found")

    def _find_build(self, item: Item, ref: str) -> Build:
        now = time.monotonic()
        started = [b for b in item.builds if b.started_at <= now]
        if ref == "lastBuild" and started:
            return started[-1]
        if ref.isdigit():
            for build in started:
                if build.number == int(ref):
                    return build
        raise JenkinsHttpError(404, "Not Found")

    def _console(self, build: Build) -> str:
        lines = [f"Started by user {build.user}", "[Pipeline] Start of Pipeline"]
        lines += [f"{k}={v}" for k, v in build.parameters.items()]
        if not build.building(time.monotonic()):
            lines += ["[Pipeline] End of Pipeline", f"Finished: {build.result}"]
        return "\n".join(lines) + "\n"

    def _set_disabled(self, item: Item, disabled: bool) -> None:
        root = item.root_element()
        elem = root.find("disabled")
        if elem is None:
            elem = ET.SubElement(root, "disabled")
        elem.text = "true" if disabled else "false"
        item.config = rewrite_config(root, self._secrets)

    def _create(self, parent: Item, name: str, body: bytes) -> Item:
        root = parse_config(body)
        if root.tag not in ROOT_CLASSES:
            raise JenkinsHttpError(
                500, f"com.thoughtworks.xstream.mapper.CannotResolveClassException: {root.tag}"
            )
        report = jenkins_model.LoadReport()
        item = Item(name, root.tag, rewrite_config(root, self._secrets, report), parent)
        item.old_data = report.errors
        parent.children[name] = item
        return item

    def _create_item(self, request: Request, parent: Item) -> Response:
        name = check_name(request.query.get("name"))
        if name in parent.children:
            raise JenkinsHttpError(400, f"A job already exists with the name {LQ}{name}{RQ}")
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        mode = request.query.get("mode")
        if content_type == "application/x-www-form-urlencoded":
            mode = request.form().get("mode", mode)
        if mode == FOLDER_CLASS:
            folder_xml = f"<{FOLDER_CLASS}><description/><properties/><views/></{FOLDER_CLASS}>"
            item = self._create(parent, name, folder_xml.encode())
            return self._redirect(request, item.url_path)
        if mode is not None:
            raise JenkinsHttpError(400, f"No such job type: {mode}")
        if content_type not in ("text/xml", "application/xml"):
            raise JenkinsHttpError(400, "Neither mode nor config.xml was given")
        self._create(parent, name, request.body)
        return Response(200)

    def _gitlab_hook(self, request: Request) -> Response:
        """``POST /project/<full name>`` as gitlab-plugin handles it (ActionResolver.java:47-125,
        BuildWebHookAction.java:79-88, the handlers in :mod:`tests.emulators.gitlab_plugin`)."""
        parts = [unquote(p) for p in request.path[len("/project/") :].strip("/").split("/")]
        item = self.root
        for part in parts:
            child = item.children.get(part)
            if child is None:
                raise JenkinsHttpError(404, "Not Found")
            item = child
        event = request.header("X-Gitlab-Event") or ""
        payload = request.json() if request.body else {}
        root = item.root_element()
        trigger = root.find(".//triggers/com.dabsquared.gitlabjenkins.GitLabPushTrigger")
        stored = trigger.findtext("secretToken") if trigger is not None else None
        if stored:
            token = request.header("X-Gitlab-Token") or ""
            if token != self._secrets.get(stored, stored):
                self.hook_outcomes.append(HookOutcome(item.full_name, event, 401, False, "token"))
                raise JenkinsHttpError(401, "Invalid token")
        attrs = payload.get("object_attributes") or {}
        sha = (attrs.get("last_commit") or {}).get("id") or ""
        built = (item.full_name, sha) in self.built_commits
        outcome = gitlab_plugin.handle(trigger, event, payload, built=built)
        self.hook_outcomes.append(
            HookOutcome(item.full_name, event, 200, outcome.build, outcome.reason)
        )
        if outcome.build and not item.disabled:
            # ParameterizedJobMixIn.java:165-168: a parameterized job gets its defaults
            defaults = {d["name"]: d["default"] for d in item.parameter_definitions()}
            self._schedule(item, "GitLab", defaults, {**outcome.variables, **defaults})
        return Response(200)

    def add_scm_file(self, url: str, path: str, text: str) -> None:
        """Seed the repository file a ``CpsScmFlowDefinition`` job at ``url`` reads as ``path``."""
        with self.lock:
            self.scm_files[(url, path)] = text

    def script_of(self, item: Item) -> str | None:
        """The Jenkinsfile a build of ``item`` runs: the inline script, or the seeded SCM file."""
        root = item.root_element()
        definition = root.find("definition")
        if definition is None:
            return None
        if definition.get("class") == "org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition":
            return definition.findtext("script")
        url = definition.findtext("scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/url")
        path = definition.findtext("scriptPath") or "Jenkinsfile"
        return self.scm_files.get((url or "", path))

    def _run_declarative(self, item: Item) -> None:
        """A Declarative build saves its job (pipeline-model-definition Utils.groovy:295-309 and
        580-721, see :func:`jenkins_model.declarative_first_run`)."""
        if item.kind != "flow-definition":
            return
        script = self.script_of(item)
        if script is None or not jenkins_model.is_declarative(script):
            return
        root = item.root_element()
        if jenkins_model.declarative_first_run(root, script, item.last_tracker):
            item.config = rewrite_config(root, self._secrets)
        item.last_tracker = jenkins_model.tracker_of(root)

    def _build(self, request: Request, user: str, item: Item, *, with_params: bool) -> Response:
        if item.disabled:
            raise JenkinsHttpError(409, f"{item.full_name} is disabled")
        definitions = item.parameter_definitions()
        if definitions and not with_params:
            raise JenkinsHttpError(400, "Nothing is submitted")
        if with_params and not definitions:
            raise JenkinsHttpError(400, f"{item.full_name} is not parameterized")
        given = dict(request.query_items)
        if request.body and (request.header("Content-Type") or "").startswith(
            "application/x-www-form-urlencoded"
        ):
            given.update(request.form())
        given.pop("token", None)
        parameters = {d["name"]: given.get(d["name"], d["default"]) for d in definitions}
        build = self._schedule(item, user, parameters, {})
        return Response(
            201, b"", [("Location", f"{request.base_url}/queue/item/{build.queue_id}/")]
        )

    def _schedule(
        self, item: Item, user: str, parameters: dict[str, str], environment: dict[str, str]
    ) -> Build:
        now = time.monotonic()
        queue_id = next(self._queue_ids)
        pending = self._results.get(item.full_name) or []
        result = pending.pop(0) if pending else self.default_result
        build = Build(
            job=item.full_name,
            number=item.next_build_number,
            queue_id=queue_id,
            parameters=parameters,
            user=user,
            queued_at=now,
            started_at=now + self.queue_delay,
            finished_at=now + self.queue_delay + self.build_duration,
            result=result,
            console="",
        )
        self._run_declarative(item)  # before any state changes: a script it cannot read is a 500
        item.next_build_number += 1
        item.builds.append(build)
        self._queue[queue_id] = build
        self._triggered.append(
            TriggeredBuild(
                item.full_name, build.number, queue_id, dict(parameters), user, dict(environment)
            )
        )
        return build


# ---------------------------------------------------------------------- ?tree= support
def _parse_tree(spec: str) -> dict[str, Any]:
    """``jobs[name,url,jobs[name]]`` -> {"jobs": {"name": None, "url": None, "jobs": {"name": None}}}."""
    pos = 0

    def parse_level() -> dict[str, Any]:
        nonlocal pos
        fields: dict[str, Any] = {}
        while pos < len(spec):
            match = re.match(r"[A-Za-z0-9_$]+", spec[pos:])
            if not match:
                break
            name = match.group(0)
            pos += len(name)
            sub = None
            if pos < len(spec) and spec[pos] in "[{":
                pos += 1
                sub = parse_level()
                if pos < len(spec) and spec[pos] in "]}":
                    pos += 1
                # range suffix like {0,10} after ] is ignored
                if pos < len(spec) and spec[pos] == "{":
                    end = spec.find("}", pos)
                    pos = end + 1 if end != -1 else len(spec)
            fields[name] = sub
            if pos < len(spec) and spec[pos] == ",":
                pos += 1
                continue
            break
        return fields

    return parse_level()


def _apply_tree(value: Any, tree: dict[str, Any] | None) -> Any:
    if isinstance(value, list):
        return [_apply_tree(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    if "_class" in value:
        out["_class"] = value["_class"]
    if tree is None:
        return out  # an object with no sub-tree requested: Jenkins shows only its class
    for name, sub in tree.items():
        if name not in value:
            continue
        child = value[name]
        if isinstance(child, dict | list) and _has_objects(child):
            out[name] = _apply_tree(child, sub)
        else:
            out[name] = child
    return out


def _has_objects(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    return any(isinstance(v, dict) for v in value)
