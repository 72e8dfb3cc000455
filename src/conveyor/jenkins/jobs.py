"""Jenkins jobs and folders: desired jobs from specs, a plan of folder/job changes, and applying it.

"Changed" is decided by comparing the *normalised* config.xml Jenkins returns now with the rendered
one (:func:`conveyor.jenkins.config_xml.normalize_config_xml` drops ``plugin=`` attributes, the XML
declaration, whitespace, masks secret values such as the encrypted ``secretToken``, and leaves out what
Jenkins adds by itself: the defaults it writes when it saves the object model and the actions of the
first Declarative run), never raw bytes and never a local cache: a job edited by hand in the UI shows
up as an update, a job that has merely been saved or built by Jenkins does not.

Only jobs carrying conveyor's marker (:func:`conveyor.jenkins.config_xml.is_managed`) are ever
updated or deleted. A job at a spec's path that conveyor did not create is a conflict, left alone.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from conveyor.config import Settings
from conveyor.errors import JenkinsError
from conveyor.jenkins.client import JenkinsClient, JenkinsItem
from conveyor.jenkins.config_xml import is_managed, normalize_config_xml
from conveyor.jenkins.render import render
from conveyor.masking import Masker
from conveyor.spec.model import Spec
from conveyor.tokens import job_trigger_token

JobAction = Literal["create", "update", "unchanged", "delete", "conflict", "absent"]
MAX_DIFF_LINE = 160


@dataclass(frozen=True)
class DesiredJob:
    """A job a spec wants. ``config_xml`` holds the trigger secret in clear: never print it."""

    project: str
    job: str
    config_xml: str = field(repr=False)
    rotate: bool = False  # the trigger secret changed (CONVEYOR_SECRET_PREVIOUS set)
    secrets: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class JobChange:
    """What happens to one job. ``diff`` is normalised and masked; ``config_xml`` is never shown."""

    job: str
    action: JobAction
    reason: str = ""
    diff: str = ""
    project: str | None = None
    config_xml: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True)
class FolderChange:
    path: str
    action: Literal["create", "conflict"]
    reason: str = ""


def desired_job(spec: Spec, settings: Settings) -> DesiredJob:
    """Render ``spec``'s job; for ``webhook.target: jenkins`` the config carries the trigger secret."""
    job = spec.jenkins.job
    token: str | None = None
    secrets: list[str] = [s for s in (settings.secret, settings.previous_secret) if s]
    if spec.webhook.target == "jenkins":
        token = job_trigger_token(settings.secret or "", job)
        secrets.append(token)
        if settings.previous_secret:
            secrets.append(job_trigger_token(settings.previous_secret, job))
    rendered = render(spec, trigger_token=token, gitlab_url=settings.gitlab_url)
    return DesiredJob(
        project=spec.project,
        job=rendered.job_path,
        config_xml=rendered.config_xml,
        rotate=token is not None and bool(settings.previous_secret),
        secrets=tuple(secrets),
    )


def config_diff(job: str, current: str, desired: str, secrets: Iterable[str] = ()) -> str:
    """Unified diff of the normalised, secret-masked config.xml (Jenkins now -> wanted).

    Long changed lines (the inline Jenkinsfile embeds one-line JSON) are cut to a window around
    their first difference, so the diff stays readable."""
    masker = Masker(secrets)  # belt and braces after normalising
    before = masker(normalize_config_xml(current)).splitlines()
    after = masker(normalize_config_xml(desired)).splitlines()
    lines = list(
        difflib.unified_diff(
            before,
            after,
            fromfile=f"jenkins:{job}/config.xml",
            tofile=f"spec:{job}/config.xml",
            lineterm="",
            n=2,
        )
    )
    return "\n".join(_shorten_changed(lines))


