"""The GitLab emulator's hook execution and hook lifecycle, each behaviour from GitLab's source.

Sources (gitlab-org/gitlab): app/models/concerns/web_hooks/auto_disabling.rb (failure counting,
backoff, ``alert_status``), app/services/web_hooks/log_execution_service.rb (only a successful
execution calls ``enable!``), lib/api/hooks/trigger_test.rb (test endpoint, rate limited),
app/models/concerns/web_hooks/hook.rb (URL change resets token, URL variables, custom headers),
lib/api/helpers.rb ``find_project`` (redirects after a rename), lib/api/groups.rb (``with_shared``),
app/models/hooks/web_hook.rb (public URL validation). Driven through python-gitlab.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import gitlab
import pytest

from tests.emulators.gitlab import GitLabEmulator

PROJECT = "demo/hello-web"


class Sink:
    """A tiny HTTP endpoint that answers every POST with ``status`` and keeps what it got."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[tuple[dict[str, str], bytes]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                sink.received.append((dict(self.headers.items()), self.rfile.read(length)))
                self.send_response(sink.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/gitlab"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


@pytest.fixture
def local_gitlab(make_gitlab_emulator: Callable[..., GitLabEmulator]) -> GitLabEmulator:
    """An instance that allows local requests from hooks (the sink is on loopback)."""
    return make_gitlab_emulator(allow_local_requests=True)


def _api(emulator: GitLabEmulator) -> gitlab.Gitlab:
    return gitlab.Gitlab(emulator.url, private_token=emulator.tokens["maintainer"], timeout=10)


def _hook(emulator: GitLabEmulator, hook_id: int) -> Any:
    return _api(emulator).projects.get(PROJECT, lazy=True).hooks.get(hook_id)


def _until(hook: Any) -> datetime:
    return datetime.fromisoformat(str(hook.disabled_until).replace("Z", "+00:00"))


# ---------------------------------------------------------------------------- failure counting
def test_three_failures_are_grace_the_fourth_backs_off_one_minute_then_doubling(
    local_gitlab: GitLabEmulator, sink: Sink
) -> None:
    hook_id = local_gitlab.insert_hook(PROJECT, sink.url, token="t")
    sink.status = 500
    for _ in range(3):
        assert [d.category for d in local_gitlab.deliver(PROJECT)] == ["error"]
    assert _hook(local_gitlab, hook_id).alert_status == "executable"  # grace: FAILURE_THRESHOLD
    local_gitlab.deliver(PROJECT)
    hook = _hook(local_gitlab, hook_id)
    assert hook.alert_status == "temporarily_disabled"
    assert 55 <= (_until(hook) - datetime.now(UTC)).total_seconds() <= 61  # INITIAL_BACKOFF
    assert local_gitlab.deliver(PROJECT) == []  # a disabled hook drops the event
    local_gitlab.advance(61)
    assert _hook(local_gitlab, hook_id).alert_status == "executable"  # backoff over
    local_gitlab.deliver(PROJECT)  # fails again: twice as long
    hook = _hook(local_gitlab, hook_id)
    assert hook.alert_status == "temporarily_disabled"
    delay = (_until(hook) - datetime.now(UTC)).total_seconds() - 61
    assert 115 <= delay <= 121
    assert local_gitlab.hook_state(PROJECT, hook_id)["recent_failures"] == 5


def test_4xx_answers_disable_the_hook_for_good_after_the_grace_period(
    local_gitlab: GitLabEmulator, sink: Sink
) -> None:
    hook_id = local_gitlab.insert_hook(PROJECT, sink.url, token="t")
    sink.status = 401
    for _ in range(4):
        assert [d.category for d in local_gitlab.deliver(PROJECT)] == ["failed"]
    hook = _hook(local_gitlab, hook_id)
    assert hook.alert_status == "disabled" and hook.disabled_until is None
    local_gitlab.advance(86400 * 2)
    assert _hook(local_gitlab, hook_id).alert_status == "disabled"
    assert local_gitlab.deliver(PROJECT) == []


def test_newer_gitlab_backs_off_on_4xx_too(
    make_gitlab_emulator: Callable[..., GitLabEmulator], sink: Sink
) -> None:
    emulator = make_gitlab_emulator(allow_local_requests=True, failure_categories="ok_error")
    hook_id = emulator.insert_hook(PROJECT, sink.url)
    sink.status = 400
    for _ in range(4):
        emulator.deliver(PROJECT)
    assert _hook(emulator, hook_id).alert_status == "temporarily_disabled"


def test_a_success_resets_the_failure_count(local_gitlab: GitLabEmulator, sink: Sink) -> None:
    hook_id = local_gitlab.insert_hook(PROJECT, sink.url)
    sink.status = 500
    for _ in range(3):
        local_gitlab.deliver(PROJECT)
    sink.status = 202
    local_gitlab.deliver(PROJECT)
    assert local_gitlab.hook_state(PROJECT, hook_id)["recent_failures"] == 0


def test_unreachable_receiver_counts_as_error(local_gitlab: GitLabEmulator) -> None:
    hook_id = local_gitlab.insert_hook(PROJECT, "http://127.0.0.1:9/hooks/gitlab")
    for _ in range(4):
        local_gitlab.deliver(PROJECT, timeout=2)
    assert _hook(local_gitlab, hook_id).alert_status == "temporarily_disabled"


def test_put_does_not_re_enable_only_a_successful_test_does(
    local_gitlab: GitLabEmulator, sink: Sink
) -> None:
    hook_id = local_gitlab.insert_hook(PROJECT, sink.url, token="t")
    sink.status = 404
    for _ in range(4):
        local_gitlab.deliver(PROJECT)
    hooks = _api(local_gitlab).projects.get(PROJECT, lazy=True).hooks
    hooks.update(hook_id, {"url": sink.url, "token": "t", "tag_push_events": True})
    assert hooks.get(hook_id).alert_status == "disabled"  # PUT changes nothing here
    hook = hooks.get(hook_id, lazy=True)
    with pytest.raises(gitlab.GitlabHookTestError) as failed:
        hook.test("push_events")  # receiver still failing: 422, still disabled
    assert failed.value.response_code == 422
    assert hooks.get(hook_id).alert_status == "disabled"
    sink.status = 200
    hook.test("push_events")  # executed although disabled (force), success: enable!
    assert hooks.get(hook_id).alert_status == "executable"
    tests = [d for d in local_gitlab.deliveries(PROJECT) if d.test]
    assert [d.status for d in tests] == [404, 200]
    assert tests[-1].headers["X-Gitlab-Event"] == "Push Hook"
    assert tests[-1].headers["X-Gitlab-Token"] == "t"


def test_hook_tests_are_rate_limited_to_five_a_minute(
    local_gitlab: GitLabEmulator, sink: Sink
) -> None:
    hook_id = local_gitlab.insert_hook(PROJECT, sink.url)
    hook = _api(local_gitlab).projects.get(PROJECT, lazy=True).hooks.get(hook_id, lazy=True)
    for _ in range(5):
        hook.test("push_events")
    with pytest.raises(gitlab.GitlabHttpError) as limited:
        hook.manager.gitlab.http_post(
            f"/projects/{PROJECT.replace('/', '%2F')}/hooks/{hook_id}/test/push_events",
            obey_rate_limit=False,
        )
    assert limited.value.response_code == 429
    local_gitlab.advance(60)
    hook.test("push_events")
    with pytest.raises(gitlab.GitlabHookTestError) as bad:
        hook.test("no_such_events")
    assert bad.value.response_code == 400


def test_no_rate_limit_on_hook_creation(gitlab_emulator: GitLabEmulator) -> None:
    hooks = _api(gitlab_emulator).projects.get("demo/app", lazy=True).hooks
    for i in range(12):
        hooks.create({"url": f"https://ci.example/{i}"}, obey_rate_limit=False)
    assert len(gitlab_emulator.hooks("demo/app")) == 12


def test_a_lost_create_answer_still_created_the_hook(gitlab_emulator: GitLabEmulator) -> None:
    gitlab_emulator.lose_create_answers = 1
    hooks = _api(gitlab_emulator).projects.get("demo/app", lazy=True).hooks
    with pytest.raises(gitlab.GitlabCreateError) as lost:
        hooks.create({"url": "https://ci.example/x"}, retry_transient_errors=False)
    assert lost.value.response_code == 502
    assert [h["url"] for h in gitlab_emulator.hooks("demo/app")] == ["https://ci.example/x"]


# ---------------------------------------------------------------------------- what a hook holds
def test_token_present_only_from_gitlab_19(
    make_gitlab_emulator: Callable[..., GitLabEmulator],
) -> None:
    old = make_gitlab_emulator()
    new = make_gitlab_emulator(version="19.0.0")
    for emulator in (old, new):
        hooks = _api(emulator).projects.get(PROJECT, lazy=True).hooks
        with_token = hooks.create({"url": "https://ci.example/a", "token": "s"})
        without = hooks.create({"url": "https://ci.example/b"})
        if emulator is old:
            assert "token_present" not in with_token.attributes
        else:
            assert hooks.get(with_token.id).token_present is True
            assert hooks.get(without.id).token_present is False
            hooks.update(with_token.id, {"url": "https://ci.example/moved"})
            assert hooks.get(with_token.id).token_present is False  # URL change wiped it


def test_url_change_resets_custom_headers_and_url_variables_with_the_token(
    gitlab_emulator: GitLabEmulator,
) -> None:
    hooks = _api(gitlab_emulator).projects.get(PROJECT, lazy=True).hooks
    hook = hooks.create({"url": "https://ci.example/a", "token": "s"})
    gitlab_emulator.insert_hook(PROJECT, "https://unrelated.example/")
    with gitlab_emulator.lock:
        stored = gitlab_emulator._hooks[gitlab_emulator.project(PROJECT).id][hook.id]
        stored["custom_headers"] = [{"key": "X-Env", "value": "prod"}]
        stored["url_variables"] = [{"key": "k", "value": "v"}]
    hooks.update(hook.id, {"url": "https://ci.example/a", "push_events": True})
    assert hooks.get(hook.id).custom_headers == [{"key": "X-Env"}]  # same URL: kept
    hooks.update(hook.id, {"url": "https://ci.example/b"})
    again = hooks.get(hook.id)
    assert again.custom_headers == [] and again.url_variables == []
    assert gitlab_emulator.hook_token(PROJECT, hook.id) == ""


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost:8080/hooks/gitlab", "localhost"),
        ("http://127.0.0.1/hooks/gitlab", "localhost"),
        ("http://[::1]/hooks/gitlab", "localhost"),
        ("http://10.1.2.3/hooks/gitlab", "local network"),
        ("https://192.168.0.10/hooks/gitlab", "local network"),
        ("https://172.16.5.5/hooks/gitlab", "local network"),
        ("http://169.254.169.254/latest", "link local"),
    ],
)
def test_local_and_private_hook_urls_are_422_unless_the_instance_allows_them(
    make_gitlab_emulator: Callable[..., GitLabEmulator], url: str, reason: str
) -> None:
    strict = make_gitlab_emulator()
    with pytest.raises(gitlab.GitlabCreateError) as info:
        _api(strict).projects.get(PROJECT, lazy=True).hooks.create({"url": url})
    assert info.value.response_code == 422
    assert reason in str(info.value.error_message)
    relaxed = make_gitlab_emulator(allow_local_requests=True)
    _api(relaxed).projects.get(PROJECT, lazy=True).hooks.create({"url": url})
    _api(strict).projects.get(PROJECT, lazy=True).hooks.create({"url": "https://8.8.8.8/x"})


