from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conveyor.config import home_dir, load_settings
from conveyor.errors import ConfigError
from conveyor.tokens import accepted_tokens, project_id_token, project_token


def test_missing_settings_are_named_together() -> None:
    settings = load_settings({"CONVEYOR_GITLAB_URL": "https://gitlab.example.com"})
    with pytest.raises(ConfigError) as info:
        settings.require("gitlab_url", "gitlab_token", "jenkins_url", "secret")
    text = str(info.value)
    assert "CONVEYOR_GITLAB_TOKEN" in text and "CONVEYOR_JENKINS_URL" in text
    assert "CONVEYOR_SECRET" in text and "CONVEYOR_GITLAB_URL," not in text


def test_malformed_settings_name_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            {
                "CONVEYOR_JENKINS_URL": "jenkins.local",
                "CONVEYOR_SECRET_PREVIOUS_UNTIL": "soon",
                "CONVEYOR_SECRET": "s",
                "CONVEYOR_SECRET_PREVIOUS": "p",
            }
        )
    assert "CONVEYOR_JENKINS_URL must be an http(s) URL" in str(info.value)
    assert "CONVEYOR_SECRET_PREVIOUS_UNTIL must be an ISO-8601 time" in str(info.value)


def test_config_file_fills_in_and_environment_wins(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('gitlab_url = "https://file.example.com/"\njenkins_user = "bot"\n')
    s = load_settings({"CONVEYOR_CONFIG": str(cfg), "CONVEYOR_JENKINS_USER": "env-bot"})
    assert s.gitlab_url == "https://file.example.com"
    assert s.jenkins_user == "env-bot"


def test_config_file_with_unknown_key_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('gitlab_ur = "x"\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings({"CONVEYOR_CONFIG": str(cfg)})


def test_repr_never_shows_secrets() -> None:
    s = load_settings({"CONVEYOR_GITLAB_TOKEN": "glpat-SECRET", "CONVEYOR_SECRET": "topsecret"})
    assert "glpat-SECRET" not in repr(s) and "topsecret" not in repr(s)


def test_state_dir_resolution(tmp_path: Path) -> None:
    assert load_settings({"CONVEYOR_STATE": str(tmp_path)}).state_dir == tmp_path
    assert load_settings({"XDG_STATE_HOME": str(tmp_path)}).state_dir == tmp_path / "conveyor"
    home = tmp_path / "home"
    home.mkdir()
    assert load_settings({"HOME": str(home)}).state_dir == home / ".local/state/conveyor"


@pytest.mark.parametrize("home", ["/", "relative/dir"])
def test_state_dir_never_under_root_for_a_user_without_a_home(home: str, tmp_path: Path) -> None:
    """Jenkins' container user has HOME=/ (jenkins.md "Container user")."""
    env = {"TMPDIR": str(tmp_path), "HOME": home}
    assert home_dir(env) is None
    assert load_settings(env).state_dir == tmp_path / f"conveyor-{os.getuid()}" / "state"


def test_state_dir_skips_a_home_this_user_cannot_write() -> None:
    """A HOME this user cannot write is skipped for TMPDIR. Root writes anywhere, so under root
    the check runs in a forked child that has dropped to uid 1000 (Jenkins' agent user)."""
    root = Path(tempfile.mkdtemp(prefix="conveyor-home-test-"))
    try:
        root.chmod(0o777)
        home = root / "someone-else"
        home.mkdir(mode=0o500)
        env = {"HOME": str(home), "TMPDIR": str(root)}
        uid = 1000 if os.getuid() == 0 else os.getuid()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: drop privileges, answer through the pipe, never return
            try:
                if os.getuid() == 0:
                    os.setgid(1000)
                    os.setuid(1000)
                os.write(write, str(load_settings(env).state_dir).encode())
            except BaseException as error:
                os.write(write, f"error: {error!r}".encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as answer:
            state_dir = answer.read()
        os.waitpid(pid, 0)
        assert Path(state_dir) == root / f"conveyor-{uid}" / "state"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_no_home_and_no_passwd_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HOME unset and a uid without a passwd entry, where Path.home() raises: settings still load,
    no config file is looked for, the state dir is under TMPDIR. (The same as uid 1000 in a real
    container: tests/docker/test_history.py.)"""

    def no_entry(uid: int) -> None:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr("conveyor.config.pwd.getpwuid", no_entry)
    env = {"TMPDIR": str(tmp_path)}
    assert home_dir(env) is None
    assert load_settings(env).state_dir == tmp_path / f"conveyor-{os.getuid()}" / "state"


def test_tokens_are_per_project_and_rotation_overlap_is_bounded() -> None:
    a, b = project_token("s1", "g/a"), project_token("s1", "g/b")
    assert a != b and len(a) == 64 and project_token("s1", "g/a") == a
    now = datetime(2026, 11, 28, tzinfo=UTC)
    s = load_settings(
        {
            "CONVEYOR_SECRET": "s2",
            "CONVEYOR_SECRET_PREVIOUS": "s1",
            "CONVEYOR_SECRET_PREVIOUS_UNTIL": (now + timedelta(days=1)).isoformat(),
        }
    )
    assert accepted_tokens(s, None, ["g/a"], now) == [project_token("s2", "g/a"), a]
    later = now + timedelta(days=2)
    assert accepted_tokens(s, None, ["g/a"], later) == [project_token("s2", "g/a")]
    assert accepted_tokens(s, 7, (), now) == [project_id_token("s2", 7), project_id_token("s1", 7)]
    assert accepted_tokens(s, 7, ["g/a"], later) == [
        project_id_token("s2", 7),
        project_token("s2", "g/a"),
    ]


def test_id_token_is_keyed_on_the_id_alone() -> None:
    assert project_id_token("s", 42) == project_id_token("s", 42) != project_id_token("s", 43)
    assert len(project_id_token("s", 42)) == 64
    assert project_id_token("s", 42) != project_token("s", "42")  # separate key spaces
    with pytest.raises(ValueError):
        project_id_token("s", 0)


def test_previous_secret_needs_an_end_of_overlap() -> None:
    with pytest.raises(ConfigError, match="CONVEYOR_SECRET_PREVIOUS_UNTIL"):
        load_settings({"CONVEYOR_SECRET": "s2", "CONVEYOR_SECRET_PREVIOUS": "s1"})


def test_tokens_are_cached_only_for_names_of_bounded_length() -> None:
    import hashlib
    import hmac

    from conveyor import tokens

    def plain(path: str) -> str:
        message = b"conveyor/v1/gitlab-hook-token\x00" + path.encode()
        return hmac.new(b"s3cret", message, hashlib.sha256).hexdigest()

    before = tokens._project_token.cache_info().currsize
    assert tokens.project_token("s3cret", "group/cached-name") == plain("group/cached-name")
    assert tokens._project_token.cache_info().currsize == before + 1
    long_path = "g/" + "x" * 100_000  # a hostile payload's path is never kept in memory
    assert tokens.project_token("s3cret", long_path) == plain(long_path)
    assert tokens._project_token.cache_info().currsize == before + 1
    assert tokens.project_id_token("s3cret", 7) == tokens.project_id_token("s3cret", 7)
    assert tokens.project_id_token("s3cret", 7) != tokens.project_id_token("other", 7)
