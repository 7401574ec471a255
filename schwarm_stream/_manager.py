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
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, PackageNotFoundError, entry_points, packages_distributions, version
from typing import Any

import pluggy
from pydantic import BaseModel

from . import hookspecs
from ._errors import ConfigError, PluginError, PluginLoadError
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
    "metrics": "schwarm_stream.builtins.metrics",
    "retry": "schwarm_stream.builtins.retry",
    "recovery": "schwarm_stream.builtins.recovery",
    "timeouts": "schwarm_stream.builtins.timeouts",
}

#: Built-ins that cannot be disabled (only replaced by registering another
#: plugin under the same name).
ESSENTIAL_PLUGINS: frozenset[str] = frozenset({"accumulate"})


_BUILTIN_SCHEMAS: dict[str, type[BaseModel]] | None = None


def builtin_config_schemas() -> dict[str, type[BaseModel]]:
    """The config sections the built-in plugins declare through ``stream_config_schema`` (asked once).

    The built-ins are part of the package, so their sections are validated with
    the :class:`~schwarm_stream.Config` itself (``config.retry``), also when a
    built-in is disabled or replaced, as before they were plugins.
    """
    global _BUILTIN_SCHEMAS
    if _BUILTIN_SCHEMAS is None:
        found: dict[str, type[BaseModel]] = {}
        for modname in BUILTIN_PLUGINS.values():
            declare = getattr(importlib.import_module(modname), "stream_config_schema", None)
            declared = declare() if callable(declare) else None
            for section, model in (declared or {}).items():
                found.setdefault(section, model)
        _BUILTIN_SCHEMAS = found
    return _BUILTIN_SCHEMAS


#: Values of :attr:`PluginInfo.status`.
STATUSES = ("enabled", "blocked", "replaced", "not loaded", "failed")


@dataclass
class PluginInfo:
    """What ``schwarm-stream plugins`` lists about one plugin.

    ``status`` is ``"enabled"`` (registered, its hooks are called),
    ``"blocked"`` (disabled by name in config or ``SCHWARM_STREAM_DISABLE_PLUGINS``),
    ``"replaced"`` (a built-in another plugin was registered in place of),
    ``"not loaded"`` (an entry point skipped because autoload is off) or
    ``"failed"`` (an entry point that could not be loaded; ``error`` says why).
    """

    name: str
    builtin: bool
    distribution: str | None = None
    version: str | None = None
    module: str | None = None
    hooks: list[str] = field(default_factory=list)
    status: str = "enabled"
    error: str | None = None

    @property
    def enabled(self) -> bool:
        """True when the plugin is registered and its hooks are called."""
        return self.status == "enabled"

    @property
    def blocked(self) -> bool:
        """True when the plugin was disabled by name."""
        return self.status == "blocked"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``schwarm-stream plugins --json`` prints per plugin)."""
        return {
            "name": self.name,
            "builtin": self.builtin,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "hooks": list(self.hooks),
            "status": self.status,
            "enabled": self.enabled,
            "blocked": self.blocked,
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


def _distribution_of(obj: Any) -> tuple[str | None, str | None]:
    """The installed distribution (name, version) providing ``obj``'s top-level package, if any."""
    module = obj.__name__ if inspect.ismodule(obj) else getattr(type(obj), "__module__", None)
    if not module:
        return None, None
    top = module.partition(".")[0]
    names = _dist_index().get(top) or []
    if not names:
        return None, None
    try:
        return names[0], version(names[0])
    except PackageNotFoundError:  # pragma: no cover - metadata vanished between the two calls
        return names[0], None


_DIST_INDEX: tuple[tuple[str, ...], Mapping[str, list[str]]] | None = None


def _dist_index() -> Mapping[str, list[str]]:
    """``packages_distributions()`` cached per ``sys.path`` (the scan costs ~75 ms)."""
    global _DIST_INDEX
    key = tuple(sys.path)
    if _DIST_INDEX is None or _DIST_INDEX[0] != key:
        _DIST_INDEX = (key, packages_distributions())
    return _DIST_INDEX[1]


