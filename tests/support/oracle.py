"""Correctness oracle: what the official SDKs make of a raw SSE body.

:func:`sdk_result` serves a raw SSE HTTP body to the official client (``openai.OpenAI`` /
``anthropic.Anthropic``) through an in-memory ``httpx2.MockTransport``, so the SDK's *own* SSE decoder and
``Stream`` class produce the typed chunks/events (with all their quirks: Anthropic skips pings and events
without an ``event:`` line, OpenAI raises ``APIError`` on an in-band ``{"error": ...}`` payload, a final
event without a trailing blank line is dropped, ...).  The SDK's *own* accumulator then builds the final
message, and the result is reduced to one normalized dict that schwarm_stream's accumulators can be
compared against.

The SDKs are imported lazily inside the functions so importing this module costs nothing and works
without them installed.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx2

__all__ = ["OracleRejected", "sdk_result"]

_BASE_URL = "http://oracle.invalid"
_REASONING_FIELDS = ("reasoning_content", "reasoning")  # non-standard chat delta fields, in priority order


class OracleRejected(Exception):
    """The SDK did not accept the stream: its stream reader or its accumulator raised, or it produced
    no final result (e.g. a Responses stream without ``response.completed``).

    ``reason`` is a one-line human explanation; ``stage`` is ``"stream"`` (the SDK's SSE/``Stream``
    layer raised), ``"accumulator"`` (the SDK accumulator raised) or ``"final"`` (no final result);
    ``error`` is the SDK exception's class name, or ``None``.
    """

    def __init__(self, reason: str, *, stage: str = "final", error: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stage = stage
        self.error = error


def sdk_result(protocol: str, body: bytes) -> dict[str, Any]:
    """Run ``body`` through the official SDK for ``protocol`` and return the normalized result.

    ``protocol`` is ``"openai-chat"``, ``"openai-responses"`` or ``"anthropic-messages"``.  Result keys::

        text: str                 # assistant text (chat: choice 0)
        reasoning: str            # reasoning / thinking text, "" if none
        refusal: str | None
        tool_calls: [{"id", "name", "arguments"}]   # anthropic items also carry "input" (parsed dict)
        finish_reason: str | None # chat finish_reason / responses status / anthropic stop_reason
        usage: {"input_tokens": int, "output_tokens": int} | None
        choices: int              # number of chat choices; 1 for the other protocols

    Per protocol:

    * ``openai-chat``: ``client.chat.completions.create(stream=True)`` feeds
      ``openai.lib.streaming.chat.ChatCompletionStreamState``; chunks that ``ChatCompletionStream`` would
      drop (Azure's prompt-filter chunk, ``object != "chat.completion.chunk"``) are dropped too.  The
      result is ``get_final_completion()``, **except** when that raises ``LengthFinishReasonError`` or
      ``ContentFilterFinishReasonError`` (it does for any ``finish_reason`` ``"length"`` /
      ``"content_filter"``, even without a response format): then ``current_completion_snapshot`` is used
      and the dict gets an extra key ``"sdk_final_raised"`` naming the exception; the stream is *not*
      rejected.  ``reasoning`` is the ``reasoning_content`` (else ``reasoning``) string field that
      providers add to deltas; the SDK snapshot keeps such unknown fields and concatenates them.
      ``usage`` is the snapshot's (= the last chunk's) ``usage``, mapped from prompt/completion tokens.
    * ``openai-responses``: ``client.responses.create(stream=True)`` feeds
      ``ResponseStreamState(input_tools=omit, text_format=omit)``; the result is its
      ``_completed_response`` (what ``ResponseStream.get_final_response()`` returns), so a stream without
      ``response.completed`` (failed / incomplete / truncated) is rejected, as that method raises.
      ``text`` / ``refusal`` join the ``output_text`` / ``refusal`` parts of message items, ``reasoning``
      joins reasoning items' summary and content texts, tool calls come from ``function_call`` items
      (``id`` is the ``call_id``), ``finish_reason`` is the response ``status``.
    * ``anthropic-messages``: ``client.messages.create(stream=True)`` feeds
      ``anthropic.lib.streaming._messages.accumulate_event``.  ``text`` joins text blocks, ``reasoning``
      joins thinking blocks, tool calls come from ``tool_use`` blocks only (not server/MCP tool blocks),
      with ``arguments = json.dumps(input)`` and the SDK's parsed ``input`` (compare that, not the string:
      the SDK does not keep the raw JSON).  No ``message_stop`` check is made, like the SDK.

    Raises :class:`OracleRejected` when the SDK does not accept the stream, ``ValueError`` for an unknown
    protocol.
    """
    handler = _HANDLERS.get(protocol)
    if handler is None:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {sorted(_HANDLERS)}")
    with warnings.catch_warnings():
        # The SDK's model_dump warns for every chunk when a provider sends off-schema values (Mistral's
        # list-valued `content`); that is noise for an oracle, the data is still accumulated as the SDK does.
        warnings.filterwarnings("ignore", message="Pydantic serializer warnings", category=UserWarning)
        return handler(body)


# --------------------------------------------------------------------------- plumbing


@contextmanager
def _mock_http(body: bytes) -> Iterator[httpx2.Client]:
    """An ``httpx2.Client`` answering every request with ``200`` and ``body`` as an SSE stream."""
    import httpx2

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    with httpx2.Client(transport=httpx2.MockTransport(handler)) as client:
        yield client


def _drive(items: Iterator[Any], sink: Callable[[Any], bool]) -> int:
    """Feed every item the SDK stream yields to ``sink``, interleaved as the SDK's stream helpers do
    (so the first failure wins, whichever layer it comes from); map failures to OracleRejected.
    Returns how many items ``sink`` accepted (it returns False for items it skips)."""
    count = 0
    while True:
        try:
            item = next(items)
        except StopIteration:
            return count
        except Exception as exc:  # any SDK stream failure is a rejection (APIError, JSONDecodeError, ...)
            raise OracleRejected(
                f"SDK stream raised {type(exc).__name__}: {exc}", stage="stream", error=type(exc).__name__
            ) from exc
        try:
            if sink(item):
                count += 1
        except Exception as exc:
            raise OracleRejected(
                f"SDK accumulator raised {type(exc).__name__}: {exc}",
                stage="accumulator",
                error=type(exc).__name__,
            ) from exc


def _usage(input_tokens: Any, output_tokens: Any) -> dict[str, int]:
    return {"input_tokens": int(input_tokens or 0), "output_tokens": int(output_tokens or 0)}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


# --------------------------------------------------------------------------- OpenAI chat


def _openai_chat(body: bytes) -> dict[str, Any]:
    import openai
    from openai.lib.streaming.chat import ChatCompletionStreamState

    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    raw_reasoning: dict[int, dict[str, str]] = {}  # choice index -> field -> concatenated raw deltas

    def sink(chunk: Any) -> bool:
        # Same filter as openai.lib.streaming.chat.ChatCompletionStream (drops Azure's prompt-filter chunk).
        if chunk.object != "chat.completion.chunk":
            return False
        for choice in chunk.choices:
            extra = getattr(choice.delta, "model_extra", None) or {}
            for name in _REASONING_FIELDS:
                if isinstance(extra.get(name), str):
                    per_choice = raw_reasoning.setdefault(choice.index, {})
                    per_choice[name] = per_choice.get(name, "") + extra[name]
        state.handle_chunk(chunk)
        return True

    with (
        _mock_http(body) as http,
        openai.OpenAI(
            api_key="sk-oracle", base_url=f"{_BASE_URL}/v1", http_client=http, max_retries=0
        ) as client,
    ):
        stream = client.chat.completions.create(model="oracle", messages=[], stream=True)
        seen = _drive(iter(stream), sink)
    if not seen:
        raise OracleRejected("SDK stream yielded no chat.completion.chunk", error=None)

    extra: dict[str, Any] = {}
    try:
        completion: Any = state.get_final_completion()
    except (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError) as exc:
        # The SDK refuses to "parse" a truncated/filtered completion even without a response format;
        # the accumulated data is still complete and is what a caller would read.
        completion = state.current_completion_snapshot
        extra["sdk_final_raised"] = type(exc).__name__

    choice = completion.choices[0] if completion.choices else None
    message = choice.message if choice is not None else None
    reasoning = ""
    if message is not None:
        snapshot_extra = getattr(message, "model_extra", None) or {}
        fields = [snapshot_extra.get(name) for name in _REASONING_FIELDS]
        # The snapshot (and get_final_completion()) keeps unknown delta fields, accumulate_delta
        # concatenating the strings (verified on the corpus); fall back to the raw deltas should a future
        # SDK drop them.
        raw = raw_reasoning.get(choice.index, {}) if choice is not None else {}
        reasoning = next((f for f in fields if isinstance(f, str) and f), "") or next(
            (raw[name] for name in _REASONING_FIELDS if raw.get(name)), ""
        )
    tool_calls = [
        {
            "id": tc.id or "",
            "name": tc.function.name or "",
            "arguments": tc.function.arguments or "",
        }
        for tc in (message.tool_calls or [] if message is not None else [])
        if getattr(tc, "function", None) is not None
    ]
    usage = completion.usage
    return {
        "text": _text(message.content if message is not None else None),
        "reasoning": reasoning,
        "refusal": getattr(message, "refusal", None),
        "tool_calls": tool_calls,
        "finish_reason": choice.finish_reason if choice is not None else None,
        "usage": _usage(usage.prompt_tokens, usage.completion_tokens) if usage is not None else None,
        "choices": len(completion.choices),
        **extra,
    }


# --------------------------------------------------------------------------- OpenAI Responses


def _openai_responses(body: bytes) -> dict[str, Any]:
    import openai
    from openai import omit
    from openai.lib.streaming.responses import ResponseStreamState

    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    last_type: list[str] = []

    def sink(event: Any) -> bool:
        last_type[:] = [event.type]
        state.handle_event(event)
        return True

    with (
        _mock_http(body) as http,
        openai.OpenAI(
            api_key="sk-oracle", base_url=f"{_BASE_URL}/v1", http_client=http, max_retries=0
        ) as client,
    ):
        stream = client.responses.create(model="oracle", input="oracle", stream=True)
        _drive(iter(stream), sink)
    response = state._completed_response  # what ResponseStream.get_final_response() returns
    if response is None:
        last = last_type[0] if last_type else "nothing"
        raise OracleRejected(f"no `response.completed` event (last event: {last})", stage="final")

    text: list[str] = []
    refusal: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for item in response.output or []:
        if item.type == "message":
            for part in item.content or []:
                if part.type == "output_text":
                    text.append(part.text)
                elif part.type == "refusal":
                    refusal.append(part.refusal)
        elif item.type == "reasoning":
            reasoning.extend(s.text for s in item.summary or [])
            reasoning.extend(c.text for c in getattr(item, "content", None) or [])
        elif item.type == "function_call":
            tool_calls.append({"id": item.call_id, "name": item.name, "arguments": item.arguments})
    usage = response.usage
    return {
        "text": "".join(text),
        "reasoning": "".join(reasoning),
        "refusal": "".join(refusal) if refusal else None,
        "tool_calls": tool_calls,
        "finish_reason": response.status,
        "usage": _usage(usage.input_tokens, usage.output_tokens) if usage is not None else None,
        "choices": 1,
    }


# --------------------------------------------------------------------------- Anthropic Messages


def _anthropic_messages(body: bytes) -> dict[str, Any]:
    import anthropic
    from anthropic.lib.streaming._messages import accumulate_event

    snapshot: list[Any] = [None]
    json_bufs: dict[int, bytes] = {}

    def sink(event: Any) -> bool:
        snapshot[0] = accumulate_event(event=event, current_snapshot=snapshot[0], json_bufs=json_bufs)
        return True

    with (
        _mock_http(body) as http,
        anthropic.Anthropic(
            api_key="sk-ant-oracle", base_url=_BASE_URL, http_client=http, max_retries=0
        ) as client,
    ):
        stream = client.messages.create(model="oracle", max_tokens=1, messages=[], stream=True)
        _drive(iter(stream), sink)
    message = snapshot[0]
    if message is None:
        raise OracleRejected("SDK stream yielded no events (no `message_start`)", stage="final")

    text: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.content:
        if block.type == "text":
            text.append(block.text)
        elif block.type == "thinking":
            reasoning.append(block.thinking)
        elif block.type == "tool_use":
            tool_calls.append(
                {
                    "id": block.id,
                    "name": block.name,
                    "arguments": json.dumps(block.input),
                    "input": block.input,
                }
            )
    usage = message.usage
    return {
        "text": "".join(text),
        "reasoning": "".join(reasoning),
        "refusal": None,
        "tool_calls": tool_calls,
        "finish_reason": message.stop_reason,
        "usage": _usage(usage.input_tokens, usage.output_tokens) if usage is not None else None,
        "choices": 1,
    }


_HANDLERS = {
    "openai-chat": _openai_chat,
    "openai-responses": _openai_responses,
    "anthropic-messages": _anthropic_messages,
}
