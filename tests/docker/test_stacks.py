"""docker-in-docker/: the compose stacks, the Jenkins image inputs and the local base images.

`docker compose` is not packaged for Debian 12, so the compose files are checked structurally (and
with `docker compose config` when the plugin exists). The DinD stack's wiring -- TLS certificates in a
shared volume, DOCKER_HOST=tcp://docker:2376 -- is also run for real with the local docker:dind.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from conveyor.docker.dind import run_kwargs
from conveyor.spec.model import DindOptions
from tests.docker.fixtures import privileged_refused

ROOT = Path(__file__).resolve().parents[2]
DIND = ROOT / "docker-in-docker"
SECRET_VARS = ("JENKINS_ADMIN_PASSWORD", "GITLAB_API_TOKEN", "REGISTRY_PASSWORD")


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((DIND / name).read_text())
    assert isinstance(data, dict)
    return data


def named_volumes(service: dict[str, Any]) -> dict[str, str]:
    """target -> source for the service's named-volume mounts (short syntax)."""
    out: dict[str, str] = {}
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        out[target] = source
    return out


def check_common(compose: dict[str, Any]) -> dict[str, Any]:
    assert set(compose) <= {"name", "services", "volumes", "networks"}
    jenkins = compose["services"]["jenkins"]
    assert jenkins["build"] == "./jenkins"
    assert (DIND / "jenkins" / "Dockerfile").is_file()
    assert "8080:8080" in jenkins["ports"]
    env = jenkins["environment"]
    for var in SECRET_VARS:  # secrets come from the caller's environment, never the file
        assert re.fullmatch(r"\$\{" + var + r"(:[?-][^}]*)?\}", env[var]), env[var]
    volumes = named_volumes(jenkins)
    assert volumes["/var/jenkins_home"] == "jenkins_home"
    assert "jenkins_home" in compose["volumes"]
    for service in compose["services"].values():
        for source in named_volumes(service).values():
            assert source.startswith("/") or source in compose["volumes"], source
    return jenkins


def test_socket_stack_structure() -> None:
    compose = load("compose.socket.yml")
    jenkins = check_common(compose)
    assert set(compose["services"]) == {"jenkins"}
    assert named_volumes(jenkins)["/var/run/docker.sock"] == "/var/run/docker.sock"
    assert "DOCKER_HOST" not in jenkins["environment"]
    assert jenkins["group_add"]


def test_dind_stack_structure() -> None:
    compose = load("compose.dind.yml")
    jenkins = check_common(compose)
    dind = compose["services"]["docker"]
    assert dind["image"] == "docker:dind"
    assert dind["privileged"] is True
    assert dind["environment"]["DOCKER_TLS_CERTDIR"] == "/certs"
    env = jenkins["environment"]
    assert env["DOCKER_HOST"] == "tcp://docker:2376"
    assert env["DOCKER_TLS_VERIFY"] == "1"
    assert env["DOCKER_CERT_PATH"] == "/certs/client"
    dind_vols, jenkins_vols = named_volumes(dind), named_volumes(jenkins)
    assert dind_vols["/var/lib/docker"] == "dind_data"  # its own image store
    assert dind_vols["/certs/client"] == jenkins_vols["/certs/client"]  # shared certificates
    assert any(v.endswith(":ro") for v in jenkins["volumes"] if "/certs/client" in v)
    assert "/certs/ca" not in jenkins_vols  # the CA key stays with the daemon
    assert dind_vols["/var/jenkins_home"] == "jenkins_home"  # workspaces visible to the daemon
    assert not any("docker.sock" in v for v in jenkins["volumes"])


