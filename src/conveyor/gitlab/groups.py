"""List every active project of a GitLab group, subgroups included, all pages."""

from __future__ import annotations

from conveyor.gitlab.client import GitLabClient, ProjectInfo


def list_group_projects(
    client: GitLabClient, group: int | str, *, include_subgroups: bool = True
) -> list[ProjectInfo]:
    """Projects of ``group`` (and its subgroups), skipping archived ones, sorted by path."""
    projects = client.list_group_projects(
        group, include_subgroups=include_subgroups, archived=False
    )
    # archived=false is filtered server-side; keep the check for servers that ignore it
    active = [ProjectInfo.from_api(p) for p in projects if not p.get("archived", False)]
    return sorted(active, key=lambda p: p.path_with_namespace)
