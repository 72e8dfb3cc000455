"""Pure parts of the Docker plugin: references, placeholders, labels, git facts, credentials."""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conveyor.docker.credentials import find_auth
from conveyor.docker.gitfacts import GitFacts, git_facts, public_url
from conveyor.docker.images import (
    ImageRef,
    expand,
    expand_tags,
    oci_labels,
    parse_ref,
    placeholder_values,
)
from conveyor.errors import RegistryError, UsageError
from tests.docker.fixtures import git_commit

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("busybox", ImageRef("", "busybox", "latest")),
        ("demo/app:1.2", ImageRef("", "demo/app", "1.2")),
        ("localhost:5000/demo/app:abc", ImageRef("localhost:5000", "demo/app", "abc")),
        ("127.0.0.1:5000/app", ImageRef("127.0.0.1:5000", "app", "latest")),
        ("registry.example.com/g/sub/app:v1", ImageRef("registry.example.com", "g/sub/app", "v1")),
    ],
)
def test_parse_ref(text: str, ref: ImageRef) -> None:
    assert parse_ref(text) == ref
    assert str(parse_ref(text)) == str(ref)


@pytest.mark.parametrize(
    "bad", ["", "Demo/App", "reg:5000/app:", "app:bad tag", "a/b:" + "x" * 200]
)
def test_parse_ref_rejects(bad: str) -> None:
    with pytest.raises(UsageError, match="invalid image reference"):
        parse_ref(bad)


def test_expand_tags_sanitises_branch_and_keeps_unknown_braces() -> None:
    facts = GitFacts(sha=SHA, branch="feature/Login", tag="")
    values = placeholder_values(
        facts, project="Demo/App", registry="localhost:5000/", build_number="7"
    )
    tags = expand_tags(
        [
            "{registry}/{project}:{sha}",
            "{registry}/{project}:{branch}-{build_number}",
            "{registry}/{project}:{sha}",
        ],
        values,
    )
    assert tags == (f"localhost:5000/demo/app:{SHA}", "localhost:5000/demo/app:feature-Login-7")
    assert expand("x{unknown}{short_sha}", values) == "x{unknown}01234567"


def test_expand_tags_names_the_empty_placeholder() -> None:
    values = placeholder_values(GitFacts(sha=SHA), project="demo/app", registry="r.example.com")
    with pytest.raises(UsageError, match=r"\{tag\} empty"):
        expand_tags(["{registry}/{project}:{tag}"], values)


def test_oci_labels() -> None:
    facts = GitFacts(
        sha=SHA, branch="main", tag="", source="https://gitlab.example.com/demo/app.git"
    )
    labels = oci_labels(
        facts, project="demo/app", created=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    )
    assert labels == {
        "org.opencontainers.image.revision": SHA,
        "org.opencontainers.image.source": "https://gitlab.example.com/demo/app.git",
        "org.opencontainers.image.created": "2026-01-02T03:04:05Z",
        "org.opencontainers.image.version": "main-01234567",
    }
    tagged = oci_labels(GitFacts(sha=SHA, tag="v1.0"), project="demo/app")
    assert tagged["org.opencontainers.image.version"] == "v1.0"
    assert tagged["org.opencontainers.image.source"] == "demo/app"


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://oauth2:glpat-x@gitlab.example.com/g/r.git", "https://gitlab.example.com/g/r.git"),
        ("http://u@host:8080/g/r.git", "http://host:8080/g/r.git"),
        ("git@gitlab.example.com:g/r.git", "https://gitlab.example.com/g/r.git"),
        ("/srv/repo.git", "/srv/repo.git"),
    ],
)
def test_public_url_drops_credentials(url: str, public: str) -> None:
    assert public_url(url) == public


def test_git_facts_from_checkout_and_flags(tmp_path: Path) -> None:
    sha = git_commit(tmp_path / "repo", {"a.txt": "1"}, branch="release/1.x")
    subprocess_tag(tmp_path / "repo", "v1.0.0")
    facts = git_facts(tmp_path / "repo")
    assert facts == GitFacts(
        sha, "release/1.x", "v1.0.0", "https://gitlab.example.com/demo/app.git"
    )
    assert "glpat" not in facts.source
    flagged = git_facts(tmp_path / "repo", sha="f" * 40, branch="main", tag="")
    assert (flagged.sha, flagged.branch, flagged.tag) == ("f" * 40, "main", "")


def subprocess_tag(repo: Path, tag: str) -> None:
    subprocess.run(["git", "-C", str(repo), "tag", tag], check=True)


def test_git_facts_outside_a_checkout(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a git checkout") as info:
        git_facts(tmp_path)
    assert "--sha" in str(info.value)
    assert git_facts(tmp_path, sha=SHA).sha == SHA


def test_find_auth_order(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "auths": {
                    "https://reg.example.com": {
                        "auth": base64.b64encode(b"cfg-user:cfg:pass").decode()
                    }
                }
            }
        )
    )
    env = {"DOCKER_CONFIG": str(tmp_path)}
    from_config = find_auth("reg.example.com", env)
    assert from_config.auth is not None
    assert (from_config.auth.username, from_config.auth.password) == ("cfg-user", "cfg:pass")
    jenkins = find_auth("reg.example.com", {**env, "REGISTRY_USER": "j", "REGISTRY_PASSWORD": "jp"})
    assert jenkins.auth is not None and jenkins.auth.origin == "REGISTRY_USER/REGISTRY_PASSWORD"
    explicit = find_auth(
        "reg.example.com",
        {
            **env,
            "REGISTRY_USER": "j",
            "REGISTRY_PASSWORD": "jp",
            "CONVEYOR_REGISTRY_USER": "c",
            "CONVEYOR_REGISTRY_PASSWORD": "cp",
        },
    )
    assert explicit.auth is not None and explicit.auth.username == "c"
    assert "cp" not in repr(explicit.auth)
    assert find_auth("other.example.com", env).auth is None


def test_find_auth_creds_store_and_half_set_env(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "desktop"}))
    lookup = find_auth("reg.example.com", {"DOCKER_CONFIG": str(tmp_path)})
    assert lookup.auth is None
    assert "docker-credential-desktop" in lookup.note
    with pytest.raises(RegistryError, match="CONVEYOR_REGISTRY_PASSWORD is not"):
        find_auth("reg.example.com", {"CONVEYOR_REGISTRY_USER": "u"})


def test_git_facts_in_a_detached_jenkins_checkout_use_the_build_variables(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    sha = git_commit(repo, {"a.txt": "1"})
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "--detach", sha], check=True)
    push = {"gitlabActionType": "PUSH", "gitlabBranch": "release/2.x", "gitlabAfter": sha}
    facts = git_facts(repo, environ=push)
    assert (facts.sha, facts.branch, facts.tag) == (sha, "release/2.x", "")
    tag_push = {"gitlabActionType": "TAG_PUSH", "gitlabBranch": "v2.0.1"}
    facts = git_facts(repo, environ=tag_push)
    assert (facts.branch, facts.tag) == ("", "v2.0.1")
    assert git_facts(repo, environ={}).branch == ""


def test_push_progress_is_one_plain_line_per_status_change() -> None:
    """One rendering of push progress for the runner's stage log and ``conveyor push`` in a pipe."""
    from conveyor.docker.push import PushEvent, progress_line

    assert progress_line(PushEvent("note", "", "", "logged in")) == "conveyor: logged in"
    assert progress_line(PushEvent("layer", "r/a:1", "abc", "Pushing", 5, 10)) is None
    assert progress_line(PushEvent("layer", "r/a:1", "abc", "Pushed")) == "r/a:1 abc: Pushed"
