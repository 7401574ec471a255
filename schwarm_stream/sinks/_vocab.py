"""The event vocabulary sinks send to browsers: our JSON events, or the Vercel AI SDK UI message stream.

A formatter turns delivered events into :class:`~schwarm_stream.sinks.Item` lists. It is stateful per
channel (the UI message stream needs to know which part is open), so the sink creates one per channel
with ``make_formatter(name)``. Everything a channel carries goes through its formatter: the streams'
events and ends, tool results relayed from an agent loop (:meth:`Formatter.tool_result`), a producer's
failure (:meth:`Formatter.failure`) and the channel's close.

``json`` (default) — SSE event name = type, data = one JSON object:

==================  ==================================================================
``chunk``           ``{"text", "kind", "index", "choice"}`` (kind: text/reasoning/refusal)
``tool_call_delta`` ``{"index", "id", "name", "arguments", "choice"}``
``usage``           ``{"input_tokens", "output_tokens"}``
``finish``          ``{"reason", "choice"}``
``response``        ``{"id", "model"}``
``extra``           ``{"kind", "index"}`` (provider data that is not text; no payload)
``reset``           ``{"attempt", "strategy"}``: discard what was shown for this stream
``end``             ``{"stream_id", "outcome", "finish_reason", "tool_calls", "error"}``: a stream ended
``tool_result``     ``{"id", "name", "output", "error"}``: an agent loop ran a tool call
``producer_error``  ``{"type", "message"}``: the producer of a channel failed
``done``            ``{}``: the channel is closed; no more events
==================  ==================================================================

``vercel`` — the AI SDK UI message stream protocol (``x-vercel-ai-ui-message-stream: v1``), checked
against the ``ai`` package's own schema and reader (see ``docs/vercel-protocol.md``): ``start``,
``start-step``, ``text-*`` / ``reasoning-*`` parts (one open at a time: a part ends when the next
kind starts), ``tool-input-start`` / ``-delta`` / ``-available`` (``tool-input-error`` for arguments
that are not JSON), ``tool-output-available`` / ``tool-output-error`` for relayed tool results,
``finish-step``, ``finish`` with ``finishReason``, then ``data: [DONE]``. A failure is one ``error``
part, a cancelled stream one ``abort`` part; neither is followed by ``finish``. A reset is sent as a
``data-reset`` data part.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .._errors import StreamCancelled
from .._events import Chunk, Extra, Finish, Reset, ResponseInfo, ToolCallDelta, Usage
from ._log import Item

if TYPE_CHECKING:
    from .._events import Event
    from .._message import Message
    from .._stream import Stream

__all__ = [
    "FORMATTERS",
    "Formatter",
    "JSONFormatter",
    "MessageMetadata",
    "VercelFormatter",
    "make_formatter",
    "vercel_finish_reason",
]

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
    def tool_result(self, call_id: str, *, name: str | None, output: Any, error: str | None) -> list[Item]:
        """An agent loop ran tool call ``call_id``: its ``output``, or ``error`` when it failed."""
        ...

    def failure(self, error: BaseException, *, expose_errors: bool) -> list[Item]:
        """The channel's producer failed (or was cancelled) with ``error``; the channel closes next."""
        ...

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

    def tool_result(self, call_id: str, *, name: str | None, output: Any, error: str | None) -> list[Item]:
        return [Item("tool_result", _dumps({"id": call_id, "name": name, "output": output, "error": error}))]

    def failure(self, error: BaseException, *, expose_errors: bool) -> list[Item]:
        info = {"type": type(error).__name__, "message": str(error) if expose_errors else None}
        return [Item("producer_error", _dumps(info))]

    def close(self) -> list[Item]:
        return [Item("done", "{}")]


