"""Build and push progress: rich on a terminal, plain lines otherwise."""

from __future__ import annotations

import pytest


def test_rich_build_progress_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    import conveyor.cli.progress as cli_progress
    from conveyor.docker.build import BuildEvent

    screen = io.StringIO()
    monkeypatch.setattr(
        cli_progress,
        "err_console",
        Console(file=screen, force_terminal=True, color_system=None, width=120),
    )
    with cli_progress.build_progress(as_json=False) as on_event:
        on_event(BuildEvent("note", 0, 0, "cache: pulled reg/app:main"))
        on_event(BuildEvent("step", 1, 2, "FROM busybox:latest"))
        on_event(BuildEvent("step", 2, 2, "RUN make"))
        on_event(BuildEvent("cached", 2, 2, "RUN make"))
    text = screen.getvalue()
    assert "cache: pulled reg/app:main" in text
    assert "step 2/2 cached" in text
    assert "2/2" in text
