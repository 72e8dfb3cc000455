"""Each served spec's conveyor hook as GitLab reports it, for the health page.

:class:`HookHealthCache` reads GitLab on its own thread (at start, then every ``interval_s``):
per served spec, the project (:meth:`GitLabClient.get_project`), its hooks (``list_hooks``, every
page) and conveyor's own hook among them, found exactly as ``conveyor plan`` finds it
(:func:`conveyor.gitlab.hooks.plan_hooks` on the hook :func:`conveyor.sync.targets.desired_hook`
wants: the receiver URL, or the Jenkins project URL). Its health is
:func:`conveyor.gitlab.hooks.health_of` (``alert_status`` / ``disabled_until``). A page only reads
the cache: GitLab is never asked on the request path, and a slow GitLab never touches intake.

A read that fails shows as ``unknown: <reason>``, with every secret the settings know masked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from conveyor.config import Settings
from conveyor.errors import ConveyorError
from conveyor.gitlab.client import GitLabClient
from conveyor.gitlab.hooks import describe_health, plan_hooks
from conveyor.masking import Masker
from conveyor.spec.load import LoadedSpec
from conveyor.sync.targets import desired_hook, redact_url

log = logging.getLogger("conveyor.dashboard")

REFRESH_S = 60.0
TIMEOUT_S = 10.0
State = Literal["executable", "temporarily_disabled", "disabled", "missing", "unknown"]


@dataclass(frozen=True)
class HookRow:
    """One project's conveyor hook on the health page (every field is shown as text)."""

    project: str
    state: State
    text: str  # "executable", "temporarily disabled by GitLab until ...", "unknown: ..."
    hook_id: int | None = None
    url: str | None = None  # redacted (no credentials, no query)


@dataclass(frozen=True)
class HookReport:
    rows: tuple[HookRow, ...]
    read_at: float | None  # None: not read yet


def secrets_of(settings: Settings) -> list[str]:
    signing = (settings.webhook_signing_token or "").split(",")
    values = (settings.secret, settings.previous_secret, settings.gitlab_token, *signing)
    return [v.strip() for v in values if v and v.strip()]


def read_hook(client: GitLabClient, loaded: LoadedSpec, settings: Settings) -> HookRow:
    """``loaded``'s project's conveyor hook (raises ConveyorError when GitLab cannot be read)."""
    project = loaded.spec.project
    info = client.get_project(project)
    try:
        wanted = desired_hook(loaded.spec, settings, info.id)
    except ValueError:
        target = "CONVEYOR_JENKINS_URL" if loaded.spec.webhook.target == "jenkins" else None
        needed = target or "CONVEYOR_WEBHOOK_URL"
        return HookRow(
            project, "unknown", f"unknown: {needed} is not set (no hook URL to look for)"
        )
    plan = plan_hooks(client.list_hooks(info.id), wanted, False)
    if plan.status is None:
        return HookRow(
            project, "missing", "no conveyor hook on this project (run `conveyor apply`)"
        )
    status = plan.status
    return HookRow(
        project, status.health, describe_health(status), status.hook_id, redact_url(wanted.url)
    )


def read_hooks(
    client: GitLabClient, specs: Sequence[LoadedSpec], settings: Settings
) -> tuple[HookRow, ...]:
    """Every spec's row; a failed read is that row's ``unknown: <reason>`` (secrets masked)."""
    mask = Masker(secrets_of(settings))
    rows = []
    for loaded in specs:
        try:
            rows.append(read_hook(client, loaded, settings))
        except ConveyorError as exc:
            rows.append(HookRow(loaded.spec.project, "unknown", mask(f"unknown: {exc.message}")))
    return tuple(rows)


class HookHealthCache:
    """The last :func:`read_hooks` answer, refreshed on a thread every ``interval_s``."""

    def __init__(
        self,
        settings: Settings | None,
        specs: Sequence[LoadedSpec],
        *,
        interval_s: float = REFRESH_S,
    ) -> None:
        self.enabled = settings is not None and settings.gitlab_configured and bool(specs)
        self._settings = settings
        self._specs = tuple(specs)
        self._interval = interval_s
        self._report = HookReport((), None)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def report(self) -> HookReport:
        with self._lock:
            return self._report

    def refresh(self) -> None:
        if self._settings is None or not self.enabled:
            return
        client = GitLabClient(
            self._settings.gitlab_url or "",
            self._settings.gitlab_token or "",
            timeout=TIMEOUT_S,
            max_retries=0,
        )
        rows = read_hooks(client, self._specs, self._settings)
        with self._lock:
            self._report = HookReport(rows, time.time())

    def start(self) -> None:
        if not self.enabled:
            return
        self._thread = threading.Thread(target=self._run, name="dashboard-hooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT_S + 5)

    def _run(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception:  # the thread lives on; the page keeps the last answer
                log.exception("reading the hooks' health from GitLab failed")
            if self._stop.wait(self._interval):
                return
