"""A :class:`~schwarm_stream.Pipeline` for tests: plugins and config can change until the first stream opens.

A plain pipeline builds its plugin set when it is first used; a plugin registered
after that misses the validation of its config section and ``stream_configure``.
:class:`StagedPipeline` keeps what you register *before* the first stream opens
in the plugin list, so it goes through the same build as any installed plugin,
and it starts with entry-point autoloading off, so the plugins installed in the
test environment do not take part unless a test asks for them::

    pipeline = StagedPipeline(config={"redact": {"enabled": True}})
    pipeline.register(my_plugin, name="mine")
    message = await pipeline.open(ScriptedSource(["Hel", "lo"])).collect()
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from .._errors import ConfigError
from .._pipeline import ConfigLike, Pipeline

__all__ = ["StagedPipeline"]


def _autoload_off(config: ConfigLike) -> ConfigLike:
    """``config`` with ``[plugins] autoload = false`` unless it says otherwise (dicts and ``None`` only)."""
    if config is None:
        return {"plugins": {"autoload": False}}
    if isinstance(config, Mapping):
        data = copy.deepcopy(dict(config))
        section = data.get("plugins")
        if section is None:
            data["plugins"] = {"autoload": False}
        elif isinstance(section, Mapping) and "autoload" not in section:
            data["plugins"] = {**section, "autoload": False}
        return data
    return config


class StagedPipeline(Pipeline):
    """A pipeline whose plugin set and config may change until its first stream opens.

    ``autoload`` (default ``False``) sets ``[plugins] autoload`` when the config
    is a dict or ``None`` and does not set it itself.
    """

    def __init__(
        self, plugins: Iterable[Any] = (), *, config: ConfigLike = None, autoload: bool = False
    ) -> None:
        super().__init__(plugins, config=config if autoload else _autoload_off(config))

    @property
    def built(self) -> bool:
        """True once the plugin set was built (the first stream opened, or ``plugins()`` was called)."""
        return self._table is not None

    def register(self, plugin: Any, name: str | None = None) -> str:
        """Add ``plugin`` (under ``name``); before the build it joins the plugin list like an installed one."""
        if self.built:
            return super().register(plugin, name=name)
        self._plugins.append((name, plugin) if name is not None else plugin)
        return name or getattr(plugin, "__name__", None) or str(id(plugin))

    def unregister(self, plugin: Any = None, name: str | None = None) -> None:
        """Remove a plugin by object or name."""
        if self.built:
            super().unregister(plugin=plugin, name=name)
            return
        self._plugins = [
            p
            for p in self._plugins
            if not (
                (isinstance(p, tuple) and (p[1] is plugin or (name is not None and p[0] == name)))
                or p is plugin
            )
        ]

    def configure(self, config: ConfigLike) -> None:
        """Replace the config (autoload off unless it says otherwise); only before the first stream."""
        if self.built:
            raise ConfigError("the pipeline is already built (a stream was opened); configure it before")
        from .._pipeline import coerce_config

        self.config = coerce_config(_autoload_off(config))
