"""Every hook a schwarm_stream plugin can implement.

A plugin is any object or module with functions named after these hooks and
marked with :data:`hookimpl`. An implementation may accept any subset of a
hook's arguments, by name (pluggy's rule), and may be ``def`` or ``async def``.
Registration, ordering (``tryfirst``/``trylast``, otherwise last registered is
called first), validation and entry-point discovery are pluggy's; the core calls
the implementations itself, in pluggy's order, from a list computed once per
plugin set, because a pluggy hook call costs ~2 µs and a list ~0.2 µs per chunk.

Lifecycle of one stream (one "logical stream": retries and recoveries stay
inside it)::

    stream_start ─┬─> stream_attempt ─> [ per provider event:
                  │        stream_receive ─> stream_transform* ─> stream_event
                  │        ─> stream_chunk | stream_tool_call_delta | stream_reset ]
                  ├─> on failure: stream_flush ─> stream_error (decision) ─> maybe another attempt
                  └─> stream_flush ─> stream_complete (only on the protocol's terminator)
    stream_end  (always, exactly once)

A hook implementation that raises does not stop the stream nor the other
implementations of that hook: it is reported (a warning naming the plugin and
the hook, and ``stream.plugin_errors``). With ``plugins.policy = "strict"`` the
stream fails instead with a :class:`~schwarm_stream.PluginError` naming both
(and carrying ``.partial``). An ``async`` implementation is awaited at most
``stream.hook_limit`` seconds per call (the ``timeouts`` plugin sets it from
``timeouts.hook``; then it fails the same way), and ``stream.cancel()`` or
``timeouts.total`` interrupt it; meanwhile ``stream.waiting`` is ``"hook"`` and
``stream.running_hook`` names it. Delivered events are
immutable to the observer hooks (``stream_event``, ``stream_chunk``,
``stream_tool_call_delta``, ``stream_reset``): assigning a field is undone and
fails the hook; ``stream_transform`` returns new events (``event.replace(...)``).
A plugin object registered without a name is named ``module.Class``.

Per-stream state goes into ``stream.stash`` (see :class:`~schwarm_stream.StashKey`),
never on the plugin object: one plugin instance serves many concurrent streams.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ._errors import StreamError
    from ._events import Chunk, Event, Reset, ToolCallDelta
    from ._message import Message
    from ._stream import Attempt, Stream
    from .config import Config
    from .decisions import Recovery

__all__ = ["HOOK_NAMES", "PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "schwarm_stream"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marker for hook specifications (used by this module and by plugins that add hooks)."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for hook implementations: ``@hookimpl``, ``@hookimpl(tryfirst=True)``, ``@hookimpl(trylast=True)``."""


# --------------------------------------------------------------------------
# Configuration hooks: called once per pipeline (plugin set), not per stream.
# --------------------------------------------------------------------------


@hookspec
def stream_config_schema() -> dict[str, type[BaseModel]] | None:
    """Declare this plugin's configuration sections.

    Return ``{"section": PydanticModel}``. The section of the user's config
    (``[section]`` in TOML, ``{"section": {...}}`` in a dict,
    ``SCHWARM_STREAM__SECTION__KEY`` in the environment) is validated against the
    model before any stream opens; an error names the plugin and the key. The
    validated model instance is handed to :func:`stream_configure` through
    ``config.section("section")``.

    Called once per pipeline. Return ``None`` (or don't implement it) when the
    plugin takes no configuration.
    """


@hookspec
def stream_configure(config: Config) -> None:
    """Receive the validated configuration, once per pipeline, before any stream opens.

    :param config: the whole validated :class:`~schwarm_stream.Config`; read your
        section with ``config.section("name")``.

    May raise :class:`~schwarm_stream.ConfigError` to reject a combination of
    values; the pipeline then fails to build with that error.
    """


@hookspec
def stream_active(config: Config) -> bool | None:
    """Say whether this plugin takes part in streams under ``config``; ``False``: leave it out.

    :param config: the whole validated :class:`~schwarm_stream.Config` (after
        :func:`stream_configure`).

    Called once per pipeline (and again when a plugin is registered or
    unregistered later), right after :func:`stream_configure`, for each
    plugin that implements it. A plugin that returns ``False`` keeps its
    configuration hooks but none of its per-stream hooks (``stream_start`` to
    ``stream_end``) are called by that pipeline's streams: an installed but
    unconfigured plugin costs nothing per event. ``True`` or ``None`` (or not
    implementing it): the plugin is active. Must be a plain ``def``.
    """


# --------------------------------------------------------------------------
# Stream lifecycle hooks: called per stream.
# --------------------------------------------------------------------------


@hookspec
def stream_start(stream: Stream) -> None:
    """A logical stream starts, before the provider is contacted.

    Called once per stream, before anything else. ``stream`` carries the id,
    provider, model and metadata; set up per-stream state in ``stream.stash``.
    The return value is ignored.
    """


@hookspec
def stream_attempt(stream: Stream, attempt: Attempt) -> None:
    """A provider stream is about to be opened (first attempt, retry or recovery).

    :param attempt: its number (1-based), the strategy that caused it
        (``None`` for the first, else ``"retry"``, ``"restart"``, ``"continue"``,
        ``"fallback"``, ``"resume"``) and the source being opened.

    Notification; the return value is ignored.
    """


