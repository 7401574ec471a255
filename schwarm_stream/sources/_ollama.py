"""Ollama's native ``POST /api/chat`` stream as a source: through the official ``ollama`` client
(:func:`ollama_chat`) or natively on httpx (:func:`native_ollama`).

The body is newline-delimited JSON, one ``ChatResponse`` object per line. Normalization:

- the first line → :class:`~schwarm_stream.ResponseInfo` (``model``; Ollama sends no response id);
- ``message.thinking`` → reasoning chunks (part 0), ``message.content`` → text chunks (part 1): each
  joins exactly as the ``ollama`` docs join a streamed answer (``content`` and ``thinking``
  concatenated over the lines);
- ``message.tool_calls`` arrive whole (``function.name`` and ``function.arguments`` as an object):
  each becomes one :class:`~schwarm_stream.ToolCallDelta` with the arguments as compact JSON, at
  parts 2, 3, ...; the call's ``id`` is kept where the server sends one (Ollama 0.12 and later
  do, natively; the ``ollama`` client's models drop it, so through the client the id is ``None``);
- the line with ``done: true`` → :class:`~schwarm_stream.Finish` with ``done_reason`` (``stop``,
  ``length``, ``load``, ...) and :class:`~schwarm_stream.Usage` (``prompt_eval_count`` in,
  ``eval_count`` out; the durations in nanoseconds as extras);
- a line ``{"error": "..."}`` is an in-band :class:`~schwarm_stream.ProviderError` (the client
  raises ``ResponseError`` with status -1 for it).

**Completion.** The protocol has no terminator besides ``done: true``: a stream is complete only
when a line with ``done: true`` arrived. A body that ends before it (at a line boundary or inside a
line) is :class:`~schwarm_stream.StreamIncomplete`, never a finished answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._classify import classify, redact
from .._errors import ProtocolError, ProviderError, StreamError, StreamIncomplete
from .._events import Chunk, Event, Finish, ResponseInfo, ToolCallDelta, Usage
from .._scrub import scrub_value
from ._base import Source, require
from ._ndjson import iter_ndjson
from ._protocol import ask_to_continue, decode_json
from ._surrogates import Surrogates

if TYPE_CHECKING:
    import httpx
    from typing_extensions import Self

    from .._message import Message
    from .._stream import Attempt, Stream

__all__ = [
    "NativeOllamaSource",
    "OllamaChatSource",
    "OllamaNormalizer",
    "native_ollama",
    "ollama_chat",
    "to_ollama",
]

PROVIDER = "ollama"
THINKING, TEXT, FIRST_TOOL = 0, 1, 2
_USAGE_MAIN = ("prompt_eval_count", "eval_count")
_USAGE_EXTRAS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
_DONE = object()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def ollama_error(message: Any, *, provider: str) -> ProviderError:
    """The in-band error of a ``{"error": "..."}`` line (the server failed after it began streaming)."""
    text = message if isinstance(message, str) else _dumps(message)
    return ProviderError(
        redact(f"{provider} error in stream: {text}"),
        error_type="ollama_error",
        in_band=True,
        provider=provider,
        body=scrub_value({"error": message}),
    )


class OllamaNormalizer:
    """Turns ``/api/chat`` stream lines (dicts) into normalized events."""

    __slots__ = ("calls", "done", "provider", "started")

    def __init__(self, *, provider: str = PROVIDER) -> None:
        self.provider = provider
        self.started = False
        self.done = False  # a line with done: true arrived: the stream is complete
        self.calls = 0  # tool calls so far (their part index is FIRST_TOOL + n)

    def feed(self, d: Mapping[str, Any]) -> list[Event]:
        """The normalized events for one line."""
        if d.get("error"):
            raise ollama_error(d["error"], provider=self.provider)
        out: list[Event] = []
        if not self.started:
            self.started = True
            out.append(ResponseInfo(None, d.get("model"), {"created_at": d.get("created_at")}, 0, d))
        msg = d.get("message") or {}
        if msg.get("thinking"):
            out.append(Chunk(msg["thinking"], "reasoning", THINKING, 0, 0, d))
        if msg.get("content"):
            out.append(Chunk(msg["content"], "text", TEXT, 0, 0, d))
        for call in msg.get("tool_calls") or ():
            fn = call.get("function") or {}
            args = fn.get("arguments")
            arguments = args if isinstance(args, str) else _dumps(args if args is not None else {})
            out.append(
                ToolCallDelta(FIRST_TOOL + self.calls, call.get("id"), fn.get("name"), arguments, 0, 0, d)
            )
            self.calls += 1
        if d.get("done"):
            self.done = True
            out.append(Finish(d.get("done_reason"), 0, 0, d))
            extras = {k: d[k] for k in _USAGE_EXTRAS if d.get(k) is not None}
            if any(d.get(k) is not None for k in _USAGE_MAIN) or extras:
                out.append(Usage(d.get("prompt_eval_count"), d.get("eval_count"), extras, 0, d))
        return out


def _incomplete(provider: str, norm: OllamaNormalizer, how: str = "") -> StreamIncomplete:
    return StreamIncomplete(
        f"{provider}: the stream ended without a line with done: true{how} (truncated)", provider=provider
    )


class _OllamaBase(Source):
    """What both Ollama sources share: the request, continuation and the completion rule."""

    provider = PROVIDER
    kwargs: dict[str, Any]

    def _request(self, request: Mapping[str, Any], provider: str | None) -> None:
        for key in ("model", "messages"):
            if key not in request:
                raise TypeError(f"{type(self).__name__} needs {key}=...")
        self.kwargs = dict(request)
        self.model = request["model"]
        if provider is not None:
            self.provider = provider

    def with_messages(self, messages: Sequence[Any]) -> Self:
        """The same request with another conversation."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.kwargs = {**self.kwargs, "messages": list(messages)}
        return clone

    def continuation(self, partial: Message) -> Self | None:
        # Only plain text is recoverable: a tool call or thinking cannot be resumed.
        if partial.tool_calls or partial.reasoning or not partial.text:
            return None
        return self.with_messages(ask_to_continue(self.kwargs["messages"], partial))


