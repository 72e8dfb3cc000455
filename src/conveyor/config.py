"""Settings from the environment (``CONVEYOR_*``), optionally completed by a TOML config file.

Environment variables win over the file. The file is ``$CONVEYOR_CONFIG`` if set, else
``$XDG_CONFIG_HOME/conveyor/config.toml`` (``~/.config/conveyor/config.toml``) when it exists; with no real
home (``HOME=/`` or unset, as for Jenkins' container user) there is no default file. Its keys are
the variable names without the prefix, lower-cased (``gitlab_url = "https://gitlab.example.com"``).

Settings are validated once, here: a command asks ``settings.require("gitlab_url", ...)`` before it sends any
request, and gets one ConfigError naming every missing or malformed variable.
"""

from __future__ import annotations

import os
import pwd
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from conveyor.errors import ConfigError

_URL_FIELDS = ("gitlab_url", "jenkins_url", "webhook_url", "webhook_url_previous")
_SECRET_FIELDS = (
    "gitlab_token",
    "jenkins_token",
    "secret",
    "previous_secret",
    "webhook_signing_token",
)


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return _ENV_NAMES.get(field, "CONVEYOR_" + field.upper())


_ENV_NAMES = {
    "previous_secret": "CONVEYOR_SECRET_PREVIOUS",
    "previous_secret_until": "CONVEYOR_SECRET_PREVIOUS_UNTIL",
    "state_dir": "CONVEYOR_STATE",
}


CONFIG_VARIABLE = "CONVEYOR_CONFIG"  # the config file's path


def setting_variables() -> tuple[str, ...]:
    """Every variable conveyor's settings are read from (the config file's own included)."""
    return (*(env_name(f.name) for f in fields(Settings)), CONFIG_VARIABLE)


def home_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """The user's home for dot-directories, or None when there is no usable one.

    Jenkins' docker-workflow runs containers as ``-u 1000:1000`` with ``HOME=/`` (runc's default for a
    uid without a passwd entry, see ../shared/reference/jenkins.md "Container user"): ``/`` is never
    a home conveyor writes under, and neither is a missing ``HOME`` without a passwd entry (where
    ``Path.home()`` raises).
    """
    env = os.environ if env is None else env
    raw = env.get("HOME")
    if raw is None:
        try:
            raw = pwd.getpwuid(os.getuid()).pw_dir
        except KeyError:
            return None
    home = Path(raw)
    if not home.is_absolute() or home == Path("/"):
        return None
    return home


