"""validate / schema / init through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from conveyor.cli.main import VERBS, cli

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_every_verb_is_registered_and_has_help() -> None:
    assert set(cli.commands) == set(VERBS)
    for verb in VERBS:
        code, out, _ = run(verb, "--help")
        assert code == 0 and "Usage:" in out, verb


def test_validate_valid_and_invalid(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text(
        "apiVersion: conveyor/v1\nproject: a/b\njenkins: {job: b}\n"
        "stages: [{name: t, run: ['true']}]\n"
    )
    code, out, _ = run("validate", str(good))
    assert code == 0 and "1 valid" in out
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "apiVersion: conveyor/v1\nproject: a/b\njenkins: {job: b, agnt: {}}\n"
        "stages: [{name: t, run: ['true']}]\n"
    )
    code, _, err = run("validate", str(good), str(bad))
    assert code == 1
    assert "bad.yml:3:19: jenkins.agnt: unknown key 'agnt'; did you mean 'agent'?" in err
    code, out, _ = run("validate", "--json", str(good), str(bad))
    data = json.loads(out)
    assert code == 1 and data["valid"] is False
    assert data["errors"][0]["line"] == 3 and data["errors"][0]["path"] == "jenkins.agnt"
    assert [s["project"] for s in data["specs"]] == ["a/b"]


def test_schema_is_valid_json_schema_and_accepts_the_example_specs() -> None:
    code, out, _ = run("schema")
    assert code == 0
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    specs = [p for p in (REPO / "pipelines").glob("*.yml")]
    assert specs, "example specs exist"
    from conveyor.spec.load import load_spec

    for path in specs:
        merged = load_spec(path).spec.model_dump(by_alias=True, exclude_none=True, mode="json")
        errors = list(validator.iter_errors(merged))
        assert not errors, f"{path}: {errors[0].message}"
    bad = {
        "apiVersion": "conveyor/v1",
        "project": "a/b",
        "jenkins": {"job": "b"},
        "stages": [{"name": "t", "run": ["x"], "bogus": 1}],
    }
    assert list(validator.iter_errors(bad))


def test_readme_spec_reference_is_current() -> None:
    from conveyor.spec.reference import END, START, spec_reference_markdown

    readme = (REPO / "README.md").read_text()
    embedded = readme[readme.index(START) : readme.index(END) + len(END)] + "\n"
    assert embedded == spec_reference_markdown(), (
        "README's spec reference is stale: replace the block with `conveyor schema --markdown`"
    )


def test_readme_quick_start_is_the_two_dev_commands_and_ci_runs_the_test_one() -> None:
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.strip().splitlines()]
    assert commands == ["./dev.sh demo", "./dev.sh test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "./dev.sh test" in ci.splitlines()


def test_init_scaffolds_a_valid_spec_and_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run("init", "--list", "--json")
    names = {t["name"] for t in json.loads(out)}
    assert {"python-service", "node-service", "spring-boot-service", "static-site"} <= names
    code, out, err = run(
        "init", "demo/hello-web", "--template", "python-service", "--dockerfile", "Dockerfile"
    )
    assert code == 0, err
    spec = tmp_path / "pipelines" / "demo" / "hello-web.yml"
    assert spec.is_file() and (tmp_path / "Dockerfile").is_file()
    template = tmp_path / "pipelines" / "demo" / "templates" / "python-service.yml"
    assert template.is_file()
    code, out, err = run("validate", str(spec))
    assert code == 0, err
    spec.write_text(spec.read_text() + "# edited by hand\n")
    code, out, _ = run("init", "demo/hello-web", "--template", "python-service", "--json")
    assert json.loads(out)["written"] == []
    assert spec.read_text().endswith("# edited by hand\n")
    code, _, err = run("init", "demo/x", "--template", "nope")
    assert code == 1 and "unknown template 'nope'" in err and "python-service" in err


def test_init_reuses_the_shared_templates_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipelines" / "templates").mkdir(parents=True)
    code, _, err = run("init", "team/api", "--template", "node-service")
    assert code == 0, err
    assert (tmp_path / "pipelines" / "templates" / "node-service.yml").is_file()
    text = (tmp_path / "pipelines" / "team" / "api.yml").read_text()
    assert 'extends: "../templates/node-service.yml"' in text
    assert run("validate", "pipelines")[0] == 0