def _module_of(obj: Any) -> str | None:
    if inspect.ismodule(obj):
        return obj.__name__
    return f"{type(obj).__module__}:{type(obj).__qualname__}"


def _default_name(pm: pluggy.PluginManager, obj: Any) -> str:
    """The name of a plugin passed without one: ``module.Class`` (a module: its name), made unique.

    pluggy would name it by ``id()``, a number that says nothing in a warning.
    A second plugin of the same class gets ``#2``, and so on.
    """
    if inspect.ismodule(obj):
        base = obj.__name__
    else:
        cls = obj if inspect.isclass(obj) else type(obj)
        base = f"{cls.__module__}.{cls.__qualname__}"
    name, n = base, 1
    while pm.has_plugin(name) or pm.is_blocked(name):
        n += 1
        name = f"{base}#{n}"
    return name


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
    whose name is a built-in's replaces that built-in. ``disable`` (plus
    ``SCHWARM_STREAM_DISABLE_PLUGINS``) blocks plugins by name; an essential
    built-in cannot be blocked, only replaced. ``autoload=False`` (or
    ``SCHWARM_STREAM_DISABLE_PLUGIN_AUTOLOAD=1``) loads only the entry points
    named in ``enable``. Returns the manager and a listing of every plugin
    considered (including blocked, skipped and failed ones).
    """
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    named = _named(plugins)
    replaced = {n for n, _ in named if n in BUILTIN_PLUGINS}
    blocked = _block(pm, disable, replaced)
    infos = _register_builtins(pm, replaced)
    ep_infos, ep_names = _register_entry_points(
        pm, set(enable), autoload=autoload and not autoload_disabled(), load_errors=load_errors
    )
    infos += ep_infos
    infos += _register_given(pm, named)
    _warn_unknown_blocked(blocked, set(BUILTIN_PLUGINS) | ep_names | {i.name for i in infos})
    for info in infos:
        plugin = pm.get_plugin(info.name) if info.enabled else None
        if plugin is not None:
            info.hooks = sorted(c.name for c in (pm.get_hookcallers(plugin) or []))
    return pm, infos


def _named(plugins: Iterable[Any]) -> list[tuple[str | None, Any]]:
    """The caller's plugins as ``(name or None, plugin)``."""
    named: list[tuple[str | None, Any]] = []
    for p in plugins:
        if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str):
            named.append((p[0], p[1]))
        else:
            named.append((None, p))
    return named


def _block(pm: pluggy.PluginManager, disable: Iterable[str], replaced: set[str]) -> set[str]:
    """Phase 0: block the disabled names (config and environment); an essential built-in cannot be."""
    blocked = set(disable) | set(env_disabled())
    for name in sorted(blocked & ESSENTIAL_PLUGINS - replaced):
        raise ConfigError(
            f"built-in plugin {name!r} cannot be disabled (it builds stream.message); "
            f"replace it instead by registering your plugin under the name {name!r}",
            key="plugins.disable",
        )
    for name in blocked:
        pm.set_blocked(name)
    return blocked


def _register_builtins(pm: pluggy.PluginManager, replaced: set[str]) -> list[PluginInfo]:
    """Phase 1: the built-in plugins, unless blocked or replaced."""
    infos: list[PluginInfo] = []
    for name, modname in BUILTIN_PLUGINS.items():
        info = PluginInfo(name=name, builtin=True, module=modname, distribution="schwarm-stream")
        info.version = _own_version()
        if name in replaced:
            info.status = "replaced"
        elif pm.is_blocked(name):
            info.status = "blocked"
        else:
            pm.register(importlib.import_module(modname), name=name)
        infos.append(info)
    return infos


