"""A pipeline: one plugin set and one validated config, opening many streams.

Building the plugin manager (built-ins, entry points, validation of plugin
config sections, ``stream_configure``) happens once, lazily, when the first
stream opens; every stream after that reuses the same precomputed hook table.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pluggy
from pydantic import BaseModel, ValidationError

from ._admission import ADMISSION_PLUGIN, Admission, AdmissionPlugin, AdmissionSchema
from ._dispatch import HookTable
from ._errors import ConfigError, PluginError
from ._hooks import PipelineHooks
from ._manager import BUILTIN_PLUGINS, PluginInfo, make_plugin_manager
from ._registry import REGISTRY_PLUGIN, StreamRegistry, stream_registry
from ._stream import Stream
from .config import Config, format_validation_error
from .sources import Source, as_source

__all__ = ["Pipeline", "default_pipeline", "open"]

log = logging.getLogger("schwarm_stream")

ConfigLike = Config | Mapping[str, Any] | str | os.PathLike[str] | None


def coerce_config(config: ConfigLike) -> Config:
    """A :class:`Config` from a Config, a dict, a TOML path, or ``None`` (defaults + environment)."""
    if config is None:
        return Config.from_env()
    if isinstance(config, Config):
        return config
    if isinstance(config, (str, os.PathLike)):
        return Config.from_toml(Path(config), env=True)
    return Config.from_dict(cast(Mapping[str, Any], config))


class Pipeline:
    """Plugins + config, shared by every stream it opens.

    ``plugins`` are plugin objects (or ``(name, plugin)`` pairs) registered
    after the built-ins and entry points, so they are called first.
    ``registry`` lists the streams it opens (default: the process-wide
    :func:`~schwarm_stream.stream_registry`); ``admission`` limits how many
    run at once (default: from the ``[admission]`` config section; share one
    :class:`~schwarm_stream.Admission` between pipelines for common limits).
    """

    def __init__(
        self,
        plugins: Iterable[Any] = (),
        *,
        config: ConfigLike = None,
        registry: StreamRegistry | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.config = coerce_config(config)
        self.registry = registry if registry is not None else stream_registry()
        self._admission = admission
        self._plugins = list(plugins)
        self._pm: pluggy.PluginManager | None = None
        self._table: HookTable | None = None
        self._infos: list[PluginInfo] = []
        self._lock = threading.Lock()

    # -- plugin set --------------------------------------------------------

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The pluggy manager (built on first use)."""
        return self._ensure()[0]

    @property
    def admission(self) -> Admission | None:
        """The admission control of this pipeline (``None`` when no limit is set; built on first use)."""
        self._ensure()
        return self._admission

    def plugins(self) -> list[PluginInfo]:
        """Every plugin considered: built-ins, entry points (loaded, blocked, failed) and yours."""
        self._ensure()
        return list(self._infos)

    def register(self, plugin: Any, name: str | None = None) -> str:
        """Add a plugin to this pipeline; streams opened afterwards see it.

        Before the first stream it joins the normal build (its config section
        is validated with the others); afterwards it is validated and
        configured on its own.
        """
        if self._table is None:
            with self._lock:
                if self._table is None:
                    # The name is fixed now, so the id returned is the one the plugin is
                    # registered under at build time, and unregister() honours it before then too.
                    name = name or self._pending_name(plugin)
                    self._plugins.append((name, plugin))
                    return name
        pm = self.plugin_manager
        registered = pm.register(plugin, name=name)
        if registered is None:
            raise PluginError(f"plugin {name!r} is blocked", plugin_name=name or "?", hook_name="<register>")
        try:
            # The same path as a plugin present at build time: its config
            # section is validated, then it is configured.
            self.config = self._validate_sections(pm, self.config)
            PipelineHooks(pm).configure_plugin(plugin, self.config)
        except BaseException:
            pm.unregister(plugin)
            raise
        self._infos.append(
            PluginInfo(
                name=registered,
                builtin=False,
                module=getattr(plugin, "__module__", None),
                hooks=sorted(c.name for c in (pm.get_hookcallers(plugin) or [])),
            )
        )
        self._rebuild()
        return registered

    def unregister(self, plugin: Any = None, name: str | None = None) -> None:
        """Remove a plugin (by object or name), also one registered before the first stream."""
        if self._table is None:
            with self._lock:
                if self._table is None:
                    kept = [p for p in self._plugins if not self._is(p, plugin, name)]
                    if len(kept) != len(self._plugins):
                        self._plugins = kept
                        return
        pm = self.plugin_manager
        gone = name or (pm.get_name(plugin) if plugin is not None else None)
        pm.unregister(plugin=plugin, name=name)
        self._infos = [i for i in self._infos if i.name != gone or i.builtin]
        self._rebuild()

    def _pending_name(self, plugin: Any) -> str:
        """``module.Class`` (a module: its name) of ``plugin``, unique among the pending plugins."""
        if inspect.ismodule(plugin):
            base = plugin.__name__
        else:
            cls = plugin if inspect.isclass(plugin) else type(plugin)
            base = f"{cls.__module__}.{cls.__qualname__}"
        taken = {p[0] for p in self._plugins if isinstance(p, tuple)}
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}#{n}"
        return name

    @staticmethod
    def _is(entry: Any, plugin: Any, name: str | None) -> bool:
        entry_name, obj = entry if isinstance(entry, tuple) else (None, entry)
        return (name is not None and entry_name == name) or (plugin is not None and obj is plugin)

    def _ensure(self) -> tuple[pluggy.PluginManager, HookTable]:
        """The plugin manager and its hook table, built on first use (thread-safe)."""
        pm, table = self._pm, self._table
        if pm is not None and table is not None:
            return pm, table
        with self._lock:
            pm, table = self._pm, self._table
            if pm is not None and table is not None:
                return pm, table
            pc = self.config.plugins
            pm, infos = make_plugin_manager(
                self._plugins,
                disable=pc.disable,
                enable=pc.enable,
                autoload=pc.autoload,
                load_errors=pc.load_errors,
            )
            self._pm, self._infos = pm, infos
            # The registry and admission hooks are the pipeline's own: registered last (called
            # first), not listed among the plugins.
            pm.register(self.registry.plugin, name=REGISTRY_PLUGIN)
            pm.register(AdmissionSchema(), name=ADMISSION_PLUGIN + ".config")
            self.config = self._validate_sections(pm, self.config, self._plugins)
            PipelineHooks(pm).configure(self.config)
            if self._admission is None:
                self._admission = Admission.from_config(self.config)
            if self._admission.active:
                pm.register(AdmissionPlugin(self._admission), name=ADMISSION_PLUGIN)
            else:
                self._admission = None
            self._table = table = HookTable(pm, self.config)  # without plugins inactive for it
            return pm, table

    def _rebuild(self) -> None:
        self._table = HookTable(self._ensure()[0], self.config)

    @staticmethod
    def _validate_sections(pm: pluggy.PluginManager, config: Config, plugins: Iterable[Any] = ()) -> Config:
        schemas: dict[str, tuple[str, type[BaseModel]]] = {}
        for plugin_name, declared in PipelineHooks(pm).config_schemas():
            for section, model in declared.items():
                if section in schemas:
                    other = schemas[section][0]
                    raise ConfigError(
                        f"config section {section!r} is claimed by plugins {other!r} and {plugin_name!r}"
                    )
                schemas[section] = (plugin_name, model)
        builtin = set(Config.known_sections())  # validated with the config already
        validated: dict[str, BaseModel] = {}
        raw = config.plugin_sections()
        for section, (plugin, model) in schemas.items():
            if section in builtin:
                continue
            try:
                validated[section] = model.model_validate(raw.get(section, {}))
            except ValidationError as exc:
                msg = format_validation_error(exc, prefix=section)
                raise ConfigError(f"plugin {plugin!r}: {msg}", key=section) from None
        unknown = sorted(set(raw) - set(schemas))
        disabled = _disabled_sections(pm, plugins)
        for section in [u for u in unknown if u in disabled]:
            log.warning(
                "config section %r belongs to plugin %r, which is disabled; the section is ignored",
                section,
                disabled[section],
            )
            unknown.remove(section)
        if unknown:
            known = sorted({*builtin, *schemas})
            raise ConfigError(
                f"unknown config section(s) {', '.join(map(repr, unknown))}; known sections: {', '.join(known)}",
                key=unknown[0],
            )
        return config.with_plugin_sections(validated)

    # -- streams -------------------------------------------------------------

    def open(
        self,
        source: Source | Any,
        *,
        metadata: Mapping[str, Any] | None = None,
        agent_id: str | None = None,
        stream_id: str | None = None,
        output: Any = None,
        tools: Mapping[str, Any] | Sequence[Any] | None = None,
    ) -> Stream:
        """Open a logical stream on ``source`` (a source factory, or an iterator of strings).

        ``output`` (a pydantic model, a ``TypeAdapter``-able type or a JSON schema) makes it a typed
        stream, ``tools`` (``{"name": Model}`` or ``[Model, ...]``) types tool-call arguments: see
        docs/structured.md.
        """
        table = self._ensure()[1]
        stream = Stream(
            as_source(source),
            table=table,
            config=self.config,
            metadata=metadata,
            agent_id=agent_id,
            stream_id=stream_id,
            output=output,
            tools=tools,
        )
        self.registry.add(stream)
        return stream


