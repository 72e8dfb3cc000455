pytest_plugins = ["tests.emulators.fixtures", "tests.groovy.harness", "tests.docker.fixtures"]
