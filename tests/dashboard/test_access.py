"""Who may read and act (pure decisions), and that any string renders escaped."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.dashboard import access
from conveyor.dashboard.decisions import decision_of
from conveyor.dashboard.routes import _web_url, environment

TOKEN = "s3cret-token"
NONE = access.Credentials()


def test_loopback_without_credentials_reads_only() -> None:
    for host in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        assert access.decide(host, None, NONE) is access.Access.READ
        assert access.decide(host, TOKEN, NONE) is access.Access.READ


def test_elsewhere_needs_the_token() -> None:
    for host in ("192.0.2.2", "10.0.0.1", "::ffff:10.0.0.1", "fd00::2", None, "", "localhost"):
        assert access.decide(host, None, NONE) is access.Access.REFUSE
        assert access.decide(host, TOKEN, NONE) is access.Access.LOGIN


def test_the_token_by_bearer_or_cookie_may_act_and_nothing_else_does() -> None:
    bearer = access.credentials_of(f"Bearer {TOKEN}", None)
    assert access.decide("192.0.2.2", TOKEN, bearer) is access.Access.ACT
    cookie = access.credentials_of(None, access.session_value(TOKEN))
    assert access.decide("192.0.2.2", TOKEN, cookie) is access.Access.ACT
    for wrong in (
        access.credentials_of("Bearer nope", None),
        access.credentials_of(f"Basic {TOKEN}", None),
        access.credentials_of(None, TOKEN),  # the cookie holds an HMAC, not the token
        access.credentials_of(None, access.session_value("other")),
    ):
        assert access.decide("192.0.2.2", TOKEN, wrong) is access.Access.LOGIN
    assert not access.authenticated(None, bearer)  # no token configured: nobody is authenticated


def test_csrf_token_is_bound_to_the_token() -> None:
    assert access.csrf_ok(TOKEN, access.csrf_token(TOKEN))
    assert not access.csrf_ok(TOKEN, access.csrf_token("other"))
    assert not access.csrf_ok(TOKEN, None)
    assert not access.csrf_ok(TOKEN, "")
    assert not access.csrf_ok(None, access.csrf_token(""))
    assert TOKEN not in access.csrf_token(TOKEN) + access.session_value(TOKEN)


def test_only_http_urls_become_links() -> None:
    assert (
        _web_url("https://jenkins.example.com/job/a/1/") == "https://jenkins.example.com/job/a/1/"
    )
    for hostile in ("javascript:alert(1)", "data:text/html,x", "//evil", "vbscript:x", 3):
        assert _web_url(hostile) is None


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: dict[str, str] = {}
        self.tags: list[str] = []
        self._class: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._class = dict(attrs).get("class")

    def handle_data(self, data: str) -> None:
        if self._class:
            self.cells[self._class] = self.cells.get(self._class, "") + data

    def handle_endtag(self, tag: str) -> None:
        self._class = None


def _events_page(ref: str, reason: str) -> str:
    row: dict[str, Any] = {
        "id": 7,
        "received_at": 0.0,
        "project": "p",
        "kind": "push",
        "event_header": "Push Hook",
        "ref": ref,
        "sha": "",
        "status": "ignored",
        "reason": reason,
    }
    return (
        environment()
        .get_template("events.html")
        .render(
            prefix="/dashboard",
            can_act=False,
            token_set=False,
            csrf="",
            rows=[{**row, "decision": decision_of(row)}],
            projects=[],
            kinds=[],
            query={},
            more=None,
            statuses=[],
        )
    )


text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"), min_size=1
)


@settings(deadline=None)
@given(ref=text, reason=text)
def test_any_string_renders_as_text(ref: str, reason: str) -> None:
    page = _events_page(ref, reason)
    parsed = _Text()
    parsed.feed(page)
    assert parsed.cells["ref"] == ref
    assert parsed.cells["why"] == reason
    assert parsed.tags.count("script") == 1  # the static one in the head; nothing from the data
    assert "img" not in parsed.tags
