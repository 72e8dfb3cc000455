"""Call a hook of every plugin and combine the answers as :mod:`conveyor.plugins.hookspecs` says.

Each function here is the one caller of one hook. Answers are taken plugin by plugin (pluggy's
``HookCaller.get_hookimpls``, in pluggy's own call order), so a clash can name the plugins on both
sides: a name offered twice is a :class:`~conveyor.errors.PluginError`, never a silent shadowing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from conveyor.errors import PluginError
from conveyor.plugins.hookspecs import RenderedFile
from conveyor.plugins.manager import get_plugin_manager

if TYPE_CHECKING:
    from conveyor.docker.deploy import Deployer
    from conveyor.receiver.dispatch import DispatcherFactory
    from conveyor.spec.model import Spec

T = TypeVar("T")
CONVEYOR = "conveyor itself"


def each_answer(caller: pluggy.HookCaller, **kwargs: Any) -> list[tuple[str, Any]]:
    """``(plugin name, answer)`` of every plugin implementing the hook, in pluggy's call order (the
    last registered first); ``None`` answers are left out, as pluggy leaves them out."""
    out: list[tuple[str, Any]] = []
    for impl in reversed(caller.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            raise PluginError(
                f"plugin {impl.plugin_name!r} wraps {caller.name}, whose answers are combined by "
                "plugin; implement it plainly",
                hint="see conveyor.plugins.hookspecs",
            )
        try:
            answer = impl.function(*(kwargs[name] for name in impl.argnames))
        except PluginError:
            raise
        except Exception as exc:  # a third-party plugin's bug must name the plugin
            raise PluginError(
                f"plugin {impl.plugin_name!r} failed in {caller.name}: {type(exc).__name__}: {exc}"
            ) from exc
        if answer is not None:
            out.append((impl.plugin_name, answer))
    return out


def merge_named(
    hook: str,
    what: str,
    answers: Iterable[tuple[str, Iterable[tuple[str, T]]]],
    builtin: Mapping[str, T] | None = None,
    reserved: Iterable[str] = (),
) -> dict[str, T]:
    """One mapping from every offerer's ``(name, value)`` pairs; PluginError naming both offerers
    when a name comes twice (conveyor's ``builtin`` and ``reserved`` names count as offered by
    conveyor itself)."""
    merged: dict[str, T] = dict(builtin or {})
    offered_by = dict.fromkeys([*merged, *reserved], CONVEYOR)
    for plugin, pairs in answers:
        for name, value in pairs:
            if name in offered_by:
                first = offered_by[name]
                first_text = first if first == CONVEYOR else f"plugin {first!r}"
                raise PluginError(
                    f"{what} {name!r} is offered twice ({hook}): by {first_text} and by plugin "
                    f"{plugin!r}",
                    hint="a plugin cannot replace another's name: rename it, or disable one of "
                    "them with CONVEYOR_DISABLE_PLUGINS",
                )
            offered_by[name] = plugin
            merged[name] = value
    return merged


def _mapping(plugin: str, hook: str, answer: Any) -> list[tuple[str, Any]]:
    if not isinstance(answer, Mapping):
        raise PluginError(
            f"plugin {plugin!r}: {hook} must return a mapping of names, not {type(answer).__name__}"
        )
    return [(str(name), value) for name, value in answer.items()]


def deploy_targets(pm: pluggy.PluginManager | None = None) -> dict[str, Deployer]:
    """Every deploy target by name (``conveyor_deploy_targets``)."""
    pm = pm or get_plugin_manager()
    hook = "conveyor_deploy_targets"
    answers = each_answer(pm.hook.conveyor_deploy_targets)
    return merge_named(hook, "deploy target", ((p, _mapping(p, hook, a)) for p, a in answers))


def dispatchers(
    builtin: Mapping[str, DispatcherFactory],
    reserved: Iterable[str] = (),
    pm: pluggy.PluginManager | None = None,
) -> dict[str, DispatcherFactory]:
    """Every dispatch target by name (``conveyor_dispatchers``) beside conveyor's ``builtin`` ones;
    ``reserved`` names (``auto``) no plugin may offer."""
    pm = pm or get_plugin_manager()
    hook = "conveyor_dispatchers"
    answers = each_answer(pm.hook.conveyor_dispatchers)
    return merge_named(
        hook, "dispatch target", ((p, _mapping(p, hook, a)) for p, a in answers), builtin, reserved
    )


def template_dirs(pm: pluggy.PluginManager | None = None) -> list[tuple[str, Path]]:
    """``(plugin name, directory)`` of every plugin's templates (``conveyor_templates``)."""
    pm = pm or get_plugin_manager()
    return [
        (plugin, Path(directory))
        for plugin, answer in each_answer(pm.hook.conveyor_templates)
        for directory in answer
    ]


def spec_checks(spec: Spec, pm: pluggy.PluginManager | None = None) -> list[str]:
    """Every plugin's messages about ``spec`` (``conveyor_spec_checks``), concatenated."""
    pm = pm or get_plugin_manager()
    return [
        str(m) for _, answer in each_answer(pm.hook.conveyor_spec_checks, spec=spec) for m in answer
    ]


def render_files(
    spec: Spec, gitlab_url: str | None = None, pm: pluggy.PluginManager | None = None
) -> list[RenderedFile]:
    """Every plugin's files for ``spec`` (``conveyor_render_files``), checked: relative
    ``/``-separated paths without ``..``, no path offered twice (PluginError naming both)."""
    pm = pm or get_plugin_manager()
    hook = "conveyor_render_files"
    answers = each_answer(pm.hook.conveyor_render_files, spec=spec, gitlab_url=gitlab_url)
    offered = [
        (plugin, [(_checked_path(plugin, f.path), f) for f in files]) for plugin, files in answers
    ]
    return list(merge_named(hook, "rendered file", offered).values())


def _checked_path(plugin: str, path: str) -> str:
    pure = PurePosixPath(path)
    if not path or "\\" in path or pure.is_absolute() or ".." in pure.parts or "\0" in path:
        raise PluginError(
            f"plugin {plugin!r} rendered a file at {path!r}: paths must be relative, "
            "'/'-separated and stay inside the output directory"
        )
    return str(pure)
