"""Hypothesis fuzz of headers and bodies over real HTTP: never a 5xx, never a crash."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conveyor.tokens import project_token
from tests.receiver import payloads as p

# Printable ASCII without surrounding blanks: what an HTTP/1.1 client can put on the wire.
HEADER_VALUE = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80
).map(str.strip)
EVENTS = st.sampled_from(
    ["Push Hook", "Tag Push Hook", "Merge Request Hook", "Note Hook", "System Hook", ""]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
PROJECTS = st.sampled_from(["demo/app", "demo/backend/api", "x/y", ""])


@st.composite
def payloads(draw: st.DrawFn) -> Any:
    base = draw(
        st.sampled_from(
            [
                p.push(),
                p.push(after=p.ZERO),
                p.tag_push(),
                p.merge_request(),
                p.merge_request(action="update"),
            ]
        )
    )
    data = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(0, 4))):
        path = draw(
            st.sampled_from(
                [
                    "ref",
                    "after",
                    "before",
                    "commits",
                    "project",
                    "object_attributes",
                    "push_options",
                    "checkout_sha",
                    "user_username",
                ]
            )
        )
        if draw(st.booleans()):
            data.pop(path, None)
        else:
            data[path] = draw(JSON)
    if isinstance(data.get("project"), dict) and draw(st.booleans()):
        data["project"]["path_with_namespace"] = draw(PROJECTS)
    return data


@st.composite
def requests(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    kind = draw(st.sampled_from(["payload", "json", "bytes"]))
    if kind == "payload":
        data = draw(payloads())
        body = json.dumps(data).encode()
        project = (
            data.get("project", {}).get("path_with_namespace", "demo/app")
            if isinstance(data.get("project"), dict)
            else "demo/app"
        )
    elif kind == "json":
        body = json.dumps(draw(JSON)).encode()
        project = "demo/app"
    else:
        body = draw(st.binary(max_size=300))
        project = "demo/app"
    headers: dict[str, str] = {}
    if draw(st.integers(0, 3)):
        headers["Content-Type"] = draw(
            st.sampled_from(
                [
                    "application/json",
                    "application/json; charset=utf-8",
                    "text/plain",
                    "APPLICATION/JSON",
                ]
            )
        )
    else:
        headers["Content-Type"] = draw(HEADER_VALUE)
    if draw(st.integers(0, 4)):
        headers["X-Gitlab-Event"] = draw(EVENTS | HEADER_VALUE)
    token_kind = draw(st.sampled_from(["valid", "valid", "random", "none"]))
    if token_kind == "valid" and isinstance(project, str):
        headers["X-Gitlab-Token"] = project_token(p.SECRET, project)
    elif token_kind == "random":
        headers["X-Gitlab-Token"] = draw(HEADER_VALUE)
    for name in (
        "Idempotency-Key",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Gitlab-Webhook-UUID",
    ):
        if draw(st.integers(0, 5)) == 0:
            headers[name] = draw(HEADER_VALUE)
    return headers, body


VALID_HEADERS = {"Content-Type": "application/json", "X-Gitlab-Event": "Push Hook"}
VALID_BODY = json.dumps(p.push()).encode()


def test_fuzzed_requests_never_get_a_5xx(start_receiver: Any) -> None:
    from conveyor.receiver.app import ReceiverOptions

    key = b"fuzz-signing-key"
    running = start_receiver(options=ReceiverOptions(max_body_bytes=2048, signing_keys=(key,)))
    seen: set[int] = set()

    @settings(
        max_examples=300,
        deadline=None,
        derandomize=True,  # the same examples every run: a failure is reproducible
        suppress_health_check=list(HealthCheck),
    )
    @given(requests())
    # Known answers always among the examples, so the fuzz provably reaches accept and reject paths.
    @example(({**VALID_HEADERS, "X-Gitlab-Token": project_token(p.SECRET, "demo/app")}, VALID_BODY))
    @example(({**VALID_HEADERS, "X-Gitlab-Token": "wrong"}, VALID_BODY))
    @example(
        ({**VALID_HEADERS, "X-Gitlab-Token": project_token(p.SECRET, "demo/app")}, b"{not json")
    )
    def check(request: tuple[dict[str, str], bytes]) -> None:
        headers, body = request
        answer = running.client.post("/hooks/gitlab", content=body, headers=headers)
        assert answer.status_code < 500, (answer.status_code, answer.text)
        seen.add(answer.status_code)

    check()
    assert running.client.get("/healthz").status_code == 200
    assert 202 in seen and 401 in seen and 400 in seen
