"""What a ``stream_error`` implementation returns: a recovery decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from .sources import Source

__all__ = ["ACTIONS", "Action", "Recovery"]

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
