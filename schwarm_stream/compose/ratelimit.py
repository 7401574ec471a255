"""Rate limiting of delivered events, per stream or per provider, with priorities.

:class:`RateLimit` is an opt-in plugin: a token bucket in front of delivery
(``stream_transform``). ``chunks_per_second`` counts content events;
``tokens_per_second`` counts estimated tokens (characters / 4, the usual rule
of thumb — providers only report real token counts at the end). With
``scope="provider"`` every stream of a provider shares one bucket, and when
several streams wait, the one with the highest ``stream.metadata["priority"]``
(default 0) goes first; equal priorities are served in arrival order.

Waiting applies backpressure: a limited stream stops reading its provider
until the bucket allows the next event.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import TYPE_CHECKING, Literal

from .._events import Chunk, Event, ToolCallDelta
from .._stash import StashKey
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from .._stream import Stream

__all__ = ["RateLimit", "TokenBucket"]


class TokenBucket:
    """A token bucket whose waiters are served by priority (highest first), then arrival."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self.tokens = self.capacity
        self._stamp = time.monotonic()
        self._waiters: list[tuple[int, int, float, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self, amount: float = 1.0, *, priority: int = 0) -> None:
        """Wait until ``amount`` tokens are available (more than the burst size is capped to it)."""
        amount = min(amount, self.capacity)
        self._refill()
        if not self._waiters and self.tokens >= amount:
            self.tokens -= amount
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (-priority, next(self._order), amount, fut))
        self._schedule()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # granted just as we were cancelled: give it back
                self.tokens += amount
            self._schedule()
            raise

    def _schedule(self) -> None:
        while self._waiters and self._waiters[0][3].done():
            heapq.heappop(self._waiters)  # cancelled waiters
        if self._timer is not None or not self._waiters:
            return
        need = self._waiters[0][2] - self.tokens
        delay = max(0.0, need / self.rate)
        self._timer = asyncio.get_running_loop().call_later(delay, self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._refill()
        while self._waiters:
            _, _, amount, fut = self._waiters[0]
            if fut.done():
                heapq.heappop(self._waiters)
                continue
            if self.tokens < amount:
                break
            heapq.heappop(self._waiters)
            self.tokens -= amount
            fut.set_result(None)
        self._schedule()


_BUCKET: StashKey[TokenBucket] = StashKey()


class RateLimit:
    """Plugin: limit content events per second, per stream or shared per provider.

    ``Pipeline(plugins=[RateLimit(chunks_per_second=20, scope="provider")])``.
    """

    def __init__(
        self,
        *,
        chunks_per_second: float | None = None,
        tokens_per_second: float | None = None,
        burst: float | None = None,
        scope: Literal["stream", "provider"] = "stream",
    ) -> None:
        if (chunks_per_second is None) == (tokens_per_second is None):
            raise ValueError("RateLimit needs exactly one of chunks_per_second= or tokens_per_second=")
        self.per_token = tokens_per_second is not None
        self.rate = float(tokens_per_second if tokens_per_second is not None else chunks_per_second)  # type: ignore[arg-type]
        self.burst = burst
        self.scope = scope
        self._shared: dict[str, TokenBucket] = {}

    def _bucket(self, stream: Stream) -> TokenBucket:
        if self.scope == "provider":
            b = self._shared.get(stream.provider)
            if b is None:
                b = self._shared[stream.provider] = TokenBucket(self.rate, self.burst)
            return b
        b = stream.stash.get(_BUCKET)
        if b is None:
            b = TokenBucket(self.rate, self.burst)
            stream.stash[_BUCKET] = b
        return b

    @hookimpl(trylast=True)
    async def stream_transform(self, stream: Stream, event: Event) -> None:
        if type(event) is Chunk:
            cost = max(1.0, len(event.text) / 4) if self.per_token else 1.0
        elif type(event) is ToolCallDelta:
            cost = max(1.0, len(event.arguments) / 4) if self.per_token else 1.0
        else:
            return None
        await self._bucket(stream).take(cost, priority=int(stream.metadata.get("priority", 0)))
        return None
