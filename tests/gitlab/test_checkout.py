"""Checking out the commit an event names (the receiver's local dispatch), from a real git repo.

The repositories are real (``file://`` clone bases, and a loopback HTTP server that records what
git sends it); the attack of issue 10 item 2 is replayed as it was found.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conveyor.config import Settings, load_settings
from conveyor.demo import repo
from conveyor.errors import ConfigError, RunnerError
from conveyor.gitlab.checkout import checkout, clone_url, fetch_ref, gitlab_repo_url, sends_token
from conveyor.gitlab.events import GitLabEvent, PayloadError, parse_event, trigger_of
from conveyor.jenkins.dispatcher import jenkins_parameters
from conveyor.receiver.dispatch import DispatchJob
from conveyor.receiver.routing import Ignore, Route, Router
from conveyor.spec.load import load_spec
from tests.docker.fixtures import git_commit
from tests.receiver import payloads as p

PROJECT = "demo/app"
ANY_BRANCH_SPEC = """\
apiVersion: conveyor/v1
project: demo/app
triggers:
  push:
    branches: ["**"]
jenkins:
  job: demo/app
stages:
  - name: test
    run: ["true"]
"""


def repo_at(root: Path, project: str = PROJECT) -> Path:
    """Where ``CONVEYOR_GIT_URL=file://<root>`` finds ``project``."""
    return root / f"{project}.git"


def local(root: Path, **changes: Any) -> Settings:
    return Settings(git_url=f"file://{root}", **changes)


def event_for(sha: str, before: str, branch: str = "main") -> GitLabEvent:
    return parse_event("Push Hook", p.push(branch=branch, before=before, after=sha))