@hookspec
def stream_receive(stream: Stream, event: Event) -> None:
    """Observe every normalized event exactly as the provider sent it.

    Called before transformers, for every event of every attempt (content,
    usage, finish, response info, extras). This is where accumulation, metrics
    and raw recorders look: what transformers later change, drop or redact does
    not affect what they see. Must be cheap: it runs per chunk.
    The return value is ignored.
    """


@hookspec
def stream_transform(stream: Stream, event: Event) -> Event | Sequence[Event] | None:
    """Modify, drop, split or insert events on their way to consumers.

    Implementations form a chain in call order (``tryfirst`` ones first): the
    events returned by one are fed, one by one, to the next.

    Return ``None`` to pass ``event`` through unchanged, an event to replace it,
    a sequence of events to split it or insert others around it, or ``()`` to
    drop it. A transformer that holds events back (to see across chunk
    boundaries) releases them in :func:`stream_flush`.
    """


@hookspec
def stream_flush(stream: Stream) -> Sequence[Event] | None:
    """Release events a transformer is holding back.

    Called before :func:`stream_complete`, before :func:`stream_error` and before
    a reset, so nothing held is lost or leaks across attempts. Returned events
    pass through the transformers called after this one, then to consumers.
    """


@hookspec
def stream_event(stream: Stream, event: Event) -> None:
    """Notification of every event delivered to consumers, after transformers.

    Every type: chunks, tool-call deltas, usage, finish, reset, heartbeats.
    ``event.seq`` is set (contiguous from 1). Sinks (SSE, Redis, recorders of
    what the user saw) implement this one hook. The return value is ignored.
    """


@hookspec
def stream_chunk(stream: Stream, chunk: Chunk) -> None:
    """A text, reasoning or refusal delta was delivered (after transformers).

    :param chunk: ``chunk.text``, ``chunk.kind`` (``"text"``, ``"reasoning"``,
        ``"refusal"``), ``chunk.seq`` and ``chunk.raw`` (the provider's chunk).

    Notification; called once per delivered chunk, in order.
    """


@hookspec
def stream_tool_call_delta(stream: Stream, delta: ToolCallDelta) -> None:
    """A fragment of a tool call was delivered (after transformers).

    :param delta: ``index`` (which call), ``id`` and ``name`` (usually only on
        the first fragment), ``arguments`` (the new JSON fragment). The
        accumulated call so far is ``stream.tool_call(delta.index)``.

    Notification; the return value is ignored.
    """


@hookspec
def stream_reset(stream: Stream, reset: Reset) -> None:
    """Everything delivered so far is void: a recovery strategy restarted the stream.

    Consumers discard what they showed; the next events start the message
    again. Notification.
    """


@hookspec(firstresult=True)
def stream_message(stream: Stream) -> Message | None:
    """Build the stream's message from what was received so far.

    Called at completion (the final message), on failure (the partial message
    carried by the error) and when ``stream.message`` is read mid-stream.
    Stops at the first non-``None`` result; the built-in ``accumulate`` plugin
    implements it with ``trylast``, so a plugin can replace accumulation.
    """


@hookspec
def stream_complete(stream: Stream, message: Message) -> None:
    """The stream completed: the provider's terminator arrived.

    Called once, only on ``[DONE]``/``finish_reason``, ``message_stop`` or
    ``response.completed`` — never on a stream that merely stopped.

    :param message: the final message (``message.complete`` is true).
    """


@hookspec(firstresult=True)
def stream_error(stream: Stream, error: StreamError) -> Recovery | str | None:
    """Decide what to do about a failure.

    :param error: a :class:`~schwarm_stream.StreamError` subclass; the original
        exception is ``error.__cause__``; ``stream.committed`` says whether
        content already reached a consumer, ``stream.attempt`` which attempt
        failed.

    Return a :class:`~schwarm_stream.Recovery` (or its action name): ``"retry"``
    (reopen, only before the commit point), ``"restart"`` (reopen after a
    reset), ``"continue"``, ``"fallback"``, ``"resume"``, ``"partial"`` (end
    with the partial message) or ``"raise"``. Stops at the first non-``None``
    result; when nobody decides, the error is raised with the partial message.
    Called once per failure, except the caller's own cancellation
    (:class:`~schwarm_stream.StreamCancelled`, task cancellation, ``break``):
    that is never retried, so there is nothing to decide.
    """


@hookspec
def stream_end(stream: Stream) -> None:
    """The stream is over, whatever happened: like ``finally``.

    Called exactly once per stream, after ``stream_complete`` or the last
    ``stream_error``, also when the consumer broke out of the loop or the task
    was cancelled. ``stream.outcome`` is ``"complete"``, ``"error"``,
    ``"partial"`` or ``"cancelled"``. Close sinks here.
    """


def _hook_names() -> tuple[str, ...]:
    return tuple(name for name, obj in globals().items() if hasattr(obj, f"{PROJECT_NAME}_spec"))


HOOK_NAMES: tuple[str, ...] = _hook_names()
"""Names of every hook declared here, in declaration order."""