#: Provider finish reasons (all protocols) -> the ``ai`` package's ``FinishReason``.
_FINISH_REASONS = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "completed": "stop",
    "length": "length",
    "max_tokens": "length",
    "max_output_tokens": "length",
    "incomplete": "length",
    "model_context_window_exceeded": "length",
    "tool_calls": "tool-calls",
    "function_call": "tool-calls",
    "tool_use": "tool-calls",
    "content_filter": "content-filter",
    "refusal": "content-filter",
}


def vercel_finish_reason(message: Message, outcome: str | None) -> str:
    """The ``finishReason`` of the protocol's ``finish`` part for a stream's message and outcome."""
    if outcome in ("error", "partial"):
        return "error"
    reason = _FINISH_REASONS.get(message.finish_reason or "")
    if message.tool_calls and reason in (None, "stop"):
        return "tool-calls"  # e.g. a Responses stream is "completed" whether or not it called tools
    return reason or "other"


def _is_cancel(error: BaseException) -> bool:
    return isinstance(error, (StreamCancelled, asyncio.CancelledError))


#: ``message_metadata(phase, stream)``: the ``messageMetadata`` to send at ``"start"`` (first stream),
#: ``"finish-step"`` (each stream's end) and ``"finish"`` (the channel's close, with its last stream);
#: ``None`` sends none.
MessageMetadata = Callable[[str, Any], Any]


