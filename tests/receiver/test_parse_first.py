"""Small bodies are parsed before the token check; the answers are those of the byte scan.

``ReceiverOptions.parse_first_bytes = 0`` turns the parse-first path off: every body is then
authenticated from its raw bytes (``claims.py``), as it was before. The same deliveries sent
to both receivers must get the same answers, including what each learns from id tokens.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.config import Settings
from conveyor.receiver import app as app_mod
from conveyor.receiver.app import PARSE_FIRST_BYTES, ReceiverOptions, _parsed_first
from conveyor.receiver.verify import sign
from conveyor.tokens import project_id_token, project_token
from tests.receiver import payloads as p
from tests.receiver.conftest import Running

HOOK = "/hooks/gitlab"
PATHS = st.sampled_from(["demo/app", "Demo/App", "demo/other", "nobody/none", "demo/\ud800"])
SHAPES = st.sampled_from(["push", "tag", "mr", "list", "no project", "not json", "cut"])
TOKENS = st.sampled_from(["path", "id", "other id", "wrong secret", "short"])
SIGNATURES = st.sampled_from(["none", "valid", "wrong key"])
KEY = b"0123456789abcdef0123456789abcdef"


def _body(shape: str, path: str, project_id: int | None, padding: int) -> bytes:
    if shape in ("list", "no project", "not json", "cut"):
        payload = p.push()
    else:
        payload = {"push": p.push, "tag": p.tag_push, "mr": p.merge_request}[shape]()
    payload["project"]["path_with_namespace"] = path
    if project_id is None:
        del payload["project"]["id"]
        payload.pop("project_id", None)
    else:
        payload["project"]["id"] = project_id
    if padding:
        payload["padding"] = "x" * padding
    if shape == "no project":
        del payload["project"]
        payload.pop("repository", None)
    # lone surrogates as GitLab never writes them: an escape orjson refuses
    text = json.dumps(payload)
    if shape == "list":
        text = f"[{text}]"
    elif shape == "not json":
        text = text[:-1] + ", oops}"
    elif shape == "cut":
        text = text[: len(text) // 2]
    return text.encode()


def _token(kind: str, path: str, project_id: int | None) -> str:
    if kind == "id":
        return project_id_token(p.SECRET, project_id or 15)
    if kind == "other id":
        return project_id_token(p.SECRET, 16)
    if kind == "wrong secret":
        return project_token("another-secret", "demo/app")
    if kind == "short":
        return "x"
    try:
        return project_token(p.SECRET, path)
    except UnicodeError:
        return project_token(p.SECRET, "demo/app")


def _answer(running: Running, body: bytes, token: str, key: str, signature: str) -> tuple[int, Any]:
    headers = p.headers(p.push(), token=token, key=key)
    if signature != "none":
        stamp = str(int(time.time()))
        signing_key = KEY if signature == "valid" else b"another key of 32 bytes, not ours"
        headers.update(
            {
                "webhook-id": key,
                "webhook-timestamp": stamp,
                "webhook-signature": sign(signing_key, key, stamp, body),
            }
        )
    answer = running.client.post(HOOK, content=body, headers=headers)
    data = answer.json()
    # Event ids are each receiver's own; everything else must be the same.
    return answer.status_code, {k: v for k, v in data.items() if k != "id"}


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signature required"])
def test_parse_first_answers_as_the_byte_scan(
    start_receiver: Any, tmp_path: Path, signed: bool
) -> None:
    keys = {"signing_keys": (KEY,), "require_signature": True} if signed else {}
    fast = start_receiver(
        settings=Settings(secret=p.SECRET, state_dir=tmp_path / "fast"),
        options=ReceiverOptions(**keys),  # type: ignore[arg-type]
    )
    scan = start_receiver(
        settings=Settings(secret=p.SECRET, state_dir=tmp_path / "scan"),
        options=ReceiverOptions(parse_first_bytes=0, **keys),  # type: ignore[arg-type]
    )
    counter = iter(range(1_000_000))

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        SHAPES,
        PATHS,
        st.sampled_from([15, 16, None]),
        TOKENS,
        st.sampled_from([0, 100, PARSE_FIRST_BYTES]),
        st.booleans(),
        SIGNATURES,
    )
    def check(
        shape: str,
        path: str,
        project_id: int | None,
        token: str,
        padding: int,
        resend: bool,
        signature: str,
    ) -> None:
        body = _body(shape, path, project_id, padding)
        key = f"k-{next(counter) // 2 if resend else next(counter)}"
        presented = _token(token, path, project_id)
        assert _answer(fast, body, presented, key, signature) == _answer(
            scan, body, presented, key, signature
        )

    check()
    assert fast.receiver.router.ids._ids == scan.receiver.router.ids._ids


def test_small_bodies_skip_the_scan_and_others_do_not(
    start_receiver: Any, monkeypatch: Any
) -> None:
    scanned: list[int] = []
    scan = app_mod.claimed_projects

    def counting(body: bytes) -> Any:
        scanned.append(len(body))
        return scan(body)

    monkeypatch.setattr(app_mod, "claimed_projects", counting)
    running = start_receiver()
    push = p.push()
    hdrs = p.headers(push)
    assert running.client.post(HOOK, content=p.body(push), headers=hdrs).status_code == 202
    wrong = p.headers(push, token="wrong")
    answer = running.client.post(HOOK, content=p.body(push), headers=wrong)
    assert (answer.status_code, answer.json()["reason"]) == (401, "token_invalid")
    assert scanned == []
    big = p.push(message="m" * PARSE_FIRST_BYTES)
    assert running.client.post(HOOK, content=p.body(big), headers=p.headers(big)).status_code == 202
    not_json = p.body(push)[:-1]
    answer = running.client.post(HOOK, content=not_json, headers=p.headers(push))
    assert (answer.status_code, answer.json()["reason"]) == (400, "not_json")
    assert scanned == [len(p.body(big)), len(not_json)]


def test_what_is_parsed_first() -> None:
    body = p.body(p.push())
    assert _parsed_first(body, len(body)) == json.loads(body)
    assert _parsed_first(body, len(body) - 1) is None  # over the limit: scanned, not parsed
    assert _parsed_first(b"[" + body + b"]", 1 << 20) is None  # not an object
    assert _parsed_first(b'{"project": {}}', 1 << 20) is None  # names no project
    assert _parsed_first(body[:-1], 1 << 20) is None  # not JSON
    assert _parsed_first(b'{"project": {"path_with_namespace": "a/\\ud800"}}', 1 << 20) is None
