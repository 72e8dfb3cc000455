"""The pre-authentication scan finds the project ``project_path_of`` reads, in any JSON spelling."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from conveyor.gitlab.events import project_id_of, project_path_of
from conveyor.receiver.claims import MAX_HITS, claimed_projects
from tests.receiver import payloads as p

PATHS = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
SHAPES = st.sampled_from([p.push, p.tag_push, p.merge_request])
ENCODERS = st.sampled_from(
    [
        lambda d: json.dumps(d).encode(),
        lambda d: json.dumps(d, ensure_ascii=False).encode(),
        lambda d: json.dumps(d, indent=2, separators=(" , ", " : ")).encode(),
        orjson.dumps,
    ]
)


@given(SHAPES, PATHS, ENCODERS)
def test_the_scan_finds_the_path_the_parser_reads(shape: Any, path: str, encode: Any) -> None:
    payload = shape(path)
    assert project_path_of(payload) == path
    claims = claimed_projects(encode(payload))
    assert path in claims.paths
    assert project_id_of(payload) in claims.ids


def test_old_payloads_name_the_project_by_homepage() -> None:
    payload = p.push()
    del payload["project"]
    body = json.dumps(payload).encode()
    assert claimed_projects(body).paths == (project_path_of(payload),) == ("demo/app",)


def test_text_that_is_not_unicode_is_reported_not_returned() -> None:
    body = b'{"project": {"path_with_namespace": "demo/\\ud800"}}'
    claims = claimed_projects(body)
    assert claims.paths == () and claims.invalid == ("project.path_with_namespace",)


def test_the_scan_is_bounded() -> None:
    body = b"[" + b",".join(b'{"path_with_namespace": "g/p%d"}' % i for i in range(1000)) + b"]"
    assert len(claimed_projects(body).paths) == MAX_HITS
