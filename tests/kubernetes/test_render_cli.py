"""``conveyor render`` writes a spec's Kubernetes manifests beside its Jenkinsfile, byte-stable."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from conveyor.cli.main import cli

GOLDEN = Path(__file__).parent / "golden"


def test_render_writes_k8s_beside_the_jenkins_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(GOLDEN / "full" / "spec.yml", tmp_path / "payments.yml")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["render", "payments.yml", "-o", "out"])
    assert result.exit_code == 0, result.output
    k8s = tmp_path / "out" / "shop" / "payments-api" / "k8s"
    assert (tmp_path / "out" / "shop" / "payments-api" / "Jenkinsfile").exists()
    for golden in (GOLDEN / "full" / "k8s").glob("*.yaml"):
        assert (k8s / golden.name).read_bytes() == golden.read_bytes()


def test_placeholders_come_from_the_checkout_or_fail_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(GOLDEN / "web" / "spec.yml", tmp_path / "web.yml")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["render", "web.yml", "-o", "out"])
    assert result.exit_code != 0
    assert "not a git checkout" in result.output
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(
        [
            "git",
            "-c",
            "user.email=a@b",
            "-c",
            "user.name=a",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
        check=True,
    )
    sha = subprocess.run(["git", "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    result = CliRunner().invoke(cli, ["render", "web.yml", "-o", "out"])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out/demo/hello-web/k8s/deployment-hello-web.yaml").read_text()
    assert f"image: registry.example.com/demo/hello-web:{sha.stdout.strip()}\n" in text
