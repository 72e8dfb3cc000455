"""Tests of conveyor.gitlab against the GitLab emulator."""
