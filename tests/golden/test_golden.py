"""Golden files: every spec in pipelines/ renders to the checked-in Jenkinsfile and config.xml.

Each ``tests/golden/<spec name>/`` holds the expected ``Jenkinsfile`` and ``config.xml`` of
``pipelines/<spec name>.yml``. After an intended change to the renderer or a spec, regenerate with::

    CONVEYOR_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/golden

and review the diff before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conveyor.jenkins.render import render
from conveyor.spec.load import load_spec

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "pipelines"
GOLDEN = Path(__file__).resolve().parent
SPECS = sorted(PIPELINES.glob("*.yml"))
UPDATE = os.environ.get("CONVEYOR_UPDATE_GOLDEN") == "1"


def test_there_are_example_specs() -> None:
    assert len(SPECS) >= 4


def test_every_golden_directory_has_its_spec() -> None:
    dirs = {p.name for p in GOLDEN.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert dirs == {s.stem for s in SPECS}


@pytest.mark.parametrize("spec_path", SPECS, ids=[s.stem for s in SPECS])
def test_golden(spec_path: Path) -> None:
    job = render(load_spec(spec_path).spec)
    expected_dir = GOLDEN / spec_path.stem
    files = {"Jenkinsfile": job.jenkinsfile, "config.xml": job.config_xml}
    if UPDATE:
        expected_dir.mkdir(exist_ok=True)
        for name, text in files.items():
            (expected_dir / name).write_text(text, encoding="utf-8", newline="\n")
    for name, text in files.items():
        expected = (expected_dir / name).read_text(encoding="utf-8")
        assert text == expected, (
            f"{spec_path.name} -> {name} differs from tests/golden (see module doc)"
        )
