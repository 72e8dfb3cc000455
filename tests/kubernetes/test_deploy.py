"""The kubernetes target against the emulator, through the official client: first deploy, a new
version with zero failed requests to the Service, a broken version rolled back on its own, field
conflicts, pruning, rollback and history. Pods get Ready only when the real Docker engine says the
image's readiness probe passes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conveyor.errors import HealthCheckError, KubernetesConflictError
from conveyor.kubernetes import target
from conveyor.kubernetes.client import KubeClient
from conveyor.kubernetes.manifests import render_manifests
from tests.emulators.kubernetes import KubernetesEmulator, NoEndpoints
from tests.kubernetes.conftest import request_for

pytestmark = pytest.mark.docker


@contextmanager
def traffic(emulator: KubernetesEmulator) -> Iterator[dict[str, int]]:
    """Requests to Service shop/web every 10 ms while the block runs: answers by image, failures."""
    counts: dict[str, int] = {"failed": 0}
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                image = emulator.serve("shop", "web")
                counts[image] = counts.get(image, 0) + 1
            except NoEndpoints:
                counts["failed"] += 1
            stop.wait(0.01)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join()


def test_first_deploy_creates_the_objects_and_serves(
    live_cluster: KubernetesEmulator, web_images: dict[str, str], tmp_path: Path
) -> None:
    result = target.deploy(request_for(web_images["good1"], tmp_path), poll=0.1)
    assert (result.target, result.action, result.digest) == ("kubernetes", "deploy", "revision 1")
    assert result.previous_image is None
    assert result.message == 'deployment "web" successfully rolled out'
    deployment = live_cluster.get("deployments", "shop", "web")
    assert deployment is not None
    assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "conveyor"
    assert [m["manager"] for m in live_cluster.managers_of("deployments", "shop", "web")] == [
        "conveyor"
    ]
    assert live_cluster.serve("shop", "web") == web_images["good1"]


def test_a_new_version_rolls_out_with_zero_failed_requests(
    live_cluster: KubernetesEmulator, web_images: dict[str, str], tmp_path: Path
) -> None:
    target.deploy(request_for(web_images["good1"], tmp_path), poll=0.1)
    with traffic(live_cluster) as counts:
        result = target.deploy(request_for(web_images["good2"], tmp_path), poll=0.1)
    assert counts["failed"] == 0
    assert counts.get(web_images["good1"], 0) > 0 and counts.get(web_images["good2"], 0) > 0
    assert (result.digest, result.previous_image) == ("revision 2", web_images["good1"])
    pods = live_cluster.list("pods", "shop")
    assert [p["spec"]["containers"][0]["image"] for p in pods] == [web_images["good2"]] * 2


def test_a_failing_version_is_rolled_back_and_the_old_revision_keeps_serving(
    live_cluster: KubernetesEmulator, web_images: dict[str, str], tmp_path: Path
) -> None:
    target.deploy(request_for(web_images["good1"], tmp_path), poll=0.1)
    with traffic(live_cluster) as counts, pytest.raises(HealthCheckError) as caught:
        target.deploy(request_for(web_images["broken"], tmp_path), poll=0.1)
    message = caught.value.message
    assert 'deployment "web" exceeded its progress deadline' in message
    assert f"rolled back to revision 1 ({web_images['good1']})" in message
    assert f"({web_images['broken']}): not Ready" in caught.value.health_log
    assert counts["failed"] == 0 and set(counts) == {"failed", web_images["good1"]}
    deployment = live_cluster.get("deployments", "shop", "web")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == web_images["good1"]
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert live_cluster.serve("shop", "web") == web_images["good1"]


def test_readiness_that_never_passes_within_the_spec_timeout_rolls_back_too(
    live_cluster: KubernetesEmulator, web_images: dict[str, str], tmp_path: Path
) -> None:
    slow_deadline = {"kubernetes": {"namespace": "shop", "progress_deadline": 600}}
    health = {"health": {"http": "/healthz", "timeout": "3s"}}
    target.deploy(request_for(web_images["good1"], tmp_path, **slow_deadline), poll=0.1)
    with pytest.raises(HealthCheckError) as caught:
        target.deploy(
            request_for(web_images["broken"], tmp_path, **slow_deadline, **health), poll=0.1
        )
    assert "gave up after 3 s" in caught.value.message
    assert "rolled back to revision 1" in caught.value.message


def test_a_field_owned_by_another_manager_is_reported_by_name_and_force_takes_it(
    live_cluster: KubernetesEmulator,
    web_images: dict[str, str],
    tmp_path: Path,
    kube: Callable[[], KubeClient],
) -> None:
    request = request_for(web_images["good1"], tmp_path)
    target.deploy(request, poll=0.1)
    scaled = next(
        m
        for m in render_manifests(request.deploy, project="demo/web", image=web_images["good1"])
        if m.kind == "Deployment"
    )
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 3},
    }
    client = kube()
    client.apps.patch_namespaced_deployment(
        "web",
        "shop",
        body,
        field_manager="kubectl",
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    with pytest.raises(KubernetesConflictError) as caught:
        target.deploy(request, poll=0.1)
    assert caught.value.conflicts == [('"kubectl"', ".spec.replicas")]
    assert "apply Deployment shop/web on context emu" in caught.value.message
    assert "--force" in str(caught.value)
    target.deploy(request, force=True, poll=0.1)
    live = live_cluster.get("deployments", "shop", "web")
    assert live is not None and live["spec"]["replicas"] == scaled.body["spec"]["replicas"] == 2


def test_pruning_deletes_only_what_conveyor_made_for_this_deploy(
    live_cluster: KubernetesEmulator,
    web_images: dict[str, str],
    tmp_path: Path,
    kube: Callable[[], KubeClient],
) -> None:
    target.deploy(request_for(web_images["good1"], tmp_path, volumes=["data:/data"]), poll=0.1)
    assert live_cluster.get("persistentvolumeclaims", "shop", "web-data") is not None
    client = kube()
    foreign = {
        "metadata": {
            "name": "web-debug",
            "labels": {"app.kubernetes.io/instance": "web", "app.kubernetes.io/managed-by": "helm"},
        },
        "spec": {"selector": {"app": "x"}, "ports": [{"port": 81}]},
    }
    client.core.create_namespaced_service("shop", foreign)
    other = {
        "metadata": {
            "name": "api",
            "labels": {
                "app.kubernetes.io/instance": "api",
                "app.kubernetes.io/managed-by": "conveyor",
            },
        },
        "spec": {"selector": {"app": "y"}, "ports": [{"port": 82}]},
    }
    client.core.create_namespaced_service("shop", other)
    plan = target.plan(
        request_for(web_images["good1"], tmp_path, ports=[], health={"cmd": ["true"]}), client
    )
    assert [c.ref for c in plan.changes if c.action == "delete"] == [
        "Service shop/web",
        "PersistentVolumeClaim shop/web-data",
    ]
    target.deploy(
        request_for(web_images["good1"], tmp_path, ports=[], health={"cmd": ["true"]}), poll=0.1
    )
    assert live_cluster.get("services", "shop", "web") is None
    assert live_cluster.get("persistentvolumeclaims", "shop", "web-data") is None
    assert live_cluster.get("services", "shop", "web-debug") is not None
    assert live_cluster.get("services", "shop", "api") is not None


def test_rollback_and_history_come_from_the_deployment_revisions(
    live_cluster: KubernetesEmulator, web_images: dict[str, str], tmp_path: Path
) -> None:
    target.deploy(request_for(web_images["good1"], tmp_path), poll=0.1)
    target.deploy(request_for(web_images["good2"], tmp_path), poll=0.1)
    records = target.history(request_for("", tmp_path))
    assert [(r.id, r.image, r.result) for r in records] == [
        (2, web_images["good2"], "success"),
        (1, web_images["good1"], "superseded"),
    ]
    with traffic(live_cluster) as counts:
        result = target.rollback(request_for("", tmp_path), poll=0.1)
    assert counts["failed"] == 0
    assert (result.action, result.image, result.previous_image, result.digest) == (
        "rollback",
        web_images["good1"],
        web_images["good2"],
        "revision 3",
    )
    assert [r.id for r in target.history(request_for("", tmp_path))] == [3, 2]