class OllamaChatSource(_OllamaBase):
    """``client.chat(stream=True, **request)`` of the official ``ollama`` client (``AsyncClient``,
    or ``Client``, read in a worker thread). The client has no retries of its own."""

    def __init__(self, client: Any, *, provider: str | None = None, **request: Any) -> None:
        if not hasattr(client, "chat"):
            raise TypeError("ollama_chat() needs an ollama.AsyncClient or ollama.Client")
        self._request(request, provider)
        self.client = client

    def open(self, stream: Stream, attempt: Attempt) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        provider = self.provider
        norm = OllamaNormalizer(provider=provider)
        sur = Surrogates()
        call = self.client.chat
        request = {**self.kwargs, "stream": True}
        is_async = asyncio.iscoroutinefunction(call)
        try:
            if is_async:
                lines: Any = await call(**request)
            else:
                lines = await asyncio.to_thread(lambda: call(**request))
        except Exception as exc:
            raise classify(exc, provider=provider) from exc
        it: AsyncIterator[Any] = lines.__aiter__() if is_async else _sync_lines(iter(lines))
        try:
            try:
                async for response in it:
                    d = (
                        response.model_dump(exclude_none=True)
                        if hasattr(response, "model_dump")
                        else response
                    )
                    for out in sur.fix(norm.feed(d)):
                        yield out
                    if norm.done:
                        for out in sur.end():
                            yield out
                        return
            except StreamError:
                raise
            except ValueError as exc:  # the client's json.loads of a line: cut inside it, or malformed
                if type(exc).__name__ == "JSONDecodeError":
                    raise _incomplete(provider, norm, " (the last line did not parse)") from exc
                raise classify(exc, provider=provider) from exc
            except Exception as exc:
                raise classify(exc, provider=provider) from exc
        finally:
            close = getattr(it, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # closing a body broken mid-read: nothing left to release
                    pass
            close = getattr(lines, "close", None)
            if close is not None and not is_async:
                try:
                    close()
                except Exception:  # a generator closed in another thread: the client's pool cleans up
                    pass
        raise _incomplete(provider, norm)


async def _sync_lines(it: Iterator[Any]) -> AsyncIterator[Any]:
    while True:
        item = await asyncio.to_thread(next, it, _DONE)
        if item is _DONE:
            return
        yield item


#: Read timeouts are the timeouts plugin's job (first chunk / idle / total); this is a safety net.
_DEFAULT_TIMEOUT = {"connect": 10.0, "read": 600.0, "write": 30.0, "pool": 30.0}


class NativeOllamaSource(_OllamaBase):
    """``POST {base_url}/api/chat`` with ``stream: true`` on plain httpx; no SDK imported.

    ``client`` (an ``httpx.AsyncClient``) shares connections between streams; without it each
    stream has its own client, closed with it. ``api_key`` is sent as a bearer token (Ollama's
    cloud; a local server needs none). HTTP statuses map to :class:`~schwarm_stream.ProviderError`
    as on the other native sources (Ollama's error body is ``{"error": "..."}``).
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:11434",
        *,
        api_key: str | None = None,
        client: httpx.AsyncClient | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = None,
        provider: str | None = None,
        max_event_bytes: int | None = None,
        **request: Any,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"native_ollama: base_url must be an http(s) URL, got {base_url!r}")
        self.httpx = require("httpx", "native")
        self._request(request, provider)
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key  # remembered: scrubbed from every error from now on
        self.headers = {"accept": "application/x-ndjson", **(headers or {})}
        if api_key:
            self.headers.setdefault("authorization", f"Bearer {api_key}")
        self.client = client
        self.timeout = timeout
        self.max_event_bytes = max_event_bytes

    def open(self, stream: Stream, attempt: Attempt) -> AsyncIterator[Event]:
        limit = self.max_event_bytes or stream.config.limits.max_event_bytes
        return self._events(limit)

    async def _events(self, limit: int) -> AsyncIterator[Event]:
        from ._transport import _dumps as dumps
        from ._transport import _error_body, status_error

        httpx = self.httpx
        provider = self.provider
        own = self.client is None
        client: Any = (
            httpx.AsyncClient(timeout=self.timeout or httpx.Timeout(**_DEFAULT_TIMEOUT))
            if own
            else self.client
        )
        norm = OllamaNormalizer(provider=provider)
        sur = Surrogates()
        response = None
        try:
            try:
                request = client.build_request(
                    "POST",
                    self.base_url + "/api/chat",
                    content=dumps({**self.kwargs, "stream": True}),
                    headers={**self.headers, "content-type": "application/json"},
                )
                if self.timeout is not None and not own:
                    request.extensions["timeout"] = httpx.Timeout(self.timeout).as_dict()
                response = await client.send(request, stream=True)
                if response.status_code >= 300:
                    raise status_error(
                        response.status_code, response.headers, await _error_body(response), provider=provider
                    )
                _check_content_type(response.headers, provider)
            except StreamError:
                raise
            except Exception as exc:  # connection refused, connect timeout, ...
                raise classify(exc, provider=provider) from exc
            lines = iter_ndjson(response.aiter_bytes(), provider=provider, max_line_bytes=limit)
            try:
                async for line in lines:
                    try:
                        d = decode_json(line.text, line.offset, provider)
                    except ProtocolError:
                        if line.unterminated:  # the body's end cut this line: truncated, not malformed
                            break
                        raise
                    if not isinstance(d, Mapping):
                        raise ProtocolError(
                            f"{provider}: NDJSON line ending at byte {line.offset} is not a JSON object",
                            offset=line.offset,
                            provider=provider,
                        )
                    for out in sur.fix(norm.feed(d)):
                        yield out
                    if norm.done:
                        for out in sur.end():
                            yield out
                        return
            except StreamError:
                raise
            except Exception as exc:  # reset, read timeout, ... in the middle of the body
                raise classify(exc, provider=provider) from exc
            finally:
                await lines.aclose()  # type: ignore[attr-defined]
        finally:
            # A response not read to its end closes its connection: a cancelled stream stops
            # the generation (Ollama stops generating when the client goes away).
            if response is not None:
                await response.aclose()
            if own:
                await client.aclose()
        raise _incomplete(provider, norm)


def _check_content_type(headers: Any, provider: str) -> None:
    """A 2xx answer that is neither NDJSON nor JSON is a gateway's, not Ollama's."""
    ctype = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype and ctype not in ("application/x-ndjson", "application/json", "application/jsonl"):
        raise ProtocolError(
            f"{provider}: expected an application/x-ndjson response, got {ctype!r} "
            "(a proxy or gateway answered instead of Ollama?)",
            provider=provider,
        )


def ollama_chat(client: Any, **request: Any) -> OllamaChatSource:
    """A source for ``client.chat(stream=True, **request)`` (``model``, ``messages``, ``tools``,
    ``think``, ``format``, ``options``, ``keep_alive``) of an ``ollama.AsyncClient`` or ``Client``."""
    return OllamaChatSource(client, **request)


def native_ollama(base_url: str = "http://127.0.0.1:11434", **request: Any) -> NativeOllamaSource:
    """Ollama's ``/api/chat`` over httpx: ``request`` is the body (``model``, ``messages``, ...);
    options besides it: ``api_key``, ``client``, ``headers``, ``timeout``, ``provider``,
    ``max_event_bytes``."""
    return NativeOllamaSource(base_url, **request)


def to_ollama(message: Message) -> dict[str, Any]:
    """``message`` as Ollama's assistant message, the shape the ``ollama`` docs build from a stream
    (``content`` and ``thinking`` joined, ``tool_calls`` with their arguments as objects)."""
    out: dict[str, Any] = {"role": "assistant", "content": message.text}
    if message.reasoning:
        out["thinking"] = message.reasoning
    if message.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": t.name, "arguments": t.parsed if t.valid else t.arguments}}
            for t in message.tool_calls
        ]
    return out
