"""The error taxonomy: bad input from the command line or a file it names is a UsageError (exit 2,
naming the option, file or name); ConfigError stays for CONVEYOR_* settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from conveyor.cli.main import cli
from conveyor.config import load_settings
from conveyor.docker.images import parse_ref
from conveyor.errors import ConfigError, UsageError
from conveyor.receiver.dispatch import make_dispatcher
from conveyor.receiver.routing import Router
from conveyor.runner.trigger import read_event
from conveyor.spec.model import Spec
from tests.runner.specs import make_spec

SPEC = (
    "apiVersion: conveyor/v1\nproject: a/b\njenkins: {job: b}\nstages: [{name: t, run: ['true']}]\n"
)


def _spec() -> Spec:
    return make_spec([{"name": "t", "run": ["true"]}], project="a/b", jenkins={"job": "b"})


def test_usage_errors_are_not_config_errors() -> None:
    assert not issubclass(UsageError, ConfigError) and not issubclass(ConfigError, UsageError)
    assert UsageError.exit_code == ConfigError.exit_code == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sha", "a" * 40, "--param", "NOVALUE"], "--param 'NOVALUE': use NAME=VALUE"),
        (["--post", "always"], "--post is for --jenkins steps"),
        (["--event", "missing.json"], "event file missing.json does not exist"),
    ],
)
def test_a_bad_run_option_is_a_usage_error_exiting_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yml").write_text(SPEC)
    result = CliRunner().invoke(cli, ["run", "s.yml", *args])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert message in result.output


def test_event_files_stage_lookup_images_duplicates_and_modes_raise_usage_errors(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "e.json"
    bad.write_text("[1]")
    with pytest.raises(UsageError, match=f"event file {bad} is not a JSON object"):
        read_event(bad)
    with pytest.raises(UsageError, match="invalid image reference"):
        parse_ref("UPPER/Case:1")
    with pytest.raises(UsageError, match="two pipeline specs are for project 'a/b'"):
        Router([_spec(), _spec()])
    with pytest.raises(UsageError, match="unknown dispatch mode 'bogus'"):
        make_dispatcher("bogus", load_settings({}))


def test_a_missing_setting_stays_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="CONVEYOR_GITLAB_TOKEN"):
        load_settings({}).require("gitlab_token")
