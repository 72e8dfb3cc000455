"""Loading: extends (deep merge, lists replace), positions that point into templates, expand_paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import SpecError
from conveyor.spec.load import check_paths, expand_paths, load_spec, load_specs


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write(
        tmp_path / "templates/base.yml",
        """\
jenkins:
  agent: {image: agent:9, docker: dind}
  options: {timeout: 15m, keep_builds: 5}
environment: {A: from-base, B: from-base}
stages:
  - {name: base-stage, run: [echo base]}
""",
    )
    write(
        tmp_path / "templates/service.yml",
        """\
extends: base.yml
jenkins:
  options: {keep_builds: 7}
environment: {B: from-service}
""",
    )
    write(
        tmp_path / "app.yml",
        """\
apiVersion: conveyor/v1
extends: templates/service.yml
project: demo/app
jenkins: {job: demo/app}
environment: {C: from-app}
""",
    )
    return tmp_path


def test_extends_deep_merges_mappings_and_child_wins(tree: Path) -> None:
    spec = load_spec(tree / "app.yml").spec
    assert spec.jenkins.agent.image == "agent:9"
    assert spec.jenkins.agent.docker == "dind"
    assert spec.jenkins.options.timeout == "15m"
    assert spec.jenkins.options.keep_builds == 7
    assert spec.environment == {"A": "from-base", "B": "from-service", "C": "from-app"}
    assert [s.name for s in spec.stages] == ["base-stage"]


def test_lists_replace_instead_of_merging(tree: Path) -> None:
    (tree / "app.yml").write_text(
        (tree / "app.yml").read_text() + "stages:\n  - {name: own, run: [x]}\n"
    )
    spec = load_spec(tree / "app.yml").spec
    assert [s.name for s in spec.stages] == ["own"]


def test_sources_list_the_spec_then_its_templates(tree: Path) -> None:
    loaded = load_spec(tree / "app.yml")
    assert [p.name for p in loaded.sources] == ["app.yml", "service.yml", "base.yml"]


def test_error_from_a_template_value_names_the_template_file(tree: Path) -> None:
    base = tree / "templates/base.yml"
    base.write_text(base.read_text().replace("timeout: 15m", "timeout: soon"))
    with pytest.raises(SpecError) as info:
        load_spec(tree / "app.yml")
    (issue,) = info.value.issues
    assert issue.file.endswith("templates/base.yml")
    assert (issue.line, issue.path) == (3, "jenkins.options.timeout")


def test_extends_list_applies_in_order(tree: Path) -> None:
    write(tree / "templates/extra.yml", "environment: {A: from-extra}\n")
    app = tree / "app.yml"
    app.write_text(
        app.read_text().replace(
            "extends: templates/service.yml",
            "extends: [templates/service.yml, templates/extra.yml]",
        )
    )
    spec = load_spec(app).spec
    assert spec.environment["A"] == "from-extra"
    assert spec.environment["B"] == "from-service"


def test_expand_paths_skips_templates_and_finds_nested_specs(tree: Path) -> None:
    write(
        tree / "group/sub/other.yaml",
        (tree / "app.yml")
        .read_text()
        .replace("demo/app", "demo/other")
        .replace("templates/", "../../templates/"),
    )
    files = expand_paths([tree])
    assert [f.relative_to(tree).as_posix() for f in files] == ["app.yml", "group/sub/other.yaml"]
    assert len(load_specs([tree])) == 2


def test_two_specs_for_one_project_are_an_error(tree: Path) -> None:
    write(tree / "copy.yml", (tree / "app.yml").read_text().replace("job: demo/app", "job: demo/x"))
    _, issues = check_paths([tree])
    assert any("project 'demo/app' is also used by" in i.message for i in issues)


def test_a_directory_without_specs_is_reported(tmp_path: Path) -> None:
    _, issues = check_paths([tmp_path])
    assert [i.message for i in issues] == ["no spec files (*.yml) found"]


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    _, issues = check_paths([tmp_path / "nope.yml"])
    assert [i.message for i in issues] == ["file not found"]


@pytest.mark.parametrize(
    "jenkins",
    ["", "jenkins:\n", "jenkins: {agent: {docker: dind}}\n"],
    ids=["no-section", "empty-section", "section-without-job"],
)
def test_jenkins_job_defaults_to_the_project_path(tmp_path: Path, jenkins: str) -> None:
    spec = write(
        tmp_path / "app.yml",
        "apiVersion: conveyor/v1\nproject: demo/sub/app\n"
        + jenkins
        + "stages:\n  - {name: ship, deploy: {image: busybox:latest, strategy: recreate}}\n",
    ).resolve()
    loaded = load_spec(spec)
    assert loaded.spec.jenkins.job == "demo/sub/app"
    assert loaded.spec.jenkins.agent.docker == ("dind" if "dind" in jenkins else "socket")


def test_without_a_project_only_the_project_is_reported(tmp_path: Path) -> None:
    spec = write(
        tmp_path / "app.yml", "apiVersion: conveyor/v1\nstages:\n  - {name: a, run: [x]}\n"
    )
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    assert [i.path for i in info.value.issues] == ["project"]