def head(dest: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(dest), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_checks_out_exactly_the_pushed_commit_even_after_the_branch_moved_on(
    tmp_path: Path,
) -> None:
    repo = repo_at(tmp_path / "git")
    first = git_commit(repo, {"a.txt": "one\n"})
    second = git_commit(repo, {"a.txt": "two\n"})
    git_commit(repo, {"a.txt": "three\n"})  # main moved on after the push of `second`
    subprocess.run(
        ["git", "-C", str(repo), "config", "uploadpack.allowAnySHA1InWant", "true"], check=True
    )
    dest = checkout(event_for(second, first), tmp_path / "co", local(tmp_path / "git"))
    assert (dest / "a.txt").read_text() == "two\n"
    assert head(dest) == second


def test_the_payloads_clone_url_is_never_used(tmp_path: Path) -> None:
    configured = repo_at(tmp_path / "git")
    sha = git_commit(configured, {"a.txt": "configured\n"})
    elsewhere = tmp_path / "elsewhere"
    git_commit(elsewhere, {"a.txt": "from the payload\n"})
    payload = p.push(after=sha)
    payload["project"]["git_http_url"] = str(elsewhere)
    dest = checkout(parse_event("Push Hook", payload), tmp_path / "co", local(tmp_path / "git"))
    assert (dest / "a.txt").read_text() == "configured\n"


def test_merge_requests_fetch_the_merge_request_ref_and_a_merge_the_target() -> None:
    event = parse_event("Merge Request Hook", p.merge_request(action="open", iid=7))
    assert fetch_ref(event) == "refs/merge-requests/7/head"
    merged = p.merge_request(action="merge", iid=7, target="main", merge_commit_sha=p.MERGE_SHA)
    event = parse_event("Merge Request Hook", merged)
    assert fetch_ref(event) == "refs/heads/main" and event.sha == p.MERGE_SHA


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_a_merge_checks_out_the_merge_commit_from_the_target_branch(tmp_path: Path) -> None:
    repo = repo_at(tmp_path / "git")
    base = git_commit(repo, {"a.txt": "base\n"})
    git(repo, "switch", "-q", "-c", "feature/login")
    feature = git_commit(repo, {"b.txt": "feature\n"})
    git(repo, "switch", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge branch 'feature/login'", "feature/login")
    merge = head(repo)
    git(repo, "branch", "-q", "-D", "feature/login")  # the source branch is gone
    data = p.merge_request(action="merge", sha=feature, merge_commit_sha=merge)
    dest = checkout(
        parse_event("Merge Request Hook", data), tmp_path / "co", local(tmp_path / "git")
    )
    assert head(dest) == merge != base
    assert (dest / "b.txt").read_text() == "feature\n"


def test_failures_name_the_step_and_never_the_token(tmp_path: Path) -> None:
    event = parse_event("Push Hook", p.push(after=p.SHA_B))
    config = Settings(gitlab_url="http://127.0.0.1:9", gitlab_token="glpat-very-secret")
    with pytest.raises(RunnerError, match="checkout: fetch refs/heads/main failed") as info:
        checkout(event, tmp_path / "co", config)
    assert "glpat-very-secret" not in str(info.value)
    with pytest.raises(RunnerError, match="no repository to check out demo/app from"):
        checkout(event, tmp_path / "co2", Settings())


# --- issue 10 item 2: a forged ref became git options (command execution) ---------------------


def test_regression_upload_pack_ref_cannot_run_a_command(tmp_path: Path) -> None:
    """The attack as found: a ref without ``refs/``, a ``**`` branch filter, a local clone URL.

    Old code took the ref as the branch ``--upload-pack=touch .../PWNED``, routed it, and ran
    ``git fetch ... origin --upload-pack=touch .../PWNED``, which ran ``touch``.
    """
    repo = repo_at(tmp_path / "git")
    sha = git_commit(repo, {"a.txt": "one\n"})
    pwned = tmp_path / "PWNED"
    hostile = f"--upload-pack=touch {pwned}"
    payload = p.push(after=sha)
    payload["ref"] = hostile
    payload["project"]["git_http_url"] = str(repo)
    with pytest.raises(PayloadError, match="ref") as info:
        parse_event("Push Hook", payload)  # refused before it is stored: a 400 at the receiver
    assert info.value.field == "ref"
    # Even an event that skipped the parser is ignored by the router and refused by checkout.
    valid = parse_event("Push Hook", p.push(after=sha))
    forged = dataclasses.replace(valid, ref=hostile, branch=hostile)
    router = Router([load_spec_text(tmp_path, ANY_BRANCH_SPEC)])
    decision = router.decide(forged)
    assert isinstance(decision, Ignore) and "not a valid git ref" in decision.reason
    with pytest.raises(RunnerError, match="refusing ref"):
        checkout(forged, tmp_path / "co", local(tmp_path / "git"))
    for bad_sha in (hostile, "HEAD", sha[:12]):
        with pytest.raises(RunnerError, match="refusing sha"):
            checkout(dataclasses.replace(valid, sha=bad_sha), tmp_path / "co2", local(tmp_path))
    assert not pwned.exists()


def load_spec_text(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "spec.yml"
    path.write_text(text)
    return load_spec(path).spec


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=st.lists(
        st.characters(codec="utf-8", exclude_characters="\x00")
        | st.sampled_from(["--upload-pack=", "-c", "core.sshCommand=", "$(id)", "`id`", "/", "."]),
        min_size=1,
        max_size=8,
    ).map("".join)
)
@example(name="--upload-pack=touch PWNED")
@example(name="-oProxyCommand=touch PWNED")
@example(name="--exec=touch PWNED")
@example(name="--upload-pack=touch${IFS}PWNED")
def test_hostile_branch_names_never_run_anything(tmp_path: Path, name: str) -> None:
    """parse -> route -> checkout: whatever the name, nothing runs and no file appears."""
    git_root = tmp_path / "git"
    repo = repo_at(git_root)
    if not repo.exists():
        git_commit(repo, {"a.txt": "one\n"})
    sha = head(repo)
    marker = tmp_path / "PWNED"
    payload = p.push(after=sha)
    payload["ref"] = f"refs/heads/{name}".replace("PWNED", str(marker))
    try:
        event = parse_event("Push Hook", payload)
    except PayloadError as exc:
        assert exc.field == "ref"
        return
    router = Router([load_spec_text(tmp_path, ANY_BRANCH_SPEC)])
    assert isinstance(router.decide(event), Route)
    into = tmp_path / "co"
    subprocess.run(["rm", "-rf", str(into)], check=True)
    try:
        checkout(event, into, local(git_root))
    except RunnerError as exc:
        assert "couldn't find remote ref" in str(exc)  # the ref was a ref, never an option
    else:
        assert event.branch == "main"
    assert not marker.exists()


# --- credentials go only to the configured GitLab ----------------------------------------------


class Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]]

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_token_goes_to_the_configured_gitlab_only(
    tmp_path: Path, recorder: tuple[str, list[tuple[str, str | None]]]
) -> None:
    url, seen = recorder
    payload = p.push(after=p.SHA_B)
    payload["project"]["git_http_url"] = f"{url}/attacker/repo.git"  # never contacted
    event = parse_event("Push Hook", payload)
    token = "glpat-secret-token"
    # 1. The clone base is the configured GitLab: the token goes along, to the project's path.
    with pytest.raises(RunnerError):
        checkout(event, tmp_path / "a", Settings(gitlab_url=url, gitlab_token=token))
    assert seen and all(path.startswith("/demo/app.git/") for path, _ in seen)
    assert all(auth is not None and auth.startswith("Basic ") for _, auth in seen)
    seen.clear()
    # 2. A mirror on another host than CONVEYOR_GITLAB_URL: fetched without the token.
    other = Settings(git_url=url, gitlab_url="https://gitlab.example.com", gitlab_token=token)
    with pytest.raises(RunnerError):
        checkout(event, tmp_path / "b", other)
    assert seen and all(auth is None for _, auth in seen)


