"""docker-in-docker/: the compose stacks, the Jenkins image inputs and the local docker:dind stand-in.

Structure first (what each file must say), then compose's own validation with Debian's
docker-compose, then the stacks' wiring run for real with the local images: the dind stand-in is
started as compose.dind.yml's ``docker`` service (with the DinD fallback options of
../shared/reference/docker-here.md where --privileged is refused) and must behave like the official
``docker:dind`` entrypoint (jenkins.md "The official docker:dind entrypoint"; docker-library/docker
dockerd-entrypoint.sh); the ``agent-images`` service's command loads the agent image into it; and
agent containers run as Jenkins runs them (uid 1000, HOME=/) deploy to it over TLS, reachable from
the host, with one history seen from every container.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import yaml

from conveyor.docker.deploy.docker import remove_deploy
from conveyor.docker.engine import EngineAddress
from conveyor.docker.history import DeployHistory
from conveyor.spec.load import load_spec
from conveyor.spec.model import DindOptions, Spec
from tests.docker.deploy_support import build_app, get, wait_body
from tests.docker.dind_support import copy_images, run_kwargs
from tests.docker.fixtures import PREFIX, free_port, privileged_refused, remove_prefixed

ROOT = Path(__file__).resolve().parents[2]
DIND = ROOT / "docker-in-docker"
SECRET_VARS = ("JENKINS_ADMIN_PASSWORD", "GITLAB_API_TOKEN", "REGISTRY_PASSWORD")
REQUIRED_ENV = {"JENKINS_ADMIN_PASSWORD": "x", "GITLAB_URL": "http://g", "GITLAB_API_TOKEN": "t"}
SHIPPED_SPECS = sorted(
    [*(ROOT / "pipelines").glob("*.yml"), *(ROOT / "examples").glob("*/conveyor.yml")]
)


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((DIND / name).read_text())
    assert isinstance(data, dict)
    return data


def compose_command() -> list[str]:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return ["docker", "compose"] if probe.returncode == 0 else ["docker-compose"]


def resolved(name: str, **env: str) -> dict[str, Any]:
    """The compose file as compose itself resolves it (``config``: interpolation, defaults)."""
    done = subprocess.run(
        [*compose_command(), "-f", str(DIND / name), "config"],
        env={"PATH": "/usr/bin:/bin", **REQUIRED_ENV, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    data = yaml.safe_load(done.stdout)
    assert isinstance(data, dict)
    return data


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source for the service's mounts (short syntax)."""
    out: dict[str, str] = {}
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        out[target] = source
    return out


def host_ports(service: dict[str, Any]) -> set[int]:
    """Host ports a service publishes (``H:C`` and ``A-B:A-B``), from a resolved file."""
    out: set[int] = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):  # compose v2's long form
            out.add(int(entry["published"]))
            continue
        published = str(entry).split(":")[0]
        first, _, last = published.partition("-")
        out.update(range(int(first), int(last or first) + 1))
    return out


def deploy_ports(spec: Spec) -> set[int]:
    out: set[int] = set()
    for stage in spec.all_stages():
        for port in stage.deploy.ports if stage.deploy else []:
            if ":" in port:
                out.add(int(port.split(":")[0]))
    return out


def shipped() -> list[Spec]:
    return [load_spec(path).spec for path in SHIPPED_SPECS]


# ----------------------------------------------------------------------------------- structure


def check_common(compose: dict[str, Any]) -> dict[str, Any]:
    assert set(compose) <= {"name", "services", "volumes", "networks"}
    jenkins = compose["services"]["jenkins"]
    assert jenkins["build"] == "./jenkins"
    assert (DIND / "jenkins" / "Dockerfile").is_file()
    assert "${JENKINS_PORT:-8180}:8080" in jenkins["ports"]
    env = jenkins["environment"]
    for var in SECRET_VARS:  # secrets come from the caller's environment, never the file
        assert re.fullmatch(r"\$\{" + var + r"(:[?-][^}]*)?\}", env[var]), env[var]
    for service in compose["services"].values():
        for source in mounts(service).values():
            assert source.startswith("/") or source in compose.get("volumes", {}), source
    return jenkins