def _writable(path: Path) -> bool:
    """Could this process create (or write in) ``path``? Checks the nearest existing ancestor."""
    for candidate in (path, *path.parents):
        try:
            exists = candidate.exists()
        except OSError:  # a parent this user may not even search (EACCES): not writable
            return False
        if exists:
            return candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK)
    return False


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where conveyor keeps local state when ``--state`` is not given.

    ``$CONVEYOR_STATE``, else ``$XDG_STATE_HOME/conveyor``, else ``~/.local/state/conveyor`` when there
    is a real, writable home (see :func:`home_dir`), else ``<tmp>/conveyor-<uid>/state`` (``TMPDIR`` or
    ``/tmp``). The last case is the Jenkins container user (uid 1000, ``HOME=/``): local state there is
    scratch anyway, and the deploy history lives on the deploy engine
    (:mod:`conveyor.docker.history`), not here.
    """
    env = os.environ if env is None else env
    if env.get("CONVEYOR_STATE"):
        return Path(env["CONVEYOR_STATE"]).expanduser()
    xdg = env.get("XDG_STATE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "conveyor"
    home = home_dir(env)
    if home is not None and _writable(home / ".local" / "state" / "conveyor"):
        return home / ".local" / "state" / "conveyor"
    tmp = Path(env.get("TMPDIR") or tempfile.gettempdir())
    return tmp / f"conveyor-{os.getuid()}" / "state"


@dataclass(frozen=True)
class Settings:
    """Every setting conveyor reads. ``None`` means not set."""

    gitlab_url: str | None = None
    gitlab_token: str | None = None
    jenkins_url: str | None = None
    jenkins_user: str | None = None
    jenkins_token: str | None = None
    webhook_url: str | None = None
    webhook_url_previous: str | None = None  # the receiver's old URL while hooks move off it
    git_url: str | None = None  # where the local runner clones from (default: gitlab_url)
    secret: str | None = None
    previous_secret: str | None = None
    previous_secret_until: datetime | None = None
    state_dir: Path = Path()
    status_retry_hours: float = 6.0  # how long a commit status is retried before it is given up
    # GitLab 19 signing token(s), ``whsec_...``, comma-separated during rotation (first = current)
    webhook_signing_token: str | None = None
    retention_days: float = (
        30.0  # serve / events prune: finished events older than this go (0: no age limit)
    )
    retention_events: int = 100_000  # ... and beyond the newest this many (0: no count limit)

    def missing(self, *names: str) -> list[str]:
        """The variables of the settings among ``names`` that are unset."""
        return [env_name(n) for n in names if getattr(self, n) in (None, "")]

    def require(self, *names: str) -> None:
        """Raise one ConfigError naming every variable among ``names`` that is unset."""
        missing = self.missing(*names)
        if missing:
            raise ConfigError(
                "missing setting" + ("s" if len(missing) > 1 else "") + ": " + ", ".join(missing),
                hint="export "
                + " ".join(f"{m}=..." for m in missing)
                + " (or put them in the config file, see `conveyor --help`)",
            )

    @property
    def jenkins_configured(self) -> bool:
        return bool(self.jenkins_url and self.jenkins_user and self.jenkins_token)

    @property
    def gitlab_configured(self) -> bool:
        return bool(self.gitlab_url and self.gitlab_token)

    def __repr__(self) -> str:  # never show secret values
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS and value:
                value = "***"
            shown.append(f"{f.name}={value!r}")
        return "Settings(" + ", ".join(shown) + ")"


def _config_file(env: Mapping[str, str]) -> Path | None:
    if env.get(CONFIG_VARIABLE):
        return Path(env[CONFIG_VARIABLE]).expanduser()
    xdg = env.get("XDG_CONFIG_HOME")
    home = home_dir(env)
    base = Path(xdg) if xdg else (home / ".config" if home is not None else None)
    if base is None:
        return None
    candidate = base / "conveyor" / "config.toml"
    try:
        return candidate if candidate.exists() else None
    except OSError:  # a home this user may not search: there is no config file for it
        return None


def _read_file(path: Path) -> dict[str, str]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist (CONVEYOR_CONFIG)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown key(s) {', '.join(unknown)}",
            hint="known keys: " + ", ".join(sorted(known)),
        )
    return {k: str(v) for k, v in data.items()}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (default ``os.environ``) and the config file; validate formats."""
    env = os.environ if env is None else env
    values: dict[str, str] = {}
    path = _config_file(env)
    if path is not None:
        values.update(_read_file(path))
    for f in fields(Settings):
        raw = env.get(env_name(f.name))
        if raw is not None and raw != "":
            values[f.name] = raw

    problems: list[str] = []
    for name in _URL_FIELDS:
        url = values.get(name)
        if url:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                problems.append(f"{env_name(name)} must be an http(s) URL, got {url!r}")
            else:
                values[name] = url.rstrip("/")
    git_url = values.get("git_url")
    if git_url:
        parsed = urlparse(git_url)
        local = parsed.scheme == "file" and not parsed.netloc and parsed.path.startswith("/")
        if not local and (parsed.scheme not in ("http", "https") or not parsed.netloc):
            problems.append(
                f"{env_name('git_url')} must be an http(s) or file:/// URL, got {git_url!r}"
            )
        else:
            values["git_url"] = git_url.rstrip("/")
    until: datetime | None = None
    if values.get("previous_secret_until"):
        try:
            until = datetime.fromisoformat(values["previous_secret_until"])
        except ValueError:
            problems.append(
                f"{env_name('previous_secret_until')} must be an ISO-8601 time "
                f"(e.g. 2026-12-01T00:00:00+00:00), got {values['previous_secret_until']!r}"
            )
        else:
            if until.tzinfo is None:
                until = until.replace(tzinfo=UTC)
    if values.get("previous_secret") and not values.get("secret"):
        problems.append("CONVEYOR_SECRET_PREVIOUS is set but CONVEYOR_SECRET is not")
    if values.get("previous_secret") and not values.get("previous_secret_until"):
        problems.append(
            "CONVEYOR_SECRET_PREVIOUS needs CONVEYOR_SECRET_PREVIOUS_UNTIL (the end of the rotation overlap)"
        )
    retry_hours = 6.0
    if values.get("status_retry_hours"):
        try:
            retry_hours = float(values["status_retry_hours"])
        except ValueError:
            retry_hours = -1.0
        if not 0 < retry_hours <= 24 * 30:
            problems.append(
                f"{env_name('status_retry_hours')} must be a number of hours above 0 and at most "
                f"720 (e.g. 6 or 0.5), got {values['status_retry_hours']!r}"
            )
    retention: dict[str, float] = {}
    for name, kind in (("retention_days", float), ("retention_events", int)):
        if values.get(name):
            try:
                number = kind(values[name])
            except ValueError:
                number = -1
            if number < 0 or number != number or number == float("inf"):
                problems.append(
                    f"{env_name(name)} must be a {'number of days' if kind is float else 'count'}"
                    f" >= 0 (0 turns the limit off), got {values[name]!r}"
                )
            else:
                retention[name] = number
    if problems:
        raise ConfigError(
            "invalid setting" + ("s" if len(problems) > 1 else "") + ": " + "; ".join(problems)
        )
    state = (
        Path(values["state_dir"]).expanduser()
        if values.get("state_dir")
        else default_state_dir(env)
    )
    return Settings(
        gitlab_url=values.get("gitlab_url"),
        gitlab_token=values.get("gitlab_token"),
        jenkins_url=values.get("jenkins_url"),
        jenkins_user=values.get("jenkins_user"),
        jenkins_token=values.get("jenkins_token"),
        webhook_url=values.get("webhook_url"),
        webhook_url_previous=values.get("webhook_url_previous"),
        git_url=values.get("git_url"),
        secret=values.get("secret"),
        previous_secret=values.get("previous_secret"),
        previous_secret_until=until,
        state_dir=state,
        status_retry_hours=retry_hours,
        webhook_signing_token=values.get("webhook_signing_token"),
        retention_days=float(retention.get("retention_days", Settings.retention_days)),
        retention_events=int(retention.get("retention_events", Settings.retention_events)),
    )