@pytest.mark.parametrize(
    ("url", "gitlab_url", "sent"),
    [
        ("https://gitlab.example.com/a/b.git", "https://gitlab.example.com", True),
        ("https://GITLAB.example.com:443/a/b.git", "https://gitlab.example.com/", True),
        ("https://gitlab.example.com/a/b.git", "https://gitlab.example.com/gitlab", True),
        ("http://gitlab.example.com/a/b.git", "https://gitlab.example.com", False),
        ("https://gitlab.example.com:8443/a/b.git", "https://gitlab.example.com", False),
        ("https://gitlab.example.com.evil.example/a/b.git", "https://gitlab.example.com", False),
        ("https://evil.example/gitlab.example.com/a.git", "https://gitlab.example.com", False),
        ("https://gitlab.example.com@evil.example/a.git", "https://gitlab.example.com", False),
        ("file:///srv/git/a/b.git", "https://gitlab.example.com", False),
        ("https://gitlab.example.com/a/b.git", None, False),
    ],
)
def test_sends_token_only_to_the_same_scheme_host_and_port(
    url: str, gitlab_url: str | None, sent: bool
) -> None:
    assert sends_token(url, gitlab_url) is sent


@given(path=st.text(max_size=40))
def test_clone_urls_never_leave_the_base(path: str) -> None:
    """A hostile project path cannot climb out of the base, add a host or a query."""
    try:
        url = clone_url("https://gitlab.example.com", path)
    except RunnerError:
        return
    rest = url[len("https://gitlab.example.com/") :]
    assert url.startswith("https://gitlab.example.com/") and rest == f"{path}.git"
    assert not set(rest) & set("?#@:%\\ ") and "/../" not in f"/{rest}" and "//" not in rest


def test_the_demo_repository_is_where_its_clone_base_points(tmp_path: Path) -> None:
    """`conveyor demo` sets CONVEYOR_GIT_URL=repo.clone_base(root) for its receiver."""
    root = tmp_path / "demo"
    project = "demo/hello-web"
    commit = repo.create(repo.find_example("hello-web"), repo.location(root, project))
    config = load_settings({"CONVEYOR_GIT_URL": repo.clone_base(root), "CONVEYOR_STATE": "x"})
    event = parse_event("Push Hook", p.push(path=project, before=p.ZERO, after=commit.sha))
    dest = checkout(event, tmp_path / "co", config)
    assert head(dest) == commit.sha and (dest / "app.py").is_file()


@pytest.mark.parametrize("value", ["/srv/git", "file://host/srv/git", "ftp://x/y", "file:relative"])
def test_git_url_must_be_http_or_an_absolute_file_url(value: str) -> None:
    with pytest.raises(ConfigError, match="CONVEYOR_GIT_URL must be an http"):
        load_settings({"CONVEYOR_GIT_URL": value, "CONVEYOR_STATE": "x"})


def test_builds_name_the_configured_gitlabs_url_never_the_payloads(tmp_path: Path) -> None:
    """gitlabSourceRepoHttpUrl reaches Jenkins (whose checkout sends credentials to it) and the
    image's source label: it comes from CONVEYOR_GITLAB_URL, not from project.git_http_url."""
    payload = p.push()
    payload["project"]["git_http_url"] = "https://evil.example/steal.git"
    event = parse_event("Push Hook", payload)
    job = DispatchJob(
        event_id=1, event=event, spec=load_spec_text(tmp_path, ANY_BRANCH_SPEC), attempt=1
    )
    configured = gitlab_repo_url("https://gitlab.example.com", event.project_path)
    params = jenkins_parameters(job, repo_url=configured)
    assert params["gitlabSourceRepoHttpUrl"] == "https://gitlab.example.com/demo/app.git"
    assert "evil" not in repr(params) and "evil" not in repr(trigger_of(event))
    assert "gitlabSourceRepoHttpUrl" not in jenkins_parameters(job)
    assert gitlab_repo_url(None, "demo/app") is None
    assert gitlab_repo_url("https://gitlab.example.com", "demo/../x") is None


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    url=st.text(max_size=40)
    | st.sampled_from(
        [
            "ext::sh -c touch% PWNED",
            "--upload-pack=touch PWNED",
            "file:///etc",
            "http://169.254.169.254/latest/meta-data",
            "https://gitlab.example.com@evil.example/x.git",
        ]
    )
)
def test_any_payload_clone_url_is_ignored_by_checkout(tmp_path: Path, url: str) -> None:
    git_root = tmp_path / "git"
    repo = repo_at(git_root)
    if not repo.exists():
        git_commit(repo, {"a.txt": "configured\n"})
    payload = p.push(after=head(repo))
    payload["project"]["git_http_url"] = url.replace("PWNED", str(tmp_path / "PWNED"))
    payload["repository"]["git_http_url"] = payload["project"]["git_http_url"]
    into = tmp_path / "co"
    subprocess.run(["rm", "-rf", str(into)], check=True)
    checkout(parse_event("Push Hook", payload), into, local(git_root))
    assert (into / "a.txt").read_text() == "configured\n"
    assert not (tmp_path / "PWNED").exists()
