"""Testing kit for schwarm_stream and its plugins.

- :class:`ScriptedSource` / :func:`scripted`: a source playing any sequence of
  events, with faults at chosen positions (:class:`Fail`, :class:`Stall`,
  :class:`Truncate`), so plugins are tested without a server;
- :class:`HookRecorder`: a plugin recording every hook call with its arguments;
- :class:`StagedPipeline`: a pipeline for tests (autoload off, plugins added
  before the first stream go through the normal build);
- :class:`ProviderServer` (and :class:`ThreadedProviderServer`,
  :class:`OfflineProvider`, the reply and fault types): a loopback server
  speaking the OpenAI Chat Completions, OpenAI Responses and Anthropic Messages
  streaming protocols for the official SDK clients;
- :mod:`schwarm_stream.testing.corpus`: recorded streams (raw SSE or JSON lines) as raw SSE bodies, and
  which protocol a body speaks, as ``schwarm-stream replay`` reads them;
- a pytest plugin (loaded automatically, ``pytest11``) with the fixtures
  ``schwarm_pipeline``, ``schwarm_config``, ``register_plugin``,
  ``hook_recorder``, ``scripted_stream``, ``provider_server`` and
  ``offline_provider``.

Importing this package imports neither pytest nor an SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._wire import (
    anthropic_error_event,
    anthropic_events,
    chunk_text,
    events_after,
    openai_chat_events,
    openai_error_chunk,
    responses_error_events,
    responses_events,
    sse,
)
from .pipeline import StagedPipeline
from .recorder import HookCall, HookRecorder
from .scripted import Fail, ScriptedSource, ScriptItem, Stall, Truncate, scripted, tool_call_deltas

if TYPE_CHECKING:
    from .server import (
        ROUTES,
        Action,
        Drip,
        JSONReply,
        OfflineProvider,
        ProviderServer,
        RawReply,
        RecordedRequest,
        Reply,
        Responder,
        Sleep,
        SlowHeaders,
        Split,
        SSEReply,
        ThreadedProviderServer,
    )
    from .server import Stall as ServerStall

# The loopback server needs h11 (the ``testing`` extra), so its names are imported on first use: the
# scripted sources, the recorder and the pytest plugin (loaded for every pytest run) work without it.
_FROM_SERVER = {
    "ROUTES": "ROUTES",
    "Action": "Action",
    "Drip": "Drip",
    "JSONReply": "JSONReply",
    "OfflineProvider": "OfflineProvider",
    "ProviderServer": "ProviderServer",
    "RawReply": "RawReply",
    "RecordedRequest": "RecordedRequest",
    "Reply": "Reply",
    "Responder": "Responder",
    "SSEReply": "SSEReply",
    "ServerStall": "Stall",
    "Sleep": "Sleep",
    "SlowHeaders": "SlowHeaders",
    "Split": "Split",
    "ThreadedProviderServer": "ThreadedProviderServer",
}


def __getattr__(name: str) -> Any:
    """Import a server name on first use (raises ``MissingDependency`` naming the extra without h11)."""
    attr = _FROM_SERVER.get(name)
    if attr is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import server

    value = getattr(server, attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "ROUTES",
    "Action",
    "Drip",
    "Fail",
    "HookCall",
    "HookRecorder",
    "JSONReply",
    "OfflineProvider",
    "ProviderServer",
    "RawReply",
    "RecordedRequest",
    "Reply",
    "Responder",
    "SSEReply",
    "ScriptItem",
    "ScriptedSource",
    "ServerStall",
    "Sleep",
    "SlowHeaders",
    "Split",
    "StagedPipeline",
    "Stall",
    "ThreadedProviderServer",
    "Truncate",
    "anthropic_error_event",
    "anthropic_events",
    "chunk_text",
    "events_after",
    "openai_chat_events",
    "openai_error_chunk",
    "responses_error_events",
    "responses_events",
    "scripted",
    "sse",
    "tool_call_deltas",
]
