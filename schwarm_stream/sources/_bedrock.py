"""AWS Bedrock ``ConverseStream`` as a source, through boto3 or aiobotocore.

The binary ``application/vnd.amazon.eventstream`` framing and its CRCs are the SDK's job: botocore
decodes each frame and parses it into one event dict with a single key, the member of the
``ConverseStreamOutput`` union (``{"contentBlockDelta": {...}}``). Normalization:

- ``messageStart`` → :class:`~schwarm_stream.ResponseInfo` (the request id the service answered
  with, the ``modelId`` asked for: Converse names no model in its answer);
- ``contentBlockDelta``: ``text`` → text chunks; ``reasoningContent.text`` → reasoning chunks,
  ``.signature`` → a ``signature`` extra, ``.redactedContent`` → a ``redacted_thinking`` extra;
  ``toolUse.input`` → tool-call argument fragments of the block ``contentBlockStart`` opened with
  ``toolUse`` (``toolUseId``, ``name``); ``citation`` → a ``citation`` extra;
- a server-side tool (``toolUse`` of ``type: server_tool_use``, ``toolResult`` blocks) is run by the
  service, not by the caller: its block is one ``block`` extra when it stops, input and result whole;
- ``messageStop`` → :class:`~schwarm_stream.Finish` with ``stopReason``; ``metadata`` →
  :class:`~schwarm_stream.Usage` (``inputTokens`` / ``outputTokens``, the rest as extras) and a
  ``metrics`` extra (``latencyMs``);
- the union's exception members (``throttlingException``, ``modelStreamErrorException``, ...) arrive
  as botocore ``EventStreamError`` and become in-band :class:`~schwarm_stream.ProviderError`
  (``_classify.ERROR_MAP``): throttling 429 and the model's stream error are retryable.

**Completion.** botocore ends its iterator silently on a clean end of the body, and also on a body
cut at a frame boundary or inside a frame (a partial frame is left in its buffer), so the SDK cannot
tell a finished answer from a cut one. The service model orders the union ``messageStart``,
content blocks, ``messageStop`` (required ``stopReason``), ``metadata`` (required ``usage`` and
``metrics``), and ``metadata`` is the last event the service sends. A stream is complete only when
``metadata`` arrived after ``messageStop``; anything else is
:class:`~schwarm_stream.StreamIncomplete` (a stream cut between the two lost its usage).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._classify import classify
from .._errors import StreamError, StreamIncomplete
from .._events import Chunk, Event, Extra, Finish, ResponseInfo, ToolCallDelta, Usage
from ._base import Source
from ._protocol import CONTINUE_PROMPT

if TYPE_CHECKING:
    from typing_extensions import Self

    from .._message import Message
    from .._stream import Attempt, Stream

__all__ = ["BedrockConverseSource", "BedrockNormalizer", "bedrock_converse", "to_converse"]

PROVIDER = "aws.bedrock"

#: Bedrock's usage names -> the names :class:`~schwarm_stream.TokenUsage` reads the cache counts by.
#: Bedrock counts cache reads and writes beside ``inputTokens``, as Anthropic does.
_CACHE_ALIASES = {
    "cacheReadInputTokens": "cache_read_input_tokens",
    "cacheWriteInputTokens": "cache_creation_input_tokens",
}
_USAGE_MAIN = ("inputTokens", "outputTokens")
_DONE = object()


def _usage(u: Mapping[str, Any], raw: Any) -> Usage:
    extras = {k: v for k, v in u.items() if k not in _USAGE_MAIN and v is not None}
    for name, alias in _CACHE_ALIASES.items():
        if name in extras:
            extras[alias] = extras[name]
    return Usage(u.get("inputTokens"), u.get("outputTokens"), extras, 0, raw)


class BedrockNormalizer:
    """Turns ``ConverseStream`` events (botocore's parsed dicts) into normalized events."""

    __slots__ = ("blocks", "metadata", "model", "request_id", "server", "started", "stopped")

    def __init__(self, *, model: str | None = None, request_id: str | None = None) -> None:
        self.model = model
        self.request_id = request_id
        self.started = False  # messageStart seen
        self.stopped = False  # messageStop seen
        self.metadata = False  # metadata seen after messageStop: the stream is complete
        self.blocks: dict[int, str] = {}  # block index -> "toolUse" for the caller's tool calls
        self.server: dict[int, dict[str, Any]] = {}  # block index -> a server-side block being filled

    @property
    def done(self) -> bool:
        """Whether the stream is complete (``metadata`` after ``messageStop``)."""
        return self.metadata

    def feed(self, event: Mapping[str, Any]) -> list[Event]:
        """The normalized events for one ``ConverseStream`` event."""
        for kind, body in event.items():
            if kind == "contentBlockDelta":
                return self._delta(body)
            if kind == "contentBlockStart":
                return self._start(body)
            if kind == "contentBlockStop":
                return self._stop(body)
            if kind == "messageStart":
                if self.started:
                    return []  # the service sends one; a repeat carries nothing new
                self.started = True
                return [ResponseInfo(self.request_id, self.model, {"role": body.get("role")}, 0, event)]
            if kind == "messageStop":
                self.stopped = True
                out: list[Event] = [Finish(body.get("stopReason"), 0, 0, event)]
                if body.get("additionalModelResponseFields"):
                    out.append(Extra("additional_fields", 0, body["additionalModelResponseFields"], 0, event))
                return out
            if kind == "metadata":
                self.metadata = self.stopped
                out = []
                if body.get("usage"):
                    out.append(_usage(body["usage"], event))
                for key in ("metrics", "trace", "performanceConfig", "serviceTier"):
                    if body.get(key):
                        out.append(Extra(key, 0, body[key], 0, event))
                return out
        return []  # event types from the future; ResponseMetadata-only dicts

    def _start(self, body: Mapping[str, Any]) -> list[Event]:
        index = body.get("contentBlockIndex", 0)
        start = body.get("start") or {}
        use = start.get("toolUse")
        if isinstance(use, Mapping):
            if use.get("type") == "server_tool_use":  # run by the service, not a call for the caller
                self.server[index] = {
                    "type": "server_tool_use",
                    "toolUseId": use.get("toolUseId"),
                    "name": use.get("name"),
                    "input": "",
                }
                return []
            self.blocks[index] = "toolUse"
            return [ToolCallDelta(index, use.get("toolUseId"), use.get("name"), "", 0, 0, body)]
        result = start.get("toolResult")
        if isinstance(result, Mapping):
            data = dict(result)
            if "type" in data:  # the tool's own result type; "type" marks the block kind here
                data["tool_type"] = data.pop("type")
            self.server[index] = {"type": "tool_result", **data, "content": []}
            return []
        return [Extra("block", index, {"type": "block_start", **dict(start)}, 0, body)]

    def _delta(self, body: Mapping[str, Any]) -> list[Event]:
        index = body.get("contentBlockIndex", 0)
        delta = body.get("delta") or {}
        if "text" in delta:
            return [Chunk(delta["text"], "text", index, 0, 0, body)]
        use = delta.get("toolUse")
        if use is not None:
            piece = use.get("input", "")
            if self.blocks.get(index) == "toolUse":
                return [ToolCallDelta(index, None, None, piece, 0, 0, body)]
            server = self.server.get(index)
            if server is not None and "input" in server:
                server["input"] += piece
                return []
            return [Extra("input_json", index, piece, 0, body)]
        reasoning = delta.get("reasoningContent")
        if reasoning is not None:
            out: list[Event] = []
            if "text" in reasoning:
                out.append(Chunk(reasoning["text"], "reasoning", index, 0, 0, body))
            if reasoning.get("signature"):
                out.append(Extra("signature", index, reasoning["signature"], 0, body))
            if "redactedContent" in reasoning:
                out.append(Extra("redacted_thinking", index, reasoning["redactedContent"], 0, body))
            return out
        if "toolResult" in delta and index in self.server:
            self.server[index].setdefault("content", []).extend(delta["toolResult"] or ())
            return []
        if "citation" in delta:
            return [Extra("citation", index, delta["citation"], 0, body)]
        return [Extra("delta", index, dict(delta), 0, body)]

    def _stop(self, body: Mapping[str, Any]) -> list[Event]:
        index = body.get("contentBlockIndex", 0)
        server = self.server.pop(index, None)
        if server is None:
            return []
        if server["type"] == "server_tool_use":
            raw = server.pop("input")
            try:
                server["input"] = json.loads(raw) if raw.strip() else {}
            except ValueError:
                server["input"] = raw  # kept as sent: a server block's input is not ours to validate
        return [Extra("block", index, server, 0, body)]


def _shutdown(raw: Any) -> None:
    """Wake a worker thread blocked reading a boto3 (urllib3) body: ``shutdown`` does, ``close`` does not.

    Closing that body from the event loop without it would even block the loop: the close waits for
    the buffer's lock, which the blocked read holds until botocore's read timeout ends it.
    """
    for path in (("_connection", "sock"), ("_fp", "fp", "raw", "_sock")):
        obj = raw
        for name in path:  # urllib3 keeps the socket on private attributes; best effort
            obj = getattr(obj, name, None)
        if isinstance(obj, socket.socket):
            try:
                obj.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return


async def _sync_events(stream: Any, busy: list[bool]) -> AsyncIterator[Any]:
    # boto3 blocks on every read: iterate in a worker thread.
    it: Iterator[Any] = iter(stream)
    while True:
        busy[0] = True
        event = await asyncio.to_thread(next, it, _DONE)
        busy[0] = False
        if event is _DONE:
            return
        yield event


class BedrockConverseSource(Source):
    """``converse_stream(**request)`` of a ``bedrock-runtime`` client: boto3's (read in a worker
    thread) or aiobotocore's (an entered ``async with session.create_client(...)``).

    The client's own retries are switched off (retry is ours): its ``needs-retry`` handler for
    this service is unregistered when the source is made.
    """

    provider = PROVIDER

    def __init__(self, client: Any, *, provider: str | None = None, **request: Any) -> None:
        for key in ("modelId", "messages"):
            if key not in request:
                raise TypeError(f"bedrock_converse() needs {key}=...")
        if not hasattr(client, "converse_stream"):
            raise TypeError("bedrock_converse() needs a 'bedrock-runtime' client (boto3 or aiobotocore)")
        _without_sdk_retries(client)
        self.client = client
        self.kwargs: dict[str, Any] = dict(request)
        self.model = request["modelId"]
        if provider is not None:
            self.provider = provider

    def open(self, stream: Stream, attempt: Attempt) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        provider = self.provider
        call = self.client.converse_stream
        # aiobotocore's generated methods are plain functions returning its coroutine _make_api_call.
        is_async = inspect.iscoroutinefunction(getattr(type(self.client), "_make_api_call", None))
        try:
            if is_async:
                response = await call(**self.kwargs)
            else:
                response = await asyncio.to_thread(lambda: call(**self.kwargs))
        except Exception as exc:
            raise classify(exc, provider=provider) from exc
        meta = response.get("ResponseMetadata") or {}
        norm = BedrockNormalizer(model=self.model, request_id=meta.get("RequestId"))
        body = response["stream"]
        busy = [False]
        events: AsyncIterator[Any] = body.__aiter__() if is_async else _sync_events(body, busy)
        try:
            try:
                async for event in events:
                    for out in norm.feed(event):
                        yield out
                    if norm.done:
                        await _drain(events)
                        return
            except StreamError:
                raise
            except Exception as exc:  # EventStreamError (in-band), resets, timeouts, bad frames
                raise classify(exc, provider=provider) from exc
        finally:  # close the body now, not when the garbage collector finds it (also on errors)
            if busy[0]:
                _shutdown(getattr(body, "_raw_stream", None))
            close = getattr(events, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # a generator cut in a worker thread's read: the body closes below
                    pass
            try:
                body.close()
            except Exception:  # closing a broken body: nothing left to release
                pass
        missing = "metadata" if norm.stopped else "messageStop"
        raise StreamIncomplete(
            f"{provider}: the stream ended without {missing} (truncated)", provider=provider
        )

    def with_messages(self, messages: Sequence[Mapping[str, Any]]) -> Self:
        """The same request with another conversation."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.kwargs = {**self.kwargs, "messages": list(messages)}
        return clone

    def continuation(self, partial: Message) -> Self | None:
        # Only plain text is recoverable: a tool call or reasoning block cannot be resumed.
        if partial.tool_calls or partial.reasoning or not partial.text:
            return None
        return self.with_messages(
            [
                *self.kwargs["messages"],
                {"role": "assistant", "content": [{"text": partial.text}]},
                {"role": "user", "content": [{"text": CONTINUE_PROMPT}]},
            ]
        )


async def _drain(events: AsyncIterator[Any]) -> None:
    """After ``metadata``: read the end of the body briefly, so the client can reuse the connection
    (aiohttp and urllib3 put it back in their pool only once the body was read to its end)."""

    async def rest() -> None:
        async for _ in events:
            return  # the service sends nothing after metadata: one more event is a stranger's

    try:
        await asyncio.wait_for(rest(), 0.5)
    except Exception:  # best effort: a slow or broken tail costs only the connection
        pass


def _without_sdk_retries(client: Any) -> None:
    """Unregister botocore's retry handler for this client's service (one retry owner: ours)."""
    meta = getattr(client, "meta", None)
    events = getattr(meta, "events", None)
    model = getattr(meta, "service_model", None)
    if events is None or model is None:
        return
    name = model.service_id.hyphenize()
    events.unregister(f"needs-retry.{name}", unique_id=f"retry-config-{name}")


def bedrock_converse(client: Any, **request: Any) -> BedrockConverseSource:
    """A source for ``client.converse_stream(**request)`` (``modelId``, ``messages``, ``system``,
    ``inferenceConfig``, ``toolConfig``, ...) of a boto3 or aiobotocore ``bedrock-runtime`` client."""
    return BedrockConverseSource(client, **request)


def to_converse(message: Message) -> dict[str, Any]:
    """``message`` in the shape of the non-streaming ``Converse`` answer: ``output.message`` with its
    content blocks in order, ``stopReason`` and ``usage`` (Bedrock's names).

    Client tool calls carry no ``type`` (the stream's ``tool_use`` is not kept); citations are
    not rebuilt into ``citationsContent``.
    """
    content: list[dict[str, Any]] = []
    for b in message.content:
        if b.type == "text":
            content.append({"text": b.text})
        elif b.type == "reasoning":
            text: dict[str, Any] = {"text": b.text}
            if b.signature:
                text["signature"] = b.signature
            content.append({"reasoningContent": {"reasoningText": text}})
        elif b.type == "redacted_reasoning":
            content.append({"reasoningContent": {"redactedContent": b.data}})
        elif b.type == "tool_call" and b.tool_call is not None:
            t = b.tool_call
            content.append(
                {
                    "toolUse": {
                        "toolUseId": t.id,
                        "name": t.name,
                        "input": t.parsed if t.valid else t.arguments,
                    }
                }
            )
        elif b.type == "server_tool_use" and isinstance(b.data, Mapping):
            content.append(
                {"toolUse": {k: v for k, v in b.data.items() if k != "type"} | {"type": "server_tool_use"}}
            )
        elif b.type == "tool_result" and isinstance(b.data, Mapping):
            data = dict(b.data)
            data.pop("type")
            if "tool_type" in data:
                data["type"] = data.pop("tool_type")
            content.append({"toolResult": data})
    out: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": message.finish_reason,
    }
    if message.usage is not None:
        u = message.usage
        usage = {"inputTokens": u.input_tokens, "outputTokens": u.output_tokens}
        usage.update({k: v for k, v in u.extras.items() if k not in _CACHE_ALIASES.values()})
        out["usage"] = usage
    return out
