"""``conveyor deploy / history / rollback`` on a ``target: kubernetes`` spec, through the CLI, against
the emulator (kubeconfig in ``KUBECONFIG``) with readiness from the Docker engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conveyor.cli.main import cli
from tests.emulators.kubernetes import KubernetesEmulator

pytestmark = pytest.mark.docker

SPEC = """\
apiVersion: conveyor/v1
project: demo/web
jenkins: {job: demo/web}
stages:
  - name: deploy
    deploy:
      target: kubernetes
      name: web
      replicas: 2
      ports: ["80:8000"]
      health: {http: /healthz, timeout: 30s}
      kubernetes: {namespace: shop, progress_deadline: 8}
"""


def run(*args: str) -> tuple[int, str]:
    """Exit code and stdout (progress goes to stderr); both when it failed."""
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def test_deploy_history_rollback_through_the_cli(
    live_cluster: KubernetesEmulator, web_images: dict[str, str], tmp_path: Path
) -> None:
    spec = tmp_path / "web.yml"
    spec.write_text(SPEC)
    for image in ("good1", "good2"):
        code, out = run(
            "deploy", str(spec), "--image", web_images[image], "--workdir", str(tmp_path), "--json"
        )
        assert code == 0, out
    result = json.loads(out)
    assert (result["target"], result["digest"], result["previous_image"]) == (
        "kubernetes",
        "revision 2",
        web_images["good1"],
    )
    code, out = run("history", str(spec), "--json")
    assert code == 0, out
    assert [(r["id"], r["image"]) for r in json.loads(out)] == [
        (2, web_images["good2"]),
        (1, web_images["good1"]),
    ]
    code, out = run("rollback", str(spec), "--workdir", str(tmp_path), "--json")
    assert code == 0, out
    assert json.loads(out)["image"] == web_images["good1"]
    code, out = run(
        "deploy", str(spec), "--image", web_images["broken"], "--workdir", str(tmp_path)
    )
    assert code == 1
    assert "rolled back to revision 3" in out
    assert live_cluster.serve("shop", "web") == web_images["good1"]
