"""Spec builders shared by the Jenkins rendering tests."""

from __future__ import annotations

from typing import Any

from conveyor.spec.model import Spec


def base_data(**overrides: Any) -> dict[str, Any]:
    """A small valid spec as plain data: run, build+push and deploy stages."""
    data: dict[str, Any] = {
        "apiVersion": "conveyor/v1",
        "project": "demo/app",
        "triggers": {"push": {"branches": ["main"]}},
        "jenkins": {"job": "demo/app"},
        "stages": [
            {"name": "test", "image": "python:3.12-slim", "run": ["pytest -q"]},
            {
                "name": "image",
                "build": {"tags": ["{registry}/{project}:{sha}"]},
                "push": {"registry": "registry.example.com", "credentials": "registry-creds"},
            },
            {
                "name": "deploy",
                "when": {"branch": "main"},
                "deploy": {"name": "app", "ports": ["8080:8000"]},
            },
        ],
    }
    data.update(overrides)
    return data


def spec_of(data: dict[str, Any]) -> Spec:
    return Spec.model_validate(data)
