"""The one masker (conveyor.masking): no secret value survives, wherever it sits in the text, in
whole texts (the sync's diffs and errors) and line by line (the runner reads stage output per line)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from conveyor.masking import MASK, Masker, mask

# Secrets may hold anything but the mask's own character (a value made of `*` could be rebuilt from
# masks and text around them; see test_a_secret_with_stars_is_masked_too) and must have a line.
secret_text = st.text(
    alphabet=st.characters(blacklist_characters="*", blacklist_categories=("Cs",)), min_size=1
).filter(lambda s: s.strip("\r\n") != "")
plain_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@st.composite
def text_with_secrets(draw: st.DrawFn) -> tuple[str, list[str]]:
    secrets = draw(st.lists(secret_text, min_size=1, max_size=4))
    pieces = [draw(plain_text)]
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        pieces += [draw(st.sampled_from(secrets)), draw(plain_text)]
    return "".join(pieces), secrets


def runner_lines(masker: Masker, text: str) -> str:
    """What the runner stores: the text split where its reader splits (``\\n``), each line trimmed of
    ``\\r\\n`` and masked on its own."""
    return "\n".join(masker(line.rstrip("\r\n")) for line in text.split("\n"))


def leaked(secret: str, out: str) -> bool:
    pieces = [secret, *(p.strip("\r") for p in secret.split("\n"))]
    return any(p and p in out for p in pieces)


@given(text_with_secrets())
def test_no_secret_survives_in_a_whole_text(case: tuple[str, list[str]]) -> None:
    text, secrets = case
    out = mask(text, secrets)
    for secret in secrets:
        assert not leaked(secret, out), (secret, out)


@given(text_with_secrets())
def test_no_secret_survives_line_by_line(case: tuple[str, list[str]]) -> None:
    text, secrets = case
    out = runner_lines(Masker(secrets), text)
    for secret in secrets:
        assert not leaked(secret, out), (secret, out)


def test_a_secret_ending_in_a_carriage_return_is_masked_on_the_runners_lines() -> None:
    """Found by the property above: a secret read from a CRLF file keeps its ``\r``, the runner
    trims each line's ``\r``, and the value was printed."""
    assert runner_lines(Masker(["t0ken\r"]), "login t0ken\r\nok\n") == "login ****\nok\n"


@given(plain_text, st.lists(secret_text, max_size=3))
def test_text_without_secrets_is_unchanged(text: str, secrets: list[str]) -> None:
    if any(p.strip("\r") in text for s in secrets for p in [s, *s.split("\n")] if p.strip("\r")):
        return
    assert mask(text, secrets) == text


def test_overlapping_secrets_mask_their_union() -> None:
    # replacing "abc" first would leave "de" of "cde" readable beside the mask, and vice versa
    assert mask("x abcde y", ["abc", "cde"]) == f"x {MASK} y"
    assert mask("ab", ["ab", "b"]) == MASK


def test_a_multiline_secret_is_masked_whole_and_per_line() -> None:
    key = "-----BEGIN KEY-----\r\nMIIBOgIBAAJBAK\r\n-----END KEY-----"
    masker = Masker([key])
    assert masker(f"key={key};") == f"key={MASK};"
    assert runner_lines(masker, f"key={key};") == f"key={MASK}\n{MASK}\n{MASK};"


def test_a_secret_with_stars_is_masked_too() -> None:
    assert mask("token pa**word here", ["pa**word"]) == f"token {MASK} here"


def test_empty_values_are_ignored() -> None:
    assert not Masker(["", ""])
    assert mask("text", [""]) == "text"
