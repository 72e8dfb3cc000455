from tests.docker.fixtures import agent_image, docker_client, registry, unique  # noqa: F401
