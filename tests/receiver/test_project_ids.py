"""Tokens keyed on the project id, routing by id after a rename, and the end of the path tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor.config import Settings
from conveyor.gitlab.events import parse_event, project_id_of
from conveyor.receiver.routing import ProjectIds, Route, Router
from conveyor.receiver.verify import check_signature
from conveyor.spec.load import load_specs
from conveyor.tokens import project_id_token, project_token
from tests.receiver import payloads as p
from tests.receiver.specs import write_specs

NOW = datetime.now(UTC)
SETTINGS = Settings(secret=p.SECRET)


def _router(tmp_path: Path, ids: ProjectIds | None = None) -> Router:
    return Router((s.spec for s in load_specs(write_specs(tmp_path / "specs"))), ids)


def _renamed(payload: dict[str, Any], path: str) -> dict[str, Any]:
    return {**payload, "project": {**payload["project"], "path_with_namespace": path}}


def test_project_id_of_reads_every_payload_kind_and_refuses_disagreement() -> None:
    assert project_id_of(p.push()) == 15
    assert project_id_of(p.merge_request()) == 15
    assert project_id_of({"project": {"id": 3}}) == 3
    assert project_id_of({"project_id": 3, "project": {"id": 4}}) is None
    assert project_id_of({"project_id": True}) is None and project_id_of({}) is None


def test_id_token_is_accepted_and_retires_the_path_token(tmp_path: Path) -> None:
    router = _router(tmp_path)
    legacy = project_token(p.SECRET, "demo/app")
    assert router.check_token(SETTINGS, legacy, 15, "demo/app", NOW)  # old hook still works
    assert router.check_token(SETTINGS, project_id_token(p.SECRET, 15), 15, "demo/app", NOW)
    assert not router.check_token(SETTINGS, legacy, 15, "demo/app", NOW)  # rewritten: retired
    assert not router.check_token(SETTINGS, project_id_token(p.SECRET, 16), 15, "demo/app", NOW)


def test_a_renamed_project_keeps_routing_to_its_spec(tmp_path: Path) -> None:
    router = _router(tmp_path)
    token = project_id_token(p.SECRET, 15)
    assert router.check_token(SETTINGS, token, 15, "demo/app", NOW)  # learns 15 -> demo/app
    moved = _renamed(p.push(), "platform/app-renamed")
    assert router.check_token(SETTINGS, token, 15, "platform/app-renamed", NOW)
    decision = router.decide(parse_event("Push Hook", moved))
    assert isinstance(decision, Route) and decision.spec.project == "demo/app"
    # a different project now living at the old path is not given the spec
    newcomer = {**p.push(), "project_id": 99, "project": {**p.push()["project"], "id": 99}}
    assert router.spec_for_event(parse_event("Push Hook", newcomer)) is None


def test_path_lookup_ignores_case(tmp_path: Path) -> None:
    router = _router(tmp_path)
    upper = _renamed(p.push(), "Demo/App")
    assert router.check_token(SETTINGS, project_token(p.SECRET, "demo/app"), 15, "Demo/App", NOW)
    decision = router.decide(parse_event("Push Hook", upper))
    assert isinstance(decision, Route) and decision.spec.project == "demo/app"


def test_a_path_token_cannot_claim_another_projects_id(tmp_path: Path) -> None:
    router = _router(tmp_path)
    # project 20 is known to be demo/backend/api
    api_token = project_id_token(p.SECRET, 20)
    assert router.check_token(SETTINGS, api_token, 20, "demo/backend/api", NOW)
    # demo/app's old path token, on a payload claiming id 20, names demo/app: refused
    forged = project_token(p.SECRET, "demo/app")
    assert not router.check_token(SETTINGS, forged, 20, "demo/app", NOW)


def test_learnt_ids_survive_a_restart(tmp_path: Path) -> None:
    store = tmp_path / "state" / "project-ids.json"
    router = _router(tmp_path, ProjectIds(store))
    assert router.check_token(SETTINGS, project_id_token(p.SECRET, 15), 15, "demo/app", NOW)
    again = _router(tmp_path, ProjectIds(store))
    assert not again.check_token(SETTINGS, project_token(p.SECRET, "demo/app"), 15, "demo/app", NOW)
    assert again.spec_for("elsewhere/app", 15) is not None


def test_unsigned_delivery_with_id_and_timestamp_is_accepted_unless_required() -> None:
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(NOW.timestamp()))}
    keys = (b"k" * 32,)
    assert check_signature(headers, b"{}", keys, now=NOW.timestamp()).ok
    refused = check_signature(headers, b"{}", keys, now=NOW.timestamp(), require=True)
    assert not refused.ok and refused.reason == "signature_missing"


def test_id_of_answers_the_first_id_learnt_for_a_spec_and_follows_relearning(
    tmp_path: Path,
) -> None:
    """``id_of`` is a map kept beside the ids (one lookup a delivery, not a scan of them all):
    it must answer what a scan in learning order would, after every change and a reload."""
    path = tmp_path / "project-ids.json"
    ids = ProjectIds(path)
    ids.learn(7, "Group/App")
    ids.learn(9, "group/app")  # the project was recreated: a second id for the same spec
    ids.learn(11, None)  # an id whose path named no spec
    assert ids.id_of("GROUP/APP") == 7
    ids.learn(7, "group/other")  # the first id now belongs to another spec
    assert (ids.id_of("group/app"), ids.id_of("group/other")) == (9, 7)
    assert ids.id_of("group/none") is None
    reloaded = ProjectIds(path)
    assert (reloaded.id_of("group/app"), reloaded.id_of("Group/Other")) == (9, 7)
