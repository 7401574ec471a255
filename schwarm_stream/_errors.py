"""One exception tree for everything schwarm_stream raises.

::

    SchwarmStreamError
    ├── ConfigError                 bad config key or value (also a ValueError)
    ├── MissingDependency           an optional extra is not installed (also an ImportError)
    ├── PluginError                 a plugin failed or timed out (timeouts.hook); names the plugin
    │   │                           (entry-point name, given name or module.Class) and the hook;
    │   │                           raised by a stream (strict policy) it carries .partial too
    │   └── PluginLoadError         an entry point failed to load; names it and its distribution
    └── StreamError                 a stream did not complete; carries .partial (the message so far)
        ├── StreamIncomplete        the stream ended without the protocol's terminator
        ├── StreamCancelled         the caller cancelled the stream
        ├── StreamTimeout           first-chunk, idle or total timeout (.kind)
        ├── ProviderError           the provider said no: HTTP status or in-band error event
        ├── TransportError          the connection failed, dropped or was reset
        ├── ProtocolError           malformed SSE, JSON, UTF-8 or event order (.offset where known)
        │   └── InvalidToolArguments  a completed tool call whose arguments are not JSON
        ├── InvalidOutput           a typed stream's answer failed validation (raw text, errors)
        ├── LimitExceeded           a byte cap was exceeded (event, tool arguments, message)
        └── AdmissionRefused        admission control refused the stream (.reason, .retry_after)

Provider and transport exceptions (SDK errors, httpx errors, ``JSONDecodeError``)
are translated at the source boundary with ``raise ... from exc``, so the
original is always ``__cause__``. The translation is one table next to this
tree: :data:`schwarm_stream._classify.ERROR_MAP` (exception -> error class).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._message import Message

__all__ = [
    "AdmissionRefused",
    "ConfigError",
    "InvalidOutput",
    "InvalidToolArguments",
    "LimitExceeded",
    "MissingDependency",
    "PluginError",
    "PluginLoadError",
    "ProtocolError",
    "ProviderError",
    "SchwarmStreamError",
    "StreamCancelled",
    "StreamError",
    "StreamIncomplete",
    "StreamTimeout",
    "TransportError",
]


class SchwarmStreamError(Exception):
    """Base class of every schwarm_stream exception."""


class ConfigError(SchwarmStreamError, ValueError):
    """Invalid configuration; the message names the key (``retry.attempts``) and the problem."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class MissingDependency(SchwarmStreamError, ImportError):
    """An optional dependency is missing; the message says which extra to install."""


class PluginError(SchwarmStreamError):
    """A plugin's hook implementation raised (or returned something invalid).

    Raised to the caller only under the ``strict`` plugin policy; under the
    default ``isolate`` policy it is logged as a warning naming both. An async
    hook call that does not return within ``timeouts.hook`` fails the same way.

    Raised out of a stream, it carries what a :class:`StreamError` carries:
    ``partial`` (the message delivered so far, ``complete=False``),
    ``committed``, ``attempts`` and ``stream_id``; elsewhere (loading,
    registration) these stay ``None`` / ``False`` / ``0``.
    """

    def __init__(self, message: str, *, plugin_name: str, hook_name: str) -> None:
        super().__init__(message)
        self.plugin_name = plugin_name
        self.hook_name = hook_name
        self.partial: Message | None = None
        self.committed: bool = False
        self.attempts: int = 0
        self.stream_id: str | None = None


class PluginLoadError(PluginError):
    """An entry-point plugin could not be loaded."""

    def __init__(self, message: str, *, entry_point: str, distribution: str | None) -> None:
        super().__init__(message, plugin_name=entry_point, hook_name="<load>")
        self.entry_point = entry_point
        self.distribution = distribution


