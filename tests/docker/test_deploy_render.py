"""Pure parts of deploys (no engine): proxy config, mounts, compose rendering, swarm specs, history."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.docker.deploy.compose import render_compose
from conveyor.docker.deploy.engine import deploy_engine
from conveyor.docker.deploy.model import ImageRef, resolve_env
from conveyor.docker.deploy.mounts import (
    HostPaths,
    PortMap,
    check_bind_sources,
    engine_source,
    parse_port,
    parse_ports,
    parse_volume,
)
from conveyor.docker.deploy.placement import roots_of
from conveyor.docker.deploy.proxy import caddy_config, upstream_of
from conveyor.docker.deploy.swarm import healthcheck, memory_bytes, service_kwargs
from conveyor.docker.engine import EngineAddress
from conveyor.errors import DeployError
from conveyor.spec.model import Deploy, Health
from tests.docker.deploy_support import request

IMAGE = ImageRef(
    ref="reg.example/app:v1", image_id="sha256:" + "a" * 64, digest="sha256:" + "b" * 64
)


def test_caddy_config_proxies_every_port_to_the_upstream() -> None:
    ports = [PortMap(8080, 80), PortMap(None, 9000)]
    config = caddy_config(ports, "web-green")
    servers = config["apps"]["http"]["servers"]
    assert servers["port80"]["listen"] == [":80"]
    assert servers["port9000"]["routes"][0]["handle"][0]["upstreams"] == [
        {"dial": "web-green:9000"}
    ]
    assert config["admin"]["listen"] == "localhost:2019"  # never published
    assert upstream_of(config) == "web-green"


def test_caddy_config_without_upstream_answers_503() -> None:
    config = caddy_config([PortMap(8080, 80)], None)
    handler = config["apps"]["http"]["servers"]["port80"]["routes"][0]["handle"][0]
    assert (handler["handler"], handler["status_code"]) == ("static_response", 503)
    assert upstream_of(config) is None
    with pytest.raises(DeployError, match="udp"):
        caddy_config([PortMap(53, 53, "udp")], "dns-blue")


def test_ports_and_volumes_parse() -> None:
    assert parse_port("8080:80") == PortMap(8080, 80)
    assert parse_port("80") == PortMap(None, 80)
    assert parse_port("5353:53/udp") == PortMap(5353, 53, "udp")
    with pytest.raises(DeployError, match="twice"):
        parse_ports(["8080:80", "8080:81"])
    work = Path("/srv/checkout")
    named = parse_volume("data:/var/lib/app", deploy_name="web", workdir=work)
    assert (named.kind, named.source, named.volume, named.read_only) == (
        "volume",
        "web_data",
        "data",
        False,
    )
    bind = parse_volume("./conf:/etc/app:ro", deploy_name="web", workdir=work)
    assert (bind.kind, bind.source, bind.read_only) == ("bind", "/srv/checkout/conf", True)
    absolute = parse_volume("/var/log:/logs:rw", deploy_name="web", workdir=work)
    assert (absolute.kind, absolute.source, absolute.read_only) == ("bind", "/var/log", False)


JENKINS = HostPaths(
    roots=(
        ("/var/jenkins_home", "/var/lib/docker/volumes/jenkins-home/_data"),
        ("/var/jenkins_home/caches", "/srv/caches"),
        ("/certs", "/etc/ci/certs"),
    ),
    engine="unix:///var/run/docker.sock",
)


def test_bind_sources_under_a_mount_of_conveyors_container_become_engine_host_paths() -> None:
    work = Path("/var/jenkins_home/workspace/demo/hello-web")
    bind = parse_volume("./conf:/etc/hello:ro", deploy_name="web", workdir=work, paths=JENKINS)
    assert (bind.kind, bind.read_only) == ("bind", True)
    assert bind.source == "/var/lib/docker/volumes/jenkins-home/_data/workspace/demo/hello-web/conf"
    assert bind.local == str(work / "conf")  # what exists here, checked before deploying
    # the deepest mount wins; the mount point itself maps to its source
    assert engine_source("/var/jenkins_home/caches/pip", JENKINS) == "/srv/caches/pip"
    assert engine_source("/certs", JENKINS) == "/etc/ci/certs"
    assert engine_source("/certsx/a", JENKINS) == "/certsx/a"  # a sibling, not under /certs
    # under no mount (the container's own filesystem, or an absolute host path): unchanged
    assert engine_source("/srv/app/conf", JENKINS) == "/srv/app/conf"
    # outside a container nothing changes
    plain = parse_volume("./conf:/etc/hello", deploy_name="web", workdir=work)
    assert (plain.source, plain.local) == (str(work / "conf"), "")
    named = parse_volume("data:/data", deploy_name="web", workdir=work, paths=JENKINS)
    assert (named.kind, named.source) == ("volume", "web_data")


def test_a_workspace_bind_cannot_reach_another_engine(tmp_path: Path) -> None:
    other = HostPaths(foreign=(str(tmp_path),), engine="tcp://docker:2376 [deploy.engine]")
    with pytest.raises(DeployError) as failed:
        parse_volume("./conf:/etc/hello:ro", deploy_name="web", workdir=tmp_path, paths=other)
    assert "'./conf:/etc/hello:ro'" in failed.value.message
    assert "tcp://docker:2376" in failed.value.message
    assert failed.value.hint is not None and "named volume" in failed.value.hint
    assert "into the image" in failed.value.hint
    outside = parse_volume("/srv/conf:/etc/hello", deploy_name="web", workdir=tmp_path, paths=other)
    assert outside.source == "/srv/conf"


def test_bind_sources_are_checked_where_conveyor_sees_them(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    paths = HostPaths(roots=((str(tmp_path), "/nowhere/on/this/machine"),))
    found = parse_volume("./conf:/c", deploy_name="web", workdir=tmp_path, paths=paths)
    check_bind_sources([found])  # exists here, though not under its engine-host name
    missing = parse_volume("./nope:/n", deploy_name="web", workdir=tmp_path, paths=paths)
    with pytest.raises(DeployError, match=str(tmp_path / "nope")):
        check_bind_sources([missing])


def test_roots_of_inspect_mounts_takes_bind_sources_and_volume_mountpoints() -> None:
    mounts = [
        {"Type": "bind", "Source": "/run/docker.sock", "Destination": "/var/run/docker.sock"},
        {"Type": "volume", "Name": "home", "Source": "", "Destination": "/var/jenkins_home"},
        {"Type": "volume", "Name": "v2", "Source": "/mnt/v2", "Destination": "/v2"},
        {"Type": "tmpfs", "Source": "", "Destination": "/tmp"},
    ]
    roots = roots_of(mounts, lambda name: f"/var/lib/docker/volumes/{name}/_data")
    assert roots == (
        ("/var/run/docker.sock", "/run/docker.sock"),
        ("/var/jenkins_home", "/var/lib/docker/volumes/home/_data"),
        ("/v2", "/mnt/v2"),
    )


def test_secrets_come_from_the_environment_and_are_named_when_missing() -> None:
    deploy = Deploy.model_validate(
        {"name": "web", "ports": ["80"], "env": {"A": "1"}, "secrets": {"TOKEN": "cred-token"}}
    )
    assert resolve_env(deploy, {"TOKEN": "t0p"}) == {"A": "1", "TOKEN": "t0p"}
    with pytest.raises(DeployError) as missing:
        resolve_env(deploy, {})
    assert "TOKEN (credentials 'cred-token')" in missing.value.message


def test_compose_file_keeps_secrets_out_and_wires_services(tmp_path: Path) -> None:
    deploy = Deploy.model_validate(
        {
            "target": "compose",
            "name": "shop",
            "ports": ["8080:80"],
            "env": {"PRICE": "$5"},
            "secrets": {"DB_PASSWORD": "db-cred"},
            "volumes": ["data:/data", "./conf:/conf:ro"],
            "health": {"http": "/healthz", "timeout": "10s", "interval": "2s"},
            "resources": {"cpus": 0.5, "memory": "128M"},
            "services": [
                {
                    "name": "db",
                    "image": "postgres:16",
                    "env": {"POSTGRES_DB": "app", "PGOPTIONS": "-c search_path=$user"},
                    "secrets": {"POSTGRES_PASSWORD": "db-cred"},
                    "volumes": ["pg:/var/lib/postgresql/data"],
                    "health": {"cmd": ["pg_isready"]},
                },
                {"name": "cache", "image": "redis:7"},
            ],
        }
    )
    doc = render_compose(request(deploy, IMAGE.ref, workdir=tmp_path, state=tmp_path), IMAGE)
    app = doc["services"]["app"]
    assert app["image"] == IMAGE.ref
    assert app["environment"] == {"PRICE": "$$5", "DB_PASSWORD": "${DB_PASSWORD}"}
    assert app["ports"] == ["8080:80/tcp"]
    assert app["volumes"] == ["data:/data", f"{tmp_path}/conf:/conf:ro"]
    assert app["healthcheck"]["test"][0] == "CMD-SHELL"
    assert "http://127.0.0.1:80/healthz" in app["healthcheck"]["test"][1]
    assert app["healthcheck"]["retries"] == 5
    assert (app["cpus"], app["mem_limit"]) == (0.5, "128m")
    assert app["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "cache": {"condition": "service_started"},
    }
    assert app["labels"]["conveyor.deploy"] == "shop"
    assert doc["services"]["db"]["healthcheck"]["test"] == ["CMD", "pg_isready"]
    # a service's values are literal like the app's; its secret is the deploy's variable bound to
    # the same credential (compose reads it from its environment, never from the file)
    assert doc["services"]["db"]["environment"] == {
        "POSTGRES_DB": "app",
        "PGOPTIONS": "-c search_path=$$user",
        "POSTGRES_PASSWORD": "${DB_PASSWORD}",
    }
    assert "environment" not in doc["services"]["cache"]
    assert sorted(doc["volumes"]) == ["data", "pg"]


def test_a_service_secret_needs_a_credential_the_deploy_binds() -> None:
    with pytest.raises(
        ValueError, match=r"credential 'other', which deploy\.secrets does not bind"
    ):
        Deploy.model_validate(
            {
                "target": "compose",
                "name": "shop",
                "secrets": {"DB_PASSWORD": "db-cred"},
                "services": [{"name": "db", "image": "postgres:16", "secrets": {"PW": "other"}}],
            }
        )


def test_swarm_service_definition() -> None:
    deploy = Deploy.model_validate(
        {
            "target": "swarm",
            "strategy": "rolling",
            "name": "api",
            "ports": ["8080", "9090:9000"],
            "replicas": 3,
            "placement": ["node.labels.zone==a"],
            "resources": {"cpus": 1.5, "memory": "1g"},
            "restart": "on-failure",
            "health": {"cmd": ["/bin/check"], "timeout": "6s", "interval": "2s"},
        }
    )
    kwargs = service_kwargs(
        request(deploy, IMAGE.ref, workdir=Path("/w"), state=Path("/s")), IMAGE, {}
    )
    assert kwargs["name"] == "api"
    assert kwargs["mode"]["replicated"] == {"Replicas": 3}
    assert kwargs["constraints"] == ["node.labels.zone==a"]
    assert kwargs["update_config"]["Order"] == "start-first"
    assert kwargs["update_config"]["FailureAction"] == "rollback"
    assert kwargs["restart_policy"]["Condition"] == "on-failure"
    ports = kwargs["endpoint_spec"]["Ports"]
    assert ports[0] == {"Protocol": "tcp", "TargetPort": 8080, "PublishMode": "host"}
    assert ports[1]["PublishedPort"] == 9090 and ports[1]["PublishMode"] == "ingress"
    assert kwargs["resources"]["Limits"] == {"NanoCPUs": 1_500_000_000, "MemoryBytes": 1024**3}
    check = healthcheck(Health(cmd=["/bin/check"], timeout="6s", interval="2s"), None)
    assert (check["Test"], check["Retries"]) == (["CMD", "/bin/check"], 3)
    assert memory_bytes("64m") == 64 * 1024**2 and memory_bytes("512") == 512


def test_deploy_engine_order_and_dind_never_uses_the_stage_daemon() -> None:
    plain = Deploy(name="web", ports=["80"])
    pinned = Deploy(name="web", ports=["80"], engine="tcp://apps.example.com:2376")
    stage_env = {"DOCKER_HOST": "tcp://127.0.0.1:2376", "DOCKER_CERT_PATH": "/certs/client"}
    assert deploy_engine(plain, environ=stage_env) == EngineAddress()  # socket: Docker's default
    host = deploy_engine(plain, agent_docker="dind", environ=stage_env)
    assert (host.url, host.cert_path) == ("unix:///var/run/docker.sock", None)
    spec = deploy_engine(pinned, agent_docker="dind", environ=stage_env)
    assert (spec.url, spec.origin, spec.cert_path) == (pinned.engine, "deploy.engine", None)
    tls = {"CONVEYOR_DEPLOY_TLS_VERIFY": "1", "CONVEYOR_DEPLOY_CERT_PATH": "/deploy-certs"}
    env = deploy_engine(pinned, environ={"CONVEYOR_DEPLOY_HOST": "tcp://other:2376", **tls})
    assert (env.url, env.tls_verify, env.cert_path) == ("tcp://other:2376", True, "/deploy-certs")
    flag = deploy_engine(pinned, environ={"CONVEYOR_DEPLOY_HOST": "x"}, override="ssh://me@h")
    assert (flag.url, flag.origin) == ("ssh://me@h", "--engine")
    assert flag.environment()["DOCKER_CERT_PATH"] is None  # the stage's certificates never leak in
    assert EngineAddress().environment() == {}


@pytest.mark.parametrize(
    "engine",
    [
        "tcp://user:pw@h:2376",
        "http://h:2375",
        "tcp://h",
        "tcp://h:2375/x",
        "unix://relative",
        "ssh://-oProxyCommand=sh",
        "tcp://h:2375?tls=0",
        "tcp://h:2375 --tls",
    ],
)
def test_deploy_engine_in_a_spec_must_be_a_plain_engine_address(engine: str) -> None:
    with pytest.raises(ValueError, match="invalid engine"):
        Deploy(name="web", ports=["80"], engine=engine)
