"""The event vocabulary sinks send to browsers: our JSON events, or the Vercel AI SDK UI message stream.

A formatter turns delivered events into :class:`~schwarm_stream.sinks.Item` lists. It is stateful per
channel (the UI message stream needs to know which text part is open), so the sink creates one per
channel with ``make_formatter(name)``.

``json`` (default) — SSE event name = type, data = one JSON object:

=================  ==================================================================
``chunk``          ``{"text", "kind", "index", "choice"}`` (kind: text/reasoning/refusal)
``tool_call_delta`` ``{"index", "id", "name", "arguments", "choice"}``
``usage``          ``{"input_tokens", "output_tokens"}``
``finish``         ``{"reason", "choice"}``
``response``       ``{"id", "model"}``
``extra``          ``{"kind", "index"}`` (provider data that is not text; no payload)
``reset``          ``{"attempt", "strategy"}``: discard what was shown for this stream
``end``            ``{"stream_id", "outcome", "finish_reason", "tool_calls", "error"}``: a stream ended
``done``           ``{}``: the channel is closed; no more events
=================  ==================================================================

``vercel`` — the AI SDK UI message stream protocol (``x-vercel-ai-ui-message-stream: v1``): ``start``,
``start-step``, ``text-start``/``text-delta``/``text-end``, ``reasoning-start``/``-delta``/``-end``,
``tool-input-start``/``tool-input-delta``/``tool-input-available``, ``finish-step``, ``finish``,
``error``, then ``data: [DONE]``. A reset is sent as a ``data-reset`` data part.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .._events import Chunk, Extra, Finish, Reset, ResponseInfo, ToolCallDelta, Usage
from ._log import Item

if TYPE_CHECKING:
    from .._events import Event
    from .._stream import Stream

__all__ = ["FORMATTERS", "Formatter", "JSONFormatter", "VercelFormatter", "make_formatter"]

VERCEL_HEADERS = {"x-vercel-ai-ui-message-stream": "v1"}


def _dumps(obj: Any) -> str:
    # JSON escapes CR, LF and NUL, so a payload can never end an SSE event or forge a field.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


class Formatter(Protocol):
    """What a sink needs from a vocabulary (one instance per channel)."""

    headers: dict[str, str]

    def stream_start(self, stream: Stream) -> list[Item]: ...
    def event(self, event: Event) -> list[Item]: ...
    def stream_end(self, stream: Stream, *, expose_errors: bool) -> list[Item]: ...
    def close(self) -> list[Item]: ...


def _error_info(stream: Stream, expose: bool) -> dict[str, Any] | None:
    err = stream.error
    if err is None:
        return None
    # Error texts can quote provider bodies: only the type unless the application opts in.
    return {"type": type(err).__name__, "message": str(err) if expose else None}


class JSONFormatter:
    """Our own vocabulary (see the module docstring). ``raw_text=True`` sends chunk text as plain data."""

    headers: dict[str, str] = {}

    def __init__(self, *, raw_text: bool = False) -> None:
        self.raw_text = raw_text

    def stream_start(self, stream: Stream) -> list[Item]:
        return []

    def event(self, event: Event) -> list[Item]:
        tp = type(event)
        if tp is Chunk:
            if self.raw_text:
                return [Item(event.kind, event.text, False)]  # type: ignore[union-attr]
            return [
                Item(
                    "chunk",
                    _dumps(
                        {
                            "text": event.text,  # type: ignore[union-attr]
                            "kind": event.kind,  # type: ignore[union-attr]
                            "index": event.index,  # type: ignore[union-attr]
                            "choice": event.choice,  # type: ignore[union-attr]
                        }
                    ),
                )
            ]
        if tp is ToolCallDelta:
            d: ToolCallDelta = event  # type: ignore[assignment]
            payload = {
                "index": d.index,
                "id": d.id,
                "name": d.name,
                "arguments": d.arguments,
                "choice": d.choice,
            }
            return [Item("tool_call_delta", _dumps(payload))]
        if tp is Usage:
            u: Usage = event  # type: ignore[assignment]
            return [Item("usage", _dumps({"input_tokens": u.input_tokens, "output_tokens": u.output_tokens}))]
        if tp is Finish:
            return [Item("finish", _dumps({"reason": event.reason, "choice": event.choice}))]  # type: ignore[union-attr]
        if tp is ResponseInfo:
            return [Item("response", _dumps({"id": event.id, "model": event.model}))]  # type: ignore[union-attr]
        if tp is Reset:
            return [Item("reset", _dumps({"attempt": event.attempt, "strategy": event.strategy}))]  # type: ignore[union-attr]
        if tp is Extra:
            return [Item("extra", _dumps({"kind": event.kind, "index": event.index}))]  # type: ignore[union-attr]
        return []  # heartbeats: the subscriber sends comments on its own clock

    def stream_end(self, stream: Stream, *, expose_errors: bool) -> list[Item]:
        msg = stream.message
        payload = {
            "stream_id": stream.id,
            "outcome": stream.outcome,
            "finish_reason": msg.finish_reason,
            "tool_calls": [
                {"id": t.id, "name": t.name, "arguments": t.parsed if t.valid else t.arguments}
                for t in msg.tool_calls
            ],
            "error": _error_info(stream, expose_errors),
        }
        return [Item("end", _dumps(payload))]

    def close(self) -> list[Item]:
        return [Item("done", "{}")]


class VercelFormatter:
    """The Vercel AI SDK UI message stream protocol, so a ``useChat`` front end works unchanged.

    Parts carry only the fields the protocol's schema allows (it validates them strictly). Tool calls
    are announced with ``tool-input-start`` on their first fragment and completed with
    ``tool-input-available`` (the parsed input) when the stream's message is built.
    """

    headers = VERCEL_HEADERS

    def __init__(self) -> None:
        self._started = False
        self._open: dict[tuple[str, int], str] = {}  # (kind, index) -> part id
        self._tools: dict[int, str] = {}  # tool index -> toolCallId
        self._step = 0

    def _part(self, obj: dict[str, Any]) -> Item:
        return Item(None, _dumps(obj))

    def stream_start(self, stream: Stream) -> list[Item]:
        items = []
        if not self._started:
            self._started = True
            items.append(self._part({"type": "start", "messageId": stream.id}))
        self._step += 1
        self._open.clear()
        self._tools.clear()
        items.append(self._part({"type": "start-step"}))
        return items

    def _close_parts(self) -> list[Item]:
        items = [self._part({"type": f"{kind}-end", "id": pid}) for (kind, _), pid in self._open.items()]
        self._open.clear()
        return items

    def event(self, event: Event) -> list[Item]:
        tp = type(event)
        if tp is Chunk:
            c: Chunk = event  # type: ignore[assignment]
            kind = "reasoning" if c.kind == "reasoning" else "text"
            key = (kind, c.index)
            items: list[Item] = []
            pid = self._open.get(key)
            if pid is None:
                pid = self._open[key] = f"{kind}-{self._step}-{c.index}"
                items.append(self._part({"type": f"{kind}-start", "id": pid}))
            items.append(self._part({"type": f"{kind}-delta", "id": pid, "delta": c.text}))
            return items
        if tp is ToolCallDelta:
            d: ToolCallDelta = event  # type: ignore[assignment]
            items = []
            call_id = self._tools.get(d.index)
            if call_id is None:
                call_id = self._tools[d.index] = d.id or f"call-{self._step}-{d.index}"
                items.append(
                    self._part({"type": "tool-input-start", "toolCallId": call_id, "toolName": d.name or ""})
                )
            if d.arguments:
                items.append(
                    self._part(
                        {"type": "tool-input-delta", "toolCallId": call_id, "inputTextDelta": d.arguments}
                    )
                )
            return items
        if tp is Reset:
            r: Reset = event  # type: ignore[assignment]
            items = self._close_parts()
            self._tools.clear()
            items.append(
                self._part({"type": "data-reset", "data": {"attempt": r.attempt, "strategy": r.strategy}})
            )
            return items
        return []

    def stream_end(self, stream: Stream, *, expose_errors: bool) -> list[Item]:
        items = self._close_parts()
        msg = stream.message
        for call in msg.tool_calls:
            call_id = self._tools.get(call.index, call.id)
            items.append(
                self._part(
                    {
                        "type": "tool-input-available",
                        "toolCallId": call_id,
                        "toolName": call.name,
                        "input": call.parsed if call.valid else call.arguments,
                    }
                )
            )
        info = _error_info(stream, expose_errors)
        if info is not None:
            items.append(self._part({"type": "error", "errorText": info["message"] or info["type"]}))
        items.append(self._part({"type": "finish-step"}))
        return items

    def close(self) -> list[Item]:
        items = [self._part({"type": "finish"})] if self._started else []
        items.append(Item(None, "[DONE]", False))
        return items


FORMATTERS: dict[str, Callable[[], Formatter]] = {
    "json": JSONFormatter,
    "text": lambda: JSONFormatter(raw_text=True),
    "vercel": VercelFormatter,
}


def make_formatter(name: str | Callable[[], Formatter]) -> Formatter:
    """A new formatter by name (``json``, ``text``, ``vercel``) or from a factory."""
    if callable(name):
        return name()
    try:
        return FORMATTERS[name]()
    except KeyError:
        raise ValueError(f"unknown SSE format {name!r}; expected one of {', '.join(FORMATTERS)}") from None
