"""Who may see and do what on the dashboard (pure decisions; the routes apply them).

* From loopback without credentials: read-only (every page, no action).
* With ``CONVEYOR_DASHBOARD_TOKEN`` presented (``Authorization: Bearer``, or the session cookie the
  login form sets, HttpOnly and SameSite=Strict): every page and every action, from anywhere.
* Anything else is refused: 401 (log in) when a token is configured, 403 when none is (the
  dashboard is then served to loopback only).

Tokens and cookies are compared in constant time (:func:`hmac.compare_digest`). The cookie is not
the token but an HMAC of it, and the CSRF token every action (a POST) must carry is another HMAC
of it, so neither reveals the token, and both change when the token does. Nothing here logs.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from enum import StrEnum

TOKEN_ENV = "CONVEYOR_DASHBOARD_TOKEN"
SESSION_COOKIE = "conveyor_dashboard"
CSRF_FIELD = "csrf"


class Access(StrEnum):
    ACT = "act"  # may read and act
    READ = "read"  # may read only (loopback, no credentials)
    LOGIN = "login"  # must log in (a token is configured)
    REFUSE = "refuse"  # no token configured and not from loopback


def is_loopback(host: str | None) -> bool:
    """Whether the peer address is loopback (127.0.0.0/8, ::1, ::ffff:127.x). Unix sockets and
    unknown peers are not."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _derive(token: str, purpose: str) -> str:
    return hmac.new(
        token.encode(), f"conveyor-dashboard:{purpose}".encode(), hashlib.sha256
    ).hexdigest()


def session_value(token: str) -> str:
    """The session cookie's value for ``token``."""
    return _derive(token, "session")


def csrf_token(token: str) -> str:
    """The CSRF token every action's form carries."""
    return _derive(token, "csrf")


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class Credentials:
    """What a request presented."""

    bearer: str | None = None
    cookie: str | None = None


def credentials_of(authorization: str | None, cookie: str | None) -> Credentials:
    bearer = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            bearer = value.strip()
    return Credentials(bearer=bearer, cookie=cookie or None)


def authenticated(token: str | None, presented: Credentials) -> bool:
    """Whether ``presented`` carries the configured token (never, when none is configured)."""
    if not token:
        return False
    # both compared, always: the time taken does not say which one was tried
    bearer_ok = _same(presented.bearer, token)
    cookie_ok = _same(presented.cookie, session_value(token))
    return bearer_ok or cookie_ok


def decide(client_host: str | None, token: str | None, presented: Credentials) -> Access:
    """The access a request gets."""
    if authenticated(token, presented):
        return Access.ACT
    if is_loopback(client_host):
        return Access.READ
    return Access.LOGIN if token else Access.REFUSE


def csrf_ok(token: str | None, given: str | None) -> bool:
    """Whether an action's CSRF field is right (never, when no token is configured)."""
    return bool(token) and _same(given, csrf_token(token or ""))
