"""Wildcards: the compiled regex agrees with a straightforward reference matcher."""

from __future__ import annotations

from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.pipeline.match import glob_to_regex, matches


def reference(name: str, pattern: str) -> bool:
    """Recursive definition: ** any run, * any run without '/', ? one char but '/'."""

    @cache
    def go(i: int, j: int) -> bool:
        if j == len(pattern):
            return i == len(name)
        if pattern.startswith("**", j):
            return any(go(k, j + 2) for k in range(i, len(name) + 1))
        if pattern[j] == "*":
            k = i
            while True:
                if go(k, j + 1):
                    return True
                if k == len(name) or name[k] == "/":
                    return False
                k += 1
        if i < len(name) and (pattern[j] == name[i] or (pattern[j] == "?" and name[i] != "/")):
            return go(i + 1, j + 1)
        return False

    return go(0, 0)


ALPHABET = st.sampled_from(list("ab/.-*?[](){}+^$|\\ é\n"))


@settings(max_examples=400, deadline=None)
@given(st.text(ALPHABET, max_size=8), st.text(ALPHABET, max_size=8))
def test_regex_matches_like_the_reference(pattern: str, name: str) -> None:
    name = name.replace("*", "").replace("?", "")
    assert matches(name, [pattern]) == reference(name, pattern), glob_to_regex(pattern)


def test_examples() -> None:
    assert matches("main", ["main"]) and not matches("mainline", ["main"])
    assert matches("release/1.2", ["release/*"]) and not matches("release/1/2", ["release/*"])
    assert matches("feature/a/b", ["feature/**"]) and matches("x", ["**"])
    assert not matches("main", [])
    assert matches("a.b", ["a.b"]) and not matches("axb", ["a.b"])
