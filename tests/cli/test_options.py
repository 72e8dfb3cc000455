"""One ``--state`` option, resolved one way, on every verb that has one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from conveyor.cli.main import cli
from conveyor.cli.options import state_dir
from conveyor.config import load_settings

DEFAULT = "(default: $CONVEYOR_STATE, else the per-user state dir)."


def commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield prefix + name, command
        if isinstance(command, click.Group):
            yield from commands(command, prefix + name + " ")


def test_every_state_option_is_the_shared_one() -> None:
    found: dict[str, tuple[click.Command, click.Option]] = {}
    for name, command in commands(cli):
        for param in command.params:
            if isinstance(param, click.Option) and "--state" in param.opts:
                found[name] = (command, param)
    assert {
        "demo",
        "deploy",
        "events compact",
        "events list",
        "events prune",
        "events replay",
        "events show",
        "history",
        "rollback",
        "run",
        "runs list",
        "runs show",
        "serve",
    } <= set(found)
    for name, (_command, param) in found.items():
        assert param.name == "state", name
        assert param.help is not None and param.help.endswith(DEFAULT), name
        assert isinstance(param.type, click.Path) and not param.type.file_okay, name
        assert not param.required, name


def test_state_dir_option_wins_and_expands_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CONVEYOR_STATE", str(tmp_path / "from-env"))
    assert state_dir(Path("~/given")) == tmp_path / "given"
    assert state_dir(None) == tmp_path / "from-env"
    settings = load_settings(env={"CONVEYOR_STATE": str(tmp_path / "from-settings")})
    assert state_dir(None, settings) == tmp_path / "from-settings"
