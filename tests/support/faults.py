"""Helpers for fault-injection tests: golden streams, the "nothing lost" check, SDK-backed sources.

The contract (research/reliability.md §1.8) a faulted stream must meet: it ends
either **complete**, with a message equal to what the SDK's own accumulator
makes of the *unfaulted* stream, or with a **typed error** whose ``.partial``
is exactly what was delivered to the consumer (since the last
:class:`~schwarm_stream.Reset`).

- :func:`golden_events` builds the unfaulted stream of a protocol (a list of SSE
  events, so a test can cut it or insert faults between events);
- :func:`golden` runs it through the official SDK accumulator (the oracle) and
  :func:`view` reduces one of our messages to the same shape, so
  ``view(message, protocol) == golden(protocol, events)`` is the exactness check;
- :class:`Delivered` records what a consumer saw (honouring resets) and
  :meth:`Delivered.matches` compares it with an error's ``.partial``;
- :func:`consume` iterates a stream into a :class:`Delivered`;
- :func:`sdk_source` builds a source for a protocol with the real SDK client
  pointed at a :class:`~schwarm_stream.testing.ProviderServer`.

The SDKs are imported lazily.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from schwarm_stream import Chunk, Reset, StreamError, ToolCallDelta
from schwarm_stream.testing import anthropic_events, chunk_text, openai_chat_events, responses_events

from .oracle import sdk_result

if TYPE_CHECKING:
    from schwarm_stream import Event, Message, Pipeline, Stream
    from schwarm_stream.sources import Source

__all__ = [
    "PROTOCOLS",
    "ROUTE_OF",
    "Delivered",
    "consume",
    "content_indices",
    "fault_pipeline",
    "golden",
    "golden_events",
    "sdk_source",
    "view",
]

PROTOCOLS = ("openai-chat", "openai-responses", "anthropic-messages")
#: The ProviderServer route each protocol is served on.
ROUTE_OF = {
    "openai-chat": "openai-chat",
    "openai-responses": "openai-responses",
    "anthropic-messages": "anthropic-messages",
}

DEFAULT_TEXT = "Hello, wörld! Streams break; nothing is lost. 🎉 Grüße aus Köln — 東京も。"


def golden_events(
    protocol: str,
    text: str = DEFAULT_TEXT,
    *,
    tool: Mapping[str, Any] | None = None,
    sizes: Sequence[int] = (3, 2, 5, 4),
    **kwargs: Any,
) -> list[bytes]:
    """The unfaulted stream for ``protocol``: ``text`` in small chunks, then optionally one tool call.

    ``tool`` is ``{"name": ..., "arguments": {...}}``; extra ``kwargs`` go to the builder.
    """
    chunks = chunk_text(text, sizes) if text else []
    if protocol == "openai-chat":
        calls = [{"id": "call_0", **_as(tool, "arguments")}] if tool else []
        return openai_chat_events(chunks, tool_calls=calls, **kwargs)
    if protocol == "anthropic-messages":
        uses = [{"id": "toolu_00", "name": tool["name"], "input": tool["arguments"]}] if tool else []
        return anthropic_events(chunks, tool_uses=uses, **kwargs)
    if protocol == "openai-responses":
        calls = [{"call_id": "call_0", **_as(tool, "arguments")}] if tool else []
        return responses_events(chunks, function_calls=calls, **kwargs)
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")


def _as(tool: Mapping[str, Any] | None, key: str) -> dict[str, Any]:
    assert tool is not None
    return {"name": tool["name"], key: tool["arguments"]}


def content_indices(protocol: str, events: Sequence[bytes]) -> list[int]:
    """Indices of the events of ``events`` that carry content (text or tool-call deltas).

    ``events[:content_indices(...)[k]]`` is a stream cut just before its k-th content event.
    """
    out = []
    for i, raw in enumerate(events):
        data = _payload(raw)
        if not isinstance(data, dict):
            continue
        if protocol == "openai-chat":
            delta = ((data.get("choices") or [{}])[0] or {}).get("delta") or {}
            hit = bool(delta.get("content") or delta.get("tool_calls"))
        elif protocol == "anthropic-messages":
            hit = data.get("type") == "content_block_delta" or (
                data.get("type") == "content_block_start"
                and (data.get("content_block") or {}).get("type") == "tool_use"
            )
        else:
            t = str(data.get("type", ""))
            hit = t.endswith(".delta") or (
                t == "response.output_item.added" and (data.get("item") or {}).get("type") == "function_call"
            )
        if hit:
            out.append(i)
    return out


def _payload(raw: bytes) -> Any:
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.startswith("data:"):
            try:
                return json.loads(line[5:])
            except ValueError:
                return None
    return None


def fault_pipeline(*plugins: Any, **sections: Any) -> Pipeline:
    """A pipeline for fault tests: the built-ins, no entry points, ``sections`` as config."""
    from schwarm_stream import Pipeline

    config: dict[str, Any] = {"plugins": {"autoload": False}, **sections}
    return Pipeline(plugins, config=config)


def golden(protocol: str, events: Sequence[bytes]) -> dict[str, Any]:
    """What the official SDK's accumulator makes of ``events`` (the unfaulted stream), in :func:`view` shape."""
    expected = sdk_result(protocol, b"".join(events))
    out = {k: expected[k] for k in ("text", "reasoning", "refusal", "finish_reason", "usage")}
    if protocol == "anthropic-messages":  # the SDK keeps only the parsed input
        out["tool_calls"] = [
            {"id": t["id"], "name": t["name"], "input": t["input"]} for t in expected["tool_calls"]
        ]
    else:
        out["tool_calls"] = [
            {"id": t["id"], "name": t["name"], "arguments": t["arguments"]} for t in expected["tool_calls"]
        ]
    if out["refusal"] == "":
        out["refusal"] = None
    return out


