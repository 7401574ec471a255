"""The native fast path: provider streaming protocols spoken directly over httpx.

No SDK is imported and no SDK model is built: the request is one JSON POST
(``httpx.AsyncClient``), the body is framed by the same SSE decoder as the SDK
sources (:func:`~schwarm_stream.sources._sse.iter_sse`, httpx-sse's decoders),
payloads are parsed by the fastest JSON parser available (orjson, else the
standard library) and normalized by the same normalizers. So the events, the
final message and the typed errors are identical to the SDK sources', at a
fraction of the CPU per chunk (see ``docs/performance.md``).

Three protocols::

    native_openai_chat("https://api.openai.com/v1", key, model=..., messages=[...])
    native_openai_responses("https://api.openai.com/v1", key, model=..., input=...)
    native_anthropic("https://api.anthropic.com", key, model=..., max_tokens=..., messages=[...])

``base_url`` follows each SDK's convention (OpenAI's includes ``/v1``,
Anthropic's does not), so any OpenAI-compatible server works with the first.
Pass ``client=`` (an ``httpx.AsyncClient``) to share connections between
streams; without it each opened stream uses its own client and closes it.
HTTP statuses map to :class:`~schwarm_stream.ProviderError` with
``status_code``, ``retry_after`` (``retry-after-ms`` / ``retry-after``) and
``should_retry`` (``x-should-retry``) exactly like the SDK sources.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._classify import classify, http_status_error, redact_value
from .._errors import ProviderError, StreamError
from .._events import Event
from ._anthropic import anthropic_events, prefill_allowed
from ._base import Source, require
from ._http import _check_content_type
from ._openai_chat import CONTINUE_PROMPT, chat_events
from ._openai_responses import RESUME_KEY, ResponsesNormalizer, responses_events
from ._sse import SSE, iter_sse

if TYPE_CHECKING:
    import httpx

    from .._message import Message
    from .._stream import Attempt, Stream

__all__ = [
    "NativeAnthropicSource",
    "NativeOpenAIChatSource",
    "NativeOpenAIResponsesSource",
    "NativeSource",
    "native_anthropic",
    "native_openai_chat",
    "native_openai_responses",
]

try:  # orjson is optional (extra "fast"); it is ~3x faster than json for chunk-sized payloads
    import orjson

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value)

except ImportError:  # pragma: no cover - exercised only without the extra

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


#: Error bodies are read for the message only; a gateway's HTML page can be large.
_MAX_ERROR_BODY = 64 << 10
#: How long to wait for the body's end after the terminator before closing the connection instead.
_DRAIN_SECONDS = 0.5
#: Read timeouts are the timeouts plugin's job (first chunk / idle / total); this is a safety net.
_DEFAULT_TIMEOUT = {"connect": 10.0, "read": 600.0, "write": 30.0, "pool": 30.0}


def _httpx() -> Any:
    return require("httpx", "native")


def status_error(status: int, headers: Mapping[str, str], body: bytes, *, provider: str) -> ProviderError:
    """The :class:`ProviderError` for a non-2xx response (same fields as the SDK sources report)."""
    parsed: Any = None
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    etype = None
    message = body[:200].decode("utf-8", "replace").strip() if body else ""
    if isinstance(parsed, Mapping):
        inner = parsed.get("error", parsed)
        if isinstance(inner, Mapping):
            etype = inner.get("type") or None
            message = str(inner.get("message") or message)
        elif isinstance(inner, str):
            message = inner
    return http_status_error(
        status,
        headers,
        message=message or "no body",
        error_type=etype,
        body=redact_value(
            parsed if parsed is not None else (body.decode("utf-8", "replace") if body else None)
        ),
        provider=provider,
    )


async def _drain(body: AsyncIterator[bytes]) -> None:
    """Read what follows the terminator, briefly and boundedly; give up (and let the
    connection close) on anything larger or slower than a chunked-encoding end."""
    import asyncio

    async def read() -> None:
        left = _MAX_ERROR_BODY
        async for piece in body:
            left -= len(piece)
            if left < 0:
                return

    try:
        await asyncio.wait_for(read(), _DRAIN_SECONDS)
    except Exception:  # best effort: a broken or slow tail only costs the connection
        pass


async def _typed(body: AsyncIterator[bytes], provider: str) -> AsyncIterator[bytes]:
    """The body's bytes, its transport failures raised as typed errors where they happen.

    The normalizers see a :class:`~schwarm_stream.TransportError` exactly as on the
    SDK path (where :func:`~schwarm_stream.sources._http.sse_events` types them), so
    one rule decides both: e.g. a chat stream reset after every choice's
    ``finish_reason`` is complete on both paths.
    """
    try:
        async for piece in body:
            yield piece
    except StreamError:
        raise
    except Exception as exc:
        raise classify(exc, provider=provider) from exc


class NativeSource(Source):
    """A provider stream opened by a plain HTTP request (one subclass per protocol).

    ``body`` is the request's JSON body (``stream: true`` is added; ``extra_body``
    is merged in, for fields named like an option); ``headers`` are added to
    the protocol's own (authentication, versions).
    """

    #: Path appended to ``base_url`` for the streaming request.
    path: str = ""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = None,
        provider: str | None = None,
        max_event_bytes: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
        **body: Any,
    ) -> None:
        _httpx()
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"{type(self).__name__}: base_url must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.client = client
        self.extra_headers = dict(headers or {})
        self.timeout = timeout
        if provider is not None:
            self.provider = provider
        self.max_event_bytes = max_event_bytes
        # extra_body carries request fields named like an option here (OpenRouter's "provider").
        self.body: dict[str, Any] = {**body, **(extra_body or {}), "stream": True}
        self.model = body.get("model")

    # -- what a protocol defines ------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        """The protocol's authentication and version headers."""
        return {}

    def request(self, stream: Stream) -> tuple[str, str, bytes | None]:
        """``(method, url, body)`` of the streaming request for this attempt."""
        return "POST", self.base_url + self.path, _dumps(self.body)

    def normalize(self, sse: AsyncIterator[SSE], stream: Stream) -> AsyncIterator[Event]:
        """Normalized events from the decoded SSE events."""
        raise NotImplementedError

    # -- the transport -----------------------------------------------------------

    def open(self, stream: Stream, attempt: Attempt) -> AsyncIterator[Event]:
        return self._events(stream, self.max_event_bytes or stream.config.limits.max_event_bytes)

    def _headers(self, has_body: bool) -> dict[str, str]:
        h = {"accept": "text/event-stream", **self.auth_headers(), **self.extra_headers}
        if has_body:
            h["content-type"] = "application/json"
        return h

    async def _events(self, stream: Stream, limit: int) -> AsyncIterator[Event]:
        httpx = _httpx()
        own = self.client is None
        client = (
            httpx.AsyncClient(timeout=self.timeout or httpx.Timeout(**_DEFAULT_TIMEOUT))
            if own
            else self.client
        )
        provider = self.provider
        method, url, content = self.request(stream)
        response = None
        sse = None
        try:
            try:
                request = client.build_request(
                    method, url, content=content, headers=self._headers(content is not None)
                )
                if self.timeout is not None and not own:
                    request.extensions["timeout"] = httpx.Timeout(self.timeout).as_dict()
                response = await client.send(request, stream=True)
                if response.status_code >= 300:
                    raise await self._status_error(response)
                _check_content_type(response.headers, provider)
                body = response.aiter_bytes()
                sse = iter_sse(
                    _typed(body, provider), provider=provider, max_event_bytes=limit, unterminated=True
                )
                async for ev in self.normalize(sse, stream):
                    yield ev
            except StreamError:
                raise
            except Exception as exc:  # httpx transport errors, timeouts
                raise classify(exc, provider=provider) from exc
            # The protocol's terminator was seen. On a shared client, read the
            # little that is left (the chunked-encoding end) so the connection
            # goes back to the pool instead of being closed.
            if not own:
                await sse.aclose()
                await _drain(body)
        finally:
            if sse is not None:
                await sse.aclose()
            # Closing a response whose body was not read to the end closes its
            # connection: a cancelled stream stops the provider's generation.
            if response is not None:
                await response.aclose()
            if own:
                await client.aclose()

    async def _status_error(self, response: httpx.Response) -> ProviderError:
        body = b""
        try:
            async for piece in response.aiter_bytes():
                body += piece
                if len(body) >= _MAX_ERROR_BODY:
                    break
        except Exception:  # the error status is what matters; a broken error body is not
            pass
        return status_error(response.status_code, response.headers, body, provider=self.provider)

    # -- recovery helpers ---------------------------------------------------------

    def with_body(self, **changes: Any) -> NativeSource:
        """A copy of this source whose request body has ``changes`` applied."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.body = {**self.body, **changes}
        return clone


class NativeOpenAIChatSource(NativeSource):
    """Chat Completions (OpenAI and every OpenAI-compatible server) over plain HTTP."""

    provider = "openai"
    path = "/chat/completions"

    def __init__(
        self, base_url: str, api_key: str | None = None, *, include_usage: bool = True, **kw: Any
    ) -> None:
        super().__init__(base_url, api_key, **kw)
        if "model" not in self.body or "messages" not in self.body:
            raise TypeError("native_openai_chat() needs model=... and messages=...")
        if include_usage and "stream_options" not in self.body:
            self.body["stream_options"] = {"include_usage": True}

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def normalize(self, sse: AsyncIterator[SSE], stream: Stream) -> AsyncIterator[Event]:
        return chat_events(sse, provider=self.provider)

    def with_messages(self, messages: Sequence[Mapping[str, Any]]) -> NativeOpenAIChatSource:
        """The same request with another conversation (for continuation and agent loops)."""
        return self.with_body(messages=list(messages))  # type: ignore[return-value]

    def continuation(self, partial: Message) -> NativeOpenAIChatSource | None:
        # Same rule as the SDK source: no prefill on this API, never with tool calls in flight.
        if partial.tool_calls or not partial.text:
            return None
        return self.with_messages(
            [
                *self.body["messages"],
                {"role": "assistant", "content": partial.text},
                {"role": "user", "content": CONTINUE_PROMPT},
            ]
        )


class NativeAnthropicSource(NativeSource):
    """Anthropic Messages over plain HTTP (``x-api-key``, ``anthropic-version``)."""

    provider = "anthropic"
    path = "/v1/messages"
    #: The API version header sent unless ``headers`` override it.
    api_version = "2023-06-01"

    def __init__(self, base_url: str, api_key: str | None = None, **kw: Any) -> None:
        super().__init__(base_url, api_key, **kw)
        for key in ("model", "messages", "max_tokens"):
            if key not in self.body:
                raise TypeError(f"native_anthropic() needs {key}=...")

    def auth_headers(self) -> dict[str, str]:
        h = {"anthropic-version": self.api_version}
        if self.api_key:
            h["x-api-key"] = self.api_key
        return h

    def normalize(self, sse: AsyncIterator[SSE], stream: Stream) -> AsyncIterator[Event]:
        return anthropic_events(sse, provider=self.provider)

    def with_messages(self, messages: Sequence[Mapping[str, Any]]) -> NativeAnthropicSource:
        """The same request with another conversation."""
        return self.with_body(messages=list(messages))  # type: ignore[return-value]

    def continuation(self, partial: Message) -> NativeAnthropicSource | None:
        # Same rule as the SDK source: recover from text only; prefill where the model allows it.
        if partial.tool_calls or partial.reasoning or not partial.text:
            return None
        if prefill_allowed(self.model):
            turn = {"role": "assistant", "content": partial.text.rstrip()}
            return self.with_messages([*self.body["messages"], turn])
        return self.with_messages(
            [
                *self.body["messages"],
                {"role": "assistant", "content": partial.text},
                {"role": "user", "content": CONTINUE_PROMPT},
            ]
        )


class NativeOpenAIResponsesSource(NativeSource):
    """The OpenAI Responses API over plain HTTP; background responses resume exactly."""

    provider = "openai"
    path = "/responses"

    def __init__(self, base_url: str, api_key: str | None = None, **kw: Any) -> None:
        super().__init__(base_url, api_key, **kw)
        self._resume: tuple[str, int] | None = None

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def request(self, stream: Stream) -> tuple[str, str, bytes | None]:
        if self._resume is None:
            return super().request(stream)
        response_id, after = self._resume
        return "GET", f"{self.base_url}/responses/{response_id}?stream=true&starting_after={after}", None

    def normalize(self, sse: AsyncIterator[SSE], stream: Stream) -> AsyncIterator[Event]:
        if self._resume is None:
            norm = ResponsesNormalizer()
        else:
            prior = stream.stash.get(RESUME_KEY)
            norm = ResponsesNormalizer(
                starting_after=self._resume[1], info_sent=prior is not None and prior.info_sent
            )
        stream.stash[RESUME_KEY] = norm
        return responses_events(sse, norm, provider=self.provider)

    def resumption(self, stream: Stream) -> NativeOpenAIResponsesSource | None:
        """Resume after the last received ``sequence_number`` (background responses only)."""
        norm = stream.stash.get(RESUME_KEY)
        if norm is None or norm.response_id is None or norm.last_sequence is None:
            return None
        if not self.body.get("background") and self._resume is None:
            return None  # only background responses can be re-streamed
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._resume = (norm.response_id, norm.last_sequence)
        return clone


def native_openai_chat(base_url: str, api_key: str | None = None, **body: Any) -> NativeOpenAIChatSource:
    """Chat Completions over httpx: ``body`` is the request (``model``, ``messages``, ``tools``, ...).

    Options besides the body: ``client`` (a shared ``httpx.AsyncClient``),
    ``headers``, ``timeout``, ``provider`` (e.g. ``"vllm"``), ``include_usage``,
    ``max_event_bytes``.
    """
    return NativeOpenAIChatSource(base_url, api_key, **body)


def native_anthropic(base_url: str, api_key: str | None = None, **body: Any) -> NativeAnthropicSource:
    """Anthropic Messages over httpx: ``body`` needs ``model``, ``messages`` and ``max_tokens``."""
    return NativeAnthropicSource(base_url, api_key, **body)


def native_openai_responses(
    base_url: str, api_key: str | None = None, **body: Any
) -> NativeOpenAIResponsesSource:
    """The Responses API over httpx; with ``background=True, store=True`` a broken stream can be resumed."""
    return NativeOpenAIResponsesSource(base_url, api_key, **body)
