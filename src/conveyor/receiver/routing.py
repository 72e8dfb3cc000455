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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from conveyor.errors import ConfigError
from conveyor.gitlab.events import EventKind, GitLabEvent, skip_reason
from conveyor.gitlab.refs import refname_problem, sha_problem
from conveyor.pipeline.match import matches
from conveyor.spec.model import Spec


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


class Router:
    """Specs by GitLab project path (case-insensitive, as GitLab paths are)."""

    def __init__(self, specs: Iterable[Spec]) -> None:
        self._specs: dict[str, Spec] = {}
        for spec in specs:
            key = spec.project.lower()
            if key in self._specs:
                raise ConfigError(
                    f"two pipeline specs are for project {spec.project!r}",
                    hint="keep one spec per GitLab project among the paths given to `conveyor serve`",
                )
            self._specs[key] = spec

    @property
    def projects(self) -> list[str]:
        return sorted(s.project for s in self._specs.values())

    def spec_for(self, project_path: str) -> Spec | None:
        return self._specs.get(project_path.lower())

    def decide(self, event: GitLabEvent) -> Decision:
        """Route ``event`` or give the reason it is ignored."""
        spec = self.spec_for(event.project_path)
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
        return Route(spec=spec, lane=lane_of(event), deploy_targets=deploy_targets_of(spec))
