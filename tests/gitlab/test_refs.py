"""conveyor.gitlab.refs against the real ``git check-ref-format`` (the oracle) and GitLab's rules."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from conveyor.gitlab import refs
from conveyor.gitlab.refs import (
    is_zero_sha,
    project_path_problem,
    refname_problem,
    sha_problem,
)


def git_accepts(refname: str) -> bool:
    """``git check-ref-format <refname>`` exits 0 (git's own verdict)."""
    done = subprocess.run(["git", "check-ref-format", refname], capture_output=True)
    assert done.returncode in (0, 1), done.stderr  # 129 would mean git took it as an option
    return done.returncode == 0


# Documentation/git-check-ref-format.txt, rule by rule, and t1402-check-ref-format.sh's cases.
TABLE = [
    ("refs/heads/main", True),
    ("refs/heads/feature/login", True),
    ("refs/tags/v1.0.0", True),
    ("refs/heads/foo./bar", True),
    ("refs/heads/foo@bar", True),
    ("refs/heads/é-ü", True),  # non-ASCII bytes are allowed
    ("refs/heads/-dash", True),  # allowed in a full ref (not as a `--branch` shorthand)
    ("foo", False),  # rule 2: one level
    ("refs/heads/.hidden", False),  # rule 1
    ("refs/heads/x.lock", False),  # rule 1
    ("refs/heads/x.lock/y", False),
    ("refs/heads/a..b", False),  # rule 3
    ("refs/heads/a b", False),  # rule 4
    ("refs/heads/a\tb", False),
    ("refs/heads/a\x7fb", False),
    ("refs/heads/a~1", False),
    ("refs/heads/a^", False),
    ("refs/heads/a:b", False),
    ("refs/heads/a?", False),  # rule 5
    ("refs/heads/a*", False),
    ("refs/heads/a[b", False),
    ("/refs/heads/a", False),  # rule 6
    ("refs/heads/a/", False),
    ("refs//heads/a", False),
    ("refs/heads/a.", False),  # rule 7
    ("refs/heads/v@{ation", False),  # rule 8
    ("@", False),  # rule 9
    ("refs/heads/a\\b", False),  # rule 10
]


@pytest.mark.parametrize(("refname", "valid"), TABLE)
def test_refname_table_agrees_with_the_documentation_and_git(refname: str, valid: bool) -> None:
    assert (refname_problem(refname) is None) is valid
    assert git_accepts(refname) is valid


def test_refnames_git_cannot_even_be_asked_about_are_refused() -> None:
    assert refname_problem("refs/heads/a\x00b") == "contains the forbidden character '\\x00'"
    assert refname_problem("refs/heads/\ud800") == "is not valid UTF-8 text"


REF_ALPHABET = st.characters(
    codec="utf-8", exclude_characters="\x00", max_codepoint=0x2FF
) | st.sampled_from([*list("/.@{}-*?[~^: \\\t"), ".lock", "refs/", "heads/", "/."])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(REF_ALPHABET, max_size=12).map("".join))
@example("refs/heads/--upload-pack=touch /tmp/PWNED")
@example("refs/heads/a/.b")
@example("refs/heads/@")
@example("refs/heads/a@{1}")
def test_refname_problem_is_git_check_ref_format(refname: str) -> None:
    """Any string git can be asked about: conveyor's verdict is git's."""
    assume(refname and not refname.startswith("-"))  # git would read those as its options
    assert (refname_problem(refname) is None) is git_accepts(refname), refname


@pytest.mark.parametrize(
    ("sha", "valid"),
    [
        ("da1560886d4f094c3e6c9ef40349f7d38b5d27d7", True),
        ("a" * 64, True),
        ("0" * 40, True),
        ("DA1560886D4F094C3E6C9EF40349F7D38B5D27D7", False),  # GitLab sends lower case
        ("da15608", False),  # abbreviations are revs, not ids
        ("a" * 41, False),
        ("a" * 63, False),
        ("HEAD~1", False),
        ("main", False),
        ("--upload-pack=touch /tmp/x", False),
        ("g" * 40, False),
        ("da1560886d4f094c3e6c9ef40349f7d38b5d27d7\n", False),
        ("", False),
    ],
)
def test_shas_are_full_object_ids(sha: str, valid: bool) -> None:
    assert (sha_problem(sha) is None) is valid


@given(st.text(max_size=70))
def test_a_valid_sha_is_only_ever_hex(sha: str) -> None:
    if sha_problem(sha) is None:
        assert len(sha) in (40, 64) and set(sha) <= set("0123456789abcdef")


def test_zero_shas_of_both_hash_functions() -> None:
    assert is_zero_sha("0" * 40) and is_zero_sha("0" * 64)
    assert not is_zero_sha("0" * 39) and not is_zero_sha(None) and not is_zero_sha("")


@pytest.mark.parametrize(
    ("path", "valid"),
    [
        ("demo/app", True),
        ("TomaszKolek/x", True),
        ("group/sub.group/my_project-2", True),
        ("app", False),
        ("demo/../etc", False),
        ("demo/./app", False),
        ("demo//app", False),
        ("/demo/app", False),
        ("demo/app.git", False),
        ("demo/app.atom", False),
        ("demo/-app", False),
        ("demo/app?x=1", False),
        ("demo/app#x", False),
        ("demo/a%2e%2e", False),
        ("demo/app@evil.example", False),
        ("demo/app b", False),
        ("demo/ápp", False),
    ],
)
def test_project_paths_follow_gitlabs_path_format(path: str, valid: bool) -> None:
    assert (project_path_problem(path) is None) is valid


def test_verdicts_are_cached_for_short_names_only() -> None:
    """A branch's pushes check the same ref again and again (kept); a hostile payload's long
    names are checked each time and never fill the cache."""
    refs._cached_refname_problem.cache_clear()
    assert refname_problem("refs/heads/main") is None
    assert refname_problem("refs/heads/main") is None
    assert refs._cached_refname_problem.cache_info().hits == 1
    long_bad = "refs/heads/" + "a" * 300 + "..b"
    assert refname_problem(long_bad) == "contains '..'"
    assert refname_problem("refs/heads/" + "b" * 300) is None
    assert refs._cached_refname_problem.cache_info().currsize == 1
