"""A long-running Groovy 2.4.21 parser for the tests: one JVM per test session, many files.

``parse_server.groovy`` (beside this file) runs in Debian's ``groovy-all.jar`` (the Groovy version Jenkins
runs), reads file paths on stdin and answers one JSON line per file: parse errors, every String constant
of the AST, and the statement tree (see that file). The ``groovy_parser`` fixture starts it once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

GROOVY_JAR = Path("/usr/share/java/groovy-all.jar")


def run_script(script: Path) -> str:
    """Run ``script`` with Debian's Groovy 2.4.21 (Jenkins' version) and return its standard output;
    fails the test, with the end of standard error, when the script fails."""
    java = shutil.which("java")
    assert java is not None
    done = subprocess.run(
        [java, "-cp", str(GROOVY_JAR), "groovy.ui.GroovyMain", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


SERVER = Path(__file__).with_name("parse_server.groovy")


@dataclass(frozen=True)
class Parsed:
    """What Groovy 2.4.21 read from one file."""

    path: str
    ok: bool
    errors: list[str]
    strings: list[str]
    tree: list[Any]
    methods: list[Any]


class GroovyParser:
    """One JVM running parse_server.groovy; parse files or texts through it."""

    def __init__(self) -> None:
        java = shutil.which("java")
        if java is None or not GROOVY_JAR.is_file():
            raise RuntimeError(
                f"Groovy parser needs java and {GROOVY_JAR} (apt-get install groovy; ./dev.sh does it)"
            )
        self._tmp = tempfile.TemporaryDirectory(prefix="conveyor-groovy-")
        self._count = 0
        self._proc = subprocess.Popen(
            [java, "-Xshare:auto", "-cp", str(GROOVY_JAR), "groovy.ui.GroovyMain", str(SERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="ascii",
        )

    def parse_file(self, path: Path) -> Parsed:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        if "\n" in str(path):
            raise ValueError("paths with newlines cannot be sent to the parser")
        self._proc.stdin.write(str(path) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            err = self._proc.stderr.read() if self._proc.stderr else ""
            raise RuntimeError(f"Groovy parser exited: {err[-2000:]}")
        data = json.loads(line)
        return Parsed(
            path=data["path"],
            ok=data["ok"],
            errors=data["errors"],
            strings=data["strings"],
            tree=data["tree"],
            methods=data.get("methods", []),
        )

    def parse_text(self, text: str) -> Parsed:
        """Parse ``text`` (written UTF-8 to a scratch file)."""
        self._count += 1
        path = Path(self._tmp.name) / f"script{self._count}.groovy"
        path.write_text(text, encoding="utf-8")
        try:
            return self.parse_file(path)
        finally:
            path.unlink()

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()
        self._tmp.cleanup()


@pytest.fixture(scope="session")
def groovy_parser() -> Iterator[GroovyParser]:
    """The session's Groovy 2.4.21 parser (one JVM)."""
    parser = GroovyParser()
    try:
        yield parser
    finally:
        parser.close()
