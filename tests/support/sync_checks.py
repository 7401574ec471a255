"""Checks for the sync forms: no thread left behind (:func:`no_new_threads`), how each stream ended (:class:`Ends`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from schwarm_stream import hookimpl


@contextmanager
def no_new_threads(grace: float = 5.0) -> Iterator[None]:
    """Fail when a thread started inside the block is still alive after it.

    A thread that is finishing (a fired ``threading.Timer``) gets ``grace`` seconds to end; one that is
    still running after that is a leak (a loop thread, its executor's workers, a request thread).
    """
    before = set(threading.enumerate())
    yield
    new = [t for t in threading.enumerate() if t not in before]
    for thread in new:
        thread.join(grace)
    leaked = [t.name for t in new if t.is_alive()]
    assert leaked == [], f"threads left running: {leaked}"


class Ends:
    """A plugin recording each stream's outcome at ``stream_end``; ``ended`` is set by the first."""

    def __init__(self) -> None:
        self.outcomes: list[str | None] = []
        self.ended = threading.Event()

    @hookimpl
    def stream_end(self, stream: Any) -> None:
        self.outcomes.append(stream.outcome)
        self.ended.set()
