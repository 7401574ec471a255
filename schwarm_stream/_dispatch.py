"""Calling hook implementations: in pluggy's order, sync or async, failures isolated.

pluggy keeps registration, ordering and validation; it is synchronous and would
treat a coroutine as a non-``None`` ``firstresult``, and a hook call through it
costs ~2 µs. So a :class:`HookTable` is computed once per plugin set: for every
hook, the implementations in the order pluggy's ``_multicall`` would call them
(``reversed(get_hookimpls())``), each adapted to positional arguments, with
flags saying whether it is a coroutine function. The stream loop then walks
plain lists.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from ._errors import PluginError
from ._tracing import trace_table
from .hookspecs import HOOK_NAMES, PROJECT_NAME

if TYPE_CHECKING:
    from .config import Config

__all__ = ["PIPELINE_HOOKS", "SYNC_ONLY_HOOKS", "HookTable", "Impl", "inactive_plugins"]

#: Hooks whose results are used synchronously (``stream.message`` is a property;
#: the config hooks run when the pipeline is built): ``async def`` is rejected.
SYNC_ONLY_HOOKS = frozenset({"stream_message", "stream_config_schema", "stream_configure", "stream_active"})

#: Hooks called when the pipeline is built; an inactive plugin keeps them (see ``stream_active``).
PIPELINE_HOOKS = frozenset({"stream_config_schema", "stream_configure", "stream_active"})

# Positional argument order of each hook, taken from the specs.
SPEC_ARGS: dict[str, tuple[str, ...]] = {}


def _spec_args() -> dict[str, tuple[str, ...]]:
    if not SPEC_ARGS:
        from . import hookspecs

        for name in HOOK_NAMES:
            fn = getattr(hookspecs, name)
            SPEC_ARGS[name] = tuple(inspect.signature(fn).parameters)
    return SPEC_ARGS


@dataclass(frozen=True, slots=True)
class Impl:
    """One hook implementation, ready to call with the spec's positional arguments."""

    fn: Callable[..., Any]
    plugin_name: str
    hook_name: str
    is_async: bool


def _adapt(hook: str, impl: pluggy.HookImpl) -> Impl:
    spec_args = _spec_args()[hook]
    argnames = tuple(impl.argnames)
    func = impl.function
    is_async = inspect.iscoroutinefunction(func)
    if is_async and hook in SYNC_ONLY_HOOKS:
        raise PluginError(
            f"plugin {impl.plugin_name!r}: hook {hook}() must be a plain def, not async def "
            "(its result is needed synchronously)",
            plugin_name=impl.plugin_name,
            hook_name=hook,
        )
    unknown = [a for a in argnames if a not in spec_args]
    if unknown:  # pluggy validates this at registration; keep a clear message anyway
        raise PluginError(
            f"plugin {impl.plugin_name!r}: hook {hook}() has no argument(s) {unknown}; "
            f"available: {', '.join(spec_args) or '(none)'}",
            plugin_name=impl.plugin_name,
            hook_name=hook,
        )
    if argnames == spec_args[: len(argnames)] and len(argnames) == len(spec_args):
        fn = func
    else:
        positions = tuple(spec_args.index(a) for a in argnames)

        def fn(*args: Any, _f: Callable[..., Any] = func, _p: tuple[int, ...] = positions) -> Any:
            return _f(*[args[i] for i in _p])

    return Impl(fn=fn, plugin_name=impl.plugin_name, hook_name=hook, is_async=is_async)


