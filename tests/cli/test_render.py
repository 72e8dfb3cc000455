"""`conveyor render`: job files written per job path, spec errors refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from conveyor.cli.render import command as render_command
from conveyor.jenkins.render import render
from conveyor.spec.load import load_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "pipelines").glob("*.yml"))


def test_cli_render_writes_job_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        render_command,
        [str(ROOT / "pipelines"), "-o", str(out), "--json"],
        env={"CONVEYOR_GITLAB_URL": ""},
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {j["job"] for j in report["jobs"]} == {load_spec(p).spec.jenkins.job for p in EXAMPLES}
    for p in EXAMPLES:
        job = render(load_spec(p).spec)
        target = out.joinpath(*job.job_path.split("/"))
        assert (target / "Jenkinsfile").read_text(encoding="utf-8") == job.jenkinsfile
        assert (target / "config.xml").read_text(encoding="utf-8") == job.config_xml
        assert "secretToken" not in job.config_xml


def test_cli_render_reports_spec_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("apiVersion: conveyor/v1\nproject: a/b\njenkins: {job: j}\nstages: []\n")
    result = CliRunner().invoke(render_command, [str(bad), "-o", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert not (tmp_path / "o").exists()
