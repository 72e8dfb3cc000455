"""The local dispatcher's answer to a retried attempt: the run an earlier attempt started is looked
up in the run history (finished: its result; cut off: crashed, and run again only when no stage had
started). End to end through the receiver and Docker: tests/receiver/test_local_dispatch.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conveyor.config import Settings
from conveyor.errors import ConfigError, UsageError
from conveyor.plugins.manager import build_plugin_manager, get_plugin_manager, loaded_plugins
from conveyor.receiver.dispatch import make_dispatcher
from conveyor.runner.dispatcher import LocalDispatcher
from conveyor.runner.history import History
from conveyor.runner.results import RunResult
from tests.receiver.progress import Recorder, job_for


def started_run(state: Path, project: str, event_id: int) -> int:
    trigger = {"kind": "push", "extra": {"CONVEYOR_EVENT_ID": str(event_id)}}
    return History(state).start(project, "", trigger)


def test_local_finished_run_gives_its_result_without_running_again(tmp_path: Path) -> None:
    state = tmp_path / "state"
    since = time.time() - 1
    other = started_run(state, "demo/app", 6)  # another event's run
    number = started_run(state, "demo/app", 5)
    History(state).finish(RunResult(number, "demo/app", "success", 0, 1.0, ()), "log")
    dispatcher = LocalDispatcher(Settings(secret="x", state_dir=state))
    progress = Recorder()
    outcome = dispatcher.dispatch(job_for(tmp_path, 5, {"local": {"since": since}}), progress)
    assert outcome.succeeded and f"run #{number}" in outcome.detail
    assert progress.notes == [f"run #{number} of an earlier attempt finished: success"]
    assert progress.states == []  # nothing started
    assert History(state).get(other).status == "running"  # not ours: untouched


def test_local_run_cut_off_after_its_first_stage_is_failed_not_rerun(tmp_path: Path) -> None:
    state = tmp_path / "state"
    since = time.time() - 1
    number = started_run(state, "demo/app", 5)
    dispatcher = LocalDispatcher(Settings(secret="x", state_dir=state))
    progress = Recorder()
    resume = {"local": {"since": since, "run": number, "stage": "t"}}
    outcome = dispatcher.dispatch(job_for(tmp_path, 5, resume), progress)
    assert not outcome.succeeded and "cut off by a crash during stage 't'" in outcome.detail
    assert "conveyor events replay 5" in outcome.detail
    assert History(state).get(number).status == "crashed"
    assert progress.states == []


def test_local_run_cut_off_before_any_stage_is_marked_crashed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    since = time.time() - 1
    number = started_run(state, "demo/app", 5)
    dispatcher = LocalDispatcher(Settings(secret="x", state_dir=state))
    progress = Recorder()
    job = job_for(tmp_path, 5, {"local": {"since": since, "run": number}})
    assert dispatcher._earlier_run(job, {"since": since, "run": number}, progress) is None
    assert History(state).get(number).status == "crashed"
    assert progress.notes == [f"run #{number} crashed before any stage started; running again"]
    too_old = job_for(tmp_path, 5, None)
    assert dispatcher._earlier_run(too_old, {"since": time.time() + 60}, progress) is None
    assert progress.notes[-1] == "the earlier attempt had not started a run"


def test_the_runner_plugin_registers_local_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pm = build_plugin_manager()
    plugins = {p.name: p for p in loaded_plugins(pm)}
    assert plugins["runner"].distribution == "conveyor"
    assert plugins["runner"].hooks == ("conveyor_dispatchers",)
    assert "conveyor_dispatchers" not in plugins["docker"].hooks
    offered = [dict(answer) for answer in pm.hook.conveyor_dispatchers()]
    assert {"local": LocalDispatcher} in offered
    # disabled: `auto` without Jenkins settings says so instead of failing on a missing name
    monkeypatch.setenv("CONVEYOR_DISABLE_PLUGINS", "runner")
    get_plugin_manager.cache_clear()
    try:
        with pytest.raises(ConfigError, match="no plugin provides"):
            make_dispatcher("auto", Settings(secret="x", state_dir=tmp_path))
        with pytest.raises(UsageError, match="unknown dispatch mode 'local'"):
            make_dispatcher("local", Settings(secret="x", state_dir=tmp_path))
    finally:
        monkeypatch.delenv("CONVEYOR_DISABLE_PLUGINS")
        get_plugin_manager.cache_clear()
