"""A real ``conveyor serve`` per test (free port, temp state) and Playwright on Debian's chromium.

pytest-playwright launches the browser with ``browser_type_launch_args``; it is pointed at
``/usr/bin/chromium`` (installed by ``./dev.sh``), never at a downloaded build.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.receiver import payloads as p

TOKEN = "dashboard-test-token-not-real"


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is missing: run ./dev.sh setup")
    return path


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": chromium(), "args": ["--no-sandbox"]}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Serve:
    """One ``conveyor serve`` subprocess; killed at teardown whatever happens."""

    def __init__(
        self,
        specs: list[Path],
        state: Path,
        env: dict[str, str],
        *args: str,
        host: str = "127.0.0.1",
    ) -> None:
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.state = state
        self.log = state.parent / f"serve-{self.port}.log"
        self._log_file = self.log.open("wb")
        cmd = [sys.executable, "-m", "conveyor.cli.main", "serve", *map(str, specs)]
        cmd += ["--host", host, "--port", str(self.port), "--state", str(state), *args]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("serve did not start:\n" + self.log.read_text())
            time.sleep(0.1)

    def send(self, payload: dict[str, Any], **headers: str) -> httpx.Response:
        response = httpx.post(
            self.url + "/hooks/gitlab",
            content=p.body(payload),
            headers={**p.headers(payload), **headers},
            timeout=30,
        )
        assert response.status_code in (200, 202), response.text
        return response

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log_file.close()


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    (tmp_path / "none.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    return {
        **env,
        "CONVEYOR_SECRET": p.SECRET,
        "CONVEYOR_CONFIG": str(tmp_path / "none.toml"),
        **extra,
    }


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """``serve(specs, *args, host=..., token=..., **env)`` -> a running :class:`Serve`."""
    started: list[Serve] = []

    def start(specs: list[Path], *args: str, host: str = "127.0.0.1", **env: str) -> Serve:
        server = Serve(specs, tmp_path / "state", base_env(tmp_path, **env), *args, host=host)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def page_errors(page: Any) -> list[str]:
    """Dialogs (alert, confirm...) and console errors the page produced: must stay empty."""
    seen: list[str] = []

    def on_dialog(dialog: Any) -> None:
        seen.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on(
        "console", lambda msg: seen.append(f"console: {msg.text}") if msg.type == "error" else None
    )
    page.on("pageerror", lambda exc: seen.append(f"pageerror: {exc}"))
    return seen
