"""Each retry or recovery, shown as it happens: a small plugin on the ``stream_attempt`` hook.

The core calls ``stream_attempt`` before it opens an attempt and before it sleeps the
backoff (``attempt.delay``), so the line appears when the wait starts, not after the last
attempt failed. ``attempt.previous_error`` is the failure that caused it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .. import Attempt, Stream, hookimpl
from ._render import Renderer

__all__ = ["RetryReporter", "describe", "on_stderr"]


def _limit(stream: Stream, strategy: str | None) -> int | None:
    """``retry.attempts`` for a retry (the attempts of one opening), else ``None``."""
    if strategy != "retry":
        return None
    try:
        value: Any = getattr(stream.config.section("retry"), "attempts", None)
    except Exception:  # a config without a retry section: show no limit rather than fail the hook
        return None
    return value if isinstance(value, int) else None


def describe(stream: Stream, attempt: Attempt) -> str | None:
    """``"retry: attempt 2 of 4 in 0.50 s after TransportError: ..."``; ``None`` for a first attempt."""
    err = attempt.previous_error
    if attempt.number == 1 or err is None:
        return None
    limit = _limit(stream, attempt.strategy)
    of = f" of {limit}" if limit else ""
    wait = f"in {attempt.delay:.2f} s" if attempt.delay > 0 else "now"
    cause = f"{type(err).__name__}: {err}".splitlines()[0]  # the first line: notes follow on others
    return f"{attempt.strategy or 'retry'}: attempt {attempt.number}{of} {wait} after {cause}"


class RetryReporter:
    """Calls ``write(line)`` for every attempt after the first (retries and recoveries), live.

    ``label(stream)``, when given, names the stream at the start of the line (``compare`` runs several).
    """

    def __init__(
        self, write: Callable[[str], None], label: Callable[[Stream], str | None] | None = None
    ) -> None:
        self._write = write
        self._label = label

    @hookimpl
    def stream_attempt(self, stream: Stream, attempt: Attempt) -> None:
        line = describe(stream, attempt)
        if line is None:
            return
        name = self._label(stream) if self._label is not None else None
        self._write(f"{name}: {line}" if name else line)


def on_stderr(
    r: Renderer | None = None, label: Callable[[Stream], str | None] | None = None
) -> RetryReporter:
    """A reporter writing to stderr, in yellow on a terminal, below what ``r`` drew on stdout."""

    def show(line: str) -> None:
        if r is not None:
            r.end_line()  # the status line (and a cut text line) first, so the note starts a row of its own
        click.echo(click.style(line, fg="yellow"), err=True)

    return RetryReporter(show, label)
