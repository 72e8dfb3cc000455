"""The demo's local processes: a registry with htpasswd auth and conveyor's receiver.

Both run as detached processes whose pids, ports and logs are recorded in ``demo.json`` in the demo
directory, so ``conveyor demo --down`` (or the next run) can stop exactly what the demo started.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from conveyor.errors import ConveyorError


@dataclass(frozen=True)
class Process:
    name: str
    pid: int
    port: int
    log: str


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def require_port(port: int, what: str) -> None:
    if not _port_free(port):
        raise ConveyorError(
            f"port {port} (for the demo's {what}) is already in use",
            hint="stop what listens there, or run `conveyor demo --down` if it is an earlier demo",
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_http(
    url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:]
            raise ConveyorError(f"the demo's {what} exited at start (log {log}):\n{tail}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise ConveyorError(f"the demo's {what} did not answer within {timeout:.0f} s (log {log})")


def _spawn(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


@dataclass(frozen=True)
class RegistryCredentials:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"RegistryCredentials(username={self.username!r}, password='***')"


def registry_credentials(root: Path) -> RegistryCredentials:
    """The demo registry's user and password, created once and kept (mode 600) in the demo dir."""
    path = root / "registry" / "credentials.json"
    if path.exists():
        data = json.loads(path.read_text())
        return RegistryCredentials(data["username"], data["password"])
    creds = RegistryCredentials("demo", secrets.token_urlsafe(18))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(asdict(creds)))
    return creds


def start_registry(root: Path, port: int, creds: RegistryCredentials) -> Process:
    """Debian's ``docker-registry`` (distribution 2.8) with htpasswd (bcrypt) auth on 127.0.0.1."""
    for tool in ("docker-registry", "htpasswd"):
        if shutil.which(tool) is None:
            raise ConveyorError(f"{tool} is not installed", hint="run ./dev.sh setup")
    require_port(port, "registry")
    base = root / "registry"
    base.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["htpasswd", "-B", "-i", "-c", str(base / "htpasswd"), creds.username],
        input=creds.password.encode(),
        check=True,
        capture_output=True,
    )
    config = base / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: info\n"
        f"storage:\n  filesystem:\n    rootdirectory: {base / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"auth:\n  htpasswd:\n    realm: conveyor-demo\n    path: {base / 'htpasswd'}\n"
    )
    log = root / "logs" / "registry.log"
    proc = _spawn(["docker-registry", "serve", str(config)], log)
    _wait_http(f"http://127.0.0.1:{port}/v2/", proc, log, 30, "registry")
    return Process("registry", proc.pid, port, str(log))


def start_receiver(root: Path, spec: Path, port: int, env: dict[str, str]) -> Process:
    """``conveyor serve SPEC --dispatch local`` in the background, waiting for /healthz."""
    require_port(port, "receiver")
    log = root / "logs" / "receiver.log"
    args = [
        sys.executable,
        "-m",
        "conveyor.cli.main",
        "serve",
        str(spec),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dispatch",
        "local",
        "--workers",
        "1",
        "--state",
        str(root / "state"),
    ]
    proc = _spawn(args, log, env)
    _wait_http(f"http://127.0.0.1:{port}/healthz", proc, log, 60, "receiver")
    return Process("receiver", proc.pid, port, str(log))


def record(root: Path, processes: list[Process]) -> None:
    (root / "demo.json").write_text(json.dumps([asdict(p) for p in processes], indent=2))


def stop_recorded(root: Path, timeout: float = 30) -> list[str]:
    """Stop the processes an earlier run recorded (SIGTERM, then SIGKILL). Returns their names."""
    path = root / "demo.json"
    if not path.exists():
        return []
    stopped = []
    for item in json.loads(path.read_text()):
        proc = Process(**item)
        if stop_process(proc.pid, timeout):
            stopped.append(proc.name)
    path.unlink()
    return stopped


def stop_process(pid: int, timeout: float) -> bool:
    if not _alive(pid):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = 0 if _alive(pid) else pid
        if done or not _alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True
