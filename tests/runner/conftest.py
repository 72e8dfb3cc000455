from tests.docker.fixtures import docker_client, registry, unique  # noqa: F401
