pytest_plugins = [
    "tests.emulators.fixtures",
    "tests.emulators.kubernetes_fixtures",
    "tests.groovy.harness",
    "tests.docker.fixtures",
]
