"""Scaffold one spec per project of a GitLab group (``conveyor init --group GROUP``).

Subgroups are included, archived projects skipped, and a spec that already exists is left as it is,
so running it again after new projects appear only adds theirs. ``conveyor apply DIR`` then wires
them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conveyor.config import Settings
from conveyor.gitlab.client import GitLabClient
from conveyor.gitlab.groups import list_group_projects
from conveyor.scaffold import default_spec_path, get_template, scaffold_spec


@dataclass(frozen=True)
class GroupScaffold:
    """The specs (and template copies) written for one group; those that existed are not listed."""

    group: str
    written: tuple[Path, ...]

    exit_code = 0

    def to_json(self) -> dict[str, object]:
        return {"group": self.group, "written": [str(p) for p in self.written]}

    def text_lines(self, *, verbose: bool = False) -> list[str]:
        return [
            *(f"wrote {p}" for p in self.written),
            f"{len(self.written)} spec(s) written for group {self.group}",
        ]


def scaffold_group(settings: Settings, group: str, template: str, out_dir: Path) -> GroupScaffold:
    """Write a spec for every active project of ``group`` under ``out_dir``.

    Needs CONVEYOR_GITLAB_URL and CONVEYOR_GITLAB_TOKEN (checked before any request). The template
    is checked first too, so a typo fails before GitLab is asked anything.
    """
    settings.require("gitlab_url", "gitlab_token")
    get_template(template)
    client = GitLabClient(settings.gitlab_url or "", settings.gitlab_token or "")
    written: list[Path] = []
    templates_dir = out_dir / "templates"
    for project in list_group_projects(client, group):
        path = project.path_with_namespace
        result = scaffold_spec(
            path, template, default_spec_path(path, out_dir), templates_dir=templates_dir
        )
        written.extend(result.written)
    return GroupScaffold(group, tuple(written))
