"""The native fast path: the same protocol sources, given a plain httpx transport.

No SDK is imported and no SDK model is built: the request is one JSON POST
(:class:`~schwarm_stream.sources._transport.HttpxTransport`), the body is
framed by the same SSE reader, payloads are parsed by the fastest JSON parser
available (orjson, else the standard library) and normalized by the protocol
source itself. So the events, the final message and the typed errors are
identical to the SDK path's, at a fraction of the CPU per chunk (see
``docs/performance.md``).

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

Each native class is its protocol's source class (``NativeOpenAIChatSource``
is an :class:`~schwarm_stream.sources.OpenAIChatSource`) with a constructor
that takes a base URL and a key instead of an SDK client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._anthropic import AnthropicMessagesSource
from ._openai_chat import OpenAIChatSource
from ._openai_responses import OpenAIResponsesSource
from ._protocol import ProtocolSource
from ._transport import HttpxTransport, status_error

if TYPE_CHECKING:
    import httpx

__all__ = [
    "NativeAnthropicSource",
    "NativeOpenAIChatSource",
    "NativeOpenAIResponsesSource",
    "NativeSource",
    "native_anthropic",
    "native_openai_chat",
    "native_openai_responses",
    "status_error",
]


class NativeSource(ProtocolSource):
    """What the native sources share: a base URL, a key, and the httpx transport built from them.

    ``headers`` are added to the protocol's own (authentication, versions);
    ``extra_body`` is merged into the request, for fields named like an option.
    """

    def _httpx_transport(
        self,
        base_url: str,
        api_key: str | None,
        *,
        client: httpx.AsyncClient | None,
        headers: Mapping[str, str] | None,
        timeout: Any,
    ) -> HttpxTransport:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"{type(self).__name__}: base_url must be an http(s) URL, got {base_url!r}")
        self.api_key = api_key  # remembered: scrubbed from every error from now on
        self.extra_headers = dict(headers or {})
        self.timeout = timeout
        transport = HttpxTransport(
            base_url, headers={**self.auth_headers(), **self.extra_headers}, client=client, timeout=timeout
        )
        self.base_url = transport.base_url
        return transport

    def merge(self, extra_body: Mapping[str, Any] | None) -> None:
        # extra_body carries request fields named like an option here (OpenRouter's "provider").
        if extra_body:
            self.kwargs = {**self.kwargs, **extra_body, "stream": True}

    def auth_headers(self) -> dict[str, str]:
        """The protocol's authentication and version headers (OpenAI's bearer token by default)."""
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}


class NativeOpenAIChatSource(NativeSource, OpenAIChatSource):
    """Chat Completions (OpenAI and every OpenAI-compatible server) over plain HTTP."""

    factory = "native_openai_chat"

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
        include_usage: bool = True,
        **body: Any,
    ) -> None:
        transport = self._httpx_transport(base_url, api_key, client=client, headers=headers, timeout=timeout)
        OpenAIChatSource.__init__(
            self,
            transport=transport,
            include_usage=include_usage,
            provider=provider,
            max_event_bytes=max_event_bytes,
            **body,
        )
        self.merge(extra_body)


class NativeAnthropicSource(NativeSource, AnthropicMessagesSource):
    """Anthropic Messages over plain HTTP (``x-api-key``, ``anthropic-version``)."""

    factory = "native_anthropic"
    #: The API version header sent unless ``headers`` override it.
    api_version = "2023-06-01"

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
        transport = self._httpx_transport(base_url, api_key, client=client, headers=headers, timeout=timeout)
        AnthropicMessagesSource.__init__(
            self,
            transport=transport,
            provider=provider,
            max_event_bytes=max_event_bytes,
            **body,
        )
        self.merge(extra_body)

    def auth_headers(self) -> dict[str, str]:
        h = {"anthropic-version": self.api_version}
        if self.api_key:
            h["x-api-key"] = self.api_key
        return h


class NativeOpenAIResponsesSource(NativeSource, OpenAIResponsesSource):
    """The OpenAI Responses API over plain HTTP; background responses resume exactly."""

    factory = "native_openai_responses"

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
        transport = self._httpx_transport(base_url, api_key, client=client, headers=headers, timeout=timeout)
        OpenAIResponsesSource.__init__(
            self,
            transport=transport,
            provider=provider,
            max_event_bytes=max_event_bytes,
            **body,
        )
        self.merge(extra_body)


def native_openai_chat(base_url: str, api_key: str | None = None, **body: Any) -> NativeOpenAIChatSource:
    """Chat Completions over httpx: ``body`` is the request (``model``, ``messages``, ``tools``, ...).

    Options besides the body: ``client`` (a shared ``httpx.AsyncClient``),
    ``headers``, ``timeout``, ``provider`` (e.g. ``"vllm"``), ``include_usage``,
    ``max_event_bytes``, ``extra_body``.
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
