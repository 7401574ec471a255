"""Built-in plugin ``retry``: reopen a stream that failed before the commit point.

The commit point is the first content event delivered to a consumer. Before
it, nothing the consumer saw has to be taken back, so opening the source again
is exact. This plugin decides that in :func:`stream_error` and answers
``Recovery("retry", delay=...)``; after the commit point it declines (returns
``None``) and the ``recovery`` plugin decides.

What is retried (the official SDKs' rules, see research/reliability.md §1.1,
with the gaps closed):

- HTTP 408, 409, 429 and 5xx (Anthropic's 529 included), connection errors,
  first-chunk and idle timeouts, truncation and malformed bodies, and in-band
  errors that arrive before content (Anthropic ``overloaded_error`` right after
  ``message_start``): everything whose typed error says ``retryable``;
- ``x-should-retry: false`` forbids a retry, ``x-should-retry: true`` allows
  one, except for 400/401/403/404/413/422: those are never retried;
- ``retry-after-ms`` / ``Retry-After`` replaces the backoff when present, up to
  ``retry.max_retry_after``; a longer one gives up at once (the OpenAI SDK
  refuses over 120 s, the Anthropic SDK would sleep for it);
- otherwise exponential backoff ``initial_wait * 2**(n-1)``, capped at
  ``max_wait``, minus up to ``jitter`` of it at random (the SDKs' formula);
- at most ``retry.attempts`` attempts per opening, and no retry whose wait
  would end after ``retry.deadline`` seconds from the first attempt;
- a per-provider retry budget, shared by every stream of one pipeline (a token
  bucket, as gRPC's retry throttling): each retry takes a token, each completed
  stream gives back ``budget_ratio``; an empty bucket means no retries for that
  provider until streams succeed again, so an outage does not become a storm.

Why tenacity's strategies and not ``@retry``: tenacity cannot wrap an async
generator (jd/tenacity#63), and a stream must only be retried up to its first
content event, which is in the middle of the iteration. So the policy is a
``tenacity.AsyncRetrying`` object used for its strategies (``retry``, ``wait``,
``stop``) and a ``tenacity.RetryCallState`` per opening, advanced by hand on
each failure; the core does the sleeping (interruptibly: ``stream.cancel()``
ends a backoff at once).

The sources call the SDKs with ``max_retries=0``: this plugin is the only retry
owner. ``schwarm_stream.testing.switches`` turns every wait off for tests.
"""

from __future__ import annotations

import random
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import tenacity
from pydantic import BaseModel, Field
from tenacity.wait import wait_base

from .._errors import ProviderError, StreamError
from .._stash import StashKey
from ..config import ConfigSection
from ..decisions import BACKOFF, NEVER_RETRIED, Recovery, not_retryable_reason
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from .._message import Message
    from .._stream import Attempt, Stream
    from ..config import Config

__all__ = [
    "NEVER_RETRIED",
    "RetryBudget",
    "RetryConfig",
    "TestingSwitch",
    "backoff_delay",
    "budget",
    "not_retryable_reason",
    "policy",
    "testing_switch",
]


class RetryConfig(ConfigSection):
    """Retrying the *opening* of a stream, before any content was delivered."""

    attempts: int = Field(
        4, ge=1, le=50, description="total attempts to open a stream before content arrives"
    )
    initial_wait: float = Field(0.5, ge=0, description="seconds before the first retry")
    max_wait: float = Field(8.0, ge=0, description="cap on the exponential backoff, seconds")
    jitter: float = Field(0.25, ge=0, le=1, description="fraction of the wait removed at random")
    max_retry_after: float = Field(
        60.0, ge=0, description="cap on an honoured Retry-After; longer means give up"
    )
    deadline: float | None = Field(
        120.0, gt=0, description="total seconds for all attempts; None: no deadline"
    )
    budget_ratio: float = Field(
        0.2,
        ge=0,
        description="per-provider retry budget: tokens given back per completed stream (a retry takes one)",
    )
    budget_min: int = Field(
        10,
        ge=0,
        description="size of the per-provider token bucket (retries in a burst); 0 turns the budget off",
    )


@dataclass(frozen=True)
class TestingSwitch:
    """State of the testing switch (``schwarm_stream.testing.switches``): ``active`` turns every
    retry and recovery wait to 0; ``attempts`` (``None``: the config's) overrides ``retry.attempts``."""

    __test__ = False  # not a pytest test class, despite the name

    active: bool = False
    attempts: int | None = None


