"""conveyor's plugin system (pluggy): hook contracts in :mod:`hookspecs`, loading in :mod:`manager`."""

from conveyor.plugins.hookspecs import hookimpl, hookspec
from conveyor.plugins.manager import LoadedPlugin, get_plugin_manager, loaded_plugins

__all__ = ["LoadedPlugin", "get_plugin_manager", "hookimpl", "hookspec", "loaded_plugins"]