def view(message: Message, protocol: str) -> dict[str, Any]:
    """Our message in the shape of :func:`golden` (``complete`` left out: check it separately)."""
    d = message.to_dict()
    d.pop("complete")
    if protocol == "anthropic-messages":
        d["tool_calls"] = [{"id": t.id, "name": t.name, "input": t.parsed} for t in message.tool_calls]
    return d


@dataclass
class Delivered:
    """What a consumer was shown: events in order, and the content since the last reset."""

    events: list[Event] = field(default_factory=list)
    texts: dict[str, list[str]] = field(default_factory=dict)
    tools: dict[int, dict[str, Any]] = field(default_factory=dict)
    resets: int = 0

    def feed(self, ev: Event) -> None:
        self.events.append(ev)
        if isinstance(ev, Reset):
            self.resets += 1
            self.texts.clear()
            self.tools.clear()
        elif isinstance(ev, Chunk):
            self.texts.setdefault(ev.kind, []).append(ev.text)
        elif isinstance(ev, ToolCallDelta):
            call = self.tools.setdefault(ev.index, {"id": None, "name": None, "arguments": []})
            call["id"] = call["id"] or ev.id
            call["name"] = call["name"] or ev.name
            call["arguments"].append(ev.arguments)

    def text(self, kind: str = "text") -> str:
        return "".join(self.texts.get(kind, ()))

    def tool_calls(self) -> list[dict[str, Any]]:
        return [
            {"name": c["name"], "arguments": "".join(c["arguments"])} for _, c in sorted(self.tools.items())
        ]

    def mismatch(self, partial: Message | None) -> str | None:
        """Why ``partial`` differs from what was delivered, or ``None`` when it is exactly that."""
        if partial is None:
            return "no partial message"
        if partial.complete:
            return "the partial message claims to be complete"
        for kind, got in (("text", partial.text), ("reasoning", partial.reasoning)):
            if got != self.text(kind):
                return f"{kind}: partial {got!r} != delivered {self.text(kind)!r}"
        calls = [{"name": t.name, "arguments": t.arguments} for t in partial.tool_calls]
        if calls != self.tool_calls():
            return f"tool calls: partial {calls!r} != delivered {self.tool_calls()!r}"
        return None

    def matches(self, partial: Message | None) -> bool:
        return self.mismatch(partial) is None

    def seqs_contiguous(self) -> bool:
        """Every delivered event has the next ``seq`` (from 1): none lost, none twice."""
        return [e.seq for e in self.events] == list(range(1, len(self.events) + 1))


async def consume(stream: Stream) -> tuple[Delivered, StreamError | None]:
    """Iterate ``stream`` (inside ``async with``) and return what was delivered and the error, if any."""
    seen = Delivered()
    try:
        async with stream as s:
            async for ev in s:
                seen.feed(ev)
    except StreamError as exc:
        return seen, exc
    return seen, None


def sdk_source(protocol: str, client: Any, **kwargs: Any) -> Source:
    """A source for ``protocol`` over the official SDK ``client`` (``AsyncOpenAI`` / ``AsyncAnthropic``)."""
    from schwarm_stream.sources import anthropic_messages, openai_chat, openai_responses

    hi = [{"role": "user", "content": "hi"}]
    if protocol == "openai-chat":
        return openai_chat(client, **{"model": "gpt-4o-mini", "messages": hi, **kwargs})
    if protocol == "anthropic-messages":
        return anthropic_messages(
            client, **{"model": "claude-haiku-4-5", "max_tokens": 64, "messages": hi, **kwargs}
        )
    if protocol == "openai-responses":
        return openai_responses(client, **{"model": "gpt-4o-mini", "input": "hi", **kwargs})
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
