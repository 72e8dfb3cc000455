"""Route an understood GitLab event to its project's spec, or say why it is ignored.

Pure: specs in, decisions out. A decision carries what the queue needs to schedule the
work: the *lane* (a newer event in the same lane supersedes a queued older one: pushes to
the same branch, updates of the same merge request) and the *deploy targets* the pipeline
may touch (work sharing a deploy target never runs at the same time). Deploy targets are
every ``stage.deploy.name`` of the spec: the ``when`` of a stage is decided at run time, so
the lock is taken conservatively.

Parsing already refused every ref, branch and sha that git or GitLab would not produce
(:mod:`conveyor.gitlab.events`); the router checks again (:func:`ref_problem`) so an event built
any other way (a plugin, a replay of a row stored before the checks) is ignored, with the
reason, rather than routed toward a checkout.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from conveyor.config import Settings
from conveyor.errors import ConfigError, UsageError
from conveyor.gitlab.events import EventKind, GitLabEvent, skip_reason
from conveyor.gitlab.refs import refname_problem, sha_problem
from conveyor.pipeline.match import matches
from conveyor.receiver.verify import token_matches
from conveyor.spec.model import Spec
from conveyor.tokens import accepted_tokens

log = logging.getLogger("conveyor.receiver")


def _any_match(patterns: Sequence[str], name: str) -> bool:
    return matches(name, patterns)


@dataclass(frozen=True)
class Route:
    """Build this event with ``spec``."""

    spec: Spec
    lane: str | None
    deploy_targets: tuple[str, ...]


@dataclass(frozen=True)
class Ignore:
    """Store the event but do not build it, for ``reason``."""

    reason: str


Decision = Route | Ignore


def lane_of(event: GitLabEvent) -> str | None:
    """The supersede lane: same project and branch for pushes, same MR for MR events."""
    if event.kind is EventKind.PUSH and event.branch is not None:
        return f"{event.project_path}\x00push\x00{event.branch}"
    if event.kind is EventKind.MERGE_REQUEST and event.mr_iid is not None:
        return f"{event.project_path}\x00mr\x00{event.mr_iid}"
    return None


def ref_problem(event: GitLabEvent) -> str | None:
    """Why the event's ref, branches or sha could not be handed to git, or ``None``."""
    names = [("ref", event.ref)]
    for label, branch in (("source branch", event.source_branch), ("branch", event.branch)):
        if branch is not None:
            names.append((label, "refs/heads/" + branch))
    if event.target_branch is not None:
        names.append(("target branch", "refs/heads/" + event.target_branch))
    if event.tag is not None:
        names.append(("tag", "refs/tags/" + event.tag))
    for label, name in names:
        problem = refname_problem(name) if name.startswith("refs/") else "is not under refs/"
        if problem is not None:
            return f"{label} {name[:200]!r} is not a valid git ref: it {problem}"
    if event.deleted or event.unbuildable is not None:
        return None  # skip_reason() says why; there is no commit to check
    problem = sha_problem(event.sha)
    return None if problem is None else f"sha {event.sha[:80]!r} {problem}"


def deploy_targets_of(spec: Spec) -> tuple[str, ...]:
    """Every deploy target name the spec's stages may deploy to, sorted."""
    names = {s.deploy.name for s in spec.all_stages() if s.deploy is not None}
    return tuple(sorted(names))


class ProjectIds:
    """GitLab project ids the receiver has seen an *id token* for, and the spec each belongs to.

    Specs name projects by path; GitLab renames and moves projects, but their id stays. The
    receiver learns a project's id from the first delivery whose token is the id token (so the
    id is authenticated) and whose path names a spec (case-insensitively, as GitLab paths are);
    from then on deliveries for that id are routed to that spec whatever path they carry, and
    the old path-keyed token is refused for it (the hook has been rewritten by ``apply``: the
    transition is over for that project). Kept in ``<state>/receiver/project-ids.json`` when a
    path is given, so a restart does not reopen the transition; written atomically, only when
    something new is learnt.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._ids: dict[int, str | None] = {}  # id -> spec project (lower-case) or None
        self._first: dict[str, int] = {}  # spec project -> the first id learnt for it
        self.version = 0  # one more each time something is learnt (see admission.RoutingFeed)
        if path is not None and path.exists():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"{path}: unreadable ({exc})",
                    hint="remove the file: the receiver learns the project ids again",
                ) from None
            if not isinstance(raw, dict):
                raise ConfigError(f"{path}: not a JSON object", hint="remove the file")
            for key, value in raw.items():
                if str(key).isdigit() and (value is None or isinstance(value, str)):
                    self._ids[int(key)] = value
            self._index()

    @classmethod
    def of(cls, ids: dict[int, str | None]) -> ProjectIds:
        """A copy of :meth:`snapshot`'s ids, kept in memory only (the intake process's)."""
        copy = cls()
        copy._ids = dict(ids)
        copy._index()
        return copy

    def snapshot(self) -> dict[int, str | None]:
        with self._lock:
            return dict(self._ids)

    def _index(self) -> None:
        """``id_of``'s map (a lookup each delivery, where a scan would grow with the fleet)."""
        first: dict[str, int] = {}
        for project_id, project in self._ids.items():
            if project is not None:
                first.setdefault(project, project_id)
        self._first = first

    def known(self, project_id: int) -> bool:
        with self._lock:
            return project_id in self._ids

    def spec_project(self, project_id: int) -> str | None:
        with self._lock:
            return self._ids.get(project_id)

    def id_of(self, project: str) -> int | None:
        """The first id learnt for spec project ``project`` (any case), or ``None``."""
        return self._first.get(project.lower())

    def learn(self, project_id: int, project: str | None) -> None:
        value = project.lower() if project is not None else None
        with self._lock:
            if project_id in self._ids and (value is None or self._ids[project_id] == value):
                return
            self._ids[project_id] = value
            self._index()
            self.version += 1
            snapshot = {str(k): v for k, v in sorted(self._ids.items())}
        log.info("project id learnt", extra={"project_id": project_id, "project": project})
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(snapshot, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)


