"""A typed facade over pluggy's hook relay for the pipeline-time hooks (tox's idea).

``pm.hook.stream_configure(config=...)`` is looked up by name at run time, so a
type checker sees neither a misspelt hook nor a wrong argument. The pipeline
calls these methods instead; the per-stream hooks go through
:class:`~schwarm_stream._dispatch.HookTable`, which has one typed attribute per
hook.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from ._errors import PluginError

if TYPE_CHECKING:
    import pluggy
    from pydantic import BaseModel

    from .config import Config

__all__ = ["PipelineHooks"]


class PipelineHooks:
    """The ``stream_config_schema`` and ``stream_configure`` calls of one plugin manager."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm

    def config_schemas(self) -> list[tuple[str, dict[str, type[BaseModel]]]]:
        """``(plugin name, {section: model})`` of every ``stream_config_schema`` implementation."""
        out: list[tuple[str, dict[str, type[BaseModel]]]] = []
        for impl in self._pm.hook.stream_config_schema.get_hookimpls():
            if inspect.iscoroutinefunction(impl.function):
                raise PluginError(
                    f"plugin {impl.plugin_name!r}: stream_config_schema must be a plain def "
                    "(the schema is needed before any event loop runs)",
                    plugin_name=impl.plugin_name,
                    hook_name="stream_config_schema",
                )
            result: Any = impl.function()
            out.append((impl.plugin_name, dict(result or {})))
        return out

    def configure(self, config: Config) -> None:
        """``stream_configure`` of every plugin (a :class:`ConfigError` propagates)."""
        self._pm.hook.stream_configure(config=config)

    def configure_plugin(self, plugin: object, config: Config) -> None:
        """``stream_configure`` of one plugin only (registered after the pipeline was built)."""
        for impl in self._pm.hook.stream_configure.get_hookimpls():
            if impl.plugin is plugin:
                impl.function(config=config)
