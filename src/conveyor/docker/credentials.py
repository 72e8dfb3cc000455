"""Registry credentials for push and cache pulls: from the environment, else Docker's config.

Order, for a registry ``HOST[:PORT]``:

1. ``CONVEYOR_REGISTRY_USER`` + ``CONVEYOR_REGISTRY_PASSWORD`` (explicit, for local runs);
2. ``REGISTRY_USER`` + ``REGISTRY_PASSWORD``: the names the generated Jenkinsfile binds with
   ``withCredentials([usernamePassword(credentialsId: <push.credentials>, usernameVariable:
   'REGISTRY_USER', passwordVariable: 'REGISTRY_PASSWORD')])``;
3. ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``): ``auths[HOST].auth``, the
   base64 of ``user:password`` that ``docker login`` writes.

A ``credsStore``/``credHelpers`` entry (an OS keychain helper) is not consulted: conveyor says so and
goes on without credentials. Passwords are never logged nor put in messages.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.config import home_dir
from conveyor.errors import RegistryError

ENV_PAIRS = (
    ("CONVEYOR_REGISTRY_USER", "CONVEYOR_REGISTRY_PASSWORD"),
    ("REGISTRY_USER", "REGISTRY_PASSWORD"),
)


@dataclass(frozen=True)
class RegistryAuth:
    """A username/password for one registry; ``origin`` says where it came from (never the secret)."""

    registry: str
    username: str
    password: str = field(repr=False)
    origin: str

    def auth_config(self) -> dict[str, str]:
        """The docker SDK's ``auth_config`` for push/pull."""
        return {
            "username": self.username,
            "password": self.password,
            "serveraddress": self.registry,
        }


@dataclass(frozen=True)
class AuthLookup:
    """The outcome of a lookup: credentials (or None) and a note to show the user, if any."""

    auth: RegistryAuth | None
    note: str = ""


def _normalise(host: str) -> str:
    host = host.strip()
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix) :]
    return host.split("/", 1)[0].lower()


def docker_config_path(env: Mapping[str, str]) -> Path:
    base = env.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    home = home_dir(env)  # none for Jenkins' container user (HOME=/): no config file then
    return (home or Path("/nonexistent")) / ".docker" / "config.json"


def find_auth(
    registry: str, env: Mapping[str, str] | None = None, config_path: Path | None = None
) -> AuthLookup:
    """Credentials for ``registry`` (``HOST[:PORT]``) from the environment or Docker's config."""
    env = os.environ if env is None else env
    host = _normalise(registry)
    for user_var, pass_var in ENV_PAIRS:
        user, password = env.get(user_var), env.get(pass_var)
        if user and password:
            return AuthLookup(RegistryAuth(host, user, password, f"{user_var}/{pass_var}"))
        if user and not password:
            raise RegistryError(
                f"{user_var} is set but {pass_var} is not (registry {host})",
                hint=f"set both {user_var} and {pass_var}, or neither",
            )
    path = config_path or docker_config_path(env)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return AuthLookup(None)
    except (OSError, ValueError) as exc:
        raise RegistryError(f"cannot read Docker config {path}: {exc}") from None
    if not isinstance(config, dict):
        raise RegistryError(f"Docker config {path} is not a JSON object")
    auths = config.get("auths") or {}
    for key, entry in auths.items() if isinstance(auths, dict) else ():
        if _normalise(key) != host or not isinstance(entry, dict):
            continue
        encoded = entry.get("auth")
        if isinstance(encoded, str) and encoded:
            try:
                user, sep, password = base64.b64decode(encoded).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise RegistryError(
                    f"Docker config {path}: auths[{key!r}].auth is not base64 of user:password"
                ) from None
            if not sep:
                raise RegistryError(f"Docker config {path}: auths[{key!r}].auth has no ':'")
            return AuthLookup(RegistryAuth(host, user, password, str(path)))
    helper = (config.get("credHelpers") or {}).get(host) or config.get("credsStore")
    if helper:
        return AuthLookup(
            None,
            note=(
                f"{path} keeps credentials for {host} in the credential helper "
                f"docker-credential-{helper}, which conveyor does not call; pushing without "
                "credentials (set CONVEYOR_REGISTRY_USER/CONVEYOR_REGISTRY_PASSWORD to log in)"
            ),
        )
    return AuthLookup(None)