class Router:
    """Specs by GitLab project id (learnt, :class:`ProjectIds`) and by path (case-insensitive, as
    GitLab paths are)."""

    def __init__(self, specs: Iterable[Spec], ids: ProjectIds | None = None) -> None:
        self.ids = ids if ids is not None else ProjectIds()
        self._specs: dict[str, Spec] = {}
        self._deploy_targets: dict[str, tuple[str, ...]] = {}  # per spec, computed once
        for spec in specs:
            key = spec.project.lower()
            if key in self._specs:
                raise UsageError(
                    f"two pipeline specs are for project {spec.project!r}",
                    hint="keep one spec per GitLab project among the paths given to `conveyor serve`",
                )
            self._specs[key] = spec
            self._deploy_targets[key] = deploy_targets_of(spec)

    @property
    def specs(self) -> tuple[Spec, ...]:
        return tuple(self._specs.values())

    @property
    def projects(self) -> list[str]:
        return sorted(s.project for s in self._specs.values())

    def spec_for(self, project_path: str, project_id: int | None = None) -> Spec | None:
        """The spec of project ``project_id`` (when its id has been learnt), else of the path, but
        never a spec whose project is known to have another id."""
        if project_id is not None:
            learnt = self.ids.spec_project(project_id)
            if learnt is not None and learnt in self._specs:
                return self._specs[learnt]
        spec = self._specs.get(project_path.lower())
        if spec is None:
            return None
        owner = self.ids.id_of(spec.project)
        if owner is not None and project_id is not None and owner != project_id:
            return None  # the path now belongs to another project than the one the spec had
        return spec

    def spec_for_event(self, event: GitLabEvent) -> Spec | None:
        return self.spec_for(event.project_path, event.project_id)

    def check_token(
        self,
        settings: Settings,
        presented: str,
        project_id: int | None,
        project_path: str,
        now: datetime,
    ) -> bool:
        """Whether ``presented`` is the token of this project: the id token, or (until the first id
        token for this project id has been seen) the path token of its spec's path, or of the
        payload's path when no spec is found. An id token also teaches the router the id."""
        if project_id is not None and token_matches(
            presented, accepted_tokens(settings, project_id, (), now)
        ):
            learnt = self.ids.spec_project(project_id)
            if learnt is None or learnt not in self._specs:
                spec = self.spec_for(project_path, project_id)
                self.ids.learn(project_id, spec.project if spec is not None else None)
            return True
        if project_id is not None and self.ids.known(project_id):
            return False  # the hook carries the id token now: the path token is retired
        spec = self.spec_for(project_path, project_id)
        legacy = [spec.project] if spec is not None else [project_path]
        return token_matches(presented, accepted_tokens(settings, None, legacy, now))

    def decide(self, event: GitLabEvent) -> Decision:
        """Route ``event`` or give the reason it is ignored."""
        spec = self.spec_for_event(event)
        if spec is None:
            return Ignore(f"no spec for project {event.project_path}")
        problem = ref_problem(event)
        if problem is not None:
            return Ignore(problem)
        triggers = spec.triggers
        skip = skip_reason(event, honour_skip_ci=triggers.skip_ci)
        if skip is not None:
            return Ignore(skip)
        if event.kind is EventKind.PUSH:
            push = triggers.push
            if push is None:
                return Ignore("spec does not trigger on push")
            branch = event.branch or ""
            if not _any_match(push.branches, branch):
                return Ignore(f"branch {branch!r} not in triggers.push.branches")
            if _any_match(push.exclude, branch):
                return Ignore(f"branch {branch!r} excluded by triggers.push.exclude")
        elif event.kind is EventKind.TAG_PUSH:
            tag_push = triggers.tag_push
            if tag_push is None:
                return Ignore("spec does not trigger on tag push")
            if not _any_match(tag_push.tags, event.tag or ""):
                return Ignore(f"tag {event.tag!r} not in triggers.tag_push.tags")
        else:
            mr = triggers.merge_request
            if mr is None:
                return Ignore("spec does not trigger on merge requests")
            if event.action not in mr.actions:
                return Ignore(f"merge request action {event.action!r} not in triggers")
            if not _any_match(mr.target_branches, event.target_branch or ""):
                return Ignore(
                    f"target branch {event.target_branch!r} not in triggers.merge_request.target_branches"
                )
        targets = self._deploy_targets[spec.project.lower()]
        return Route(spec=spec, lane=lane_of(event), deploy_targets=targets)