def _disabled_sections(pm: pluggy.PluginManager, plugins: Iterable[Any] = ()) -> dict[str, str]:
    """Config sections of the disabled (blocked) plugins -> the plugin's name.

    A blocked plugin's own name always counts as its section (``redis`` -> ``[redis]``); a
    blocked built-in's declared sections are read from its module (built-ins are part of the
    package, so importing one loads nothing foreign). Blocked entry points are never loaded.
    """
    blocked = {n for n, p in pm.list_name_plugin() if p is None}  # pluggy keeps blocked names as None
    sections = {n: n for n in blocked}
    given = {p[0]: p[1] for p in plugins if isinstance(p, tuple)}  # objects passed in: no loading
    for name in blocked:
        modname = BUILTIN_PLUGINS.get(name)
        if modname is None and name not in given:
            continue
        try:
            holder = given[name] if name in given else importlib.import_module(str(modname))
            schema = getattr(holder, "stream_config_schema", None)
            declared = schema() if callable(schema) and not inspect.iscoroutinefunction(schema) else None
        except Exception:  # a broken disabled built-in only loses the friendlier message
            declared = None
        for section in declared or {}:
            sections.setdefault(section, name)
    return sections


_default: Pipeline | None = None
_default_lock = threading.Lock()


def default_pipeline() -> Pipeline:
    """The process-wide pipeline used by :func:`open` (built on first use, never at import)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Pipeline()
    return _default


def open(
    source: Source | Any,
    *,
    plugins: Iterable[Any] | None = None,
    config: ConfigLike = None,
    metadata: Mapping[str, Any] | None = None,
    agent_id: str | None = None,
    stream_id: str | None = None,
    output: Any = None,
    tools: Mapping[str, Any] | Sequence[Any] | None = None,
) -> Stream:
    """Open a stream on ``source`` with the default pipeline, or a new one for ``plugins``/``config``.

    ``async with schwarm_stream.open(source) as stream: async for event in stream: ...``.
    Passing ``plugins`` or ``config`` builds a pipeline for this one stream;
    build a :class:`Pipeline` once to reuse them cheaply. ``output=Model`` makes it a typed
    stream (docs/structured.md).
    """
    pipeline = (
        default_pipeline() if plugins is None and config is None else Pipeline(plugins or (), config=config)
    )
    return pipeline.open(
        source, metadata=metadata, agent_id=agent_id, stream_id=stream_id, output=output, tools=tools
    )