# ---------------------------------------------------------------------------- deliveries
def test_delivery_headers_and_signature_on_gitlab_19(
    make_gitlab_emulator: Callable[..., GitLabEmulator], sink: Sink
) -> None:
    emulator = make_gitlab_emulator(version="19.0.0", allow_local_requests=True)
    key = b"0123456789abcdef0123456789abcdef"
    hooks = _api(emulator).projects.get(PROJECT, lazy=True).hooks
    signed = hooks.create(
        {"url": sink.url, "token": "t", "signing_token": "whsec_" + base64.b64encode(key).decode()}
    )
    emulator.deliver(PROJECT)
    headers, body = sink.received[-1]
    assert headers["X-Gitlab-Token"] == "t" and headers["X-Gitlab-Event"] == "Push Hook"
    message = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == "v1," + expected
    hooks.delete(signed.id)
    hooks.create({"url": sink.url, "token": "t"})
    emulator.deliver(PROJECT)
    unsigned, _ = sink.received[-1]
    assert "webhook-id" in unsigned and "webhook-timestamp" in unsigned
    assert "webhook-signature" not in unsigned


def test_delivery_payload_and_branch_filter(local_gitlab: GitLabEmulator, sink: Sink) -> None:
    local_gitlab.insert_hook(PROJECT, sink.url, push_events_branch_filter="release/*")
    assert local_gitlab.deliver(PROJECT, ref="refs/heads/main") == []
    (done,) = local_gitlab.deliver(PROJECT, ref="refs/heads/release/1.2")
    payload = done.json()
    project = local_gitlab.project(PROJECT)
    assert payload["project_id"] == project.id == payload["project"]["id"]
    assert payload["project"]["path_with_namespace"] == PROJECT
    assert "X-Gitlab-Token" not in done.headers  # no token set: none sent


