"""Admission control: a limit of concurrent streams per pipeline and per provider.

``[admission]`` (or ``Pipeline(admission=Admission(...))``)::

    [admission]
    max_streams = 200          # concurrent streams in this pipeline
    max_per_provider = 50      # ... against any one provider
    providers = { anthropic = 20 }   # ... against these providers (overrides max_per_provider)
    on_full = "wait"           # or "refuse"
    timeout = 10.0             # seconds a stream may wait for a slot
    max_waiting = 1000         # streams allowed to wait at once
    retry_after = 2.0          # what a refused client is told (HTTP Retry-After)

A stream takes its slots in ``stream_start``, before any other plugin's ``stream_start`` and
before the provider is contacted, and holds them until ``stream_end`` (through retries, backoff,
recovery and fallback: a slot belongs to the logical stream). Beyond a limit it waits, first
come first served among the streams that can go (a stream waiting for a full provider does not
hold up one for another provider), at most ``timeout`` seconds; with ``on_full = "refuse"``, or
when ``max_waiting`` streams already wait, or when the wait times out, the stream ends with
:class:`~schwarm_stream.AdmissionRefused` (never retried; ``retry_after`` says when to try
again). ``stream.cancel()`` interrupts the wait. A waiting stream is listed as ``"queued"`` by
the :class:`~schwarm_stream.StreamRegistry`.

A :class:`Permit` taken ahead of time (``await admission.acquire()``) covers the first stream
opened in its context (``with permit.covering(): ...``): the web hub acquires one before it
answers, so a full server answers 503 instead of starting a stream it cannot run.

One :class:`Admission` may be shared by several pipelines (pass the same object): the limits are
then global to them. Slots are thread-safe; a waiter on another event loop is woken through its
loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ._errors import AdmissionRefused
from ._registry import QUEUED
from ._stash import StashKey
from .config import ConfigSection
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ._stream import Stream
    from .config import Config

__all__ = ["Admission", "AdmissionConfig", "AdmissionStats", "Permit"]

#: The name the admission hooks are registered under in a pipeline.
ADMISSION_PLUGIN = "schwarm_stream.admission"


class AdmissionConfig(ConfigSection):
    """``[admission]``: concurrent-stream limits (all off by default)."""

    max_streams: int | None = Field(
        None, ge=1, description="concurrent streams per pipeline (None: no limit)"
    )
    max_per_provider: int | None = Field(
        None, ge=1, description="concurrent streams per provider, for providers not listed in providers"
    )
    providers: dict[str, int] = Field(
        default_factory=dict, description="concurrent streams for these providers (name -> limit)"
    )
    on_full: Literal["wait", "refuse"] = Field(
        "wait", description="beyond a limit: wait for a slot (at most timeout seconds), or refuse at once"
    )
    timeout: float = Field(10.0, gt=0, description="seconds a stream waits for a slot before it is refused")
    max_waiting: int | None = Field(
        None, ge=0, description="streams allowed to wait at once; more are refused at once (None: no limit)"
    )
    retry_after: float = Field(
        1.0,
        ge=0,
        description="seconds a refused caller is told to wait (AdmissionRefused.retry_after, HTTP Retry-After)",
    )

    @property
    def active(self) -> bool:
        """True when any limit is set."""
        return self.max_streams is not None or self.max_per_provider is not None or bool(self.providers)


@dataclass(frozen=True, slots=True)
class AdmissionStats:
    """A snapshot of an :class:`Admission`: slots in use, waiters, and totals since it was made."""

    active: int
    by_provider: dict[str, int]
    waiting: int
    admitted: int
    waited: int
    refused: dict[str, int]
    peak: int

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return {
            k: (dict(v) if isinstance(v, dict) else v) for k in self.__slots__ for v in [getattr(self, k)]
        }


class Permit:
    """Slots held in an :class:`Admission`: the pipeline's (``pipeline``) and a provider's (``provider``).

    Release it exactly once (:meth:`release` is idempotent), or use it as a context manager.
    """

    __slots__ = ("_released", "_users", "admission", "pipeline", "provider")

    def __init__(self, admission: Admission, provider: str | None, pipeline: bool) -> None:
        self.admission = admission
        self.provider = provider
        self.pipeline = pipeline
        self._released = False
        self._users = 0

    @property
    def released(self) -> bool:
        """True once the slots were given back."""
        return self._released

    def release(self) -> None:
        """Give the slots back (waiters may go); a second call does nothing."""
        if not self._released:
            self._released = True
            self.admission._give_back(self)

    @contextlib.contextmanager
    def covering(self) -> Iterator[Permit]:
        """Within this block (and tasks created in it), the first stream opened uses this permit.

        The stream then takes no pipeline slot of its own (nor the provider's, when it is this
        permit's provider); the permit stays held until released by its owner.
        """
        token = _PERMIT.set(self)
        try:
            yield self
        finally:
            _PERMIT.reset(token)

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return f"<Permit provider={self.provider!r} pipeline={self.pipeline} {state}>"


_PERMIT: contextvars.ContextVar[Permit | None] = contextvars.ContextVar("schwarm_stream_permit", default=None)


class _Waiter:
    __slots__ = ("fut", "granted", "loop", "pipeline", "provider")

    def __init__(self, provider: str | None, pipeline: bool, loop: asyncio.AbstractEventLoop) -> None:
        self.provider = provider
        self.pipeline = pipeline
        self.loop = loop
        self.fut: asyncio.Future[None] = loop.create_future()
        self.granted = False


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Admission:
    """Concurrent-stream limits for one or more pipelines (see the module docstring).

    ``Admission(max_streams=100, providers={"openai": 20}, on_full="refuse")``, or from an
    :class:`AdmissionConfig` / a dict of its fields.
    """

    def __init__(self, config: AdmissionConfig | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        base = config.model_dump() if isinstance(config, AdmissionConfig) else dict(config or {})
        self.config = AdmissionConfig.model_validate({**base, **overrides})
        self._lock = threading.Lock()
        self._active = 0
        self._by_provider: dict[str, int] = {}
        self._waiters: list[_Waiter] = []
        self._admitted = 0
        self._waited = 0
        self._refused: dict[str, int] = {}
        self._peak = 0

    @classmethod
    def from_config(cls, config: Config) -> Admission:
        """An admission from the ``[admission]`` section of a (pipeline-validated) config."""
        section = config.section("admission")
        if isinstance(section, AdmissionConfig):
            return cls(section)
        return cls(dict(section or {}))

    @property
    def active(self) -> bool:
        """True when any limit is set (else a pipeline registers no admission hooks)."""
        return self.config.active

    def limit_for(self, provider: str | None) -> int | None:
        """The concurrent-stream limit of ``provider`` (``None``: none)."""
        if provider is None:
            return None
        return self.config.providers.get(provider, self.config.max_per_provider)

    def stats(self) -> AdmissionStats:
        """Slots in use (in all and by provider), streams waiting, totals admitted / waited / refused."""
        with self._lock:
            return AdmissionStats(
                active=self._active,
                by_provider={k: v for k, v in self._by_provider.items() if v},
                waiting=len(self._waiters),
                admitted=self._admitted,
                waited=self._waited,
                refused=dict(self._refused),
                peak=self._peak,
            )

    # -- taking and giving back slots ---------------------------------------------------------

    def try_acquire(self, provider: str | None = None, *, pipeline: bool = True) -> Permit | None:
        """A permit now if the limits allow it, else ``None`` (never waits)."""
        with self._lock:
            if not self._fits(provider, pipeline):
                return None
            return self._take(provider, pipeline)

    async def acquire(
        self,
        provider: str | None = None,
        *,
        pipeline: bool = True,
        timeout: float | None = None,
        stream: Stream | None = None,
    ) -> Permit:
        """A permit, waiting (``on_full="wait"``) at most ``timeout`` (default: the config's) seconds.

        Raises :class:`~schwarm_stream.AdmissionRefused` when the limits refuse it. ``pipeline=False``
        takes only the provider's slot. ``stream`` (if given) is marked ``queued`` while it waits.
        """
        cfg = self.config
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._fits(provider, pipeline):
                return self._take(provider, pipeline)
            which = self._full(provider, pipeline)
            if cfg.on_full == "refuse":
                raise self._refuse("full", which, provider, 0.0)
            if cfg.max_waiting is not None and len(self._waiters) >= cfg.max_waiting:
                raise self._refuse("queue_full", which, provider, 0.0)
            waiter = _Waiter(provider, pipeline, loop)
            self._waiters.append(waiter)
            self._waited += 1
        started = time.monotonic()
        if stream is not None:
            stream.stash[QUEUED] = True
        try:
            await asyncio.wait_for(waiter.fut, cfg.timeout if timeout is None else timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            with self._lock:
                if waiter.granted:  # granted as the wait ended
                    permit = Permit(self, provider, pipeline)
                    if isinstance(exc, asyncio.CancelledError):
                        self._release_locked(permit)
                        raise
                    return permit
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                self._grant_locked()  # this waiter may have held up others
                if isinstance(exc, asyncio.CancelledError):
                    raise
                raise self._refuse(
                    "timeout", self._full(provider, pipeline), provider, time.monotonic() - started
                ) from None
        finally:
            if stream is not None:
                stream.stash[QUEUED] = False
        return Permit(self, provider, pipeline)

    def _fits(self, provider: str | None, pipeline: bool) -> bool:
        cfg = self.config
        if pipeline and cfg.max_streams is not None and self._active >= cfg.max_streams:
            return False
        limit = self.limit_for(provider)
        return limit is None or self._by_provider.get(provider or "", 0) < limit

    def _full(self, provider: str | None, pipeline: bool) -> str:
        cfg = self.config
        if pipeline and cfg.max_streams is not None and self._active >= cfg.max_streams:
            return "pipeline"
        return "provider"

    def _take(self, provider: str | None, pipeline: bool) -> Permit:
        if pipeline:
            self._active += 1
            self._peak = max(self._peak, self._active)
        if provider is not None:
            self._by_provider[provider] = self._by_provider.get(provider, 0) + 1
        self._admitted += 1
        return Permit(self, provider, pipeline)

    def _give_back(self, permit: Permit) -> None:
        with self._lock:
            self._release_locked(permit)

    def _release_locked(self, permit: Permit) -> None:
        permit._released = True
        if permit.pipeline:
            self._active -= 1
        if permit.provider is not None:
            self._by_provider[permit.provider] -= 1
        self._grant_locked()

    def _grant_locked(self) -> None:
        """Wake every waiter that fits now, in arrival order (ones that do not fit keep their place).

        Called after every release, so no waiter ever fits without being woken: a newcomer that
        fits passes nobody who could have gone instead.
        """
        if not self._waiters:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        kept: list[_Waiter] = []
        for w in self._waiters:
            if not w.fut.done() and self._fits(w.provider, w.pipeline):
                self._take(w.provider, w.pipeline)
                w.granted = True
                if w.loop is running:
                    _wake(w.fut)
                else:  # a waiter on another thread's loop
                    w.loop.call_soon_threadsafe(_wake, w.fut)
            else:  # still waiting, or timing out right now (it removes itself)
                kept.append(w)
        self._waiters = kept

    def _refuse(self, reason: str, which: str, provider: str | None, waited: float) -> AdmissionRefused:
        self._refused[reason] = self._refused.get(reason, 0) + 1
        cfg = self.config
        if which == "pipeline":
            what = f"{cfg.max_streams} concurrent streams in this pipeline"
        else:
            what = f"{self.limit_for(provider)} concurrent streams for provider {provider!r}"
        how = {
            "full": "refused at once",
            "queue_full": "too many streams waiting",
            "timeout": f"waited {waited:.1f}s",
        }
        return AdmissionRefused(
            f"admission refused: limit of {what} reached ({how[reason]})",
            reason=reason,
            limit=which,
            provider=provider,
            retry_after=cfg.retry_after,
            waited=waited,
        )


_HELD: StashKey[tuple[Permit | None, Permit | None]] = StashKey()


class AdmissionPlugin:
    """The hooks a pipeline registers for its :class:`Admission` (``stream_start`` takes, ``stream_end`` gives back)."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission

    @hookimpl(tryfirst=True)
    async def stream_start(self, stream: Stream) -> None:
        adm = self.admission
        borrowed = _PERMIT.get()
        if borrowed is not None and (borrowed.admission is not adm or borrowed._users or borrowed.released):
            borrowed = None  # another admission's, already covering a stream, or given back
        if borrowed is not None:
            borrowed._users += 1
            stream.stash[_HELD] = (borrowed, None)
            if borrowed.provider == stream.provider or adm.limit_for(stream.provider) is None:
                return
            # the permit covers the pipeline slot; this provider's limit still applies
            stream.stash[_HELD] = (
                borrowed,
                await adm.acquire(stream.provider, pipeline=False, stream=stream),
            )
            return
        stream.stash[_HELD] = (None, await adm.acquire(stream.provider, stream=stream))

    @hookimpl(trylast=True)
    def stream_end(self, stream: Stream) -> None:
        held = stream.stash.get(_HELD)
        if held is None:
            return
        borrowed, own = held
        if own is not None:
            own.release()
        if borrowed is not None:
            borrowed._users -= 1


class AdmissionSchema:
    """Declares the ``[admission]`` config section (registered in every pipeline, limits or not)."""

    @hookimpl
    def stream_config_schema(self) -> dict[str, type[BaseModel]]:
        return {"admission": AdmissionConfig}
