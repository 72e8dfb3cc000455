"""The health page's webhooks: each served spec's conveyor hook as the GitLab emulator reports it,
read by a real ``conveyor serve`` through python-gitlab (a background refresher, never the page)."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dashboard.conftest import free_port
from tests.emulators.gitlab import GitLabEmulator
from tests.receiver.specs import write_specs

ROW = re.compile(
    r'<tr data-project="(?P<project>[^"]*)" data-state="(?P<state>[^"]*)">.*?'
    r'<td class="hook-health">(?P<text>.*?)</td></tr>',
    re.S,
)


@pytest.fixture
def specs(tmp_path: Path) -> list[Path]:
    return write_specs(tmp_path / "specs")  # demo/app and demo/backend/api


def hook_rows(url: str, *, wait_s: float = 30.0) -> dict[str, tuple[str, str]]:
    """``project -> (state, text)`` once the page shows the refresher's first answer."""
    deadline = time.monotonic() + wait_s
    while True:
        page = httpx.get(url + "/dashboard/health", timeout=10)
        assert page.status_code == 200, page.text
        if 'id="hooks"' in page.text:
            return {
                m["project"]: (m["state"], html.unescape(m["text"]))
                for m in ROW.finditer(page.text)
            }
        assert time.monotonic() < deadline, "the hooks' health never appeared:\n" + page.text
        time.sleep(0.2)


def test_disabled_hooks_show_as_gitlab_reports_them(
    serve: Any, specs: list[Path], make_gitlab_emulator: Callable[..., GitLabEmulator]
) -> None:
    gitlab = make_gitlab_emulator()
    receiver = f"http://127.0.0.1:{free_port()}"  # nothing listens: every delivery fails
    hook_url = receiver + "/hooks/gitlab"
    gitlab.insert_hook("demo/app", "https://ci.example.test/someone-elses", push_events=True)
    app_hook = gitlab.insert_hook("demo/app", hook_url, push_events=True)
    for _ in range(4):  # the 4th consecutive failure disables it for a while (auto_disabling.rb)
        gitlab.deliver("demo/app")
    assert gitlab.hook_state("demo/app", app_hook)["alert_status"] == "temporarily_disabled"
    api_hook = gitlab.insert_hook("demo/backend/api", hook_url, push_events=True)

    server = serve(
        specs,
        "--dispatch",
        "none",
        CONVEYOR_GITLAB_URL=gitlab.url,
        CONVEYOR_GITLAB_TOKEN=gitlab.tokens["maintainer"],
        CONVEYOR_WEBHOOK_URL=receiver,
    )
    rows = hook_rows(server.url)

    state, text = rows["demo/app"]
    assert state == "temporarily_disabled"
    assert text.startswith("temporarily disabled by GitLab until 20"), text
    assert rows["demo/backend/api"] == ("executable", "executable")
    page = httpx.get(server.url + "/dashboard/health", timeout=10).text
    assert f"#{app_hook} {hook_url}" in page and f"#{api_hook} {hook_url}" in page
    assert "someone-elses" not in page  # not conveyor's hook
    assert gitlab.tokens["maintainer"] not in page


def test_permanently_disabled_and_missing_hooks(
    serve: Any, specs: list[Path], make_gitlab_emulator: Callable[..., GitLabEmulator]
) -> None:
    gitlab = make_gitlab_emulator()
    receiver = "https://conveyor.example.test"
    # 100 failures without a backoff pending: disabled for good (WebHooks::AutoDisabling)
    gitlab.insert_hook(
        "demo/app", receiver + "/hooks/gitlab", push_events=True, recent_failures=100
    )
    server = serve(
        specs,
        "--dispatch",
        "none",
        CONVEYOR_GITLAB_URL=gitlab.url,
        CONVEYOR_GITLAB_TOKEN=gitlab.tokens["maintainer"],
        CONVEYOR_WEBHOOK_URL=receiver,
    )
    rows = hook_rows(server.url)
    assert rows["demo/app"] == ("disabled", "disabled by GitLab after failed deliveries")
    state, text = rows["demo/backend/api"]
    assert state == "missing" and "no conveyor hook" in text


def test_a_gitlab_error_shows_as_unknown_without_the_token(
    serve: Any, specs: list[Path], make_gitlab_emulator: Callable[..., GitLabEmulator]
) -> None:
    gitlab = make_gitlab_emulator()
    wrong = "glpat-wrong-token-never-shown-0000"
    server = serve(
        specs,
        "--dispatch",
        "none",
        CONVEYOR_GITLAB_URL=gitlab.url,
        CONVEYOR_GITLAB_TOKEN=wrong,
        CONVEYOR_WEBHOOK_URL="https://conveyor.example.test",
    )
    rows = hook_rows(server.url)
    for project in ("demo/app", "demo/backend/api"):
        state, text = rows[project]
        assert state == "unknown" and text.startswith("unknown: "), text
        assert "401" in text or "nauthorized" in text, text
    page = httpx.get(server.url + "/dashboard/health", timeout=10).text
    assert wrong not in page


def test_the_health_page_works_without_gitlab_settings(serve: Any, specs: list[Path]) -> None:
    server = serve(specs, "--dispatch", "none")
    page = httpx.get(server.url + "/dashboard/health", timeout=10)
    assert page.status_code == 200
    assert 'id="hooks-off"' in page.text and 'id="hooks"' not in page.text
