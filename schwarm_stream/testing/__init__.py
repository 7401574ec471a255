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

from .pipeline import StagedPipeline
from .recorder import HookCall, HookRecorder
from .scripted import Fail, ScriptedSource, ScriptItem, Stall, Truncate, scripted, tool_call_deltas
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
from .server import Stall as ServerStall

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
