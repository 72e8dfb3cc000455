"""Is this webhook really from GitLab, for this project?

Two checks, both constant-time:

* ``X-Gitlab-Token`` (always): GitLab sends the hook's secret verbatim. Conveyor derives one
  token per project from the master secret (:func:`conveyor.tokens.project_token`), so the
  token can be checked for *any* project path named in the payload, whether or not a spec
  exists for it. Every accepted token (current and, during a rotation overlap, previous) is
  compared with :func:`hmac.compare_digest`, all of them, so timing does not reveal which.
* Standard Webhooks signature (GitLab 19+, optional): ``webhook-id``, ``webhook-timestamp``
  (seconds, within a tolerance window of now) and ``webhook-signature`` (space-separated
  ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{raw body}")>``, key = base64 of the part after
  ``whsec_``). When a signing key is configured, a present signature must verify; with
  ``require=True`` an absent one is refused too (``webhook-id``/``webhook-timestamp`` alone, as
  GitLab sends them for a hook without a signing token, count as absent).
  A verified ``webhook-id`` is returned: the
  receiver dedupes on it (per project), so a captured delivery replayed with a new
  ``Idempotency-Key`` (which the signature does not cover) within the window is a duplicate,
  and outside the window its timestamp is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_TOLERANCE_S = 300.0
MAX_WEBHOOK_ID = 255


def token_matches(presented: str | None, accepted: Sequence[str]) -> bool:
    """Whether ``presented`` equals one of ``accepted``; compares against every candidate."""
    if not presented or not accepted:
        return False
    given = presented.encode("utf-8", "surrogateescape")
    ok = False
    for token in accepted:
        ok |= hmac.compare_digest(given, token.encode("utf-8"))
    return ok


def decode_signing_key(secret: str) -> bytes:
    """``whsec_<base64>`` -> key bytes. Raises ValueError for anything else."""
    if not secret.startswith("whsec_"):
        raise ValueError("a webhook signing token starts with 'whsec_'")
    try:
        return base64.b64decode(secret[len("whsec_") :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the webhook signing token is not valid base64 after 'whsec_'") from None


def sign(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The ``v1,<base64>`` signature GitLab sends for this message."""
    message = webhook_id.encode() + b"." + timestamp.encode() + b"." + body
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class SignatureCheck:
    """Outcome of the signature check. ``ok`` False carries a ``reason`` (metric label)."""

    ok: bool
    reason: str = ""
    signed: bool = False
    webhook_id: str | None = None  # set only when a signature verified: a dedupe key then


def check_signature(
    headers: Mapping[str, str],
    body: bytes,
    keys: Sequence[bytes],
    *,
    now: float,
    require: bool = False,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> SignatureCheck:
    """Verify the Standard Webhooks headers against any of ``keys``.

    ``headers`` must be case-insensitive (Starlette's ``Headers`` is). Without keys the check
    passes unless ``require`` is set.
    """
    webhook_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signature = headers.get("webhook-signature")
    if not keys:
        return SignatureCheck(ok=not require, reason="" if not require else "no signing key")
    if signature is None:
        # GitLab 19 sends webhook-id and webhook-timestamp on every delivery, the signature only
        # when the hook has a signing token: an unsigned delivery is refused only when required
        if require:
            return SignatureCheck(ok=False, reason="signature_missing")
        return SignatureCheck(ok=True)
    if not webhook_id or not timestamp or not signature:
        return SignatureCheck(ok=False, reason="signature_incomplete")
    if len(webhook_id) > MAX_WEBHOOK_ID:
        return SignatureCheck(ok=False, reason="signature_id_too_long")
    try:
        sent_at = int(timestamp)
    except ValueError:
        return SignatureCheck(ok=False, reason="signature_timestamp_invalid")
    if abs(now - sent_at) > tolerance_s:
        return SignatureCheck(ok=False, reason="signature_timestamp_outside_window")
    presented = [
        part.encode("ascii", "replace") for part in signature.split() if part.startswith("v1,")
    ]
    if not presented:
        return SignatureCheck(ok=False, reason="signature_no_v1")
    ok = False
    for key in keys:
        expected = sign(key, webhook_id, timestamp, body).encode("ascii")
        for candidate in presented:
            ok |= hmac.compare_digest(candidate, expected)
    if not ok:
        return SignatureCheck(ok=False, reason="signature_mismatch", signed=True)
    return SignatureCheck(ok=True, signed=True, webhook_id=webhook_id)
