pytest_plugins = [
    "tests.emulators.fixtures",
    "tests.groovy.harness",
    "tests.docker.fixtures",
    "tests.emulators.kubernetes_fixtures",
]
