"""Anthropic Messages streaming as a source.

Normalization (see research/sdk-streaming.md §2.2):

- ``message_start`` → :class:`~schwarm_stream.ResponseInfo` and the initial
  :class:`~schwarm_stream.Usage`; ``message_delta`` → the stop reason and the
  cumulative usage;
- ``text_delta`` / ``thinking_delta`` → text / reasoning chunks; a
  ``tool_use`` block start and its ``input_json_delta`` fragments → tool-call
  deltas keyed by the block index; ``signature_delta``, ``citations_delta``,
  ``redacted_thinking`` and block types we do not model (server tools, search
  results, ...) → :class:`~schwarm_stream.Extra`;
- ``ping`` and unknown event types are tolerated (ignored); events are
  recognised by the ``type`` in their data, so data-only SSE works too;
- ``event: error`` (e.g. ``overloaded_error``) is an in-band
  :class:`~schwarm_stream.ProviderError` (status 529 for overloaded);
- complete only on ``message_stop``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._classify import in_band_error
from .._errors import ProtocolError, StreamIncomplete
from .._events import Chunk, Event, Extra, Finish, ResponseInfo, ToolCallDelta, Usage
from ._base import require
from ._protocol import ProtocolSource, aclose, ask_to_continue, decode_object, drain
from ._surrogates import Surrogates
from ._transport import Call, SdkTransport, Transport

if TYPE_CHECKING:
    from typing_extensions import Self

    from .._message import Message
    from .._stream import Attempt, Stream

__all__ = ["AnthropicMessagesSource", "AnthropicNormalizer", "anthropic_messages"]

_USAGE_MAIN = ("input_tokens", "output_tokens")
_TOOL_BLOCKS = frozenset({"tool_use"})


def _usage(u: Mapping[str, Any], raw: Any) -> Usage:
    extras = {k: v for k, v in u.items() if k not in _USAGE_MAIN and v is not None}
    return Usage(u.get("input_tokens"), u.get("output_tokens"), extras, 0, raw)


class AnthropicNormalizer:
    """Turns Anthropic Messages stream payloads (dicts) into normalized events."""

    __slots__ = ("blocks", "started", "stopped")

    def __init__(self) -> None:
        self.stopped = False  # message_stop seen
        self.started = False  # message_start seen
        self.blocks: dict[int, str] = {}  # block index -> block type

    def feed(self, d: Mapping[str, Any]) -> list[Event]:
        t = d.get("type")
        if t == "content_block_delta":
            index = d.get("index", 0)
            delta = d.get("delta") or {}
            dt = delta.get("type")
            if dt == "text_delta":
                return [Chunk(delta.get("text", ""), "text", index, 0, 0, d)]
            if dt == "input_json_delta":
                if self.blocks.get(index) in _TOOL_BLOCKS:
                    return [ToolCallDelta(index, None, None, delta.get("partial_json", ""), 0, 0, d)]
                return [Extra("input_json", index, delta.get("partial_json", ""), 0, d)]
            if dt == "thinking_delta":
                return [Chunk(delta.get("thinking", ""), "reasoning", index, 0, 0, d)]
            if dt == "signature_delta":
                return [Extra("signature", index, delta.get("signature", ""), 0, d)]
            if dt == "citations_delta":
                return [Extra("citation", index, delta.get("citation"), 0, d)]
            return [Extra("delta", index, dict(delta), 0, d)]
        if t == "content_block_start":
            index = d.get("index", 0)
            block = d.get("content_block") or {}
            bt = block.get("type", "")
            self.blocks[index] = bt
            if bt == "text":
                out: list[Event] = [Chunk(block["text"], "text", index, 0, 0, d)] if block.get("text") else []
                for c in block.get("citations") or ():
                    out.append(Extra("citation", index, c, 0, d))
                return out
            if bt == "thinking":
                out = [Chunk(block["thinking"], "reasoning", index, 0, 0, d)] if block.get("thinking") else []
                if block.get("signature"):
                    out.append(Extra("signature", index, block["signature"], 0, d))
                return out
            if bt == "tool_use":
                inp = block.get("input")
                # The API starts tool_use with input {}; anything else is the whole input already.
                initial = "" if not inp else _dumps(inp)
                return [ToolCallDelta(index, block.get("id"), block.get("name"), initial, 0, 0, d)]
            if bt == "redacted_thinking":
                return [Extra("redacted_thinking", index, block.get("data"), 0, d)]
            return [Extra("block", index, dict(block), 0, d)]
        if t == "content_block_stop":
            return []
        if t == "message_delta":
            out = []
            delta = d.get("delta") or {}
            if delta.get("stop_reason"):
                out.append(Finish(delta["stop_reason"], 0, 0, d))
            if d.get("usage"):
                out.append(_usage(d["usage"], d))
            return out
        if t == "message_start":
            msg = d.get("message") or {}
            if self.started:
                if self.blocks:
                    raise ProtocolError(
                        "anthropic: a second message_start after content: the provider restarted the message "
                        "mid-stream (what was already delivered would be spliced with the new message)",
                        provider="anthropic",
                    )
                return []  # a duplicated message_start before any content is harmless
            self.started = True
            out = [ResponseInfo(msg.get("id"), msg.get("model"), {"role": msg.get("role")}, 0, d)]
            if msg.get("usage"):
                out.append(_usage(msg["usage"], d))
            for i, block in enumerate(msg.get("content") or ()):
                out.extend(self.feed({"type": "content_block_start", "index": i, "content_block": block}))
            if msg.get("stop_reason"):  # a message delivered whole in message_start
                out.append(Finish(msg["stop_reason"], 0, 0, d))
            return out
        if t == "message_stop":
            self.stopped = True
            return []
        if t == "error":
            raise in_band_error(d, provider="anthropic")
        return []  # ping and event types from the future


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


async def anthropic_events(sse: AsyncIterator[Any], *, provider: str = "anthropic") -> AsyncIterator[Event]:
    """Normalized events from Anthropic SSE events; raises StreamIncomplete without ``message_stop``."""
    norm = AnthropicNormalizer()
    sur = Surrogates()
    try:
        async for ev in sse:
            if ev.unterminated:  # the body's end without the blank line: only a whole message_stop counts
                if not _is_stop(ev):
                    break
            payload = decode_object(ev.data, ev.offset, provider)
            if "type" not in payload and ev.event not in ("", "message"):
                payload = {**payload, "type": ev.event}
            batch = norm.feed(payload)
            one = batch[0] if len(batch) == 1 and not sur.held else None
            if type(one) is Chunk and one.text.isascii():  # one plain text delta: no repair possible
                yield one
            else:
                for out in sur.fix(batch):
                    yield out
            if norm.stopped:
                for out in sur.end():
                    yield out
                await drain(sse)  # the body's end: keeps the connection reusable
                return
    finally:  # close the body now, not when the garbage collector finds it (also on errors)
        await aclose(sse)
    raise StreamIncomplete(
        f"{provider}: the stream ended without message_stop (truncated)", provider=provider
    )


def _is_stop(ev: Any) -> bool:
    try:
        payload = decode_object(ev.data, ev.offset, "anthropic")
    except ProtocolError:  # cut inside the payload
        return False
    return bool(payload.get("type", ev.event) == "message_stop")


class AnthropicMessagesSource(ProtocolSource):
    """``messages.create(stream=True, ...)`` over a transport (the official SDK client by
    default, ``max_retries=0``; :func:`~schwarm_stream.sources.native_anthropic` gives it
    native httpx)."""

    provider = "anthropic"
    factory = "anthropic_messages"
    required = ("model", "messages", "max_tokens")

    def __init__(
        self,
        client: Any = None,
        *,
        max_event_bytes: int | None = None,
        provider: str | None = None,
        transport: Transport | None = None,
        **create_kwargs: Any,
    ) -> None:
        if transport is None:
            require("anthropic", "anthropic")
        self.check_request(create_kwargs)
        super().__init__(
            transport or SdkTransport(client),
            create_kwargs,
            provider=provider,
            max_event_bytes=max_event_bytes,
        )

    def open(self, stream: Stream, attempt: Attempt) -> AsyncIterator[Event]:
        return anthropic_events(self.sse(stream, Call("messages", self.kwargs)), provider=self.provider)

    def with_messages(self, messages: Sequence[Mapping[str, Any]]) -> Self:
        """The same request with another conversation."""
        return self.with_body(messages=list(messages))

    def continuation(self, partial: Message) -> Self | None:
        # Anthropic documents recovery from the last complete text block; tool use
        # and thinking blocks cannot be partially recovered.
        if partial.tool_calls or partial.reasoning or not partial.text:
            return None
        if prefill_allowed(self.model):
            turn = {"role": "assistant", "content": partial.text.rstrip()}
            return self.with_messages([*self.kwargs["messages"], turn])
        return self.with_messages(ask_to_continue(self.kwargs["messages"], partial))


def prefill_allowed(model: str | None) -> bool:
    """Whether ``model`` accepts a trailing assistant prefill (Claude 4.6 and later reject it)."""
    import re

    if not model:
        return False
    m = re.search(r"claude-(?:[a-z]+-)?(\d+)(?:[-.](\d+))?", model)
    if not m:
        return False
    major, minor = int(m.group(1)), int(m.group(2) or 0)
    if minor > 20:  # a date, not a minor version (claude-sonnet-4-20250514)
        minor = 0
    return (major, minor) < (4, 6)


def anthropic_messages(client: Any, **create_kwargs: Any) -> AnthropicMessagesSource:
    """A source for ``client.messages.create(**create_kwargs, stream=True)`` (``model``, ``messages``, ``max_tokens``, ...)."""
    return AnthropicMessagesSource(client, **create_kwargs)