def test_socket_stack_structure() -> None:
    compose = load("compose.socket.yml")
    jenkins = check_common(compose)
    assert set(compose["services"]) == {"jenkins"}
    binds = mounts(jenkins)
    assert binds["/var/run/docker.sock"] == "/var/run/docker.sock"
    # the engine resolves bind sources on the host: Jenkins' home is the same path on both sides
    assert binds["/var/jenkins_home"] == "/var/jenkins_home"
    assert all(source == target for target, source in binds.items())
    assert "DOCKER_HOST" not in jenkins["environment"]
    assert jenkins["group_add"]


def test_dind_stack_structure() -> None:
    compose = load("compose.dind.yml")
    jenkins = check_common(compose)
    dind = compose["services"]["docker"]
    assert dind["image"] == "docker:dind"
    assert dind["privileged"] is True
    assert dind["environment"]["DOCKER_TLS_CERTDIR"] == "/certs"
    assert "command" not in dind  # the entrypoint adds --host itself: another one collides
    env = jenkins["environment"]
    assert env["DOCKER_HOST"] == "tcp://docker:2376"
    assert env["DOCKER_TLS_VERIFY"] == "1"
    assert env["DOCKER_CERT_PATH"] == "/certs/client"
    # deploys: the long-lived sidecar, with the same client certificates
    assert env["CONVEYOR_DEPLOY_HOST"] == env["DOCKER_HOST"]
    assert env["CONVEYOR_DEPLOY_CERT_PATH"] == env["DOCKER_CERT_PATH"]
    dind_vols, jenkins_vols = mounts(dind), mounts(jenkins)
    assert dind_vols["/var/lib/docker"] == "dind_data"  # its own image store
    assert dind_vols["/certs/client"] == jenkins_vols["/certs/client"]  # shared certificates
    assert any(v.endswith(":ro") for v in jenkins["volumes"] if "/certs/client" in v)
    assert "/certs/ca" not in jenkins_vols  # the CA key stays with the daemon
    assert dind_vols["/var/jenkins_home"] == jenkins_vols["/var/jenkins_home"]  # same workspaces
    assert not any("docker.sock" in v for v in jenkins["volumes"])
    loader = compose["services"]["agent-images"]
    assert "agent-images" in jenkins["depends_on"]
    assert "conveyor-agent:1" in loader["environment"]["IMAGES"]


def test_compose_files_pass_compose_own_validation() -> None:
    """`docker compose config` (the plugin) or Debian's `docker-compose` (installed by dev.sh)."""
    for name in ("compose.socket.yml", "compose.dind.yml"):
        subprocess.run(
            [*compose_command(), "-f", str(DIND / name), "config", "-q"],
            env={"PATH": "/usr/bin:/bin", **REQUIRED_ENV},
            check=True,
        )


def test_deploys_never_collide_with_jenkins_and_dind_deploys_are_published() -> None:
    specs = shipped()
    socket_stack, dind_stack = resolved("compose.socket.yml"), resolved("compose.dind.yml")
    for stack in (socket_stack, dind_stack):
        jenkins_ports = host_ports(stack["services"]["jenkins"])
        for spec in specs:
            assert not jenkins_ports & deploy_ports(spec), (spec.project, jenkins_ports)
    published = host_ports(dind_stack["services"]["docker"])
    dind_specs = [s for s in specs if s.jenkins.agent.docker == "dind"]
    assert dind_specs
    for spec in dind_specs:  # their apps run on the sidecar: it must publish their ports
        assert deploy_ports(spec) <= published, (spec.project, published)


def _casc() -> dict[str, Any]:
    casc = yaml.safe_load((DIND / "jenkins" / "casc.yaml").read_text())
    assert isinstance(casc, dict)
    return casc


