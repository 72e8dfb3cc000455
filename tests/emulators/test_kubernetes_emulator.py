"""The Kubernetes emulator against the reference (/work/shared/reference/kubernetes.md), one test per
behaviour, driven only through the official ``kubernetes`` client over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client import AppsV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from tests.emulators.kubernetes import DockerReadiness, KubernetesEmulator, NoEndpoints
from tests.emulators.kubernetes_fixtures import client_for

APPLY = "application/apply-patch+yaml"


def deployment(
    name: str = "web",
    *,
    image: str = "registry.example.com/web:1",
    replicas: int | None = 2,
    **spec: Any,
) -> dict[str, Any]:
    labels = {"app": name}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "web", "image": image, "ports": [{"containerPort": 8000}]}
                    ]
                },
            },
            **spec,
        },
    }
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    return body


def apply(
    apps: AppsV1Api, body: dict[str, Any], manager: str = "conveyor", ns: str = "default", **kw: Any
) -> Any:
    return apps.patch_namespaced_deployment(
        body["metadata"]["name"], ns, body, field_manager=manager, _content_type=APPLY, **kw
    )


def status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == exc.status
    return body


def raw(apps: AppsV1Api, name: str = "web", ns: str = "default") -> dict[str, Any]:
    response = apps.read_namespaced_deployment(name, ns, _preload_content=False)
    result: dict[str, Any] = json.loads(response.data)
    return result


# -- errors: metav1.Status bodies ------------------------------------------------------------


def test_no_token_is_401(kube_emulator: KubernetesEmulator) -> None:
    with pytest.raises(ApiException) as caught:
        AppsV1Api(client_for(kube_emulator, "wrong")).list_namespaced_deployment("default")
    assert caught.value.status == 401 and status_of(caught.value)["reason"] == "Unauthorized"


def test_missing_object_is_404_not_found(kube_client: kubernetes.client.ApiClient) -> None:
    with pytest.raises(ApiException) as caught:
        AppsV1Api(kube_client).read_namespaced_deployment("web", "default")
    body = status_of(caught.value)
    assert (caught.value.status, body["reason"]) == (404, "NotFound")
    assert body["message"] == 'deployments.apps "web" not found'
    assert body["details"] == {"name": "web", "group": "apps", "kind": "deployments"}


def test_create_in_a_missing_namespace_is_404_namespace_not_found(
    kube_client: kubernetes.client.ApiClient,
) -> None:
    for call in (
        lambda: AppsV1Api(kube_client).create_namespaced_deployment("nope", deployment()),
        lambda: apply(AppsV1Api(kube_client), deployment(), ns="nope"),
    ):
        with pytest.raises(ApiException) as caught:
            call()
        assert status_of(caught.value)["message"] == 'namespaces "nope" not found'


def test_post_of_a_taken_name_is_409_already_exists(
    kube_client: kubernetes.client.ApiClient,
) -> None:
    apps = AppsV1Api(kube_client)
    apps.create_namespaced_deployment("default", deployment())
    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment("default", deployment())
    body = status_of(caught.value)
    assert (caught.value.status, body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == 'deployments.apps "web" already exists'


def test_put_with_a_stale_resource_version_is_409_conflict(
    make_kube_emulator: Callable[..., KubernetesEmulator],
) -> None:
    # controllers idle (a status write would move resourceVersion between the test's two calls)
    apps = AppsV1Api(client_for(make_kube_emulator(tick=3600.0)))
    created = apps.create_namespaced_deployment("default", deployment())
    first = created.metadata.resource_version
    created.spec.replicas = 3
    replaced = apps.replace_namespaced_deployment("web", "default", created)
    assert replaced.metadata.resource_version != first  # new on each write
    created.metadata.resource_version = first
    with pytest.raises(ApiException) as caught:
        apps.replace_namespaced_deployment("web", "default", created)
    body = status_of(caught.value)
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )


def test_invalid_name_is_422_with_causes(kube_client: kubernetes.client.ApiClient) -> None:
    with pytest.raises(ApiException) as caught:
        apply(AppsV1Api(kube_client), deployment("Bad_Name"))
    body = status_of(caught.value)
    assert (caught.value.status, body["reason"]) == (422, "Invalid")
    assert body["message"].startswith(
        'Deployment.apps "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must'
    )
    assert body["details"]["kind"] == "Deployment"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "9web"},
        "spec": {"ports": [{"port": 80}, {"port": 81}]},
    }
    with pytest.raises(ApiException) as caught:
        CoreV1Api(kube_client).create_namespaced_service("default", service)
    message = status_of(caught.value)["message"]
    assert message.startswith(
        'Service "9web" is invalid: [metadata.name: Invalid value: "9web": a DNS-1035 label'
    )
    assert "spec.ports[0].name: Required value" in message


def test_deployment_validation(kube_client: kubernetes.client.ApiClient) -> None:
    apps = AppsV1Api(kube_client)
    both_zero = deployment(
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}
    )
    with pytest.raises(ApiException) as caught:
        apply(apps, both_zero)
    assert "may not be 0 when `maxSurge` is 0" in status_of(caught.value)["message"]
    mismatch = deployment()
    mismatch["spec"]["selector"]["matchLabels"] = {"app": "other"}
    with pytest.raises(ApiException) as caught:
        apply(apps, mismatch)
    assert "`selector` does not match template `labels`" in status_of(caught.value)["message"]
    apply(apps, deployment())
    moved = deployment()
    moved["spec"]["selector"]["matchLabels"] = {"app": "web", "tier": "x"}
    moved["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    with pytest.raises(ApiException) as caught:
        apply(apps, moved)
    assert "spec.selector: Invalid value" in status_of(caught.value)["message"]
    assert "field is immutable" in status_of(caught.value)["message"]


def test_node_port_outside_the_range_is_422(kube_client: kubernetes.client.ApiClient) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]},
    }
    with pytest.raises(ApiException) as caught:
        CoreV1Api(kube_client).patch_namespaced_service(
            "web", "default", service, field_manager="conveyor", _content_type=APPLY
        )
    assert (
        "provided port is not in the valid range. The range of valid ports is 30000-32767"
        in status_of(caught.value)["message"]
    )


# -- server-side apply -------------------------------------------------------------------------


def test_apply_creates_with_defaults_and_managed_fields(
    kube_client: kubernetes.client.ApiClient,
) -> None:
    apps = AppsV1Api(kube_client)
    created = apply(apps, deployment(replicas=None))
    assert created.spec.replicas == 1
    assert created.spec.strategy.rolling_update.max_surge == "25%"
    assert (
        created.spec.progress_deadline_seconds == 600 and created.spec.revision_history_limit == 10
    )
    assert created.metadata.generation == 1
    entry = created.metadata.managed_fields[0]
    assert (entry.manager, entry.operation, entry.api_version) == ("conveyor", "Apply", "apps/v1")
    assert "f:spec" in entry.fields_v1


def test_apply_needs_a_field_manager_and_refuses_managed_fields(
    kube_client: kubernetes.client.ApiClient,
) -> None:
    apps = AppsV1Api(kube_client)
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment("web", "default", deployment(), _content_type=APPLY)
    assert status_of(caught.value)["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    )
    body = deployment()
    body["metadata"]["managedFields"] = [{"manager": "x"}]
    with pytest.raises(ApiException) as caught:
        apply(apps, body)
    assert caught.value.status == 400
    assert status_of(caught.value)["message"] == "metadata.managedFields must be nil"
    apply(apps, deployment())
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 1}}, force=True)
    assert (
        "force: Forbidden: may not be specified for non-apply patch"
        in status_of(caught.value)["message"]
    )


def test_conflict_with_another_apply_manager_names_it_and_force_takes_the_field(
    kube_client: kubernetes.client.ApiClient,
) -> None:
    apps = AppsV1Api(kube_client)
    apply(apps, deployment(replicas=5), manager="kubectl")
    apply(apps, deployment(replicas=5))  # same value: shared, no conflict
    with pytest.raises(ApiException) as caught:
        apply(apps, deployment(replicas=2))
    body = status_of(caught.value)
    assert (caught.value.status, body["reason"]) == (409, "Conflict")
    assert (
        body["message"] == 'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas'
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl"',
            "field": ".spec.replicas",
        }
    ]
    forced = apply(apps, deployment(replicas=2), force=True)
    assert forced.spec.replicas == 2
    owners = {e.manager: e.fields_v1 for e in forced.metadata.managed_fields}
    assert "f:replicas" in owners["conveyor"]["f:spec"]
    assert "f:replicas" not in owners["kubectl"].get("f:spec", {})


def test_several_conflicts_and_update_managers_are_listed(
    kube_client: kubernetes.client.ApiClient,
) -> None:
    apps = AppsV1Api(kube_client)
    apply(apps, deployment())
    # another writer (not apply) takes the fields it changes
    apps.patch_namespaced_deployment(
        "web",
        "default",
        {
            "spec": {
                "replicas": 7,
                "template": {"spec": {"containers": [{"name": "web", "image": "other:2"}]}},
            }
        },
        field_manager="kubectl-edit",
        _content_type="application/merge-patch+json",
    )
    with pytest.raises(ApiException) as caught:
        apply(apps, deployment(replicas=2))
    message = status_of(caught.value)["message"]
    assert message.startswith(
        'Apply failed with 2 conflicts: conflicts with "kubectl-edit" using apps/v1 at '
    )
    assert message.endswith(
        ':\n- .spec.replicas\n- .spec.template.spec.containers[name="web"].image'
    ) or (
        '- .spec.template.spec.containers[name="web"].image' in message
        and "- .spec.replicas" in message
    )


def test_a_field_no_longer_applied_is_removed_or_reset_to_its_default(
    kube_client: kubernetes.client.ApiClient,
) -> None:
    apps = AppsV1Api(kube_client)
    body = deployment(replicas=3)
    body["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
    ]
    apply(apps, body)
    body = deployment(replicas=None)
    body["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "B", "value": "2"}]
    after = apply(apps, body)
    assert after.spec.replicas == 1
    assert [e.name for e in after.spec.template.spec.containers[0].env] == ["B"]


def test_lists_merge_by_their_keys_across_managers(
    kube_client: kubernetes.client.ApiClient,
) -> None:
    apps = AppsV1Api(kube_client)
    body = deployment()
    body["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    apply(apps, body)
    sidecar = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "web", "env": [{"name": "MESH", "value": "on"}]}]}
            }
        },
    }
    merged = apply(apps, sidecar, manager="mesh-injector")
    assert [e.name for e in merged.spec.template.spec.containers[0].env] == ["A", "MESH"]
    again = apply(apps, body)  # conveyor's own list does not drop the other manager's item
    assert [e.name for e in again.spec.template.spec.containers[0].env] == ["A", "MESH"]


def test_dry_run_all_stores_nothing_and_returns_the_would_be_object(
    kube_client: kubernetes.client.ApiClient,
) -> None:
    apps = AppsV1Api(kube_client)
    would = apply(apps, deployment(replicas=None), dry_run="All")
    assert would.spec.replicas == 1  # defaults ran
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment("web", "default")
    with pytest.raises(ApiException) as caught:
        apply(apps, deployment("Bad_Name"), dry_run="All")  # validation runs
    assert caught.value.status == 422
    live = apply(apps, deployment(replicas=2))
    would = apply(apps, deployment(replicas=4), dry_run="All")
    assert would.spec.replicas == 4
    now = apps.read_namespaced_deployment("web", "default")
    assert now.spec.replicas == 2 and now.metadata.generation == live.metadata.generation
    apply(apps, deployment(replicas=3), manager="kubectl", force=True)
    with pytest.raises(ApiException) as caught:  # conflicts run too
        apply(apps, deployment(replicas=2), dry_run="All")
    assert caught.value.status == 409


def test_dry_run_answers_with_the_resource_version_it_was_computed_from(
    kube_client: kubernetes.client.ApiClient,
) -> None:
    apps = AppsV1Api(kube_client)
    assert apply(apps, deployment(), dry_run="All").metadata.resource_version is None  # a create
    live = apply(apps, deployment())
    assert apply(apps, deployment(replicas=4), dry_run="All").metadata.resource_version == (
        live.metadata.resource_version
    )
    annotated = {"apiVersion": "apps/v1", "kind": "Deployment"}
    annotated["metadata"] = {"name": "web", "annotations": {"note": "x"}}
    later = apply(apps, annotated, manager="kubectl")
    assert later.metadata.resource_version != live.metadata.resource_version
    would = apply(apps, deployment(replicas=4), dry_run="All")
    assert would.metadata.resource_version == later.metadata.resource_version
    assert would.metadata.annotations["note"] == "x"  # another manager's field stays


def test_the_deployment_controller_writes_the_revision_after_an_apply(
    kube_client: kubernetes.client.ApiClient,
) -> None:
    apps = AppsV1Api(kube_client)
    applied = apply(apps, deployment())
    assert "deployment.kubernetes.io/revision" not in (applied.metadata.annotations or {})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        now = apps.read_namespaced_deployment("web", "default")
        if (now.metadata.annotations or {}).get("deployment.kubernetes.io/revision") == "1":
            break
        time.sleep(0.02)
    else:
        pytest.fail("the controller never wrote the revision annotation")
    assert now.metadata.resource_version != applied.metadata.resource_version


def test_generation_counts_spec_and_annotation_changes(
    kube_client: kubernetes.client.ApiClient,
) -> None:
    apps = AppsV1Api(kube_client)
    assert apply(apps, deployment()).metadata.generation == 1
    assert apply(apps, deployment(replicas=3)).metadata.generation == 2
    labelled = deployment(replicas=3)
    labelled["metadata"]["labels"] = {"team": "a"}
    assert apply(apps, labelled).metadata.generation == 2
    labelled["metadata"]["annotations"] = {"note": "x"}
    assert apply(apps, labelled).metadata.generation == 3


def test_lists_filter_by_label_selector_and_page_with_continue(
    kube_client: kubernetes.client.ApiClient,
) -> None:
    apps = AppsV1Api(kube_client)
    for n in range(5):
        body = deployment(f"web{n}")
        body["metadata"]["labels"] = {"tier": "a" if n % 2 else "b"}
        apply(apps, body)
    assert [
        d.metadata.name
        for d in apps.list_namespaced_deployment("default", label_selector="tier=a").items
    ] == ["web1", "web3"]
    names, token = [], None
    while True:
        page = apps.list_namespaced_deployment("default", limit=2, _continue=token)
        names += [d.metadata.name for d in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert names == [f"web{n}" for n in range(5)]


def test_delete_answers_a_success_status(kube_client: kubernetes.client.ApiClient) -> None:
    apps = AppsV1Api(kube_client)
    apply(apps, deployment())
    status = apps.delete_namespaced_deployment("web", "default")
    assert status["status"] == "Success" and status["details"]["name"] == "web"
    with pytest.raises(ApiException) as caught:
        apps.delete_namespaced_deployment("web", "default")
    assert caught.value.status == 404


def test_injected_faults_answer_a_status(
    kube_emulator: KubernetesEmulator, kube_client: kubernetes.client.ApiClient
) -> None:
    kube_emulator.faults.error("GET", "/deployments", status=503)
    with pytest.raises(ApiException) as caught:
        AppsV1Api(kube_client).list_namespaced_deployment("default")
    assert caught.value.status == 503 and status_of(caught.value)["reason"] == "ServiceUnavailable"


# -- controllers (pods' readiness from the real Docker engine) ----------------------------------


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def web(image: str, replicas: int = 2, **spec: Any) -> dict[str, Any]:
    body = deployment(
        image=image,
        replicas=replicas,
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        **spec,
    )
    body["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {
        "httpGet": {"path": "/healthz", "port": 8000},
        "periodSeconds": 1,
    }
    return body


def conditions(apps: AppsV1Api) -> dict[str, tuple[str, str]]:
    status = raw(apps)["status"]
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


def complete(apps: AppsV1Api) -> bool:
    return conditions(apps).get("Progressing") == ("True", "NewReplicaSetAvailable")


@pytest.mark.docker
def test_pods_become_ready_when_the_image_readiness_probe_passes_on_docker(
    make_kube_emulator: Callable[..., KubernetesEmulator],
    docker_readiness: DockerReadiness,
    web_images: dict[str, str],
) -> None:
    emulator = make_kube_emulator(readiness=docker_readiness)
    apps = AppsV1Api(client_for(emulator))
    core = CoreV1Api(client_for(emulator))
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8000}]},
    }
    core.patch_namespaced_service(
        "web", "default", service, field_manager="conveyor", _content_type=APPLY
    )
    apply(apps, web(web_images["good1"]))
    wait_for(lambda: complete(apps))
    status = raw(apps)["status"]
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"]) == (2, 2, 2)
    assert conditions(apps)["Available"] == ("True", "MinimumReplicasAvailable")
    assert emulator.serve("default", "web") == web_images["good1"]
    assert docker_readiness.probed == [web_images["good1"]]
    pods = core.list_namespaced_pod("default", label_selector="app=web").items
    assert len(pods) == 2 and all(p.status.container_statuses[0].ready for p in pods)


@pytest.mark.docker
def test_revisions_new_replica_sets_and_a_reused_one_gets_the_next_number(
    make_kube_emulator: Callable[..., KubernetesEmulator],
    docker_readiness: DockerReadiness,
    web_images: dict[str, str],
) -> None:
    emulator = make_kube_emulator(readiness=docker_readiness)
    apps = AppsV1Api(client_for(emulator))
    for image in ("good1", "good2", "good1"):
        apply(apps, web(web_images[image], replicas=1))
        wait_for(
            lambda: (
                complete(apps)
                and raw(apps)["status"].get("observedGeneration")
                == raw(apps)["metadata"]["generation"]
                # complete can come before the old ReplicaSet's scale-down (a later sync)
                and sum(
                    rs.spec.replicas for rs in apps.list_namespaced_replica_set("default").items
                )
                == 1
            )
        )
    sets = {
        rs.spec.template.spec.containers[0].image: rs
        for rs in apps.list_namespaced_replica_set("default").items
    }
    assert len(sets) == 2
    revision = {
        image: rs.metadata.annotations["deployment.kubernetes.io/revision"]
        for image, rs in sets.items()
    }
    assert revision == {web_images["good1"]: "3", web_images["good2"]: "2"}
    assert raw(apps)["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    rs = sets[web_images["good1"]]
    assert (
        rs.metadata.name.startswith("web-") and rs.metadata.owner_references[0].kind == "Deployment"
    )
    assert rs.metadata.labels["pod-template-hash"] == rs.metadata.name.removeprefix("web-")
    assert sets[web_images["good2"]].spec.replicas == 0


@pytest.mark.docker
def test_a_broken_image_never_gets_ready_the_old_pods_keep_serving_and_the_deadline_passes(
    make_kube_emulator: Callable[..., KubernetesEmulator],
    docker_readiness: DockerReadiness,
    web_images: dict[str, str],
) -> None:
    emulator = make_kube_emulator(readiness=docker_readiness)
    apps = AppsV1Api(client_for(emulator))
    core = CoreV1Api(client_for(emulator))
    core.create_namespaced_service(
        "default",
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
    )
    apply(apps, web(web_images["good1"], progressDeadlineSeconds=3))
    wait_for(lambda: complete(apps))
    apply(apps, web(web_images["broken"], progressDeadlineSeconds=3))
    served = set()
    deadline = time.monotonic() + 30
    while conditions(apps).get("Progressing") != ("False", "ProgressDeadlineExceeded"):
        assert time.monotonic() < deadline
        served.add(emulator.serve("default", "web"))  # never NoEndpoints
        time.sleep(0.05)
    assert served == {web_images["good1"]}
    status = raw(apps)["status"]
    # maxUnavailable 0: both old pods stay, one surge pod of the new version is not Ready
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"]) == (3, 1, 2)
    assert conditions(apps)["Available"] == ("True", "MinimumReplicasAvailable")
    wait_for(lambda: web_images["broken"] in docker_readiness.probed)  # the engine's answer: no
    broken = [
        p
        for p in emulator.list("pods", "default")
        if p["spec"]["containers"][0]["image"] == web_images["broken"]
    ]
    wait_for(
        lambda: (
            emulator.get("pods", "default", broken[0]["metadata"]["name"])["status"].get("reason")
            == "NeverReady"
        )
    )


def test_no_ready_pod_means_no_endpoints(
    kube_emulator: KubernetesEmulator, kube_client: kubernetes.client.ApiClient
) -> None:
    apply(AppsV1Api(kube_client), deployment())  # no readiness oracle: pods never Ready
    CoreV1Api(kube_client).create_namespaced_service(
        "default",
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
    )
    wait_for(lambda: len(kube_emulator.list("pods", "default")) == 2, timeout=5)
    with pytest.raises(NoEndpoints):
        kube_emulator.serve("default", "web")


def test_a_paused_deployment_starts_nothing(
    kube_emulator: KubernetesEmulator, kube_client: kubernetes.client.ApiClient
) -> None:
    apps = AppsV1Api(kube_client)
    apply(apps, deployment(paused=True))
    wait_for(
        lambda: conditions(apps).get("Progressing") == ("Unknown", "DeploymentPaused"), timeout=5
    )
    assert apps.list_namespaced_replica_set("default").items == []


def test_deleting_a_deployment_deletes_its_replica_sets_and_pods(
    kube_emulator: KubernetesEmulator, kube_client: kubernetes.client.ApiClient
) -> None:
    apps = AppsV1Api(kube_client)
    apply(apps, deployment())
    wait_for(lambda: len(kube_emulator.list("pods", "default")) == 2, timeout=5)
    apps.delete_namespaced_deployment("web", "default")
    assert (
        kube_emulator.list("replicasets", "default") == []
        and kube_emulator.list("pods", "default") == []
    )