# ---------------------------------------------------------------------------- paths
def test_rename_keeps_the_old_path_resolving_and_lookups_ignore_case(
    gitlab_emulator: GitLabEmulator,
) -> None:
    gl = _api(gitlab_emulator)
    before = gl.projects.get("Demo/Hello-Web")
    assert before.path_with_namespace == PROJECT  # canonical spelling comes back
    gitlab_emulator.rename_project(PROJECT, "platform/hello-web-2")
    old = gl.projects.get(PROJECT)
    assert old.id == before.id and old.path_with_namespace == "platform/hello-web-2"
    assert gl.projects.get("PLATFORM/hello-web-2").id == before.id
    hook = gl.projects.get(PROJECT, lazy=True).hooks.create({"url": "https://ci.example/x"})
    assert hook.project_id == before.id


def test_group_projects_with_shared(gitlab_emulator: GitLabEmulator) -> None:
    gitlab_emulator.add_project("partner/shared-lib", members={"maintainer": "maintainer"})
    gitlab_emulator.share_project("partner/shared-lib", "demo")
    group = _api(gitlab_emulator).groups.get("demo", lazy=True)
    default = {p.path_with_namespace for p in group.projects.list(get_all=True)}
    own = {p.path_with_namespace for p in group.projects.list(get_all=True, with_shared=False)}
    assert "partner/shared-lib" in default
    assert "partner/shared-lib" not in own and "demo/app" in own
