"""What a ``stream_error`` implementation returns (a recovery decision), and what deciders share.

Several plugins decide about failures (the ``retry`` and ``recovery`` built-ins,
third-party ones); they share the vocabulary defined here instead of importing
each other: :func:`not_retryable_reason` (is another try pointless?) and
:data:`BACKOFF` (the wait before another try, published per stream by the
plugin that owns the waits).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from ._errors import ProviderError, StreamCancelled, StreamError, StreamTimeout
from ._stash import StashKey

if TYPE_CHECKING:
    from ._stream import Stream
    from .sources import Source

__all__ = ["ACTIONS", "BACKOFF", "NEVER_RETRIED", "Action", "Backoff", "Recovery", "not_retryable_reason"]

Action = Literal["retry", "restart", "continue", "fallback", "resume", "partial", "raise"]
ACTIONS: tuple[str, ...] = get_args(Action)


@dataclass(frozen=True, slots=True)
class Recovery:
    """A decision about a failed attempt.

    ``action``:

    - ``retry``: open the same source again; only valid before the commit point
      (nothing was delivered), so the result is exact.
    - ``restart``: open the source again after a :class:`~schwarm_stream.Reset`
      event; the final message is the new attempt's (``recovery="restarted"``).
    - ``continue``: ask the model to continue from the partial text (the source
      must support it); ``recovery="continued"``.
    - ``fallback``: open ``source`` instead (another model or provider), after a
      reset if content was delivered; ``recovery="fallback"``.
    - ``resume``: provider-native resume after the last received sequence number
      (exact; the source must support it); ``recovery="resumed"``.
    - ``partial``: end now with the partial message, ``complete=False``, no exception.
    - ``raise``: end with the typed error carrying the partial message.

    ``delay`` is seconds to wait before the next attempt.
    """

    action: Action
    delay: float = 0.0
    source: Source | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown recovery action {self.action!r}; expected one of {', '.join(ACTIONS)}")
        if self.action == "fallback" and self.source is None:
            raise ValueError("Recovery('fallback') needs source=<the source to fall back to>")
        if self.delay < 0:
            raise ValueError(f"Recovery delay must be >= 0, got {self.delay!r}")


#: Statuses that are never retried, whatever ``x-should-retry`` says: the
#: request itself is wrong, and sending it again cannot help.
NEVER_RETRIED = frozenset({400, 401, 403, 404, 413, 422})


def not_retryable_reason(error: BaseException) -> str | None:
    """Why ``error`` must not be tried again, or ``None`` when it may be."""
    if isinstance(error, StreamCancelled):
        return "the caller cancelled the stream"
    if not isinstance(error, StreamError):
        return f"{type(error).__name__} is not a stream error"
    if isinstance(error, StreamTimeout) and error.kind == "total":
        return "the total timeout is over"
    if isinstance(error, ProviderError):
        if error.status_code in NEVER_RETRIED:
            return f"HTTP {error.status_code} is never retried"
        if error.should_retry is False:
            return "the provider said x-should-retry: false"
    if not error.retryable:
        return f"{type(error).__name__} is not retryable"
    return None


#: ``backoff(stream, error, number)``: the wait before try ``number`` (1-based) after
#: ``error``; ``None`` when the provider asked for a longer wait than allowed.
Backoff = Callable[["Stream", StreamError, int], "float | None"]


#: Where the plugin owning the waits (the ``retry`` built-in: ``[retry]`` backoff,
#: ``Retry-After``, the testing switch) publishes its :class:`Backoff` for a
#: stream, so other deciders (the ``recovery`` built-in) wait the same way
#: without importing it. Absent: no plugin owns waits, and deciders wait 0 s.
BACKOFF: StashKey[Backoff] = StashKey()