def inactive_plugins(pm: pluggy.PluginManager, config: Config) -> dict[int, object]:
    """``{id(plugin): plugin}`` of the plugins whose ``stream_active(config)`` returned ``False``."""
    caller = getattr(pm.hook, "stream_active", None)
    if caller is None:
        return {}
    off: dict[int, object] = {}
    for hi in caller.get_hookimpls():
        if inspect.iscoroutinefunction(hi.function):
            raise PluginError(
                f"plugin {hi.plugin_name!r}: hook stream_active() must be a plain def, not async def "
                "(it is asked when the pipeline is built)",
                plugin_name=hi.plugin_name,
                hook_name="stream_active",
            )
        try:
            active = hi.function(config=config) if hi.argnames else hi.function()
        except Exception as exc:
            raise PluginError(
                f"plugin {hi.plugin_name!r}: stream_active() raised {exc!r}",
                plugin_name=hi.plugin_name,
                hook_name="stream_active",
            ) from exc
        if active is False:
            off[id(hi.plugin)] = hi.plugin
    return off


class HookTable:
    """Every hook's implementations, in call order, for one plugin manager state.

    A typed facade: ``table.stream_error`` is the list of ``stream_error``
    implementations (one attribute per hookspec, so a type checker sees a
    misspelt hook); ``table["stream_error"]`` is the same list by name.
    """

    stream_config_schema: list[Impl]
    stream_configure: list[Impl]
    stream_active: list[Impl]
    stream_start: list[Impl]
    stream_attempt: list[Impl]
    stream_receive: list[Impl]
    stream_transform: list[Impl]
    stream_flush: list[Impl]
    stream_event: list[Impl]
    stream_chunk: list[Impl]
    stream_tool_call_delta: list[Impl]
    stream_reset: list[Impl]
    stream_message: list[Impl]
    stream_complete: list[Impl]
    stream_error: list[Impl]
    stream_end: list[Impl]

    def __init__(self, pm: pluggy.PluginManager, config: Config | None = None) -> None:
        self.impls: dict[str, list[Impl]] = {}
        # Plugins that said stream_active(config) -> False: their per-stream hooks are left out.
        off = inactive_plugins(pm, config) if config is not None else {}
        #: names of the plugins left out of this table (``stream_active`` returned ``False``)
        self.inactive: frozenset[str] = frozenset(pm.get_name(p) or "?" for p in off.values())
        for name in HOOK_NAMES:
            caller = getattr(pm.hook, name, None)
            if caller is None:
                self.impls[name] = []
                continue
            skip: dict[int, object] = off if name not in PIPELINE_HOOKS else {}
            ordered: list[Impl] = []
            for hi in reversed(caller.get_hookimpls()):
                if skip and id(hi.plugin) in skip:
                    continue
                if hi.hookwrapper or hi.wrapper:
                    raise PluginError(
                        f"plugin {hi.plugin_name!r}: {PROJECT_NAME} hooks do not support wrappers "
                        f"(hook {name}); use stream_transform or a source wrapper instead",
                        plugin_name=hi.plugin_name,
                        hook_name=name,
                    )
                ordered.append(_adapt(name, hi))
            self.impls[name] = ordered
        # SCHWARM_STREAM_TRACE_PLUGINS: read once here, so tracing costs nothing when off.
        trace_table(self, _spec_args())
        for name, impls in self.impls.items():  # after tracing: it may replace the lists
            setattr(self, name, impls)
        # Computed once per table, not per stream: every stream's HookDelivery asks for these
        # (the table is never changed after this point; the lists are read, never mutated).
        self._fns = {name: [i.fn for i in impls] for name, impls in self.impls.items()}
        self._all_sync = {name: not any(i.is_async for i in impls) for name, impls in self.impls.items()}

    def fns(self, name: str) -> list[Callable[..., Any]]:
        """The bare callables of a hook (for hooks whose impls are all sync); shared, do not mutate."""
        fns = self._fns.get(name)
        return [i.fn for i in self.impls[name]] if fns is None else fns

    def all_sync(self, name: str) -> bool:
        """True when no implementation of hook ``name`` is ``async def``."""
        ok = self._all_sync.get(name)
        return not any(i.is_async for i in self.impls[name]) if ok is None else ok

    def __getitem__(self, name: str) -> list[Impl]:
        return self.impls[name]
