"""A testing switch that turns every retry and recovery wait off (like ``stamina.set_testing``).

Tests of code that uses schwarm_stream should never sleep through a backoff::

    from schwarm_stream.testing import switches

    with switches.no_waits():                 # a context manager ...
        message = await stream.collect()

    switches.set_testing(True, attempts=2)    # ... or a process-wide switch
    ...
    switches.set_testing(False)

While it is on, the built-in ``retry`` and ``recovery`` plugins decide exactly as
they would otherwise (which errors are retried, Retry-After caps, budgets,
deadlines computed with the real waits), but every delay they return is ``0``;
``attempts`` optionally overrides ``retry.attempts`` (``1``: no retries).
Timeouts are limits, not waits, and stay as configured.

The switch is process-wide (read only when a stream fails), so it also reaches
streams running in the sync wrapper's background thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..builtins import retry as _retry
from ..builtins.retry import TestingSwitch

__all__ = ["TestingSwitch", "current", "no_waits", "set_testing"]


def current() -> TestingSwitch:
    """The switch as it is now."""
    return _retry.testing_switch()


def set_testing(on: bool, *, attempts: int | None = None) -> TestingSwitch:
    """Turn waits off (``on=True``) or back on; returns the previous state.

    ``attempts`` overrides ``retry.attempts`` while on (``1`` disables retries).
    """
    if attempts is not None and attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts!r}")
    previous = _retry._SWITCH
    _retry._SWITCH = TestingSwitch(active=bool(on), attempts=attempts if on else None)
    return previous


@contextmanager
def no_waits(*, attempts: int | None = None) -> Iterator[TestingSwitch]:
    """Context manager form of :func:`set_testing`; restores the previous state on exit."""
    previous = set_testing(True, attempts=attempts)
    try:
        yield _retry._SWITCH
    finally:
        _retry._SWITCH = previous