class StreamError(SchwarmStreamError):
    """A stream did not complete.

    ``partial`` is the message accumulated from everything delivered before the
    failure (``complete=False``); ``committed`` says whether content had already
    reached a consumer; ``attempts`` counts the provider streams opened.
    ``retryable`` is the classification the retry plugin uses.
    """

    retryable: bool = False

    def __init__(self, message: str, *, provider: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        if retryable is not None:
            self.retryable = retryable
        self.partial: Message | None = None
        self.committed: bool = False
        self.attempts: int = 0
        self.stream_id: str | None = None

    @property
    def cause(self) -> BaseException | None:
        """The original exception (SDK, transport or decoder error), if any."""
        return self.__cause__


class StreamIncomplete(StreamError):
    """The provider stream ended cleanly but without its terminator.

    Both official SDKs report this as success; it is a truncation.
    """

    retryable = True


class StreamCancelled(StreamError):
    """The stream was cancelled by its caller (``stream.cancel()``). Never retried."""


class StreamTimeout(StreamError):
    """No progress within a configured limit. ``kind`` is ``first_chunk``, ``idle`` or ``total``."""

    retryable = True

    def __init__(self, message: str, *, kind: str, provider: str | None = None) -> None:
        super().__init__(message, provider=provider)
        self.kind = kind


class ProviderError(StreamError):
    """The provider reported an error: an HTTP status, or an in-band error event.

    ``status_code`` is the HTTP status (for in-band errors: the status the error
    type corresponds to, e.g. 529 for ``overloaded_error``); ``error_type`` is the
    provider's own type string; ``in_band`` is true when the error arrived inside
    a 200 stream. ``retry_after`` (seconds) and ``should_retry`` come from the
    ``retry-after(-ms)`` and ``x-should-retry`` response headers.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        in_band: bool = False,
        retry_after: float | None = None,
        should_retry: bool | None = None,
        provider: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, provider=provider)
        self.status_code = status_code
        self.error_type = error_type
        self.in_band = in_band
        self.retry_after = retry_after
        self.should_retry = should_retry
        self.body = body
        if should_retry is not None:
            self.retryable = should_retry
        else:
            self.retryable = status_code is not None and (
                status_code in (408, 409, 429) or status_code >= 500
            )


class TransportError(StreamError):
    """The connection failed: refused, reset, or closed in the middle of the body."""

    retryable = True


class ProtocolError(StreamError):
    """The bytes did not follow the protocol: malformed SSE, JSON, UTF-8 or event order.

    ``offset`` is the position in the body or buffer where that was detected,
    when known.
    """

    retryable = True

    def __init__(self, message: str, *, offset: int | None = None, provider: str | None = None) -> None:
        super().__init__(message, provider=provider)
        self.offset = offset


class InvalidToolArguments(ProtocolError):
    """The provider finished a tool call whose arguments are not valid JSON."""

    retryable = False


class LimitExceeded(StreamError):
    """A configured byte cap was exceeded (``limit`` names it: event, tool_arguments or message)."""

    def __init__(self, message: str, *, limit: str, provider: str | None = None) -> None:
        super().__init__(message, provider=provider)
        self.limit = limit


class AdmissionRefused(StreamError):
    """Admission control refused the stream: a concurrent-stream limit was reached.

    ``reason`` is ``"full"`` (``on_full = "refuse"``), ``"queue_full"`` (``max_waiting`` streams
    already wait) or ``"timeout"`` (no slot within ``timeout`` seconds); ``limit`` names the limit,
    ``"pipeline"`` or ``"provider"``; ``retry_after`` is the seconds a caller is told to wait (the
    web hub's ``Retry-After``); ``waited`` the seconds this stream waited. Never retried.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        limit: str,
        provider: str | None = None,
        retry_after: float | None = None,
        waited: float = 0.0,
    ) -> None:
        super().__init__(message, provider=provider)
        self.reason = reason
        self.limit = limit
        self.retry_after = retry_after
        self.waited = waited


class InvalidOutput(StreamError):
    """A typed stream's answer (or a typed tool call's arguments) failed validation at the end.

    ``raw_text`` is the answer exactly as streamed, ``partial_output`` the best partial value
    parsed from it, ``errors`` pydantic's errors (``[{"type", "loc", "msg"}]``; for text that is
    not JSON, one entry), ``tool_call`` the call's name and ``tool_call_id`` its id when a typed
    tool call failed, and ``truncated`` whether the provider cut the answer (``max_tokens``):
    a cut answer is never a final value. The validation error itself is ``__cause__``.

    It goes through ``stream_error`` like any failure: ``[recovery] on_error = {invalid_output =
    "repair"}`` asks the model again with the errors.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        raw_text: str,
        partial_output: Any = None,
        errors: list[dict[str, Any]] | None = None,
        tool_call: str | None = None,
        tool_call_id: str | None = None,
        truncated: bool = False,
        provider: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider)
        self.raw_text = raw_text
        self.partial_output = partial_output
        self.errors: list[dict[str, Any]] = list(errors or [])
        self.tool_call = tool_call
        self.tool_call_id = tool_call_id
        self.truncated = truncated