def _register_entry_points(
    pm: pluggy.PluginManager, explicit: set[str], *, autoload: bool, load_errors: str
) -> tuple[list[PluginInfo], set[str]]:
    """Phase 2: the installed entry points (all with autoload, else those in ``explicit``)."""
    infos: list[PluginInfo] = []
    eps = iter_entry_points()
    for ep in eps:
        dist = ep.dist.name if ep.dist is not None else None
        ver = ep.dist.version if ep.dist is not None else None
        info = PluginInfo(name=ep.name, builtin=False, distribution=dist, version=ver, module=ep.value)
        infos.append(info)
        if pm.is_blocked(ep.name):
            info.status = "blocked"
        elif not autoload and ep.name not in explicit:
            info.status = "not loaded"
        else:
            try:
                _register_entry_point(pm, ep, dist)
            except PluginLoadError as exc:
                info.status, info.error = "failed", str(exc)
                if load_errors == "raise":
                    raise
                log.warning("%s", exc)
    ep_names = {ep.name for ep in eps}
    missing = sorted(explicit - ep_names)
    if missing:  # asked for by name: a misspelt or uninstalled plugin is a mistake, not a preference
        installed = ", ".join(sorted(ep_names)) or "none"
        raise ConfigError(
            f"plugin(s) {', '.join(map(repr, missing))} named in [plugins] enable are not installed "
            f"(no entry point of that name in group {ENTRY_POINT_GROUP!r}; installed: {installed})",
            key="plugins.enable",
        )
    return infos, ep_names


def _register_entry_point(pm: pluggy.PluginManager, ep: EntryPoint, dist: str | None) -> None:
    """Load and register one entry point; any failure is a :class:`PluginLoadError`."""
    if ep.name in BUILTIN_PLUGINS:
        raise PluginLoadError(
            f"entry point {ep.name!r} of distribution {dist!r} has the name of a built-in plugin. "
            f"Hint: rename the entry point; to replace the built-in, register the plugin "
            f"yourself: Pipeline([({ep.name!r}, plugin)])",
            entry_point=ep.name,
            distribution=dist,
        )
    obj = load_entry_point(ep)
    try:
        pm.register(obj, name=ep.name)
        _check_hook_names(pm, obj, ep.name)
    except Exception as exc:  # pluggy validation: unknown hook or argument, duplicate object
        if pm.is_registered(obj):
            pm.unregister(obj)
        raise PluginLoadError(
            f"entry point {ep.name!r} ({ep.value}) of distribution {dist!r} is not a valid plugin: {exc}",
            entry_point=ep.name,
            distribution=dist,
        ) from exc


def _register_given(pm: pluggy.PluginManager, named: list[tuple[str | None, Any]]) -> list[PluginInfo]:
    """Phase 3: the caller's plugins (registered last, so called first)."""
    infos: list[PluginInfo] = []
    for name, obj in named:
        dist, ver = _distribution_of(obj)
        info = PluginInfo(
            name=name or "", builtin=False, distribution=dist, version=ver, module=_module_of(obj)
        )
        if name is not None and pm.is_blocked(name):
            info.status = "blocked"
            infos.append(info)
            continue
        registered = pm.register(obj, name=name if name is not None else _default_name(pm, obj))
        if registered is None:  # pragma: no cover - pluggy returns None only for blocked names
            continue
        info.name = registered
        infos.append(info)
        try:
            _check_hook_names(pm, obj, name or _module_of(obj) or registered)
        except pluggy.PluginValidationError as exc:
            raise PluginError(str(exc), plugin_name=registered, hook_name="<register>") from None
    return infos


def _warn_unknown_blocked(blocked: set[str], known: set[str]) -> None:
    for name in sorted(blocked - known):
        log.warning(
            "plugin %r named in [plugins] disable / %s matches no built-in or installed plugin",
            name,
            DISABLE_ENV,
        )


def _check_hook_names(pm: pluggy.PluginManager, plugin: Any, name: str) -> None:
    """Reject a ``@hookimpl`` whose name is no hook (a typo would otherwise never be called)."""
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.spec is None:
            impl = next(i for i in caller.get_hookimpls() if i.plugin is plugin)
            if not impl.optionalhook:
                raise pluggy.PluginValidationError(
                    plugin,
                    f"plugin {name!r}: {caller.name}() is marked @hookimpl but there is no such hook; "
                    f"hooks are: {', '.join(hookspecs.HOOK_NAMES)}",
                )


def _own_version() -> str:
    from ._version import __version__

    return __version__
