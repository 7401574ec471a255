"""What a stream's task is waiting for, and how it is paused and interrupted.

A stream runs in its consumer's task. :attr:`Control.waiting` says what that
task awaits right now; it is a generic state, documented for any plugin (the
``timeouts`` watchdog counts provider silence only while it is
``"provider"``). :meth:`Control.abort` fails the current attempt: when the task
is waiting, it is cancelled with a private message, and the await that sees the
cancellation turns it into the abort's error (:meth:`Control._interrupted`),
so that a caller's own cancellation stays a cancellation.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, NoReturn

from ._errors import StreamCancelled, StreamError

if TYPE_CHECKING:
    from ._dispatch import Impl

__all__ = ["WAITING", "Control"]

#: Values of :attr:`Control.waiting` besides ``None`` (running code, or the
#: consumer holds the event): a provider read, an ``async`` hook call, the
#: backoff sleep before another attempt.
WAITING = ("provider", "hook", "backoff")

#: The message of the task cancellation :meth:`Control.abort` sends.
ABORT = "schwarm_stream.abort"


class Control:
    """Pause, resume and abort a stream; :attr:`waiting` and :attr:`running_hook` say what it awaits."""

    provider: str
    outcome: str | None

    def __init__(self) -> None:
        #: what the stream's task awaits right now: ``"provider"``, ``"hook"`` (an ``async``
        #: hook implementation, :attr:`running_hook` says which), ``"backoff"``, or ``None``
        self.waiting: str | None = None
        #: the ``async`` hook implementation being awaited (``plugin_name``, ``hook_name``), or ``None``
        self.running_hook: Impl | None = None
        self._task: asyncio.Task[Any] | None = None
        self._paused: asyncio.Event | None = None
        self._abort_error: StreamError | None = None
        self._abort_pending = False
        self._abort_interrupting = False  # abort() has cancelled the task; not yet delivered
        self._hook_expired = False  # the hook timer has cancelled the task; not yet delivered

    @property
    def reading(self) -> bool:
        """True while the stream awaits the provider (``waiting == "provider"``)."""
        return self.waiting == "provider"

    # -- flow control -------------------------------------------------------------------------

    def pause(self) -> None:
        """Stop pulling from the provider after the current event (backpressure)."""
        if self._paused is None:
            self._paused = asyncio.Event()

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        if self._paused is not None:
            ev, self._paused = self._paused, None
            ev.set()

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused is not None

    def cancel(self, reason: str = "cancelled by caller") -> None:
        """Close the provider connection now and end the stream with :class:`StreamCancelled`.

        Never retried. Safe to call from another task or from a hook.
        """
        self.abort(StreamCancelled(reason, provider=self.provider))

    def abort(self, error: StreamError) -> None:
        """Fail the current attempt with ``error`` (timeouts and control plugins use this).

        If the stream is waiting (:attr:`waiting`: the provider, an async hook,
        a backoff), that wait is interrupted at once; otherwise the error is
        raised before the next read. ``error`` then goes through
        ``stream_error`` like any failure.
        """
        if self.outcome is not None:
            return
        if self._abort_pending and isinstance(self._abort_error, StreamCancelled):
            return  # the caller's cancel wins over a later timeout
        self._abort_error = error
        self._abort_pending = True
        if self._paused is not None:
            self.resume()
        if self._abort_interrupting or self._hook_expired:
            return  # the task is already being interrupted: a second cancel() would look like the caller's
        task = self._task
        if self.waiting is not None and task is not None and not task.done():
            self._abort_interrupting = True
            task.cancel(msg=ABORT)

    # -- for the awaits of the loop -------------------------------------------------------------

    def _interrupted(self) -> bool:
        """In ``except CancelledError``: True when the cancellation is a pending abort (then undone)."""
        if self._abort_pending and self._only_our_cancel():
            self._uncancel()
            return True
        return False

    def _only_our_cancel(self) -> bool:
        # An abort cancels the task once; more requests mean the caller cancelled it too.
        cancelling = getattr(self._task, "cancelling", None)
        return cancelling is None or cancelling() <= 1

    def _uncancel(self) -> None:
        uncancel = getattr(self._task, "uncancel", None)
        if uncancel is not None:
            uncancel()

    def _raise_abort(self) -> NoReturn:
        err = self._abort_error or StreamCancelled("aborted", provider=self.provider)
        self._abort_pending = False
        self._abort_interrupting = False
        raise err
