"""One commit-state vocabulary (gitlab/status.CommitState): no module spells a state word where a
commit status is made, reported or remembered."""

from __future__ import annotations

import ast
from pathlib import Path

from conveyor.gitlab.status import ACTIVE_STATES, COMMIT_STATES, FINAL_STATES, CommitState

SRC = Path(__file__).resolve().parents[2] / "src" / "conveyor"
# where each call takes the state: positional index (and the keyword ``state``)
STATUS_CALLS = {
    "StatusUpdate": 0,
    "StatusHead": 0,
    "_status": 0,
    "status_payload": 0,
    "_update_status": 0,
    "report": 2,
    "post_status": 2,
}


def spelt_states(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name not in STATUS_CALLS:
            continue
        at = STATUS_CALLS[name]
        values = [k.value for k in node.keywords if k.arg == "state"]
        values += node.args[at : at + 1]
        for value in values:
            if isinstance(value, ast.Constant) and value.value in COMMIT_STATES:
                found.append((node.lineno, value.value))
    return found


def test_no_module_spells_a_commit_state_in_a_status_call() -> None:
    spelt = {
        str(path.relative_to(SRC)): hits
        for path in sorted(SRC.rglob("*.py"))
        if (hits := spelt_states(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert not spelt, f"use conveyor.gitlab.status.CommitState: {spelt}"


def test_the_check_sees_a_spelt_state() -> None:
    tree = ast.parse(
        "reporter.report(trigger, 'conveyor', 'running')\nStatusUpdate(state='failed')"
    )
    assert spelt_states(tree) == [(1, "running"), (2, "failed")]


def test_states_are_gitlabs_words_and_split_into_active_and_final() -> None:
    assert COMMIT_STATES == ("pending", "running", "success", "failed", "canceled", "skipped")
    assert set(CommitState) == ACTIVE_STATES | FINAL_STATES
    assert not ACTIVE_STATES & FINAL_STATES
    assert CommitState.of(True) == "success" and CommitState.of(False) is CommitState.FAILED
    assert f"{CommitState.RUNNING}" == "running"
