"""The sync verbs' tests drive the GitLab and Jenkins emulators of tests/sync."""

from tests.sync.conftest import all_logs, world

__all__ = ["all_logs", "world"]
