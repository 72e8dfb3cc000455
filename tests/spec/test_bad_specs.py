"""The corpus of broken specs: each file says, in `# expect:` lines, every problem it must produce."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conveyor.spec.load import check_paths

BAD = Path(__file__).parent / "bad"
CASES = sorted(p for p in BAD.glob("*.yml"))


def _expected(path: Path) -> list[tuple[str, int, int, str, str]]:
    """`# expect: [FILE:]LINE:COL FIELD: MESSAGE-PREFIX` lines; FILE defaults to the spec itself."""
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("# expect: "):
            where, rest = line[len("# expect: ") :].split(" ", 1)
            field, message = rest.split(": ", 1)
            parts = where.split(":")
            file = parts[0] if len(parts) == 3 else path.name
            out.append((file, int(parts[-2]), int(parts[-1]), field, message))
    return sorted(out)


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_each_broken_spec_reports_its_problems_with_locations(path: Path) -> None:
    expected = _expected(path)
    assert expected, f"{path.name} has no `# expect:` lines"
    cwd = os.getcwd()
    os.chdir(BAD.parents[2])  # messages name files relative to the working directory
    try:
        loaded, issues = check_paths([path.relative_to(BAD.parents[2])])
    finally:
        os.chdir(cwd)
    assert loaded == []
    assert len(issues) == len(expected), "\n".join(map(str, issues))
    issues = sorted(issues, key=lambda i: (i.file.split("bad/", 1)[1], i.line, i.column))
    for (file, line, col, field, message), issue in zip(expected, issues, strict=True):
        assert issue.file == f"tests/spec/bad/{file}", str(issue)
        assert (issue.line, issue.column) == (line, col), str(issue)
        assert issue.path == field, str(issue)
        assert issue.message.startswith(message), str(issue)


def test_all_problems_of_all_files_are_reported_in_one_run() -> None:
    _, issues = check_paths([BAD])
    files = {Path(i.file).name for i in issues}
    assert files == {Path(e[0]).name for p in CASES for e in _expected(p)}
    assert len(issues) == sum(len(_expected(p)) for p in CASES)