# Process-wide, read only when a stream fails. It lives here, not in
# schwarm_stream.testing, so production code never imports the testing kit.
_SWITCH = TestingSwitch()


def testing_switch() -> TestingSwitch:
    """The testing switch as it is now."""
    return _SWITCH


class wait_backoff(wait_base):
    """``wait_exponential`` (tenacity) minus up to ``jitter`` of it at random: the SDKs' backoff."""

    def __init__(self, initial: float, maximum: float, jitter: float) -> None:
        self._exp = tenacity.wait_exponential(multiplier=initial, max=maximum)
        self._jitter = jitter

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return float(self._exp(retry_state)) * (1.0 - self._jitter * random.random())


def _retry_predicate(exc: BaseException) -> bool:
    return not_retryable_reason(exc) is None


def policy(cfg: RetryConfig, *, attempts: int | None = None) -> tenacity.AsyncRetrying:
    """The tenacity policy for ``[retry]``: its ``retry``, ``wait`` and ``stop`` strategies are used."""
    stop: Any = tenacity.stop_after_attempt(attempts or cfg.attempts)
    if cfg.deadline is not None:
        stop = stop | tenacity.stop_before_delay(cfg.deadline)
    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(_retry_predicate),
        wait=wait_backoff(cfg.initial_wait, cfg.max_wait, cfg.jitter),
        stop=stop,
        reraise=True,
    )


# -- the per-provider retry budget ------------------------------------------------------------


class RetryBudget:
    """A token bucket of ``capacity`` retries, refilled by ``ratio`` per completed stream."""

    def __init__(self, capacity: float, ratio: float) -> None:
        self.capacity = capacity
        self.ratio = ratio
        self.tokens = capacity
        self._lock = threading.Lock()  # streams of one pipeline may run on several threads (sync wrapper)

    def take(self) -> bool:
        """Spend one token for a retry; ``False`` when the bucket is empty."""
        with self._lock:
            if self.tokens < 1.0:
                return False
            self.tokens -= 1.0
            return True

    def refill(self) -> None:
        """A stream completed: give back ``ratio`` tokens (up to the capacity)."""
        with self._lock:
            self.tokens = min(self.capacity, self.tokens + self.ratio)


# One registry per pipeline. A pipeline's streams share one Config object (the
# pipeline validates it once), so the config's identity is the pipeline's; the
# entry goes away with the config.
_BUDGETS: dict[int, dict[str, RetryBudget]] = {}
_BUDGETS_LOCK = threading.Lock()


def budget(config: Config, provider: str) -> RetryBudget | None:
    """The retry budget of ``provider`` in the pipeline owning ``config`` (``None``: budgets are off)."""
    cfg = config.section("retry")
    if cfg.budget_min <= 0:
        return None
    key = id(config)
    with _BUDGETS_LOCK:
        per_pipeline = _BUDGETS.get(key)
        if per_pipeline is None:
            per_pipeline = _BUDGETS[key] = {}
            weakref.finalize(config, _BUDGETS.pop, key, None)
        bucket = per_pipeline.get(provider)
        if bucket is None:
            bucket = per_pipeline[provider] = RetryBudget(float(cfg.budget_min), cfg.budget_ratio)
    return bucket


def _existing_budget(config: Config, provider: str) -> RetryBudget | None:
    per_pipeline = _BUDGETS.get(id(config))
    return None if per_pipeline is None else per_pipeline.get(provider)


# -- per-stream state -----------------------------------------------------------------------


@dataclass
class _Opening:
    """One opening of the stream: the attempts up to its first content event."""

    retrying: tenacity.AsyncRetrying
    state: tenacity.RetryCallState


OPENING: StashKey[_Opening] = StashKey()
#: Why the retry plugin declined the last failure (for the recovery plugin and error notes).
DECLINED: StashKey[str] = StashKey()


# The policy of each [retry] section, built once: only its stateless retry/wait/stop strategies are
# used (every opening has its own RetryCallState), so a pipeline's streams share one. Keyed by the
# section's identity (a pipeline validates its config once) and the testing switch's attempts;
# the section is kept in the entry so an id is never reused for another object while cached.
_POLICIES: dict[tuple[int, int | None], tuple[RetryConfig, tenacity.AsyncRetrying]] = {}
_POLICIES_MAX = 64


