"""OpenAI Responses API streaming as a source.

Normalization (see research/sdk-streaming.md §1.3):

- ``response.created`` / ``in_progress`` / ``queued`` → :class:`~schwarm_stream.ResponseInfo`;
- ``response.output_text.delta`` / ``refusal.delta`` / ``reasoning_summary_text.delta`` /
  ``reasoning_text.delta`` → chunks (``index`` = output index);
- ``function_call`` items and ``function_call_arguments.delta`` → tool-call
  deltas (``id`` = the item's ``call_id``, which tool results refer to);
- other finished output items (web search, reasoning with encrypted content,
  ...) and annotations → :class:`~schwarm_stream.Extra`;
- ``response.completed`` → usage and finish reason ``completed``;
  ``response.incomplete`` → finish reason from ``incomplete_details``;
  ``response.failed`` and ``error`` (both shapes) → in-band :class:`~schwarm_stream.ProviderError`;
- every event's ``sequence_number`` is remembered: a background response can be
  resumed exactly with ``starting_after`` (:meth:`OpenAIResponsesSource.resumption`),
  and events at or below the cursor are dropped (de-duplication after resume).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from .._classify import in_band_error
from .._errors import ProtocolError, StreamIncomplete
from .._events import Chunk, Event, Extra, Finish, ResponseInfo, ToolCallDelta, Usage
from .._stash import StashKey
from ._base import require
from ._protocol import ProtocolSource, aclose, decode_object, drain
from ._surrogates import Surrogates
from ._transport import Call, SdkTransport, Transport

if TYPE_CHECKING:
    from typing_extensions import Self

    from .._stream import Attempt, Stream

__all__ = ["OpenAIResponsesSource", "ResponsesNormalizer", "openai_responses"]

_TEXT_KIND = {
    "response.output_text.delta": "text",
    "response.refusal.delta": "refusal",
    "response.reasoning_summary_text.delta": "reasoning",
    "response.reasoning_text.delta": "reasoning",
}
_USAGE_MAIN = ("input_tokens", "output_tokens", "total_tokens")
_TERMINAL = frozenset({"response.completed", "response.incomplete"})


class ResponsesNormalizer:
    """Turns Responses stream events (dicts) into normalized events."""

    __slots__ = ("finished", "info_sent", "last_sequence", "response_id", "summary_seen")

    def __init__(self, *, starting_after: int | None = None, info_sent: bool = False) -> None:
        self.finished = False
        self.info_sent = info_sent
        self.last_sequence: int | None = starting_after
        self.response_id: str | None = None
        self.summary_seen: set[tuple[int, int]] = set()

    def feed(self, d: Mapping[str, Any]) -> list[Event]:
        seqno = d.get("sequence_number")
        if seqno is not None:
            last = self.last_sequence
            if last is not None:
                if seqno <= last:
                    return []  # already delivered (replayed after a resume)
                if seqno != last + 1:
                    # Events were lost between us and the provider: what follows would
                    # silently miss text or arguments.
                    raise ProtocolError(
                        f"openai: sequence_number jumped from {last} to {seqno}: "
                        f"{seqno - last - 1} event(s) missing",
                        provider="openai",
                    )
            self.last_sequence = seqno
        t = d.get("type", "")
        kind = _TEXT_KIND.get(t)
        if kind is not None:
            delta = d.get("delta") or ""
            return [Chunk(delta, kind, d.get("output_index", 0), 0, 0, d)] if delta else []  # type: ignore[arg-type]
        if t == "response.function_call_arguments.delta":
            return [ToolCallDelta(d.get("output_index", 0), None, None, d.get("delta") or "", 0, 0, d)]
        if t == "response.output_item.added":
            item = d.get("item") or {}
            if item.get("type") == "function_call":
                return [
                    ToolCallDelta(
                        d.get("output_index", 0),
                        item.get("call_id") or item.get("id"),
                        item.get("name"),
                        item.get("arguments") or "",
                        0,
                        0,
                        d,
                    )
                ]
            return []
        if t == "response.output_item.done":
            item = d.get("item") or {}
            if item.get("type") in ("message", "function_call"):
                return []
            return [Extra("block", d.get("output_index", 0), dict(item), 0, d)]
        if t == "response.output_text.annotation.added":
            return [Extra("annotation", d.get("output_index", 0), d.get("annotation"), 0, d)]
        if t in ("response.reasoning_summary_part.added",):
            # Separate consecutive summary parts like the API's own output_text join does not: keep as is.
            return []
        if t in ("response.created", "response.in_progress", "response.queued"):
            resp = d.get("response") or {}
            self.response_id = resp.get("id") or self.response_id
            if self.info_sent:
                return []
            self.info_sent = True
            return [ResponseInfo(resp.get("id"), resp.get("model"), {"status": resp.get("status")}, 0, d)]
        if t in _TERMINAL:
            resp = d.get("response") or {}
            self.finished = True
            out: list[Event] = []
            usage = resp.get("usage")
            if usage:
                extras = {k: v for k, v in usage.items() if k not in _USAGE_MAIN and v is not None}
                out.append(Usage(usage.get("input_tokens"), usage.get("output_tokens"), extras, 0, d))
            if t == "response.completed":
                reason = resp.get("status") or "completed"
            else:
                reason = (resp.get("incomplete_details") or {}).get("reason") or "incomplete"
            out.append(Finish(reason, 0, 0, d))
            return out
        if t == "response.failed":
            resp = d.get("response") or {}
            raise in_band_error(
                {"error": resp.get("error") or {"message": "response.failed"}}, provider="openai"
            )
        if t == "error":
            raise in_band_error(d, provider="openai")
        return []


RESUME_KEY: StashKey[ResponsesNormalizer] = StashKey()


async def responses_events(
    sse: AsyncIterator[Any], norm: ResponsesNormalizer, *, provider: str = "openai"
) -> AsyncIterator[Event]:
    sur = Surrogates()
    try:
        async for ev in sse:
            if ev.data == "[DONE]":
                break
            if ev.unterminated and not _is_terminal(ev):  # the body's end without the blank line
                break
            batch = norm.feed(decode_object(ev.data, ev.offset, provider))
            one = batch[0] if len(batch) == 1 and not sur.held else None
            if type(one) is Chunk and one.text.isascii():  # one plain text delta: no repair possible
                yield one
            else:
                for out in sur.fix(batch):
                    yield out
            if norm.finished:
                for out in sur.end():
                    yield out
                await drain(sse)  # the body's end: keeps the connection reusable
                return
    finally:  # close the body now, not when the garbage collector finds it (also on errors)
        await aclose(sse)
    raise StreamIncomplete(
        f"{provider}: the stream ended without response.completed (truncated)", provider=provider
    )


def _is_terminal(ev: Any) -> bool:
    """Whether an unterminated last event is a whole ``response.completed`` / ``response.incomplete``."""
    try:
        payload = decode_object(ev.data, ev.offset, "openai")
    except ProtocolError:  # cut inside the payload
        return False
    return payload.get("type") in _TERMINAL


class OpenAIResponsesSource(ProtocolSource):
    """``responses.create(stream=True, ...)`` over a transport (the official SDK client by
    default, ``max_retries=0``; :func:`~schwarm_stream.sources.native_openai_responses`
    gives it native httpx); background responses resume exactly."""

    provider = "openai"
    operation = "chat"
    factory = "openai_responses"

    def __init__(
        self,
        client: Any = None,
        *,
        max_event_bytes: int | None = None,
        _resume: tuple[str, int] | None = None,
        provider: str | None = None,
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
        self._resume = _resume

    def open(self, stream: Stream, attempt: Attempt) -> AsyncIterator[Event]:
        if self._resume is None:
            norm = ResponsesNormalizer()
            call = Call("responses", self.kwargs)
        else:
            prior = stream.stash.get(RESUME_KEY)
            norm = ResponsesNormalizer(
                starting_after=self._resume[1], info_sent=prior is not None and prior.info_sent
            )
            call = Call("responses.retrieve", {}, self._resume)
        stream.stash[RESUME_KEY] = norm
        return responses_events(self.sse(stream, call), norm, provider=self.provider)

    def resumption(self, stream: Stream) -> Self | None:
        """Resume after the last received ``sequence_number`` (background responses only)."""
        norm = stream.stash.get(RESUME_KEY)
        if norm is None or norm.response_id is None or norm.last_sequence is None:
            return None
        if not self.kwargs.get("background") and self._resume is None:
            return None  # only background responses can be re-streamed
        clone = self.clone()
        clone._resume = (norm.response_id, norm.last_sequence)
        return clone


def openai_responses(client: Any, **create_kwargs: Any) -> OpenAIResponsesSource:
    """A source for ``client.responses.create(**create_kwargs, stream=True)``.

    With ``background=True, store=True`` a broken stream can be resumed exactly
    (recovery strategy ``resume``).
    """
    return OpenAIResponsesSource(client, **create_kwargs)