def casc_credentials(casc: dict[str, Any]) -> dict[str, str]:
    """credentials ID -> kind (usernamePassword, string, gitLabApiTokenImpl, ...)."""
    out: dict[str, str] = {}
    for domain in casc["credentials"]["system"]["domainCredentials"]:
        for entry in domain["credentials"]:
            ((kind, body),) = entry.items()
            assert body["id"] not in out, f"credentials {body['id']} defined twice"
            out[body["id"]] = kind
    return out


def spec_credentials(spec: Spec) -> dict[str, str]:
    """Every credentials ID a spec names -> the kind its use needs."""
    wanted: dict[str, str] = {}
    if spec.jenkins.scm.credentials:
        wanted[spec.jenkins.scm.credentials] = "usernamePassword"
    for credentials in spec.secrets.values():
        wanted[credentials] = "string"  # credentials('id') in environment {}: the secret text
    for stage in spec.all_stages():
        if stage.push is not None and stage.push.credentials:
            wanted[stage.push.credentials] = "usernamePassword"  # usernamePassword binding
        for credentials in stage.secrets.values():
            wanted[credentials] = "string"
        for credentials in stage.deploy.secrets.values() if stage.deploy else []:
            wanted[credentials] = "string"
    return wanted


def test_casc_has_every_credential_and_connection_the_shipped_specs_name() -> None:
    casc = _casc()
    have = casc_credentials(casc)
    connections = {
        c["name"]: c for c in casc["unclassified"]["gitlabconnectionconfig"]["connections"]
    }
    named: set[str] = set()
    for spec in shipped():
        for credentials, kind in spec_credentials(spec).items():
            named.add(credentials)
            assert have.get(credentials) == kind, (spec.project, credentials, kind, have)
        assert spec.jenkins.connection in connections, (spec.project, spec.jenkins.connection)
    assert {
        "sonar-token",
        "java-service-db",
        "node-api-token",
        "gitlab-clone",
        "demo-registry",
    } <= named
    for connection in connections.values():  # each connection's API token exists
        assert have[connection["apiTokenId"]] == "gitLabApiTokenImpl"
    assert {"gitlab", "gitlab-main"} <= set(connections)


def test_casc_values_come_from_variables_both_stacks_pass() -> None:
    casc = _casc()
    leaves = list(secret_leaves(casc))
    assert len(leaves) >= 9
    for key, value in leaves:  # every value under a secret-looking key is an interpolation
        assert re.fullmatch(r"\$\{[A-Z_]+\}", value), (key, value)
    for kind in casc["credentials"]["system"]["domainCredentials"][0]["credentials"]:
        body = next(iter(kind.values()))
        for field in ("username", "password", "secret", "apiToken"):
            if field in body:
                assert re.fullmatch(r"\$\{[A-Z_]+\}", body[field]), (body["id"], field)
    variables = {
        v for leaf in strings(casc) for v in re.findall(r"\$\{([A-Z_]+)(?::-[^}]*)?\}", leaf)
    }
    for name in ("compose.socket.yml", "compose.dind.yml"):
        env = load(name)["services"]["jenkins"]["environment"]
        assert variables <= set(env), (name, sorted(variables - set(env)))
    users = casc["jenkins"]["securityRealm"]["local"]["users"]
    assert users[0]["password"] == "${JENKINS_ADMIN_PASSWORD}"
    global_env = {
        e["key"]: e["value"] for e in casc["jenkins"]["globalNodeProperties"][0]["envVars"]["env"]
    }  # controller variables only reach build steps as build variables (jenkins.md "Environment")
    assert global_env["CONVEYOR_DEPLOY_HOST"] == "${CONVEYOR_DEPLOY_HOST:-}"


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
        "plain-credentials",  # `string` (secret text) credentials in casc.yaml
        "timestamper",
        "git",
    }
    dockerfile = (DIND / "jenkins" / "Dockerfile").read_text()
    froms = [line for line in dockerfile.splitlines() if line.startswith("FROM")]
    assert froms == ["FROM jenkins/jenkins:lts-jdk17"]
    assert "jenkins-plugin-cli --plugin-file" in dockerfile
    assert set(_casc()) <= {"jenkins", "credentials", "unclassified", "security", "tool"}