class VercelFormatter:
    """The Vercel AI SDK UI message stream protocol, so a ``useChat`` front end works unchanged.

    Parts carry only fields the protocol defines. Text and reasoning parts are closed as soon as a
    part of another kind (or another content index) starts. Tool calls are announced with
    ``tool-input-start`` on their first fragment and completed with ``tool-input-available`` (the
    parsed input) when the stream's message is built; relayed tool results follow, then the step's
    ``finish-step`` (sent when the next step starts or the channel closes). ``message_metadata`` (see
    :data:`MessageMetadata`) adds ``messageMetadata`` to ``start`` / ``finish`` and a
    ``message-metadata`` part after each step; pass it with
    ``SSESink(format=lambda: VercelFormatter(message_metadata=fn))``.
    """

    headers = VERCEL_HEADERS

    def __init__(self, *, message_metadata: MessageMetadata | None = None) -> None:
        self.message_metadata = message_metadata
        self._started = False
        self._step = 0
        self._parts = 0  # part ids are unique within the message
        self._open: tuple[str, int, str] | None = None  # (kind, index, part id) of the open part
        self._tools: dict[int, str] = {}  # tool index -> toolCallId, this step
        self._call_ids: dict[str, str] = {}  # message tool call id -> toolCallId sent
        self._ended: str | None = None  # "error" / "abort" once a terminal part was sent
        self._step_done: Any = None  # the stream whose step awaits its finish-step (tool results first)
        self._finish_reason: str | None = None
        self._last: Any = None  # the last stream that ended

    def _part(self, obj: dict[str, Any]) -> Item:
        return Item(None, _dumps(obj))

    def _metadata(self, phase: str, stream: Any, part: dict[str, Any]) -> dict[str, Any]:
        if self.message_metadata is not None:
            value = self.message_metadata(phase, stream)
            if value is not None:
                part["messageMetadata"] = value
        return part

    def _finish_step(self) -> list[Item]:
        # A step ends after its tool results (as the ai package's own streams send them), so its
        # finish-step waits for the next step, the channel's close or a failure.
        stream, self._step_done = self._step_done, None
        if stream is None:
            return []
        items = [self._part({"type": "finish-step"})]
        step = self._metadata("finish-step", stream, {"type": "message-metadata"})
        if "messageMetadata" in step:
            items.append(self._part(step))
        return items

    def stream_start(self, stream: Stream) -> list[Item]:
        items = self._finish_step()
        if not self._started:
            self._started = True
            start = self._metadata("start", stream, {"type": "start", "messageId": stream.id})
            items.append(self._part(start))
        self._step += 1
        self._open = None
        self._tools.clear()
        self._ended = None
        items.append(self._part({"type": "start-step"}))
        return items

    def _close_part(self) -> list[Item]:
        if self._open is None:
            return []
        kind, _, pid = self._open
        self._open = None
        return [self._part({"type": f"{kind}-end", "id": pid})]

    def event(self, event: Event) -> list[Item]:
        tp = type(event)
        if tp is Chunk:
            c: Chunk = event  # type: ignore[assignment]
            kind = "reasoning" if c.kind == "reasoning" else "text"
            items: list[Item] = []
            if self._open is None or self._open[:2] != (kind, c.index):
                items = self._close_part()  # the next kind started: the previous part is done
                self._parts += 1
                pid = f"{kind}-{self._step}-{self._parts}"
                self._open = (kind, c.index, pid)
                items.append(self._part({"type": f"{kind}-start", "id": pid}))
            items.append(self._part({"type": f"{kind}-delta", "id": self._open[2], "delta": c.text}))
            return items
        if tp is ToolCallDelta:
            d: ToolCallDelta = event  # type: ignore[assignment]
            items = self._close_part()
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
            items = self._close_part()
            self._tools.clear()
            items.append(
                self._part({"type": "data-reset", "data": {"attempt": r.attempt, "strategy": r.strategy}})
            )
            return items
        return []

    def stream_end(self, stream: Stream, *, expose_errors: bool) -> list[Item]:
        items = self._close_part()
        msg = stream.message
        for call in msg.tool_calls:
            call_id = self._tools.get(call.index) or call.id or f"call-{self._step}-{call.index}"
            self._call_ids[call.id] = call_id
            if call.valid:
                part = {"type": "tool-input-available", "toolCallId": call_id, "toolName": call.name}
                part["input"] = call.parsed
            else:
                part = {
                    "type": "tool-input-error",
                    "toolCallId": call_id,
                    "toolName": call.name,
                    "input": call.arguments,
                    "errorText": f"the arguments are not valid JSON: {call.error}",
                }
            items.append(self._part(part))
        self._last = stream
        self._finish_reason = vercel_finish_reason(msg, stream.outcome)
        error = stream.error
        if stream.outcome == "cancelled":
            items.extend(self._terminal(error, expose_errors, cancel=True))
        elif error is not None and stream.outcome != "partial":
            items.extend(self._terminal(error, expose_errors, cancel=False))
        else:
            self._step_done = stream
        return items

    def _terminal(self, error: BaseException | None, expose: bool, *, cancel: bool) -> list[Item]:
        self._ended = "abort" if cancel else "error"
        if cancel:
            part: dict[str, Any] = {"type": "abort"}
            if error is not None and expose:
                part["reason"] = str(error)
            return [self._part(part)]
        text = type(error).__name__ if error is not None else "error"
        if error is not None and expose and str(error):
            text = str(error)
        return [self._part({"type": "error", "errorText": text})]

    def tool_result(self, call_id: str, *, name: str | None, output: Any, error: str | None) -> list[Item]:
        tool_call_id = self._call_ids.get(call_id, call_id)
        if error is not None:
            return [self._part({"type": "tool-output-error", "toolCallId": tool_call_id, "errorText": error})]
        # JSON has no undefined: a tool returning nothing is null, so the part keeps its output field
        return [self._part({"type": "tool-output-available", "toolCallId": tool_call_id, "output": output})]

    def failure(self, error: BaseException, *, expose_errors: bool) -> list[Item]:
        if self._ended is not None:
            return []  # the failing stream already sent its error / abort part: once, not twice
        items = [*self._finish_step(), *self._close_part()]
        items.extend(self._terminal(error, expose_errors, cancel=_is_cancel(error)))
        return items

    def close(self) -> list[Item]:
        items = self._finish_step()
        if self._started and self._ended is None:
            finish: dict[str, Any] = {"type": "finish"}
            if self._finish_reason is not None:
                finish["finishReason"] = self._finish_reason
            items.append(self._part(self._metadata("finish", self._last, finish)))
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
