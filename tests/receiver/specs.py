"""Pipeline specs the receiver tests route with."""

from __future__ import annotations

from pathlib import Path

APP_SPEC = """\
apiVersion: conveyor/v1
project: demo/app
triggers:
  push:
    branches: [main, "release/*"]
    exclude: ["release/old"]
  tag_push:
    tags: ["v*"]
  merge_request:
    actions: [open, reopen, update, merge]
    target_branches: [main]
jenkins:
  job: demo/app
stages:
  - name: test
    run: ["true"]
  - name: deploy
    deploy:
      name: app-prod
      target: docker
      strategy: recreate
      image: registry.example.com/demo/app:1
"""

API_SPEC = """\
apiVersion: conveyor/v1
project: demo/backend/api
jenkins:
  job: demo/backend/api
stages:
  - name: test
    run: ["true"]
  - name: deploy
    deploy:
      name: app-prod
      target: docker
      strategy: recreate
      image: registry.example.com/demo/app:1
"""


def write_specs(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    app = directory / "app.yml"
    app.write_text(APP_SPEC)
    api = directory / "api.yml"
    api.write_text(API_SPEC)
    return [app, api]
