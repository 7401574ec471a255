"""What the three protocol sources share: a request, a transport, and the reading helpers.

One source per protocol (:class:`~._openai_chat.OpenAIChatSource`,
:class:`~._openai_responses.OpenAIResponsesSource`,
:class:`~._anthropic.AnthropicMessagesSource`) owns its normalization, its
completion rule and its recovery (continuation, resume); how the request
travels is the :class:`~._transport.Transport` it is given (the official SDK
client, or native httpx).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .._errors import ProtocolError
from ._base import Source
from ._transport import Call, Transport

if TYPE_CHECKING:
    from typing_extensions import Self

    from .._message import Message
    from .._stream import Stream
    from ._sse import SSE

__all__ = [
    "CONTINUE_PROMPT",
    "ProtocolSource",
    "aclose",
    "ask_to_continue",
    "decode_json",
    "decode_object",
    "drain",
]

CONTINUE_PROMPT = (
    "Your previous answer was cut off. Continue exactly where it stopped, without repeating anything "
    "and without any preamble."
)


class ProtocolSource(Source):
    """A source speaking one provider protocol over the :class:`Transport` it is given.

    ``kwargs`` is the request (``stream: true`` added): the SDK's keyword arguments,
    which are also the JSON body the native transport posts (``body`` is the same dict).
    """

    #: The factory's name, for error messages about missing request fields.
    factory: ClassVar[str] = "source"
    #: The request fields the protocol cannot do without.
    required: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        transport: Transport,
        request: Mapping[str, Any],
        *,
        provider: str | None = None,
        max_event_bytes: int | None = None,
    ) -> None:
        self.transport = transport
        self.client = transport.client
        self.kwargs: dict[str, Any] = {**request, "stream": True}
        self.model = request.get("model")
        if provider is not None:
            self.provider = provider
        self.max_event_bytes = max_event_bytes

    @property
    def body(self) -> dict[str, Any]:
        """The request as the JSON body (the same dict as ``kwargs``)."""
        return self.kwargs

    @body.setter
    def body(self, value: dict[str, Any]) -> None:
        self.kwargs = value

    @classmethod
    def check_request(cls, request: Mapping[str, Any]) -> None:
        """A clear ``TypeError`` naming the factory when a field of :attr:`required` is missing."""
        for key in cls.required:
            if key not in request:
                raise TypeError(f"{cls.factory}() needs {key}=...")

    def sse(self, stream: Stream, call: Call) -> AsyncIterator[SSE]:
        """The SSE events of ``call`` sent through this source's transport."""
        limit = self.max_event_bytes or stream.config.limits.max_event_bytes
        return self.transport.events(call, provider=self.provider, max_event_bytes=limit)

    def clone(self) -> Self:
        """A shallow copy (same transport and client) to change a request field of."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def with_body(self, **changes: Any) -> Self:
        """A copy of this source whose request has ``changes`` applied."""
        clone = self.clone()
        clone.kwargs = {**self.kwargs, **changes}
        return clone


def ask_to_continue(messages: Sequence[Any], partial: Message) -> list[Any]:
    """The conversation asking, as the user, to go on after the partial answer (no prefill)."""
    return [
        *messages,
        {"role": "assistant", "content": partial.text},
        {"role": "user", "content": CONTINUE_PROMPT},
    ]


async def aclose(it: Any) -> None:
    """Close an async iterator that has ``aclose`` (a generator); plain iterators need nothing."""
    close = getattr(it, "aclose", None)
    if close is not None:
        await close()


async def drain(sse: AsyncIterator[Any], *, seconds: float = 0.5, max_events: int = 16) -> None:
    """After the protocol's terminator: read what is left, briefly and boundedly.

    Normally that is only the end of the HTTP body; reading it lets the client put
    the connection back in its pool instead of closing it, so the next request
    skips a TCP and TLS handshake. Anything longer or slower is dropped with the
    connection (the caller closes ``sse`` afterwards either way).
    """

    async def rest() -> None:
        n = 0
        async for _ in sse:
            n += 1
            if n >= max_events:
                return

    try:
        await asyncio.wait_for(rest(), seconds)
    except Exception:  # best effort: a broken or slow tail costs only the connection
        pass


def decode_object(data: str, offset: int, provider: str) -> dict[str, Any]:
    """Decode one SSE ``data`` field that must hold a JSON object."""
    payload = decode_json(data, offset, provider)
    if not isinstance(payload, dict):
        raise ProtocolError(
            f"{provider}: SSE data at byte {offset} is not a JSON object: {data[:80]!r}",
            offset=offset,
            provider=provider,
        )
    return payload


_fast_loads: Callable[[str], Any]
try:  # orjson (extra "fast") parses chunk-sized payloads ~3x faster than json
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - exercised only without the extra
    _fast_loads = json.loads

#: The fastest JSON parser available, for a source's own per-event fast path (errors: :func:`decode_object`).
fast_loads = _fast_loads


def decode_json(data: str, offset: int, provider: str) -> Any:
    """Decode one SSE ``data`` field; invalid JSON is a :class:`ProtocolError` with the offset."""
    try:
        return _fast_loads(data)
    except ValueError:
        pass  # orjson is stricter (NaN, >64-bit integers, lone surrogates): json decides and reports
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            f"{provider}: invalid JSON in SSE data at byte {offset} (character {exc.pos} of the event): "
            f"{exc.msg}: {data[:80]!r}",
            offset=offset,
            provider=provider,
        ) from exc
