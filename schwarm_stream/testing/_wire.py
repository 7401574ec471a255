"""Builders for provider stream bytes, exactly as the providers put them on the wire.

Each builder returns a list of SSE events (``bytes``), one list element per event, so a test can
slice the list to cut a stream short, insert actions between events or drop the terminator.

The shapes follow ``research/sdk-streaming.md`` §1.1-1.3 (OpenAI Chat Completions and Responses) and
§2.1-2.2 (Anthropic Messages); all of them were checked against the official SDK accumulators.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

__all__ = [
    "anthropic_error_event",
    "anthropic_events",
    "chunk_text",
    "events_after",
    "openai_chat_events",
    "openai_error_chunk",
    "responses_error_events",
    "responses_events",
    "sse",
]

#: Marker for "compute a plausible value" in the ``usage`` / ``finish_reason`` / ``stop_reason`` arguments.
Auto = Literal["auto"]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_CREATED = 1_700_000_000


def _dumps(data: Any) -> str:
    # Compact and UTF-8 (not \\u escapes), like the providers: multibyte characters stay multibyte on
    # the wire, which is what the split-character faults need.
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def sse(data: str | Mapping[str, Any] | Sequence[Any], event: str | None = None) -> bytes:
    """Frame one Server-Sent Event.

    ``data`` that is not a ``str`` is JSON-encoded compactly. Multi-line data becomes one ``data:`` line
    per line (WHATWG SSE), so the client joins them back with LF.
    """
    text = data if isinstance(data, str) else _dumps(data)
    lines = [] if event is None else [f"event: {event}"]
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(text))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def chunk_text(text: str, sizes: Sequence[int] = (3, 2, 5, 4)) -> list[str]:
    """Cut ``text`` into small deterministic pieces, cycling through ``sizes`` (characters).

    A single trailing character is avoided by growing or shrinking the last-but-one piece, so with
    the default sizes every piece of a text of two or more characters has 2 to 5 characters.
    """
    pieces: list[str] = []
    pos, i = 0, 0
    while pos < len(text):
        size = sizes[i % len(sizes)]
        if len(text) - pos - size == 1:
            size = size + 1 if size < max(sizes) else size - 1
        pieces.append(text[pos : pos + size])
        pos += size
        i += 1
    return pieces


def _arguments(call: Mapping[str, Any], key: str = "arguments") -> str:
    value = call.get(key, "")
    return value if isinstance(value, str) else _dumps(value)


def _argument_chunks(call: Mapping[str, Any], key: str = "arguments") -> list[str]:
    # Explicit fragments win (to test odd splits); otherwise cut the JSON into 8-character pieces.
    if "chunks" in call:
        return [str(c) for c in call["chunks"]]
    return chunk_text(_arguments(call, key), (8,))


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


# --------------------------------------------------------------------------------------------------------
# OpenAI Chat Completions


def openai_chat_events(
    text_chunks: Sequence[str] = (),
    *,
    tool_calls: Sequence[Mapping[str, Any]] = (),
    reasoning_chunks: Sequence[str] = (),
    refusal_chunks: Sequence[str] = (),
    finish_reason: str | None = "auto",
    usage: Mapping[str, Any] | Auto | None = "auto",
    model: str = "gpt-4o-mini",
    id: str = "chatcmpl-test",
    done: bool = True,
    reasoning_field: str = "reasoning_content",
) -> list[bytes]:
    """A Chat Completions stream: role chunk, deltas, finish chunk, usage chunk, ``data: [DONE]``.

    - ``tool_calls``: dicts with ``name``, ``arguments`` (``str`` or JSON-able object) and optionally
      ``id`` (default ``call_<index>``) and ``chunks`` (explicit argument fragments). The first fragment of
      each call carries ``index``/``id``/``type``/``name`` and ``arguments: ""``, as OpenAI sends it;
      calls are streamed one after another (index 0 to the end, then index 1).
    - ``reasoning_chunks`` go into ``delta.<reasoning_field>`` (DeepSeek/LiteLLM style; OpenAI itself
      does not stream reasoning on this API).
    - ``finish_reason="auto"`` means ``"tool_calls"`` when tool calls are given, else ``"stop"``;
      ``None`` leaves out the finish chunk (a truncated stream).
    - ``usage="auto"`` computes plausible counts; ``None`` leaves out the usage chunk and the
      ``"usage": null`` fields (a request without ``stream_options.include_usage``).
    - ``done=False`` leaves out ``data: [DONE]``.
    """

    def body(
        delta: Mapping[str, Any] | None, finish: str | None = None, *, choices: bool = True
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": id,
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": model,
            "system_fingerprint": "fp_schwarm",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
            if choices
            else [],
        }
        if usage is not None:
            data["usage"] = None  # with include_usage every chunk carries "usage": null
        return data

    def chunk(delta: Mapping[str, Any], finish: str | None = None) -> bytes:
        return sse(body(delta, finish))

    events = [
        chunk(
            {"role": "assistant", "content": "" if text_chunks or not tool_calls else None, "refusal": None}
        )
    ]
    events += [chunk({reasoning_field: piece}) for piece in reasoning_chunks]
    events += [chunk({"content": piece}) for piece in text_chunks]
    events += [chunk({"refusal": piece}) for piece in refusal_chunks]
    for index, call in enumerate(tool_calls):
        first = {
            "index": index,
            "id": call.get("id", f"call_{index}"),
            "type": "function",
            "function": {"name": call["name"], "arguments": ""},
        }
        events.append(chunk({"tool_calls": [first]}))
        events += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in _argument_chunks(call)
        ]
    if finish_reason == "auto":
        finish_reason = "tool_calls" if tool_calls else "stop"
    if finish_reason is not None:
        events.append(chunk({}, finish_reason))
    if usage is not None:
        if usage == "auto":
            out = "".join(
                [*text_chunks, *reasoning_chunks, *refusal_chunks, *(_arguments(c) for c in tool_calls)]
            )
            completion = _tokens(out)
            usage = {"prompt_tokens": 12, "completion_tokens": completion, "total_tokens": 12 + completion}
        events.append(sse({**body(None, choices=False), "usage": dict(usage)}))
    if done:
        events.append(b"data: [DONE]\n\n")
    return events


def openai_error_chunk(
    message: str = "The server had an error while processing your request.",
    type: str = "server_error",
    code: str | None = None,
) -> bytes:
    """An in-band Chat Completions error chunk; the OpenAI SDK raises ``openai.APIError`` on it."""
    return sse({"error": {"message": message, "type": type, "param": None, "code": code}})


# --------------------------------------------------------------------------------------------------------
# Anthropic Messages


def anthropic_events(
    text_chunks: Sequence[str] = (),
    *,
    tool_uses: Sequence[Mapping[str, Any]] = (),
    thinking_chunks: Sequence[str] = (),
    stop_reason: str | None = "auto",
    usage: Mapping[str, Any] | Auto = "auto",
    model: str = "claude-sonnet-4-5",
    id: str = "msg_test",
    pings: bool = True,
    signature: str = "c2lnbmF0dXJl",
    stop: bool = True,
) -> list[bytes]:
    """An Anthropic Messages stream: ``message_start``, blocks, ``message_delta``, ``message_stop``.

    Blocks come in the order thinking (if ``thinking_chunks``), text (if ``text_chunks``), then one
    ``tool_use`` block per ``tool_uses`` entry (dicts with ``name``, ``input`` (JSON-able or ``str``) and
    optionally ``id`` and ``chunks``, explicit ``partial_json`` fragments). A ``ping`` follows the first
    ``content_block_start`` as on the real API. ``stop_reason="auto"`` means ``"tool_use"`` when tool
    uses are given, else ``"end_turn"``; ``None`` leaves out ``message_delta``. ``stop=False`` leaves
    out ``message_stop`` (a stream that ended without its terminator).
    """
    if usage == "auto":
        out = "".join([*text_chunks, *thinking_chunks, *(_arguments(t, "input") for t in tool_uses)])
        usage = {"input_tokens": 12, "output_tokens": _tokens(out)}

    def ev(data: dict[str, Any]) -> bytes:
        return sse(data, event=data["type"])

    message: dict[str, Any] = {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.get("input_tokens", 0),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 1,
        },
    }
    events = [ev({"type": "message_start", "message": message})]
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if thinking_chunks:
        deltas = [{"type": "thinking_delta", "thinking": t} for t in thinking_chunks]
        deltas.append({"type": "signature_delta", "signature": signature})
        blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
    if text_chunks:
        blocks.append(
            ({"type": "text", "text": ""}, [{"type": "text_delta", "text": t} for t in text_chunks])
        )
    for n, tool in enumerate(tool_uses):
        start = {
            "type": "tool_use",
            "id": tool.get("id", f"toolu_{n:02d}"),
            "name": tool["name"],
            "input": {},
        }
        pieces = ["", *_argument_chunks(tool, "input")]  # the API opens with an empty fragment
        blocks.append((start, [{"type": "input_json_delta", "partial_json": p} for p in pieces]))
    for index, (start, deltas) in enumerate(blocks):
        events.append(ev({"type": "content_block_start", "index": index, "content_block": start}))
        if pings and index == 0:
            events.append(b'event: ping\ndata: {"type": "ping"}\n\n')
        events += [ev({"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
        events.append(ev({"type": "content_block_stop", "index": index}))
    if pings and not blocks:
        events.append(b'event: ping\ndata: {"type": "ping"}\n\n')
    if stop_reason == "auto":
        stop_reason = "tool_use" if tool_uses else "end_turn"
    if stop_reason is not None:
        delta_usage = {"output_tokens": usage.get("output_tokens", 0)}
        events.append(
            ev(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": delta_usage,
                }
            )
        )
    if stop:
        events.append(ev({"type": "message_stop"}))
    return events


def anthropic_error_event(type: str = "overloaded_error", message: str = "Overloaded") -> bytes:
    """An in-band ``event: error``; the Anthropic SDK raises ``APIStatusError`` (status 200) on it."""
    return sse({"type": "error", "error": {"type": type, "message": message}}, event="error")


# --------------------------------------------------------------------------------------------------------
# OpenAI Responses


def _response(id: str, model: str, status: str, output: list[Any], usage: Any = None) -> dict[str, Any]:
    return {
        "id": id,
        "object": "response",
        "created_at": _CREATED,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "temperature": 1.0,
        "top_p": 1.0,
        "tool_choice": "auto",
        "tools": [],
        "text": {"format": {"type": "text"}},
        "metadata": {},
        "usage": usage,
    }


class _Seq:
    """Numbers Responses events in order; every event also gets its ``event:`` line."""

    def __init__(self, start: int) -> None:
        self.next = start
        self.events: list[bytes] = []

    def emit(self, type: str, **fields: Any) -> None:
        self.events.append(sse({"type": type, "sequence_number": self.next, **fields}, event=type))
        self.next += 1


def responses_events(
    text_chunks: Sequence[str] = (),
    *,
    function_calls: Sequence[Mapping[str, Any]] = (),
    reasoning_summary_chunks: Sequence[str] = (),
    status: Literal["completed", "incomplete", "failed"] | None = "completed",
    usage: Mapping[str, Any] | Auto = "auto",
    model: str = "gpt-4o-mini",
    id: str = "resp_test",
) -> list[bytes]:
    """A Responses API stream, every event with ``sequence_number`` (from 0) and an ``event:`` line.

    Output items in order: a reasoning item (if ``reasoning_summary_chunks``), a message (if
    ``text_chunks``), then one ``function_call`` per ``function_calls`` entry (dicts with ``name``,
    ``arguments`` and optionally ``call_id``, ``id`` and ``chunks``). The stream ends with
    ``response.completed`` / ``.incomplete`` / ``.failed`` per ``status``; ``None`` leaves out the
    terminal event (a truncated stream). There is no ``[DONE]`` on this API.
    """
    if usage == "auto":
        out = "".join([*text_chunks, *reasoning_summary_chunks, *(_arguments(c) for c in function_calls)])
        usage = {"input_tokens": 12, "output_tokens": _tokens(out)}
    inp, outp = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
    full_usage = {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": outp,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": inp + outp,
        **{k: v for k, v in usage.items() if k not in ("input_tokens", "output_tokens")},
    }
    seq = _Seq(0)
    seq.emit("response.created", response=_response(id, model, "in_progress", []))
    seq.emit("response.in_progress", response=_response(id, model, "in_progress", []))
    done_items: list[dict[str, Any]] = []

    if reasoning_summary_chunks:
        index, item_id, text = len(done_items), f"rs_{id}", "".join(reasoning_summary_chunks)
        seq.emit(
            "response.output_item.added",
            output_index=index,
            item={"type": "reasoning", "id": item_id, "summary": []},
        )
        where = {"item_id": item_id, "output_index": index, "summary_index": 0}
        seq.emit("response.reasoning_summary_part.added", **where, part={"type": "summary_text", "text": ""})
        for piece in reasoning_summary_chunks:
            seq.emit("response.reasoning_summary_text.delta", **where, delta=piece)
        seq.emit("response.reasoning_summary_text.done", **where, text=text)
        seq.emit("response.reasoning_summary_part.done", **where, part={"type": "summary_text", "text": text})
        item = {"type": "reasoning", "id": item_id, "summary": [{"type": "summary_text", "text": text}]}
        seq.emit("response.output_item.done", output_index=index, item=item)
        done_items.append(item)

    if text_chunks:
        index, item_id, text = len(done_items), f"msg_{id}", "".join(text_chunks)
        message = {
            "type": "message",
            "id": item_id,
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        seq.emit("response.output_item.added", output_index=index, item=message)
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        seq.emit("response.content_part.added", **where, part=empty_part)
        for piece in text_chunks:
            seq.emit("response.output_text.delta", **where, delta=piece, logprobs=[])
        seq.emit("response.output_text.done", **where, text=text, logprobs=[])
        part = {**empty_part, "text": text}
        seq.emit("response.content_part.done", **where, part=part)
        item = {**message, "status": "completed", "content": [part]}
        seq.emit("response.output_item.done", output_index=index, item=item)
        done_items.append(item)

    for n, call in enumerate(function_calls):
        index = len(done_items)
        arguments = _arguments(call)
        item = {
            "type": "function_call",
            "id": call.get("id", f"fc_{n}"),
            "call_id": call.get("call_id", f"call_{n}"),
            "name": call["name"],
            "arguments": "",
            "status": "in_progress",
        }
        seq.emit("response.output_item.added", output_index=index, item=item)
        for piece in _argument_chunks(call):
            seq.emit(
                "response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=piece
            )
        seq.emit(
            "response.function_call_arguments.done",
            item_id=item["id"],
            output_index=index,
            name=call["name"],
            arguments=arguments,
        )
        item = {**item, "arguments": arguments, "status": "completed"}
        seq.emit("response.output_item.done", output_index=index, item=item)
        done_items.append(item)

    if status is not None:
        final = _response(id, model, status, done_items, full_usage)
        if status == "incomplete":
            final["incomplete_details"] = {"reason": "max_output_tokens"}
        elif status == "failed":
            final["error"] = {"code": "server_error", "message": "The model failed to generate a response."}
        seq.emit(f"response.{status}", response=final)
    return seq.events


def responses_error_events(
    message: str = "The server had an error while processing your request.",
    code: str = "server_error",
    *,
    sequence_number: int = 2,
    id: str = "resp_test",
    model: str = "gpt-4o-mini",
    nested: bool = False,
    failed: bool = True,
) -> list[bytes]:
    """A Responses ``error`` event, followed by ``response.failed`` when ``failed``.

    ``nested=False`` is the documented shape ``{"type":"error","code","message","param"}``: the SDK yields
    it as an event. ``nested=True`` is the shape seen in real recordings,
    ``{"type":"error","error":{"type","code","message"}}``: the OpenAI SDK raises ``APIError`` on it
    (sdk-streaming.md §1.3). Start numbering at ``sequence_number`` to splice after other events.
    """
    seq = _Seq(sequence_number)
    if nested:
        seq.emit("error", error={"type": code, "code": code, "message": message, "param": None})
    else:
        seq.emit("error", code=code, message=message, param=None)
    if failed:
        final = _response(id, model, "failed", [])
        final["error"] = {"code": code, "message": message}
        seq.emit("response.failed", response=final)
    return seq.events


def events_after(events: Iterable[bytes], starting_after: int) -> list[bytes]:
    """The events whose ``sequence_number`` is greater than ``starting_after``.

    This is what ``GET /v1/responses/{id}?stream=true&starting_after=N`` returns on the real API; use it
    to script the ``"openai-responses-retrieve"`` route. Events without a sequence number are dropped.
    """
    kept: list[bytes] = []
    for raw in events:
        for line in raw.decode("utf-8").splitlines():
            if line.startswith("data:"):
                try:
                    number = json.loads(line[5:]).get("sequence_number")
                except (ValueError, AttributeError):
                    number = None
                if isinstance(number, int) and number > starting_after:
                    kept.append(raw)
                break
    return kept
