"""Plan (server-side apply dry runs, reads only), kubeconfig contexts, the client boundary's errors,
and hostile spec strings through the apiserver: all against the emulator, no Docker needed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes.client import AppsV1Api

from conveyor.errors import ConfigError, KubernetesError
from conveyor.kubernetes.client import KubeClient
from conveyor.kubernetes.config import connect
from conveyor.kubernetes.plan import plan_requests, requests_of
from conveyor.kubernetes.target import manifests_for, plan
from conveyor.spec.load import load_spec
from tests.emulators.kubernetes import KubernetesEmulator
from tests.emulators.kubernetes_fixtures import client_for
from tests.emulators.server import Request, Response
from tests.kubernetes.conftest import request_for, write_kubeconfig

GOLDEN = Path(__file__).parent / "golden"


def test_plan_creates_then_nothing_then_shows_the_diff(
    kube_emulator: KubernetesEmulator, kubeconfig: Path, tmp_path: Path
) -> None:
    client = KubeClient(connect())
    request = request_for("registry.example.com/web:1", tmp_path)
    first = plan(request, client)
    assert [(c.action, c.ref) for c in first.changes] == [
        ("create", "Deployment shop/web"),
        ("create", "Service shop/web"),
    ]
    assert "+    app.kubernetes.io/managed-by: conveyor" in first.changes[0].diff
    assert kube_emulator.get("deployments", "shop", "web") is None  # dry run only
    for manifest in manifests_for(request):
        client.apply(manifest)
    kube_emulator.log.clear()
    again = plan(request, client)
    assert [c.action for c in again.changes] == ["unchanged", "unchanged"]
    changed = plan(
        request_for("registry.example.com/web:2", tmp_path, env={"MODE": "fast"}), client
    )
    assert [c.action for c in changed.changes] == ["update", "update"]  # the version label too
    assert '+    app.kubernetes.io/version: "2"' in changed.changes[1].diff
    diff = changed.changes[0].diff
    assert "-        image: registry.example.com/web:1" in diff
    assert "+        image: registry.example.com/web:2" in diff and "+          value: fast" in diff
    writes = [r for r in kube_emulator.log.records() if r.is_write]
    assert writes and all(r.method == "PATCH" and r.query.get("dryRun") == "All" for r in writes)
    client.close()


def test_writes_racing_the_plan_are_not_shown_as_conveyors_change(
    make_kube_emulator: Callable[..., KubernetesEmulator],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator = make_kube_emulator(namespaces=("shop",), tick=3600)  # no controller: only ours
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kc", emulator.url)))
    client = KubeClient(connect())
    request = request_for("registry.example.com/web:1", tmp_path)
    for manifest in manifests_for(request):
        client.apply(manifest)
    other = AppsV1Api(client_for(emulator))
    route, calls, notes = emulator.route, [], []

    def kubectl_annotates(request: Request) -> Response:
        # another manager writes the Deployment after conveyor's GET (before its first dry run)
        # and after that dry run (before the read again); the Deployment controller's revision
        # annotation races a plan the same way
        ours = request.method == "GET" or request.query.get("fieldManager") == "conveyor"
        if request.path.endswith("/deployments/web") and ours:
            calls.append(request.method)
            if calls in (["GET", "PATCH"], ["GET", "PATCH", "GET"]) and len(notes) < 2:
                notes.append(f"call {len(calls)}")
                body = {"metadata": {"annotations": {"note": notes[-1]}}}
                other.patch_namespaced_deployment("web", "shop", body)
        return route(request)

    monkeypatch.setattr(emulator, "route", kubectl_annotates)
    again = plan(request, client)
    assert [c.action for c in again.changes] == ["unchanged", "unchanged"]
    assert calls == ["GET", "PATCH", "GET", "PATCH"] and notes == ["call 2", "call 3"]
    calls.clear()
    plan(request, client)
    assert calls == ["GET", "PATCH"]  # nothing raced: one read, one dry run
    other.api_client.close()
    client.close()


def test_plan_of_many_specs_lists_each_namespace_once(
    kube_emulator: KubernetesEmulator, kubeconfig: Path, tmp_path: Path
) -> None:
    loaded = [load_spec(GOLDEN / "recreate-udp" / "spec.yml")]
    requests = requests_of(loaded, tmp_path)
    kube_emulator.namespaces.add("infra")
    plans = plan_requests(requests * 3, concurrency=4)
    assert len(plans) == 3 and all(c.action == "create" for p in plans for c in p.plan.changes)
    lists = [r for r in kube_emulator.log.records("GET") if "labelSelector" in r.query]
    assert len(lists) == 3  # Deployments, Services, claims of namespace infra, once


def test_context_from_the_environment_beats_the_spec_and_errors_name_it(
    kube_emulator: KubernetesEmulator, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert connect("emu").name == "context emu"
    monkeypatch.setenv("CONVEYOR_KUBE_CONTEXT", "emu-stranger")
    client = KubeClient(connect("emu"))
    assert client.name == "context emu-stranger"
    with pytest.raises(KubernetesError) as caught:
        client.get("Deployment", "shop", "web")
    assert caught.value.status == 401
    assert caught.value.message.startswith(
        "read Deployment shop/web on context emu-stranger: 401 Unauthorized"
    )
    monkeypatch.setenv("CONVEYOR_KUBE_CONTEXT", "prod")
    with pytest.raises(ConfigError) as config:
        connect()
    assert "cannot use context prod" in config.value.message
    assert str(kubeconfig) in config.value.message


def test_no_kubeconfig_and_no_service_account_is_a_clear_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigError) as caught:
        connect()
    assert "does not exist and KUBERNETES_SERVICE_HOST is not set" in caught.value.message


def test_a_missing_namespace_and_an_unreachable_apiserver_name_the_object(
    kube_emulator: KubernetesEmulator, kubeconfig: Path, tmp_path: Path
) -> None:
    client = KubeClient(connect())
    request = request_for("r/web:1", tmp_path, kubernetes={"namespace": "nowhere"})
    with pytest.raises(KubernetesError) as caught:
        client.apply(manifests_for(request)[0])
    assert caught.value.message == (
        'apply Deployment nowhere/web on context emu: 404 NotFound: namespaces "nowhere" not found'
    )
    assert caught.value.hint is not None and "create the namespace" in caught.value.hint
    client.close()
    kube_emulator.stop()
    fresh = KubeClient(connect())  # no kept-alive connection to the stopped server
    with pytest.raises(KubernetesError) as down:
        fresh.get("Deployment", "shop", "web")
    assert down.value.message.startswith(
        "read Deployment shop/web on context emu: cannot reach the apiserver"
    )
    fresh.close()


def test_a_server_error_is_mapped_once_with_its_status(
    kube_emulator: KubernetesEmulator, kubeconfig: Path, tmp_path: Path
) -> None:
    kube_emulator.faults.error("PATCH", "/deployments/web", status=500)
    client = KubeClient(connect())
    with pytest.raises(KubernetesError) as caught:
        client.apply(manifests_for(request_for("r/web:1", tmp_path))[0])
    assert (
        caught.value.status == 500
        and "500 InternalError: injected fault 500" in caught.value.message
    )


text = st.text(min_size=1, max_size=40)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=text, image=text, path=text)
def test_hostile_spec_strings_come_back_from_the_apiserver_exactly(
    kube_emulator: KubernetesEmulator,
    kubeconfig: Path,
    tmp_path: Path,
    value: str,
    image: str,
    path: str,
) -> None:
    request = request_for(image, tmp_path, env={"HOSTILE": value}, health={"http": "/" + path})
    client = KubeClient(connect())
    try:
        client.apply(manifests_for(request)[0])
        live: Any = client.get("Deployment", "shop", "web")
    finally:
        client.close()
    container = live["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image
    assert container["env"] == [{"name": "HOSTILE", "value": value}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/" + path


class _SyncPlan:
    exit_code = 1

    def to_json(self) -> dict[str, Any]:
        return {"jobs": []}

    def text_lines(self, *, verbose: bool = False) -> list[str]:
        return ["jenkins: nothing to do"]


def test_conveyor_plan_reports_kubernetes_beside_the_sync_plan(
    kube_emulator: KubernetesEmulator, kubeconfig: Path, tmp_path: Path
) -> None:
    from conveyor.kubernetes.plan import StagePlan, WithKubernetes

    client = KubeClient(connect())
    stage = StagePlan("web.yml", "deploy", plan(request_for("r/web:1", tmp_path), client))
    client.close()
    report = WithKubernetes(_SyncPlan(), (stage,))
    assert report.exit_code == 1
    data = report.to_json()
    assert data["jobs"] == [] and data["kubernetes"][0]["changes"][0]["action"] == "create"
    lines = report.text_lines()
    assert lines[0] == "jenkins: nothing to do"
    assert lines[1].startswith("Kubernetes (server-side apply dry run")
    assert any(line.startswith("  create    Deployment shop/web  (context emu;") for line in lines)
    assert WithKubernetes(_SyncPlan(), ()).to_json() == {"jobs": []}
