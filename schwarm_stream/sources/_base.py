"""The :class:`Source` protocol and the coercion of plain iterators into sources."""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .._scrub import remember

if TYPE_CHECKING:
    from .._events import Event
    from .._message import Message
    from .._stream import Attempt, Stream

__all__ = ["Source", "as_source", "require", "without_retries"]


class Source(ABC):
    """A factory for one provider stream.

    ``provider`` (``"openai"``, ``"anthropic"``, ...), ``model`` and
    ``operation`` (``"chat"``) describe it for hooks and metrics.
    """

    provider: str = "unknown"
    model: str | None = None
    operation: str = "chat"

    @abstractmethod
    def open(self, stream: Stream, attempt: Attempt) -> AsyncIterator[Event]:
        """Open the provider stream and yield normalized events.

        Must return normally only after the protocol's terminator; a stream that
        just stops raises :class:`~schwarm_stream.StreamIncomplete`. Any failure is
        raised as a :class:`~schwarm_stream.StreamError` subclass. The iterator
        owns the connection and closes it when closed (``aclose``) or cancelled.
        """

    def continuation(self, partial: Message) -> Source | None:
        """A source asking the model to continue after ``partial``; ``None`` if unsupported."""
        return None

    def resumption(self, stream: Stream) -> Source | None:
        """A source resuming this provider stream exactly where it broke; ``None`` if unsupported."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} provider={self.provider!r} model={self.model!r}>"

    def __setattr__(self, name: str, value: Any) -> None:
        # The key a source is configured with (its own ``api_key``, or its SDK client's) is
        # scrubbed exactly from every error, log line and span from then on (issue 14 item 4).
        if name == "api_key":
            remember(value)
        elif name == "client":
            remember(getattr(value, "api_key", None))
        object.__setattr__(self, name, value)


def as_source(obj: Any) -> Source:
    """``obj`` if it is a :class:`Source`, else a source over an iterator of strings."""
    if isinstance(obj, Source):
        return obj
    from .iterators import from_iterator

    return from_iterator(obj)


def require(module: str, extra: str) -> Any:
    """Import an optional SDK, or fail with the ``pip install`` line that fixes it."""
    import importlib

    from .._errors import MissingDependency

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"this source needs the {module!r} package: pip install 'schwarm-stream[{extra}]'"
        ) from exc


_NO_RETRY_CLIENTS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def without_retries(client: Any) -> Any:
    """``client.with_options(max_retries=0)``, made once per client and reused.

    Retry is ours (one retry owner). Making a fresh copy for every source
    measured ~0.5 ms more to the first event over loopback than reusing one
    (request to first event, 200 samples, benchmarks/_server.py).
    """
    if getattr(client, "max_retries", None) == 0:
        return client
    try:
        cached = _NO_RETRY_CLIENTS.get(client)
    except TypeError:  # not weak-referenceable: no cache
        return client.with_options(max_retries=0)
    if cached is None:
        cached = _NO_RETRY_CLIENTS[client] = client.with_options(max_retries=0)
    return cached
