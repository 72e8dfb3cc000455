import pytest

pytest_plugins = [
    "tests.emulators.fixtures",
    "tests.groovy.harness",
    "tests.docker.fixtures",
    "tests.emulators.kubernetes_fixtures",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last. pytest-playwright's ``playwright`` fixture is session-scoped and its
    sync API keeps an event loop running on the main thread from the first browser test to the end
    of the session, so a later test calling ``asyncio.run()`` (uvicorn in-process, the attack
    clients) would fail with "cannot be called from a running event loop". The sort is stable."""
    items.sort(key=lambda item: "page" in getattr(item, "fixturenames", ()))