def _cached_policy(cfg: RetryConfig, attempts: int | None) -> tenacity.AsyncRetrying:
    key = (id(cfg), attempts)
    entry = _POLICIES.get(key)
    if entry is not None and entry[0] is cfg:
        return entry[1]
    retrying = policy(cfg, attempts=attempts)
    if len(_POLICIES) >= _POLICIES_MAX:  # configs made per stream: bounded, never a leak
        _POLICIES.clear()
    _POLICIES[key] = (cfg, retrying)
    return retrying


def _new_opening(stream: Stream) -> _Opening:
    retrying = _cached_policy(stream.config.section("retry"), testing_switch().attempts)
    return _Opening(retrying, tenacity.RetryCallState(retrying, None, (), {}))


def backoff_delay(stream: Stream, error: StreamError, number: int) -> float | None:
    """The wait before recovery number ``number`` (1-based): Retry-After, else the backoff.

    ``None`` when the provider's Retry-After exceeds ``retry.max_retry_after``.
    Always ``0`` while the testing switch is on.
    """
    cfg = stream.config.section("retry")
    after = error.retry_after if isinstance(error, ProviderError) else None
    if after is not None and after > cfg.max_retry_after:
        return None
    if testing_switch().active:
        return 0.0
    if after is not None:
        return after
    state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.attempt_number = number
    return float(wait_backoff(cfg.initial_wait, cfg.max_wait, cfg.jitter)(state))


def _decline(stream: Stream, error: StreamError, reason: str) -> None:
    stream.stash[DECLINED] = reason
    add_note = getattr(error, "add_note", None)  # Python 3.11+
    if add_note is not None:
        add_note(f"schwarm_stream retry: not retried: {reason}")


# -- hooks ------------------------------------------------------------------------------------


@hookimpl
def stream_config_schema() -> dict[str, type[BaseModel]]:
    return {"retry": RetryConfig}


@hookimpl
def stream_attempt(stream: Stream, attempt: Attempt) -> None:
    # Every attempt that is not a retry starts a new opening (the first one, and
    # each recovery after the commit point): its own attempts and deadline.
    if attempt.strategy != "retry":
        stream.stash[OPENING] = _new_opening(stream)
        # the waits are this plugin's: other deciders (recovery) use them through the core's key
        stream.stash[BACKOFF] = backoff_delay


@hookimpl
def stream_error(stream: Stream, error: StreamError) -> Recovery | None:
    if stream.committed:
        return None  # after the commit point a retry would duplicate content: the recovery plugin decides
    if DECLINED in stream.stash:
        del stream.stash[DECLINED]
    opening = stream.stash.get(OPENING)
    if opening is None:
        opening = stream.stash[OPENING] = _new_opening(stream)
    rs = opening.state
    rs.set_exception((type(error), error, error.__traceback__))
    if not opening.retrying.retry(rs):
        _decline(stream, error, not_retryable_reason(error) or "not retryable")
        return None
    cfg = stream.config.section("retry")
    after = error.retry_after if isinstance(error, ProviderError) else None
    if after is not None and after > cfg.max_retry_after:
        _decline(
            stream,
            error,
            f"the provider asked to wait {after:g}s (Retry-After), more than retry.max_retry_after="
            f"{cfg.max_retry_after:g}s",
        )
        return None
    wait = after if after is not None else float(opening.retrying.wait(rs))
    rs.upcoming_sleep = wait
    if opening.retrying.stop(rs):
        attempts = testing_switch().attempts or cfg.attempts
        if rs.attempt_number >= attempts:
            reason = f"all {attempts} attempts (retry.attempts) failed"
        else:
            reason = f"waiting {wait:.2f}s more would pass retry.deadline={cfg.deadline:g}s"
        _decline(stream, error, reason)
        return None
    provider = stream.current_source.provider
    bucket = budget(stream.config, provider)
    if bucket is not None and not bucket.take():
        _decline(
            stream,
            error,
            f"the retry budget of provider {provider!r} is used up (too many failures; "
            "retry.budget_min / retry.budget_ratio)",
        )
        return None
    rs.idle_for += wait
    rs.prepare_for_next_attempt()
    delay = 0.0 if testing_switch().active else wait
    return Recovery("retry", delay=delay, reason=f"{type(error).__name__} before the first content")


@hookimpl
def stream_complete(stream: Stream, message: Message) -> None:
    bucket = _existing_budget(stream.config, stream.current_source.provider)
    if bucket is not None:
        bucket.refill()
