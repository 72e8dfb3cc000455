"""Plugins load through the `conveyor.plugins` entry points, built-ins exactly like third parties."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.errors import PluginError
from conveyor.plugins.manager import build_plugin_manager, loaded_plugins


def make_distribution(root: Path, name: str, module_source: str) -> Path:
    """A real installed distribution (dist-info + module) on a directory we put on sys.path."""
    (root / f"{name}.py").write_text(module_source)
    info = root / f"{name}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[conveyor.plugins]\n{name} = {name}\n")
    return root


GOOD = """
from conveyor.plugins import hookimpl

@hookimpl
def conveyor_spec_checks(spec):
    return [] if spec.description else ["thirdparty: every spec needs a description"]
"""

MISSPELT = """
from conveyor.plugins import hookimpl

@hookimpl
def conveyor_spec_check(spec):
    return []
"""


def test_builtin_plugins_come_from_entry_points() -> None:
    names = {p.name: p for p in loaded_plugins(build_plugin_manager())}
    assert {"gitlab", "jenkins", "docker"} <= set(names)
    assert names["jenkins"].distribution == "conveyor"
    assert "conveyor_render_files" in names["jenkins"].hooks


def test_third_party_plugin_is_loaded_and_its_hook_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(make_distribution(tmp_path, "thirdparty_ok", GOOD)))
    pm = build_plugin_manager()
    plugins = {p.name: p for p in loaded_plugins(pm)}
    assert plugins["thirdparty_ok"].version == "1.2.3"
    assert plugins["thirdparty_ok"].hooks == ("conveyor_spec_checks",)
    from conveyor.spec.model import Spec

    spec = Spec.model_validate(
        {
            "apiVersion": "conveyor/v1",
            "project": "a/b",
            "jenkins": {"job": "b"},
            "stages": [{"name": "t", "run": ["true"]}],
        }
    )
    assert ["thirdparty: every spec needs a description"] in pm.hook.conveyor_spec_checks(spec=spec)


def test_misspelt_hook_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(make_distribution(tmp_path, "thirdparty_bad", MISSPELT)))
    with pytest.raises(PluginError) as info:
        build_plugin_manager()
    assert "conveyor_spec_check" in str(info.value)
    assert "unknown hook" in str(info.value)


def test_cli_lists_plugins_with_versions_and_validate_runs_their_checks(tmp_path: Path) -> None:
    make_distribution(tmp_path, "thirdparty_cli", GOOD)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "plugins", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    listed = {p["name"]: p for p in json.loads(out.stdout)}
    assert listed["thirdparty_cli"]["version"] == "1.2.3"
    assert listed["docker"]["distribution"] == "conveyor"
    spec = tmp_path / "s.yml"
    spec.write_text(
        "apiVersion: conveyor/v1\nproject: a/b\njenkins: {job: b}\n"
        "stages: [{name: t, run: ['true']}]\n"
    )
    res = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "validate", str(spec)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1
    assert "every spec needs a description" in res.stderr


def test_gitlab_plugin_flags_a_spec_whose_hook_would_carry_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "s.yml"
    spec.write_text(
        "apiVersion: conveyor/v1\nproject: a/b\njenkins: {job: b}\ntriggers: {}\n"
        "stages: [{name: t, run: ['true']}]\n"
    )
    res = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "validate", "--json", str(spec)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1
    (error,) = json.loads(res.stdout)["errors"]
    assert "no push, tag_push or merge_request trigger" in error["message"]
