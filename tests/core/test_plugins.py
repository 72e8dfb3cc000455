"""Plugins load through the `conveyor.plugins` entry points, built-ins exactly like third parties."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.errors import ConfigError, PluginError
from conveyor.plugins import hookimpl
from conveyor.plugins.answers import (
    deploy_targets,
    dispatchers,
    render_files,
    spec_checks,
)
from conveyor.plugins.manager import build_plugin_manager, loaded_plugins
from conveyor.spec.model import Spec
from tests.runner.specs import make_spec


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


# ---------------------------------------------------------------- honest contracts

SRC = Path(__file__).resolve().parents[2] / "src" / "conveyor"


def hookspec_names() -> list[str]:
    from conveyor.plugins import hookspecs

    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return sorted(n for n, f in vars(hookspecs).items() if callable(f) and hasattr(f, marker))


def _trees() -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(SRC.rglob("*.py"))}


def hook_callers(trees: dict[Path, ast.Module], hook: str) -> list[tuple[Path, str]]:
    """``(file, enclosing function)`` of every ``<manager>.hook.<hook>`` in src."""
    found = []
    for path, tree in trees.items():
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            for node in ast.walk(fn):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr == hook
                    and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "hook"
                ):
                    found.append((path, fn.name))
    return found


def used_names(trees: dict[Path, ast.Module]) -> set[str]:
    """Every name called or referenced in src outside its own definition line."""
    names: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
    return names


def test_every_hookspec_has_a_caller_that_src_uses() -> None:
    """A hook nobody calls is a broken promise to plugin authors: each hookspec is called in src,
    from a function that src itself uses (not from a test or a dead helper)."""
    trees = _trees()
    specs = hookspec_names()
    assert specs, "no hookspecs found"
    used = used_names(trees)
    uncalled = []
    for hook in specs:
        callers = hook_callers(trees, hook)
        if not any(fn in used for _, fn in callers):
            uncalled.append(f"{hook} (callers: {callers or 'none'})")
    assert not uncalled, "hookspecs without a caller in src: " + ", ".join(uncalled)


def test_the_caller_check_sees_an_uncalled_hook(tmp_path: Path) -> None:
    tree = ast.parse("def f(pm):\n    return pm.hook.conveyor_other()\n")
    assert hook_callers({tmp_path / "x.py": tree}, "conveyor_other") == [(tmp_path / "x.py", "f")]
    assert hook_callers({tmp_path / "x.py": tree}, "conveyor_unheard_of") == []


class Targets:
    def __init__(self, **targets: object) -> None:
        self.targets = targets

    @hookimpl
    def conveyor_deploy_targets(self) -> dict[str, object]:
        return self.targets


def test_a_third_party_deploy_target_cannot_take_a_builtin_name() -> None:
    pm = build_plugin_manager(extra=[("acme", Targets(docker=object(), acme=object()))])
    with pytest.raises(PluginError) as info:
        deploy_targets(pm)
    text = str(info.value)
    assert "deploy target 'docker' is offered twice" in text
    assert "'docker'" in text and "'acme'" in text  # both plugins named
    # a new name is fine beside the built-ins
    pm = build_plugin_manager(extra=[("acme", Targets(acme=object()))])
    assert {"docker", "compose", "swarm", "acme"} <= set(deploy_targets(pm))


def test_two_third_party_plugins_offering_one_target_name_both_named() -> None:
    pm = build_plugin_manager(
        extra=[("first", Targets(k8s=object())), ("second", Targets(k8s=object()))]
    )
    with pytest.raises(
        PluginError, match=r"'k8s' is offered twice .*'first'.*'second'|'second'.*'first'"
    ):
        deploy_targets(pm)


class Dispatchers:
    def __init__(self, name: str) -> None:
        self.name = name

    @hookimpl
    def conveyor_dispatchers(self) -> dict[str, object]:
        return {self.name: lambda settings: None}


@pytest.mark.parametrize("name", ["none", "auto", "jenkins", "local"])
def test_a_dispatcher_name_conveyor_or_a_builtin_owns_is_refused(name: str) -> None:
    pm = build_plugin_manager(extra=[("acme", Dispatchers(name))])
    with pytest.raises(PluginError, match=f"dispatch target '{name}' is offered twice"):
        dispatchers({"none": lambda settings: None}, reserved=("auto",), pm=pm)


class Templates:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @hookimpl
    def conveyor_templates(self) -> list[Path]:
        return [self.directory]


def test_a_plugin_template_cannot_shadow_a_builtin_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import conveyor.plugins.manager as manager
    from conveyor import scaffold

    (tmp_path / "python-service.yml").write_text("# mine\n")
    (tmp_path / "acme-service.yml").write_text("# acme's own\n")
    pm = build_plugin_manager(extra=[("acme", Templates(tmp_path))])
    monkeypatch.setattr(manager, "get_plugin_manager", lambda: pm)
    monkeypatch.setattr("conveyor.plugins.answers.get_plugin_manager", lambda: pm)
    with pytest.raises(PluginError, match=r"template 'python-service' is offered twice .*'acme'"):
        scaffold.available_templates()
    (tmp_path / "python-service.yml").unlink()
    assert scaffold.available_templates()["acme-service"].description == "acme's own"


class Files:
    def __init__(self, *paths: str) -> None:
        self.paths = paths

    @hookimpl
    def conveyor_render_files(self, spec: object) -> list[object]:
        from conveyor.jenkins.plugin import File

        return [File(p, "x") for p in self.paths]


def _spec() -> Spec:
    return make_spec([{"name": "t", "run": ["true"]}], project="a/b", jenkins={"job": "b"})


def test_rendered_files_of_every_plugin_are_written_and_may_not_collide() -> None:
    pm = build_plugin_manager(extra=[("acme", Files("b/README.acme"))])
    assert {f.path for f in render_files(_spec(), None, pm)} == {
        "b/Jenkinsfile",
        "b/config.xml",
        "b/README.acme",
    }
    pm = build_plugin_manager(extra=[("acme", Files("b/Jenkinsfile"))])
    with pytest.raises(
        PluginError, match=r"'b/Jenkinsfile' is offered twice .*'jenkins'.*'acme'|'acme'.*'jenkins'"
    ):
        render_files(_spec(), None, pm)


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../b", "", "a\\b"])
def test_a_rendered_file_must_stay_inside_the_output(path: str) -> None:
    pm = build_plugin_manager(extra=[("acme", Files(path))])
    with pytest.raises(PluginError, match="plugin 'acme' rendered a file"):
        render_files(_spec(), None, pm)


def test_conveyor_render_writes_plugin_files_too(tmp_path: Path) -> None:
    make_distribution(
        tmp_path,
        "thirdparty_files",
        "from conveyor.plugins import hookimpl\n"
        "from conveyor.jenkins.plugin import File\n\n"
        "@hookimpl\n"
        "def conveyor_render_files(spec):\n"
        "    return [File(spec.jenkins.job + '/NOTICE', 'made by a plugin')]\n",
    )
    spec = tmp_path / "s.yml"
    spec.write_text(
        "apiVersion: conveyor/v1\nproject: a/b\njenkins: {job: b}\n"
        "stages: [{name: t, run: ['true']}]\n"
    )
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "render", str(spec), "-o", str(out)],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert (out / "b" / "NOTICE").read_text() == "made by a plugin"
    assert (out / "b" / "Jenkinsfile").is_file()


def test_disabled_plugins_are_blocked_and_unknown_names_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVEYOR_DISABLE_PLUGINS", "docker, acme")
    pm = build_plugin_manager(extra=[("acme", Targets(acme=object()))])
    assert pm.is_blocked("docker") and pm.is_blocked("acme")
    assert "docker" not in {p.name for p in loaded_plugins(pm)}
    assert deploy_targets(pm) == {}
    monkeypatch.setenv("CONVEYOR_DISABLE_PLUGINS", "dockr")
    with pytest.raises(
        ConfigError, match="CONVEYOR_DISABLE_PLUGINS names no installed plugin: dockr"
    ):
        build_plugin_manager()


def test_a_plugin_failing_in_a_hook_is_named() -> None:
    class Broken:
        @hookimpl
        def conveyor_spec_checks(self, spec: object) -> list[str]:
            raise KeyError("oops")

    pm = build_plugin_manager(extra=[("broken", Broken())])
    with pytest.raises(
        PluginError, match="plugin 'broken' failed in conveyor_spec_checks: KeyError"
    ):
        spec_checks(_spec(), pm)
