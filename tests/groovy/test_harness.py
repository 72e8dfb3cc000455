"""The Groovy 2.4.21 harness itself: it must reject what Jenkins' Groovy rejects and read literals exactly."""

from __future__ import annotations

from conveyor.jenkins import groovy
from tests.groovy.harness import GroovyParser


def test_reads_literals_exactly(groovy_parser: GroovyParser) -> None:
    values = [
        "plain",
        "it's",
        "a\\b",
        "${x} $y",
        "'''",
        "line\nbreak",
        "\u00e9\U0001f600",
        "\\u0041",
    ]
    text = "\n".join(f"x{i} = {groovy.literal(v)}" for i, v in enumerate(values))
    parsed = groovy_parser.parse_text(text)
    assert parsed.ok, parsed.errors
    assert [s for s in parsed.strings if s in values] == values
    assert [item["value"]["const"] for item in parsed.tree] == values


def test_rejects_syntax_errors_with_location(groovy_parser: GroovyParser) -> None:
    parsed = groovy_parser.parse_text("pipeline {\n  stage('a' {\n}\n")
    assert not parsed.ok
    assert any("line" in e for e in parsed.errors)


def test_rejects_groovy_3_only_syntax(groovy_parser: GroovyParser) -> None:
    # lambdas and `!in` are Groovy 3; Jenkins' Groovy 2.4 refuses them
    assert not groovy_parser.parse_text("def f = (x) -> x + 1\n").ok
    assert not groovy_parser.parse_text("assert 1 !in [2, 3]\n").ok


def test_reports_gstrings_and_calls(groovy_parser: GroovyParser) -> None:
    parsed = groovy_parser.parse_text("sh \"echo ${env.X}\"\nfoo(a: 'b') { bar 1 }\n")
    assert parsed.ok
    assert "gstring" in parsed.tree[0]["args"][0]
    call = parsed.tree[1]
    assert call["call"] == "foo" and call["args"][1]["closure"][0]["call"] == "bar"
