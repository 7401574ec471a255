"""The plugin manager: built-in plugins, entry-point plugins, blocking, listing.

Order of registration (pluggy calls the last registered first): built-ins, then
entry-point plugins, then plugins passed by the caller. So a user's plugin sees
events before third-party ones, and those before the built-ins, unless
``tryfirst``/``trylast`` say otherwise.

Entry points (group ``schwarm_stream``) are loaded lazily, when a pipeline opens
its first stream, never at ``import schwarm_stream``.
``SCHWARM_STREAM_DISABLE_PLUGIN_AUTOLOAD=1`` loads none of them except those
named in ``[plugins] enable``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from . import hookspecs
from ._errors import ConfigError, PluginLoadError
from .hookspecs import PROJECT_NAME

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "ESSENTIAL_PLUGINS",
    "PluginInfo",
    "make_plugin_manager",
]

log = logging.getLogger("schwarm_stream")

ENTRY_POINT_GROUP = "schwarm_stream"
AUTOLOAD_ENV = "SCHWARM_STREAM_DISABLE_PLUGIN_AUTOLOAD"
DISABLE_ENV = "SCHWARM_STREAM_DISABLE_PLUGINS"

#: Built-in plugins by short name -> module. Each is an ordinary plugin module
#: using the public ``hookimpl``; they are registered under the short name.
BUILTIN_PLUGINS: dict[str, str] = {
    "accumulate": "schwarm_stream.builtins.accumulate",
}

#: Built-ins that cannot be disabled (only replaced by registering another
#: plugin under the same name).
ESSENTIAL_PLUGINS: frozenset[str] = frozenset({"accumulate"})


@dataclass
class PluginInfo:
    """What ``schwarm-stream plugins`` lists about one plugin."""

    name: str
    builtin: bool
    distribution: str | None = None
    version: str | None = None
    module: str | None = None
    hooks: list[str] = field(default_factory=list)
    status: str = "enabled"  # enabled | blocked | failed
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "builtin": self.builtin,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "hooks": self.hooks,
            "status": self.status,
            "error": self.error,
        }


def autoload_disabled() -> bool:
    """True when ``SCHWARM_STREAM_DISABLE_PLUGIN_AUTOLOAD`` is set to a true value."""
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def env_disabled() -> list[str]:
    """Plugin names from ``SCHWARM_STREAM_DISABLE_PLUGINS=a,b``."""
    return [n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()]


def iter_entry_points() -> list[EntryPoint]:
    """The installed entry points of group ``schwarm_stream`` (de-duplicated by name)."""
    seen: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        seen.setdefault(ep.name, ep)
    return list(seen.values())


def load_entry_point(ep: EntryPoint) -> Any:
    """Load one entry point; a failure is a :class:`PluginLoadError` naming it and its distribution."""
    dist = ep.dist.name if ep.dist is not None else None
    where = f"entry point {ep.name!r} ({ep.value}) of distribution {dist or '<unknown>'!r}"
    try:
        obj = ep.load()
    except Exception as exc:
        raise PluginLoadError(
            f"{where} failed to import: {type(exc).__name__}: {exc}. "
            f"Hint: reinstall the distribution or disable it with [plugins] disable = [{ep.name!r}]",
            entry_point=ep.name,
            distribution=dist,
        ) from exc
    if inspect.isclass(obj):
        raise PluginLoadError(
            f"{where} points at the class {obj.__qualname__}, not an instance or a module. "
            f"Hint: did you forget the ()? Point it at a module-level instance, e.g. "
            f'"{ep.module}:plugin" with plugin = {obj.__name__}()',
            entry_point=ep.name,
            distribution=dist,
        )
    return obj


def make_plugin_manager(
    plugins: Iterable[Any] = (),
    *,
    disable: Iterable[str] = (),
    enable: Iterable[str] = (),
    autoload: bool = True,
    load_errors: str = "warn",
) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """Build a plugin manager: built-ins, entry points, then ``plugins``.

    ``plugins`` items are plugin objects or ``(name, plugin)`` pairs; a pair
    whose name is a built-in's replaces that built-in. Returns the manager and
    a listing of every plugin considered (including blocked and failed ones).
    """
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []

    named: list[tuple[str | None, Any]] = []
    for p in plugins:
        if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str):
            named.append((p[0], p[1]))
        else:
            named.append((None, p))
    replaced = {n for n, _ in named if n in BUILTIN_PLUGINS}

    blocked = set(disable) | set(env_disabled())
    for name in sorted(blocked & ESSENTIAL_PLUGINS - replaced):
        raise ConfigError(
            f"built-in plugin {name!r} cannot be disabled (it builds stream.message); "
            f"replace it instead by registering your plugin under the name {name!r}",
            key="plugins.disable",
        )
    for name in blocked:
        pm.set_blocked(name)

    # 1. built-ins
    for name, modname in BUILTIN_PLUGINS.items():
        if name in replaced:
            continue
        info = PluginInfo(name=name, builtin=True, module=modname, distribution="schwarm-stream")
        if pm.is_blocked(name):
            info.status = "blocked"
        else:
            pm.register(importlib.import_module(modname), name=name)
        infos.append(info)

    # 2. entry points
    explicit = set(enable)
    if autoload and autoload_disabled():
        autoload = False
    for ep in iter_entry_points():
        dist = ep.dist.name if ep.dist is not None else None
        version = ep.dist.version if ep.dist is not None else None
        info = PluginInfo(name=ep.name, builtin=False, distribution=dist, version=version, module=ep.value)
        infos.append(info)
        if pm.is_blocked(ep.name):
            info.status = "blocked"
            continue
        if not autoload and ep.name not in explicit:
            info.status = "not loaded (autoload off)"
            continue
        if pm.has_plugin(ep.name):
            continue
        try:
            obj = load_entry_point(ep)
            pm.register(obj, name=ep.name)
        except PluginLoadError as exc:
            info.status, info.error = "failed", str(exc)
            if load_errors == "raise":
                raise
            log.warning("%s", exc)
        except Exception as exc:  # pluggy validation: wrong hook name or argument
            err = PluginLoadError(
                f"entry point {ep.name!r} of distribution {dist!r} is not a valid plugin: {exc}",
                entry_point=ep.name,
                distribution=dist,
            )
            info.status, info.error = "failed", str(err)
            if load_errors == "raise":
                raise err from exc
            log.warning("%s", err)
    missing = explicit - {ep.name for ep in iter_entry_points()}
    for name in sorted(missing):
        log.warning(
            "plugin %r named in [plugins] enable is not installed (no entry point of that name)", name
        )

    # 3. the caller's plugins
    for name, obj in named:
        if name is not None and pm.is_blocked(name):
            infos.append(PluginInfo(name=name, builtin=False, status="blocked"))
            continue
        registered = pm.register(obj, name=name)
        if registered is None:
            continue
        infos.append(PluginInfo(name=registered, builtin=False, module=getattr(obj, "__module__", None)))

    for info in infos:
        plugin = pm.get_plugin(info.name)
        if plugin is not None:
            info.hooks = sorted(c.name for c in (pm.get_hookcallers(plugin) or []))
    return pm, infos
