"""A pipeline's deploy stage with ``target: kubernetes`` (what ``conveyor run`` and the Jenkins step
call) deploys through the Kubernetes target and logs its steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.runner.stages import StageWork, deploy_stage
from conveyor.spec.load import load_spec
from tests.emulators.kubernetes import KubernetesEmulator
from tests.kubernetes.test_cli import SPEC

pytestmark = pytest.mark.docker


def test_a_deploy_stage_deploys_to_the_cluster(
    live_cluster: KubernetesEmulator, web_images: dict[str, str], tmp_path: Path
) -> None:
    spec_path = tmp_path / "web.yml"
    spec_path.write_text(
        SPEC.replace("name: web\n", f"name: web\n      image: {web_images['good1']}\n")
    )
    spec = load_spec(spec_path).spec
    lines: list[str] = []
    work = StageWork(1, spec, str(spec_path), tmp_path, tmp_path, {}, {}, lines.append)
    deploy_stage(work, spec.stages[0], None)
    assert 'deployment "web" successfully rolled out' in lines
    assert "applied Deployment shop/web" in lines
    assert live_cluster.serve("shop", "web") == web_images["good1"]
