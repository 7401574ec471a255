"""``SCHWARM_STREAM_TRACE_PLUGINS``: log every hook call, its arguments and its result.

Tracing costs nothing when it is off: the switch is read once, when a pipeline
builds its hook table, and only then are the implementations wrapped. Values:

- unset, ``""``, ``0``, ``false``, ``no``: off;
- ``1``, ``true``, ``yes``, ``all``: every hook;
- a comma-separated list of hook names (``stream_start,stream_error``): only those.

Lines go to the logger ``schwarm_stream.trace`` at DEBUG level; when that logger
has no handler of its own, one writing to stderr is attached, so the switch alone
is enough to see the calls::

    trace stream=5f0c… plugin='redact' stream_transform(event=Chunk(text='sk-', …)) -> [Chunk(…)]
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._scrub import scrub

if TYPE_CHECKING:
    from ._dispatch import HookTable, Impl

__all__ = ["TRACE_ENV", "trace_table", "traced_hooks"]

TRACE_ENV = "SCHWARM_STREAM_TRACE_PLUGINS"

log = logging.getLogger("schwarm_stream.trace")

_OFF = ("", "0", "false", "no", "off")
_ALL = ("1", "true", "yes", "on", "all", "*")


def traced_hooks(all_hooks: Iterable[str]) -> frozenset[str]:
    """The hook names the environment asks to trace (empty: tracing is off).

    An unknown hook name in the list is an error worth seeing at once, so it is
    reported as a warning naming the valid ones.
    """
    value = os.environ.get(TRACE_ENV, "").strip()
    names = tuple(all_hooks)
    if value.lower() in _OFF:
        return frozenset()
    if value.lower() in _ALL:
        return frozenset(names)
    wanted = {v.strip() for v in value.split(",") if v.strip()}
    unknown = sorted(wanted - set(names))
    if unknown:
        logging.getLogger("schwarm_stream").warning(
            "%s names unknown hook(s) %s; known hooks: %s", TRACE_ENV, ", ".join(unknown), ", ".join(names)
        )
    return frozenset(wanted & set(names))


def _ensure_handler() -> None:
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.DEBUG:
        log.setLevel(logging.DEBUG)


def _short(value: Any, limit: int = 200) -> str:
    text = scrub(repr(value))  # hook arguments may carry keys (sources, errors): never log them
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(impl: Impl, argnames: tuple[str, ...], args: tuple[Any, ...]) -> tuple[str, str]:
    stream = getattr(args[0], "id", None) if args and argnames and argnames[0] == "stream" else None
    shown = ", ".join(f"{n}={_short(a)}" for n, a in zip(argnames, args, strict=False) if n != "stream")
    return str(stream or "-"), f"plugin={impl.plugin_name!r} {impl.hook_name}({shown})"


def _wrap(impl: Impl, argnames: tuple[str, ...]) -> Callable[..., Any]:
    fn = impl.fn

    if impl.is_async:

        async def traced_async(*args: Any) -> Any:
            sid, call = _describe(impl, argnames, args)
            try:
                result = await fn(*args)
            except BaseException as exc:
                log.debug("trace stream=%s %s raised %s: %s", sid, call, type(exc).__name__, scrub(str(exc)))
                raise
            log.debug("trace stream=%s %s -> %s", sid, call, _short(result))
            return result

        return traced_async

    def traced(*args: Any) -> Any:
        sid, call = _describe(impl, argnames, args)
        try:
            result = fn(*args)
        except BaseException as exc:
            log.debug("trace stream=%s %s raised %s: %s", sid, call, type(exc).__name__, scrub(str(exc)))
            raise
        log.debug("trace stream=%s %s -> %s", sid, call, _short(result))
        return result

    return traced


def trace_table(table: HookTable, spec_args: dict[str, tuple[str, ...]]) -> None:
    """Wrap the implementations of the traced hooks in ``table`` (a no-op when tracing is off).

    Only the per-stream hooks, which the core calls from the table, are
    traced; ``stream_config_schema`` and ``stream_configure`` run once per
    pipeline build, and their failures already name the plugin.
    """
    from dataclasses import replace

    hooks = traced_hooks(spec_args)
    if not hooks:
        return
    _ensure_handler()
    for name in hooks:
        table.impls[name] = [replace(i, fn=_wrap(i, spec_args[name])) for i in table.impls.get(name, [])]
