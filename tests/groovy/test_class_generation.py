"""Item 12 of issue 11: a Jenkinsfile must survive Groovy's class generation, not only its parser.

Groovy 2.4.21 (Jenkins' version) refuses a string constant longer than 65,535 code units when it
writes the class ("String too long", the class file's CONSTANT_Utf8 limit): a Jenkinsfile that
embeds a large spec as one literal never starts. The renderer writes the spec as a concatenation of
literals of at most ``MAX_LITERAL_BYTES``; this compiles rendered files all the way to bytecode
(``FileSystemCompiler``, every phase) with Debian's groovy 2.4.21.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conveyor.jenkins import groovy
from conveyor.jenkins.jenkinsfile import spec_document
from conveyor.jenkins.render import render
from tests.groovy.declarative import find_calls, named_node, plus_literals
from tests.groovy.harness import GROOVY_JAR, GroovyParser
from tests.jenkins.specs import base_data, spec_of

pytestmark = pytest.mark.skipif(
    shutil.which("java") is None or not GROOVY_JAR.is_file(),
    reason="groovy 2.4.21 (apt-get install groovy) not installed",
)


def _compile(tmp_path: Path, name: str, text: str) -> subprocess.CompletedProcess[str]:
    source = tmp_path / f"{name}.groovy"
    source.write_text(text, encoding="utf-8")
    java = shutil.which("java")
    assert java is not None
    return subprocess.run(
        [
            java,
            "-cp",
            str(GROOVY_JAR),
            "org.codehaus.groovy.tools.FileSystemCompiler",
            "-d",
            str(tmp_path / "classes"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _big_spec() -> dict[str, object]:
    """A spec whose document is well over 64 KB: many stages with long commands."""
    stages = [
        {"name": f"step-{i}", "run": [f"echo '{i:04d}' " + "x" * 900, "echo \\\\ it's"]}
        for i in range(90)
    ]
    return base_data(stages=stages)


def test_a_large_spec_compiles_to_a_class(tmp_path: Path, groovy_parser: GroovyParser) -> None:
    spec = spec_of(_big_spec())
    document = spec_document(spec)
    assert len(document) > 80_000
    text = render(spec).jenkinsfile
    done = _compile(tmp_path, "Jenkinsfile", text)
    assert done.returncode == 0, done.stderr[-2000:]
    assert list((tmp_path / "classes").glob("*.class"))
    parsed = groovy_parser.parse_text(text)
    (write,) = find_calls(parsed.tree, "writeFile")
    parts = plus_literals(named_node(write, "text"))
    assert len(parts) > 1 and "".join(parts) == document
    assert max(len(p.encode("utf-8")) for p in parts) <= groovy.MAX_LITERAL_BYTES


def test_one_literal_of_the_same_spec_does_not(tmp_path: Path) -> None:
    """The old rendering (the whole document as one literal) fails class generation: the limit
    this guards against is real in Groovy 2.4.21."""
    document = spec_document(spec_of(_big_spec()))
    done = _compile(tmp_path, "OneLiteral", f"def text = {groovy.literal(document)}\n")
    assert done.returncode != 0
    assert "String too long" in done.stdout + done.stderr


def test_concatenation_splits_between_escapes() -> None:
    value = "\\'" * 40 + "\U0001f600" * 10 + "plain"
    text = groovy.concatenation(value, max_bytes=20)
    parts = text.split(" + ")
    assert all(len(p) <= 20 for p in parts)
    assert "".join(p[1:-1] for p in parts) == groovy.literal(value)[1:-1]