def _shorten_changed(lines: list[str], width: int = MAX_DIFF_LINE) -> list[str]:
    out = list(lines)
    removed = [
        i for i, line in enumerate(lines) if line.startswith("-") and not line.startswith("---")
    ]
    added = [
        i for i, line in enumerate(lines) if line.startswith("+") and not line.startswith("+++")
    ]
    for i in removed + added:
        line = lines[i]
        if len(line) <= width:
            continue
        partners = added if i in removed else removed
        other = min(partners, key=lambda j: abs(j - i), default=None)
        start = 1
        if other is not None:
            a, b = line[1:], lines[other][1:]
            common = next(
                (k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)),
            )
            start = max(1, common + 1 - width // 3)
        end = start + width
        out[i] = (
            line[0]
            + ("…" if start > 1 else "")
            + line[start:end]
            + ("…" if end < len(line) else "")
        )
    return out


def plan_job(desired: DesiredJob, current: str | None) -> JobChange:
    """Compare the job Jenkins has now (``current`` config.xml, None if missing) with ``desired``."""
    base = {"job": desired.job, "project": desired.project, "config_xml": desired.config_xml}
    if current is None:
        return JobChange(action="create", **base)
    if not is_managed(current):
        return JobChange(
            action="conflict",
            reason="a job conveyor did not create exists at this path; conveyor leaves it alone "
            "(delete or rename it, or change jenkins.job)",
            **base,
        )
    if normalize_config_xml(current) != normalize_config_xml(desired.config_xml):
        return JobChange(
            action="update",
            reason="drift; token rotation" if desired.rotate else "drift",
            diff=config_diff(desired.job, current, desired.config_xml, desired.secrets),
            **base,
        )
    if desired.rotate:
        return JobChange(action="update", reason="token rotation", **base)
    return JobChange(action="unchanged", **base)


def plan_folders(
    jobs: Sequence[str], existing: Sequence[JenkinsItem]
) -> tuple[list[FolderChange], dict[str, str]]:
    """Folders to create (outermost first) and, per blocked job, why it cannot be created."""
    kinds = {item.full_name: item.is_folder for item in existing}
    wanted: list[str] = []
    for job in jobs:
        parts = job.split("/")[:-1]
        for i in range(len(parts)):
            path = "/".join(parts[: i + 1])
            if path not in wanted:
                wanted.append(path)
    changes: list[FolderChange] = []
    blocked: dict[str, str] = {}
    for path in sorted(wanted, key=lambda p: (p.count("/"), p)):
        if path not in kinds:
            changes.append(FolderChange(path, "create"))
        elif not kinds[path]:
            changes.append(FolderChange(path, "conflict", "a job (not a folder) has this name"))
    bad = [c.path for c in changes if c.action == "conflict"]
    for job in jobs:
        for path in bad:
            if job.startswith(path + "/"):
                blocked[job] = f"folder {path!r} is a job, not a folder"
    return changes, blocked


def existing_jobs(items: Sequence[JenkinsItem]) -> set[str]:
    return {i.full_name for i in items if not i.is_folder}


def read_job(client: JenkinsClient, desired: DesiredJob, existing: set[str] | None) -> JobChange:
    """Plan one job against what Jenkins returns now (one GET when the job exists)."""
    current = (
        client.get_config(desired.job) if existing is None or desired.job in existing else None
    )
    return plan_job(desired, current)


def plan_orphans(
    client: JenkinsClient,
    items: Sequence[JenkinsItem],
    wanted: set[str],
    run: Callable[[Callable[[str], JobChange | None], list[str]], list[JobChange | None]]
    | None = None,
) -> list[JobChange]:
    """Conveyor-managed jobs that no spec wants any more (for ``apply --prune``). ``run`` maps a
    function over the candidates (e.g. on a thread pool); default: one after the other."""

    def check(job: str) -> JobChange | None:
        current = client.get_config(job)
        if current is not None and is_managed(current):
            return JobChange(job=job, action="delete", reason="no spec wants it")
        return None

    candidates = sorted(existing_jobs(items) - wanted)
    results = run(check, candidates) if run is not None else [check(j) for j in candidates]
    return [r for r in results if r is not None]


def plan_destroy_job(client: JenkinsClient, job: str, project: str) -> JobChange:
    """Delete ``job`` only if conveyor manages it."""
    current = client.get_config(job)
    if current is None:
        return JobChange(job=job, project=project, action="absent")
    if not is_managed(current):
        return JobChange(
            job=job,
            project=project,
            action="conflict",
            reason="not created by conveyor: left alone",
        )
    return JobChange(job=job, project=project, action="delete")


def apply_folder(client: JenkinsClient, change: FolderChange) -> None:
    if change.action == "create":
        client.create_folder(change.path)


def apply_job(client: JenkinsClient, change: JobChange) -> None:
    """Perform one job change (create is idempotent: a job already there is reconciled)."""
    if change.action == "create":
        wanted = normalize_config_xml(change.config_xml)

        def on_exists(current: str) -> bool:
            if not is_managed(current):
                raise JenkinsError(
                    f"Jenkins: create job {change.job!r}: a job conveyor did not create appeared "
                    "at this path; left alone"
                )
            return normalize_config_xml(current) != wanted

        client.create_job(change.job, change.config_xml, on_exists=on_exists)
    elif change.action == "update":
        client.reconfig_job(change.job, change.config_xml)
    elif change.action == "delete":
        client.delete_job(change.job)
