"""OpenAI Chat Completions (and every OpenAI-compatible server) as a source.

Normalization rules (see research/sdk-streaming.md §1.2):

- tool calls are keyed by ``(choice, tool_call.index)``; servers that omit
  ``index`` (Gemini's compatible endpoint) are keyed by ``id``, and an
  id-less fragment continues the last call;
- ``reasoning_content`` / ``reasoning`` deltas (DeepSeek, vLLM, xAI, OpenRouter)
  become reasoning chunks;
- the usage chunk (``choices: []``) becomes a :class:`~schwarm_stream.Usage`;
- chunks whose ``object`` is not ``chat.completion.chunk`` (Azure's prompt
  filter results) are ignored;
- an ``{"error": ...}`` payload is an in-band :class:`~schwarm_stream.ProviderError`;
- the stream is complete on ``data: [DONE]``, or when every choice that
  appeared has a ``finish_reason`` (the usage chunk and ``[DONE]`` may then
  be lost to a dropped connection without losing content).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._classify import in_band_error
from .._errors import StreamIncomplete, StreamTimeout, TransportError
from .._events import Chunk, Event, Extra, Finish, ResponseInfo, ToolCallDelta, Usage
from ._base import require
from ._protocol import (
    CONTINUE_PROMPT,
    ProtocolSource,
    aclose,
    ask_to_continue,
    decode_object,
    drain,
    fast_loads,
)
from ._sse import SSE, SSEReader
from ._surrogates import Surrogates
from ._transport import Call, SdkTransport, Transport

if TYPE_CHECKING:
    from typing_extensions import Self

    from .._message import Message
    from .._stream import Attempt, Stream

__all__ = [
    "CONTINUE_PROMPT",
    "ChatNormalizer",
    "OpenAIChatSource",
    "chat_body_events",
    "chat_events",
    "openai_chat",
]

_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
#: ``object`` values of a chunk the normalizer reads (none, or the documented one).
_CHUNK_OBJECTS = (None, "", "chat.completion.chunk")
#: The Extra kind (and Message flag) for a chat stream whose usage chunk was lost after the last finish_reason.
USAGE_MISSING = "usage_missing"


class ChatNormalizer:
    """Turns Chat Completions chunk payloads (dicts) into normalized events."""

    __slots__ = (
        "_ids",
        "_info_sent",
        "_last_index",
        "_remap",
        "_top",
        "_wire_ids",
        "done",
        "finished",
        "provider",
        "started",
        "usage_seen",
    )

    def __init__(self, provider: str = "openai") -> None:
        self.provider = provider
        self.done = False  # [DONE] seen
        self.finished: dict[int, str] = {}  # choice -> finish_reason
        self.started: set[int] = set()
        self._info_sent = False
        self._ids: dict[tuple[int, str], int] = {}  # (choice, tool call id) -> index, for index-less servers
        self._last_index: dict[int, int] = {}
        # Servers reusing tools_calls[].index for a second call (a new id): (choice, wire index) ->
        # the id now at that index / the index it is delivered as; choice -> highest index delivered.
        self._wire_ids: dict[tuple[int, int], str] = {}
        self._remap: dict[tuple[int, int], int] = {}
        self._top: dict[int, int] = {}
        self.usage_seen = False

    @property
    def complete(self) -> bool:
        return self.done or (bool(self.started) and self.started <= self.finished.keys())

    def feed(self, d: Mapping[str, Any]) -> list[Event]:
        if d.get("error"):
            raise in_band_error(d, provider=self.provider)
        out: list[Event] = []
        obj = d.get("object")
        if obj and obj != "chat.completion.chunk":
            return out
        if not self._info_sent and d.get("id"):
            self._info_sent = True
            out.append(
                ResponseInfo(
                    id=d.get("id"),
                    model=d.get("model"),
                    extras={
                        k: d[k]
                        for k in ("system_fingerprint", "service_tier", "created")
                        if d.get(k) is not None
                    },
                    raw=d,
                )
            )
        for ch in d.get("choices") or ():
            ci = ch.get("index") or 0
            self.started.add(ci)
            delta = ch.get("delta") or {}
            if len(delta) == 1 and type(content := delta.get("content")) is str:
                # the common shape, a bare text delta: skip the other lookups
                if content:
                    out.append(Chunk(content, "text", 0, ci, 0, d))
            elif delta:
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if reasoning and isinstance(reasoning, str):
                    out.append(Chunk(reasoning, "reasoning", 0, ci, 0, d))
                content = delta.get("content")
                if content:
                    if isinstance(content, str):
                        out.append(Chunk(content, "text", 0, ci, 0, d))
                    else:  # Mistral: a list of typed parts (text, thinking)
                        out.extend(_content_parts(content, ci, d))
                refusal = delta.get("refusal")
                if refusal:
                    out.append(Chunk(refusal, "refusal", 0, ci, 0, d))
                tool_calls = delta.get("tool_calls")
                if tool_calls:
                    for tc in tool_calls:
                        out.append(self._tool_delta(ci, tc, d))
            reason = ch.get("finish_reason")
            if reason:
                self.finished[ci] = reason
                out.append(Finish(reason, ci, 0, d))
        usage = d.get("usage")
        if usage:
            self.usage_seen = True
            extras = {k: v for k, v in usage.items() if k not in _USAGE_KEYS and v is not None}
            out.append(Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"), extras, 0, d))
        return out

    def _tool_delta(self, ci: int, tc: Mapping[str, Any], raw: Any) -> ToolCallDelta:
        fn = tc.get("function") or {}
        tid = tc.get("id")
        index = tc.get("index")
        if index is None:  # index-less server: key by id, id-less fragments continue the last call
            if tid:
                index = self._ids.get((ci, tid))
                if index is None:
                    index = len([k for k in self._ids if k[0] == ci])
                    self._ids[(ci, tid)] = index
            else:
                index = self._last_index.get(ci, 0)
        else:
            # The same index with a different id is the next call (some servers count every call
            # as 0): deliver it under a new index, the one the message keys it by, so events and
            # the partial message agree. Id-less fragments follow the call now at that index.
            key = (ci, index)
            if tid:
                known = self._wire_ids.get(key)
                if known is None:
                    self._wire_ids[key] = tid
                elif known != tid:
                    self._wire_ids[key] = tid
                    self._remap[key] = self._top.get(ci, index) + 1
            if self._remap:
                index = self._remap.get(key, index)
        if index > self._top.get(ci, -1):
            self._top[ci] = index
        self._last_index[ci] = index
        return ToolCallDelta(index, tid, fn.get("name"), fn.get("arguments") or "", ci, 0, raw)


def _content_parts(parts: Any, ci: int, raw: Any) -> list[Event]:
    out: list[Event] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, Mapping):
            continue
        ptype = part.get("type")
        if ptype == "text" and part.get("text"):
            out.append(Chunk(part["text"], "text", 0, ci, 0, raw))
        elif ptype == "thinking":
            inner = part.get("thinking")
            texts = (
                [inner]
                if isinstance(inner, str)
                else [p.get("text", "") for p in inner or () if isinstance(p, Mapping)]
            )
            joined = "".join(texts)
            if joined:
                out.append(Chunk(joined, "reasoning", 0, ci, 0, raw))
    return out


def chat_events(sse: AsyncIterator[Any], *, provider: str = "openai") -> AsyncIterator[Event]:
    """Normalized events from Chat Completions SSE events; raises StreamIncomplete without a terminator."""
    return _chat(sse, None, provider)


def chat_body_events(
    body: AsyncIterator[bytes], *, provider: str = "openai", max_event_bytes: int = 16 << 20
) -> AsyncIterator[Event]:
    """The same from the raw response body (a transport's ``body()``), the SSE framed inline.

    A piece of the body that is exactly one ASCII ``data:`` line and its blank line (one
    chunk-sized write, as providers send them) is parsed from its bytes, without building
    an :class:`~._sse.SSE` or decoding it; every other piece goes through
    :class:`~._sse.SSEReader`, which frames it exactly as it would have (and it keeps the
    byte offsets). One iterator layer less per event than ``chat_events(transport.events())``;
    the same events and errors (a test checks it).
    """
    reader = SSEReader(provider=provider, max_event_bytes=max_event_bytes, unterminated=True)
    return _chat(body, reader, provider)


#: The batch of a payload the inline framing has parsed already (``d`` holds it).
_PARSED = object()
_PARSED_ONE = (_PARSED,)
_new = tuple.__new__


async def _chat(items: AsyncIterator[Any], reader: SSEReader | None, provider: str) -> AsyncIterator[Event]:
    """``items`` are SSE events (``reader is None``) or body bytes framed by ``reader``."""
    norm = ChatNormalizer(provider)
    sur = Surrogates()
    started = norm.started
    loads = fast_loads
    objects = _CHUNK_OBJECTS
    max_bytes = reader.max_event_bytes if reader is not None else 0
    nxt = items.__anext__
    stop = False
    d: Any = None
    try:
        while True:
            try:
                item = await nxt()
            except StopAsyncIteration:
                if reader is None:
                    break
                batch: Any = reader.end()  # the last event, maybe unterminated
                stop = True
            else:
                if reader is None:
                    batch = (item,)
                elif (
                    reader._clean
                    and item[-2:] == b"\n\n"
                    and item[:6] == b"data: "
                    and (n := len(item)) <= max_bytes
                    and item.find(b"\n", 6) == n - 2
                    and item.find(b"\r") < 0
                    and item.isascii()
                ):
                    # One whole one-line data event (the reader's own fast case), ASCII so valid
                    # UTF-8: parsed from its bytes, without an SSE or a decode.
                    reader.offset += n
                    payload = item[6:-2]
                    if not payload:
                        continue  # empty data: no event
                    try:
                        d = loads(payload)
                    except ValueError:
                        d = None
                    if type(d) is dict:
                        batch = _PARSED_ONE
                    else:  # [DONE], not JSON, not an object: the event, as the reader would give it
                        batch = (_new(SSE, ("message", payload.decode(), reader.offset, False)),)
                else:
                    batch = reader.feed(item)
            for ev in batch:
                if ev is not _PARSED:
                    data = ev.data
                    if data == "[DONE]":  # also at a clean end of the body without its blank line
                        norm.done = True
                        await drain(items)
                        stop = True
                        break
                    if ev.unterminated:  # a cut payload at the end: truncated unless already complete
                        stop = True
                        break
                    try:
                        d = loads(data)
                    except ValueError:
                        d = None
                    if type(d) is not dict:  # not parsed, or not an object: decode_object decides and reports
                        d = decode_object(data, ev.offset, provider)
                # The common payloads after the first: one choice already started, whose delta is a
                # bare ASCII text or one tool call's ASCII argument fragment, with no finish, usage,
                # error or other object. Each gives exactly the one event that norm.feed and the
                # surrogate repair would (a property test checks it); any other payload takes the
                # general path.
                choices = d.get("choices")
                if (
                    type(choices) is list
                    and len(choices) == 1
                    and type(ch := choices[0]) is dict
                    and type(delta := ch.get("delta")) is dict
                    and len(delta) == 1
                    and norm._info_sent
                    and not sur.held
                    and not ch.get("finish_reason")
                    and type(ci := ch.get("index") or 0) is int
                    and ci in started
                    and not d.get("usage")
                    and not d.get("error")
                    and d.get("object") in objects
                ):
                    text = delta.get("content")
                    if type(text) is str:
                        if text and text.isascii():
                            yield Chunk(text, "text", 0, ci, 0, d)
                            continue
                    elif (
                        type(calls := delta.get("tool_calls")) is list
                        and len(calls) == 1
                        and type(tc := calls[0]) is dict
                        and type(fn := tc.get("function")) is dict
                        and type(args := fn.get("arguments")) is str
                        and args.isascii()
                    ):
                        yield norm._tool_delta(ci, tc, d)
                        continue
                out = norm.feed(d)
                if len(out) == 1 and not sur.held:
                    one = out[0]
                    if type(one) is Chunk and one.text.isascii():  # one plain text delta: no repair possible
                        yield one
                        continue
                for e in sur.fix(out):
                    yield e
            if stop:
                break
    except (TransportError, StreamTimeout):
        # Every choice already has its finish_reason: the content is whole, only
        # the usage chunk and [DONE] were lost with the connection (the same rule
        # on the SDK and the native path). A lost usage is not guessed: the
        # message's usage stays None and it carries the flag "usage_missing".
        if not norm.complete:
            raise
        if not norm.usage_seen:
            yield Extra(USAGE_MISSING, 0, None)
    finally:  # close the body now, not when the garbage collector finds it (also on errors)
        await aclose(items)
    if not norm.complete:
        raise StreamIncomplete(
            f"{provider}: the stream ended without [DONE] or a finish_reason (truncated)", provider=provider
        )
    for out_ev in sur.end():
        yield out_ev


class OpenAIChatSource(ProtocolSource):
    """``chat.completions.create(stream=True, ...)`` over a transport.

    Through the official SDK client by default: ``client`` is an ``openai.AsyncOpenAI``
    (or sync ``OpenAI``, read in a worker thread), its own retries switched off
    (``max_retries=0``): retry is ours. :func:`~schwarm_stream.sources.native_openai_chat`
    gives it an :class:`~schwarm_stream.sources._transport.HttpxTransport` instead.
    """

    provider = "openai"
    factory = "openai_chat"
    required = ("model", "messages")

    def __init__(
        self,
        client: Any = None,
        *,
        include_usage: bool = True,
        provider: str | None = "openai",
        max_event_bytes: int | None = None,
        transport: Transport | None = None,
        **create_kwargs: Any,
    ) -> None:
        if transport is None:
            require("openai", "openai")
        self.check_request(create_kwargs)
        super().__init__(
            transport or SdkTransport(client),
            create_kwargs,
            provider=provider,
            max_event_bytes=max_event_bytes,
        )
        if include_usage and "stream_options" not in self.kwargs:
            self.kwargs["stream_options"] = {"include_usage": True}

    def open(self, stream: Stream, attempt: Attempt) -> AsyncIterator[Event]:
        call = Call("chat.completions", self.kwargs)
        body = self.transport.body(call, provider=self.provider)
        if body is None:  # a transport that offers only SSE events
            return chat_events(self.sse(stream, call), provider=self.provider)
        limit = self.max_event_bytes or stream.config.limits.max_event_bytes
        return chat_body_events(body, provider=self.provider, max_event_bytes=limit)

    def with_messages(self, messages: Sequence[Mapping[str, Any]]) -> Self:
        """The same request with another conversation (for continuation and agent loops)."""
        return self.with_body(messages=list(messages))

    def continuation(self, partial: Message) -> Self | None:
        # Chat Completions has no assistant prefill: send the partial answer as an
        # assistant turn and ask, as the user, to go on. Never with tool calls or
        # reasoning in flight (they cannot be partially recovered).
        if partial.tool_calls or not partial.text:
            return None
        return self.with_messages(ask_to_continue(self.kwargs["messages"], partial))


def openai_chat(client: Any, **create_kwargs: Any) -> OpenAIChatSource:
    """A source for ``client.chat.completions.create(**create_kwargs, stream=True)``.

    ``create_kwargs`` are the SDK's own (``model``, ``messages``, ``tools``, ...).
    ``include_usage=False`` leaves out ``stream_options.include_usage`` for
    servers that reject it; ``provider="vllm"`` names an OpenAI-compatible server.
    """
    return OpenAIChatSource(client, **create_kwargs)