def test_agent_dockerfile_takes_the_cli_from_where_docker_cli_has_it() -> None:
    dockerfile = (DIND / "agent" / "Dockerfile").read_text()
    assert "COPY --from=cli /usr/local/bin/docker /usr/local/bin/docker" in dockerfile
    assert "/usr/bin/docker" not in dockerfile


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


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


# ----------------------------------------------------------------------------------- the stand-in


def dind_extra(client: docker.DockerClient) -> dict[str, Any]:
    """``privileged: true`` as in the compose file, or docker-here.md's fallback where refused."""
    if not privileged_refused(client):
        return {"privileged": True}
    fallback = run_kwargs(DindOptions().fallback_args)
    return {
        "cap_add": fallback["cap_add"],
        "cap_drop": fallback["cap_drop"],
        "security_opt": fallback["security_opt"],
        "volumes": {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
    }


def start_daemon(
    client: docker.DockerClient,
    name: str,
    *,
    environment: dict[str, str],
    volumes: dict[str, dict[str, str]] | None = None,
    command: list[str] | None = None,
    **kwargs: Any,
) -> Any:
    extra = dind_extra(client)
    return client.containers.run(
        "docker:dind",
        ["--storage-driver=vfs", *(command or [])],
        name=name,
        detach=True,
        environment=environment,
        volumes={**(volumes or {}), **extra.pop("volumes", {})},
        **extra,
        **kwargs,
    )


def daemon_args(container: Any) -> list[str]:
    """dockerd's command line: the entrypoint execs it as PID 1."""
    raw = container.exec_run(["cat", "/proc/1/cmdline"]).output
    return [a.decode() for a in raw.split(b"\0") if a]


def wait_args(container: Any, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        assert container.status in ("created", "running"), container.logs(tail=30).decode()
        args = daemon_args(container) if container.status == "running" else []
        if args and args[0].endswith("dockerd"):
            return args
        time.sleep(0.2)
    raise AssertionError("dockerd did not start")


@dataclass
class Sidecar:
    """compose.dind.yml's ``docker`` service, run for real on a test network."""

    container: Any
    network: Any
    volumes: dict[str, str]  # compose volume name -> engine volume name
    port: int  # a deploy port the sidecar publishes on the host
    certs: Path  # the client certificates, copied out for the test process
    client: docker.DockerClient  # the test's own TLS client of the sidecar


def _copy_out(container: Any, path: str, dest: Path) -> None:
    chunks, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                (dest / Path(member.name).name).write_bytes(handle.read())


@pytest.fixture(scope="module")
def sidecar(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sidecar]:
    prefix = f"{PREFIX}-{secrets.token_hex(4)}"
    compose = load("compose.dind.yml")
    service = compose["services"]["docker"]
    volumes = {source: f"{prefix}-{source}" for source in compose["volumes"]}
    binds = {}
    for entry in service["volumes"]:
        source, target, *mode = entry.split(":")
        binds[volumes[source]] = {"bind": target, "mode": mode[0] if mode else "rw"}
    port = free_port()
    try:
        network = docker_client.networks.create(f"{prefix}-net")
        container = start_daemon(
            docker_client,
            f"{prefix}-docker",
            environment=service["environment"],
            volumes=binds,
            ports={f"{port}/tcp": port},  # as `ports:` publishes the deploy range
        )
        network.connect(container, aliases=["docker"])
        wait_args(container)
        certs = tmp_path_factory.mktemp("certs")
        client = None
        deadline = time.monotonic() + 90
        while client is None:
            try:
                _copy_out(container, "/certs/client", certs)
                container.reload()
                address = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
                client = EngineAddress(
                    f"tcp://{address}:2376", tls_verify=True, cert_path=str(certs)
                ).connect(timeout=60)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield Sidecar(container, network, volumes, port, certs, client)
    finally:
        remove_prefixed(docker_client, prefix)


def test_standin_mirrors_the_official_entrypoint_with_tls(
    docker_client: docker.DockerClient,
    sidecar: Sidecar,
    unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = daemon_args(sidecar.container)
    # dockerd-entrypoint.sh: the unix socket, tcp://0.0.0.0:2376 and --tlsverify with the server
    # certificates; no other tcp host
    assert args[1:4] == [
        "--host=unix:///var/run/docker.sock",
        "--host=tcp://0.0.0.0:2376",
        "--tlsverify",
    ]
    assert "--tlscacert" in args and "/certs/server/ca.pem" in args
    assert [a for a in args if a.startswith("--host=tcp")] == ["--host=tcp://0.0.0.0:2376"]
    modes = sidecar.container.exec_run(
        [
            "stat",
            "-c",
            "%n %a",
            "/certs/client/key.pem",
            "/certs/client/cert.pem",
            "/certs/server/key.pem",
        ]
    ).output.decode()
    assert "/certs/client/key.pem 644" in modes  # uid 1000 must read it (official: chmod 0644)
    assert "/certs/server/key.pem 600" in modes  # openssl's default, untouched
    # a uid-1000 client with HOME=/ (Jenkins' container user) reaches the daemon over TLS by name
    env = {
        "DOCKER_HOST": "tcp://docker:2376",
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": "/certs/client",
        "HOME": "/",
    }
    certs = {sidecar.volumes["dind_certs_client"]: {"bind": "/certs/client", "mode": "ro"}}

    def probe(command: list[str], environment: dict[str, str]) -> tuple[int, str]:
        container = docker_client.containers.run(
            "docker:cli",
            command,
            user="1000:1000",
            environment=environment,
            volumes=certs,
            network=sidecar.network.name,
            detach=True,
            name=unique(f"probe-{secrets.token_hex(2)}"),
        )
        try:
            code = int(container.wait(timeout=60)["StatusCode"])
            return code, container.logs().decode()
        finally:
            container.remove(force=True)

    code, out = probe(["docker", "version", "--format", "{{.Server.Version}}"], env)
    assert code == 0 and re.fullmatch(r"\d+\.\d+\.\d+\S*\n", out), out
    code, _ = probe(["docker", "-H", "tcp://docker:2376", "version"], {"HOME": "/"})
    assert code != 0  # without the client certificate: refused
    # the server certificate also names the container's address (IP SANs, as the official one's),
    # and the engine's CA is used even where REQUESTS_CA_BUNDLE names another (psf/requests#3829)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    address = sidecar.container.attrs["NetworkSettings"]["Networks"][sidecar.network.name]
    engine = EngineAddress(
        f"tcp://{address['IPAddress']}:2376", tls_verify=True, cert_path=str(sidecar.certs)
    )
    assert engine.connect(timeout=30).version()["Version"]


def test_standin_without_tls_listens_on_2375_and_a_second_tcp_host_kills_it(
    docker_client: docker.DockerClient, unique: Callable[[str], str]
) -> None:
    plain = start_daemon(docker_client, unique("plain"), environment={"DOCKER_TLS_CERTDIR": ""})
    args = wait_args(plain)
    assert args[1:3] == ["--host=unix:///var/run/docker.sock", "--host=tcp://0.0.0.0:2375"]
    assert "--tlsverify" not in args and not any("2376" in a for a in args)
    # what the old rendered Jenkinsfile did (issue 11 item 3): one more tcp host on 2375
    twice = start_daemon(
        docker_client,
        unique("twice"),
        environment={"DOCKER_TLS_CERTDIR": ""},
        command=["--host=tcp://127.0.0.1:2375"],
    )
    assert twice.wait(timeout=90)["StatusCode"] != 0
    assert "address already in use" in twice.logs().decode()


def resolved_command(service: dict[str, Any]) -> list[str]:
    """entrypoint + command of a resolved service, with compose's ``$$`` escapes undone."""
    return [part.replace("$$", "$") for part in [*service["entrypoint"], *service["command"]]]


def test_agent_images_service_loads_the_agent_into_the_sidecar(
    docker_client: docker.DockerClient,
    sidecar: Sidecar,
    agent_image: str,
    unique: Callable[[str], str],
) -> None:
    service = resolved("compose.dind.yml", CONVEYOR_AGENT_IMAGE=agent_image)["services"][
        "agent-images"
    ]
    binds = {}
    for entry in service["volumes"]:
        source, target, *mode = entry.split(":")
        binds[sidecar.volumes.get(source, source)] = {
            "bind": target,
            "mode": mode[0] if mode else "rw",
        }
    loader = docker_client.containers.run(
        service["image"],
        resolved_command(service)[2:],
        entrypoint=service["entrypoint"],
        environment=service["environment"],
        volumes=binds,
        network=sidecar.network.name,
        detach=True,
        name=unique("agent-images"),
    )
    assert loader.wait(timeout=600)["StatusCode"] == 0, loader.logs().decode()
    assert sidecar.client.images.get(agent_image).id == docker_client.images.get(agent_image).id
    # and docker-workflow can start it there, as Jenkins' user
    out = sidecar.client.containers.run(
        agent_image,
        ["conveyor", "--version"],
        user="1000:1000",
        environment={"HOME": "/"},
        remove=True,
    )
    assert b"conveyor" in out


def test_agents_deploy_to_the_sidecar_over_tls_and_every_agent_sees_the_history(
    docker_client: docker.DockerClient,
    sidecar: Sidecar,
    agent_image: str,
    unique: Callable[[str], str],
    tmp_path: Path,
) -> None:
    """The compose.dind.yml deploy path: CONVEYOR_DEPLOY_HOST=tcp://docker:2376 with the shared
    client certificates, from agent containers as uid 1000 with HOME=/; the app answers on the host
    through the sidecar's published port; rollback from yet another container."""
    name, repo = unique("dindapp"), unique("app")
    v1, v2 = f"{repo}:v1", f"{repo}:v2"
    build_app(docker_client, v1, "v1")
    build_app(docker_client, v2, "v2")
    copy_images(
        docker_client, sidecar.client, [v1, v2, "busybox:latest"]
    )  # as a registry pull would
    (tmp_path / "conveyor.yml").write_text(
        "apiVersion: conveyor/v1\nproject: demo/dind-app\njenkins:\n  job: demo/dind-app\n"
        "  agent: {docker: dind}\nstages:\n  - name: deploy\n    deploy:\n"
        f"      name: {name}\n      ports: ['{sidecar.port}:8080']\n"
        "      health: {http: /healthz, timeout: 20s, interval: 200ms}\n"
    )
    tmp_path.chmod(0o755)
    jenkins_env = load("compose.dind.yml")["services"]["jenkins"]["environment"]
    env = {k: v for k, v in jenkins_env.items() if k.startswith("CONVEYOR_DEPLOY_")}
    env |= {"HOME": "/", "DOCKER_HOST": "tcp://127.0.0.1:9"}  # a stage daemon long gone

    def agent(*args: str) -> tuple[int, str, str]:
        container = docker_client.containers.create(
            agent_image,
            ["conveyor", *args],
            user="1000:1000",
            environment=env,
            volumes={
                sidecar.volumes["dind_certs_client"]: {"bind": "/certs/client", "mode": "ro"},
                str(tmp_path): {"bind": "/spec", "mode": "ro"},
            },
            working_dir="/spec",
            network=sidecar.network.name,
        )
        try:
            container.start()
            code = int(container.wait(timeout=600)["StatusCode"])
            return (
                code,
                container.logs(stderr=False).decode(),
                container.logs(stdout=False).decode(),
            )
        finally:
            container.remove(force=True)

    url = f"http://127.0.0.1:{sidecar.port}/version"
    code, out, err = agent("deploy", "conveyor.yml", "--image", v1, "--json")
    assert code == 0, err
    assert json.loads(out)["endpoints"]
    assert wait_body(url, "v1") == "v1"  # from the host, through the sidecar's published port
    code, _, err = agent("deploy", "conveyor.yml", "--image", v2)
    assert code == 0, err
    assert get(url) == (200, "v2")
    code, out, err = agent("rollback", "conveyor.yml", "--json")
    assert code == 0, err
    assert json.loads(out)["image"] == v1 and get(url) == (200, "v1")
    code, out, err = agent("history", "conveyor.yml", "--json")
    assert code == 0, err
    assert [(r["action"], r["image"]) for r in json.loads(out)] == [
        ("rollback", v1),
        ("deploy", v2),
        ("deploy", v1),
    ]
    # all of it on the sidecar, nothing on the host's engine
    assert DeployHistory(sidecar.client, name).records()[0].action == "rollback"
    assert not DeployHistory(docker_client, name).exists()
    assert not docker_client.containers.list(all=True, filters={"label": f"conveyor.deploy={name}"})


def test_socket_stack_workspace_paths_exist_for_the_hosts_engine(
    docker_client: docker.DockerClient,
    agent_image: str,
    unique: Callable[[str], str],
    tmp_path: Path,
) -> None:
    """compose.socket.yml binds Jenkins' home at the same path on the host. An agent container
    with that mount (docker-workflow gives it --volumes-from) deploys `./conf:/conf:ro` from a
    workspace: the host's engine finds the directory, because it is the same path there."""
    binds = mounts(load("compose.socket.yml")["services"]["jenkins"])
    assert binds["/var/jenkins_home"] == "/var/jenkins_home"
    home = tmp_path / "jenkins_home"  # stands in for /var/jenkins_home, bound the same way
    workspace = home / "workspace" / "app"
    (workspace / "conf").mkdir(parents=True)
    (workspace / "conf" / "settings.txt").write_text("from-the-workspace\n")
    name, image = unique("wsapp"), f"{unique('app')}:v1"
    build_app(docker_client, image, "v1")
    (workspace / "conveyor.yml").write_text(
        "apiVersion: conveyor/v1\nproject: demo/ws\njenkins: {job: demo/ws}\nstages:\n"
        f"  - name: deploy\n    deploy:\n      name: {name}\n      strategy: recreate\n"
        "      volumes: ['./conf:/conf:ro']\n"
        "      health: {cmd: [grep, -q, from-the-workspace, /conf/settings.txt], timeout: 10s}\n"
    )
    for path in (tmp_path, home, home / "workspace", workspace, workspace / "conf"):
        path.chmod(0o755)
    (workspace / "conf" / "settings.txt").chmod(0o644)
    logs = docker_client.containers.run(
        agent_image,
        ["conveyor", "deploy", "conveyor.yml", "--image", image],
        user="1000:1000",
        group_add=[str(Path("/var/run/docker.sock").stat().st_gid)],
        environment={"HOME": "/"},
        volumes={
            str(home): {"bind": str(home), "mode": "rw"},
            "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
        },
        working_dir=str(workspace),
        name=unique("agent"),
        stderr=True,
    )
    try:
        assert b"deployed " in logs, logs
        app = docker_client.containers.get(f"{name}-blue")
        mount = next(m for m in app.attrs["Mounts"] if m["Destination"] == "/conf")
        assert mount["Source"] == str(workspace / "conf")
        assert app.exec_run(["cat", "/conf/settings.txt"]).output == b"from-the-workspace\n"
    finally:
        remove_deploy(docker_client, name, volumes=True)
