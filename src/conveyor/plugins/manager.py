"""Load plugins: every ``conveyor.plugins`` entry point (built-ins included), then check the hooks.

There is no side door for built-ins: conveyor's gitlab, jenkins, docker and runner plugins are entry
points in conveyor's own ``pyproject.toml``. Set ``CONVEYOR_DISABLE_PLUGINS=name,name`` to skip some:
each is blocked in pluggy (``PluginManager.set_blocked``), so it is never loaded or registered, and a
name that no entry point has is a ConfigError (a typo would otherwise disable nothing).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from types import ModuleType

import pluggy

from conveyor.errors import ConfigError, PluginError
from conveyor.plugins import hookspecs

GROUP = "conveyor.plugins"


@dataclass(frozen=True)
class LoadedPlugin:
    name: str
    module: str
    distribution: str
    version: str
    hooks: tuple[str, ...]


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def build_plugin_manager(
    extra: list[tuple[str, ModuleType | object]] | None = None,
) -> pluggy.PluginManager:
    """A fresh manager with every entry-point plugin (and ``extra`` ones, for tests) registered and
    checked. Raises PluginError naming the plugin that failed."""
    pm = _new_manager()
    disabled = {
        n.strip() for n in os.environ.get("CONVEYOR_DISABLE_PLUGINS", "").split(",") if n.strip()
    }
    found = sorted(entry_points(group=GROUP), key=lambda e: e.name)
    unknown = sorted(disabled - {ep.name for ep in found} - {name for name, _ in extra or []})
    if unknown:
        raise ConfigError(
            f"CONVEYOR_DISABLE_PLUGINS names no installed plugin: {', '.join(unknown)}",
            hint="installed: " + ", ".join(ep.name for ep in found),
        )
    for name in disabled:
        pm.set_blocked(name)
    for ep in found:
        if pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party plugin must name itself
            raise PluginError(f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        _register(pm, ep.name, plugin)
    for name, plugin in extra or []:
        _register(pm, name, plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(
            f"plugin {getattr(exc, 'plugin_name', '?')!r} implements an unknown hook: {exc}",
            hint="hook names are listed in conveyor.plugins.hookspecs",
        ) from None
    return pm


def _register(pm: pluggy.PluginManager, name: str, plugin: object) -> None:
    try:
        pm.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise PluginError(f"plugin {name!r} cannot be registered: {exc}") from None


@lru_cache(maxsize=1)
def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (loaded once)."""
    return build_plugin_manager()


def loaded_plugins(pm: pluggy.PluginManager | None = None) -> list[LoadedPlugin]:
    """Every registered plugin with its distribution, version and implemented hooks."""
    pm = pm or get_plugin_manager()
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        dist_name, version = _dist_of(name)
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or []))
        module = getattr(plugin, "__name__", type(plugin).__name__)
        out.append(LoadedPlugin(name, module, dist_name, version, hooks))
    return sorted(out, key=lambda p: p.name)


def _dist_of(name: str) -> tuple[str, str]:
    for ep in entry_points(group=GROUP):
        if ep.name == name and ep.dist is not None:
            return ep.dist.name, ep.dist.version
    return "", ""