def test_compose_files_pass_compose_own_validation(tmp_path: Path) -> None:
    """`docker compose config` (the plugin) or Debian's `docker-compose` (installed by dev.sh)."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    compose = ["docker", "compose"] if probe.returncode == 0 else ["docker-compose"]
    env = {
        "JENKINS_ADMIN_PASSWORD": "x",
        "GITLAB_URL": "http://g",
        "GITLAB_API_TOKEN": "t",
        "PATH": "/usr/bin:/bin",
    }
    for name in ("compose.socket.yml", "compose.dind.yml"):
        subprocess.run([*compose, "-f", str(DIND / name), "config", "-q"], env=env, check=True)


def test_jenkins_image_inputs() -> None:
    plugins = {
        line.split(":")[0].strip()
        for line in (DIND / "jenkins" / "plugins.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert plugins >= {
        "workflow-aggregator",
        "docker-workflow",
        "gitlab-plugin",
        "configuration-as-code",
        "credentials-binding",
        "timestamper",
        "git",
    }
    dockerfile = (DIND / "jenkins" / "Dockerfile").read_text()
    froms = [line for line in dockerfile.splitlines() if line.startswith("FROM")]
    assert froms == ["FROM jenkins/jenkins:lts-jdk17"]
    assert "jenkins-plugin-cli --plugin-file" in dockerfile
    casc_text = (DIND / "jenkins" / "casc.yaml").read_text()
    casc = yaml.safe_load(casc_text)
    assert set(casc) <= {"jenkins", "credentials", "unclassified", "security", "tool"}
    users = casc["jenkins"]["securityRealm"]["local"]["users"]
    assert users[0]["password"] == "${JENKINS_ADMIN_PASSWORD}"
    creds = casc["credentials"]["system"]["domainCredentials"][0]["credentials"]
    secrets = [c.get("gitLabApiTokenImpl", {}).get("apiToken") for c in creds] + [
        c.get("usernamePassword", {}).get("password") for c in creds
    ]
    assert sorted(s for s in secrets if s) == ["${GITLAB_API_TOKEN}", "${REGISTRY_PASSWORD}"]
    connection = casc["unclassified"]["gitlabconnectionconfig"]["connections"][0]
    assert connection["name"] == "gitlab"  # the spec's default jenkins.connection
    assert connection["apiTokenId"] == "gitlab-api-token"
    # every value under a secret-looking key is an interpolation, never a literal
    leaves = list(secret_leaves(casc))
    assert len(leaves) == 3
    for key, value in leaves:
        assert re.fullmatch(r"\$\{[A-Z_]+\}", value), (key, value)


def secret_leaves(node: Any) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and re.search(r"(password|token|secret)$", key, re.I):
                yield key, value
            else:
                yield from secret_leaves(value)
    elif isinstance(node, list):
        for item in node:
            yield from secret_leaves(item)


@pytest.mark.docker
def test_dind_stack_wiring_with_the_local_images(
    docker_client: docker.DockerClient, unique: Callable[[str], str]
) -> None:
    """compose.dind.yml run by hand: the sidecar makes TLS certs in the shared volume and a client
    with DOCKER_HOST=tcp://docker:2376 + DOCKER_TLS_VERIFY + DOCKER_CERT_PATH reaches it."""
    compose = load("compose.dind.yml")
    dind, jenkins = compose["services"]["docker"], compose["services"]["jenkins"]
    network = docker_client.networks.create(unique("net"))
    volumes = {source: unique(source) for source in compose["volumes"]}

    def mounts(service: dict[str, Any]) -> dict[str, dict[str, str]]:
        out = {}
        for entry in service["volumes"]:
            source, target, *mode = entry.split(":")
            out[volumes[source]] = {"bind": target, "mode": mode[0] if mode else "rw"}
        return out

    extra: dict[str, Any] = {"privileged": True}
    if privileged_refused(docker_client):  # as on our VMs: use conveyor's fallback options
        fallback = run_kwargs(DindOptions().fallback_args)
        fallback.pop("systempaths_unconfined", None)
        extra = {
            "cap_add": fallback["cap_add"],
            "cap_drop": fallback["cap_drop"],
            "security_opt": fallback["security_opt"],
        }
        extra["volumes"] = {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}}
    daemon_mounts = mounts(dind) | extra.pop("volumes", {})
    sidecar = docker_client.containers.run(
        dind["image"],
        ["--storage-driver=vfs"],
        name=unique("docker"),
        detach=True,
        environment=dind["environment"],
        volumes=daemon_mounts,
        **extra,
    )
    network.connect(sidecar, aliases=["docker"])
    env = {
        k: jenkins["environment"][k]
        for k in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
    }
    client_mounts = {v: m for v, m in mounts(jenkins).items() if m["bind"] == "/certs/client"}
    deadline = time.monotonic() + 90
    output = ""
    while time.monotonic() < deadline:
        sidecar.reload()
        assert sidecar.status == "running", sidecar.logs(tail=20).decode()
        probe = docker_client.containers.run(
            "docker:cli",
            ["docker", "version", "--format", "{{.Server.Version}}"],
            environment=env,
            volumes=client_mounts,
            network=network.name,
            detach=True,
            name=unique(f"probe-{int(time.monotonic() * 1000)}"),
        )
        status = probe.wait(timeout=60)
        output = probe.logs().decode()
        probe.remove(force=True)
        if status["StatusCode"] == 0:
            break
        time.sleep(0.25)
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*\n", output), output
    plain = docker_client.containers.run(  # without the client certificate: refused
        "docker:cli",
        ["docker", "-H", "tcp://docker:2376", "version"],
        network=network.name,
        detach=True,
        name=unique("noauth"),
    )
    assert plain.wait(timeout=60)["StatusCode"] != 0
