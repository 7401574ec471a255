"""``no_new_threads()``: the sync forms leave no thread behind (their loop thread, its executor's workers)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_new_threads(grace: float = 5.0) -> Iterator[None]:
    """Fail when a thread started inside the block is still alive after it.

    A thread that is finishing (a fired ``threading.Timer``) gets ``grace`` seconds to end; one that is
    still running after that is a leak.
    """
    before = set(threading.enumerate())
    yield
    new = [t for t in threading.enumerate() if t not in before]
    for thread in new:
        thread.join(grace)
    leaked = [t.name for t in new if t.is_alive()]
    assert leaked == [], f"threads left running: {leaked}"
