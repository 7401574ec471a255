"""How a protocol source's request reaches the provider: the transport it is given.

A protocol source (:mod:`._openai_chat`, :mod:`._openai_responses`,
:mod:`._anthropic`) describes each attempt as a :class:`Call`; its
:class:`Transport` sends it and yields the response body as SSE events, every
failure raised as a typed :class:`~schwarm_stream.StreamError`. Normalization,
completion and resume stay with the protocol, so both transports give the same
events, message and errors:

- :class:`SdkTransport`: through the official SDK client (``openai`` /
  ``anthropic``, async or sync): the SDK sends the request (auth, base URL,
  its status errors); we read the raw body. That is exact where the SDK's own
  stream is not (it cannot tell ``[DONE]`` from a clean EOF) and ~6x cheaper
  per chunk than building SDK models (research/perf.md, b1 vs h3).
- :class:`HttpxTransport`: one plain ``httpx`` request, no SDK imported; HTTP
  statuses become the same :class:`~schwarm_stream.ProviderError` fields the
  SDK path reports.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from .._classify import classify, http_status_error, redact_value
from .._errors import ProtocolError, ProviderError, StreamError
from ._base import require, without_retries
from ._sse import SSE, SSEReader

if TYPE_CHECKING:
    import httpx

__all__ = [
    "Call",
    "HttpxTransport",
    "SdkTransport",
    "Transport",
    "check_content_type",
    "frame_events",
    "sdk_body",
    "status_error",
]


class Call(NamedTuple):
    """One streaming request, in terms both transports understand.

    ``endpoint`` is one of ``chat.completions``, ``responses``, ``responses.retrieve``
    and ``messages``; ``body`` is the request (the SDK's keyword arguments, which are
    the JSON body); ``retrieve`` is ``(response_id, starting_after)`` for
    ``responses.retrieve``.
    """

    endpoint: str
    body: Mapping[str, Any]
    retrieve: tuple[str, int] | None = None


class Transport(ABC):
    """Sends a :class:`Call` and reads its response body as SSE events."""

    #: The client the requests go through (an SDK client, an ``httpx.AsyncClient`` or ``None``).
    client: Any = None

    @abstractmethod
    def events(self, call: Call, *, provider: str, max_event_bytes: int) -> AsyncIterator[SSE]:
        """The response body's SSE events (the last one maybe :attr:`SSE.unterminated`).

        Every failure is a :class:`~schwarm_stream.StreamError`; closing the iterator
        (``aclose``) releases the response: a body not read to its end closes the
        connection, which stops the provider's generation.
        """

    def body(self, call: Call, *, provider: str) -> AsyncIterator[bytes] | None:
        """The response body's raw bytes, for a source that frames the SSE itself; ``None``: not offered.

        The same contract as :meth:`events` (typed failures, ``aclose`` releases the
        response), one level down: the pieces as read. A source that frames inline
        saves an iterator layer per event (the Chat Completions source does, with
        :func:`frame_events`'s framing); a transport that offers only :meth:`events`
        is read through it.
        """
        return None


# -- through the official SDK client --------------------------------------------------

_DONE = object()


def _retrieve(client: Any, call: Call) -> Any:
    if call.retrieve is None:
        raise ValueError("responses.retrieve needs (response_id, starting_after)")
    response_id, after = call.retrieve
    return client.responses.with_streaming_response.retrieve(response_id, stream=True, starting_after=after)


#: Endpoint -> the SDK's streaming-response context manager for it.
_SDK_OPENERS: dict[str, Callable[[Any, Call], Any]] = {
    "chat.completions": lambda c, call: c.chat.completions.with_streaming_response.create(**call.body),
    "responses": lambda c, call: c.responses.with_streaming_response.create(**call.body),
    "responses.retrieve": _retrieve,
    "messages": lambda c, call: c.messages.with_streaming_response.create(**call.body),
}


class SdkTransport(Transport):
    """Requests through an official SDK client, its own retries off (retry is ours)."""

    def __init__(self, client: Any) -> None:
        self.client = without_retries(client)

    def events(self, call: Call, *, provider: str, max_event_bytes: int) -> AsyncIterator[SSE]:
        return frame_events(self.body(call, provider=provider), provider=provider, max_event_bytes=max_event_bytes)

    def body(self, call: Call, *, provider: str) -> AsyncIterator[bytes]:
        opener = _SDK_OPENERS[call.endpoint]
        client = self.client
        return sdk_body(lambda: opener(client, call), provider=provider)


async def _sync_bytes(it: Iterator[bytes], busy: list[bool]) -> AsyncIterator[bytes]:
    # A sync client blocks on every read: do the reads in a worker thread.
    # busy[0] stays True when we were cancelled while a read is still blocked there.
    while True:
        busy[0] = True
        chunk = await asyncio.to_thread(next, it, _DONE)
        busy[0] = False
        if not isinstance(chunk, bytes):  # _DONE
            return
        yield chunk


def _shutdown_socket(response: Any) -> None:
    """Wake a worker thread blocked reading the body of a sync client's response.

    Closing a socket does not interrupt a ``recv`` already blocked on it in another
    thread; ``shutdown`` does. Without this, cancelling a stream read through a sync
    SDK client would leave the connection (and the thread) waiting for the provider.
    """
    http = getattr(response, "http_response", response)
    stream = getattr(http, "extensions", {}).get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass


def check_content_type(headers: Any, provider: str) -> None:
    """A 2xx answer that is not an event stream is a gateway's, not the provider's."""
    ctype = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype and ctype != "text/event-stream":
        raise ProtocolError(
            f"{provider}: expected a text/event-stream response, got {ctype!r} "
            "(a proxy or gateway answered instead of the provider?)",
            provider=provider,
        )


class _SyncEntry:
    """A sync client's ``__enter__`` run in a worker thread, which the awaiting task may abandon.

    A task cancelled while the worker is still connecting never receives the response; whoever
    comes second (the worker finishing, or the task giving up) closes it, so the provider's
    connection is not left open until the garbage collector finds it.
    """

    def __init__(self, cm: Any) -> None:
        self._cm = cm
        self._lock = threading.Lock()
        self._abandoned = False
        self._entered = False

    def enter(self) -> Any:
        response = self._cm.__enter__()
        with self._lock:
            self._entered = True
            abandoned = self._abandoned
        if abandoned:
            self._cm.__exit__(None, None, None)
        return response

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            entered = self._entered
        if entered:  # the worker returned a response nobody will read: close it off the loop
            threading.Thread(target=self._cm.__exit__, args=(None, None, None), daemon=True).start()


async def _enter_in_thread(cm: Any) -> Any:
    entry = _SyncEntry(cm)
    try:
        return await asyncio.to_thread(entry.enter)
    except asyncio.CancelledError:
        entry.abandon()
        raise


async def frame_events(
    body: AsyncIterator[bytes], *, provider: str, max_event_bytes: int
) -> AsyncIterator[SSE]:
    """The SSE events of a transport's :meth:`~Transport.body` (closed when this iterator is)."""
    reader = SSEReader(provider=provider, max_event_bytes=max_event_bytes, unterminated=True)
    feed = reader.feed
    try:
        async for raw in body:
            for sse in feed(raw):
                yield sse
        for sse in reader.end():
            yield sse
    finally:
        await body.aclose()  # type: ignore[attr-defined]  # now, not at GC


async def sdk_body(open_response: Callable[[], Any], *, provider: str) -> AsyncIterator[bytes]:
    """Enter ``open_response()`` (an SDK ``with_streaming_response`` context manager,
    async or sync) and yield the body's bytes as read; every failure is a typed error."""
    cm = open_response()
    is_async = hasattr(cm, "__aenter__")
    try:
        response = await cm.__aenter__() if is_async else await _enter_in_thread(cm)
    except StreamError:
        raise
    except Exception as exc:
        raise classify(exc, provider=provider) from exc
    busy = [False]
    try:
        check_content_type(response.headers, provider)
        body = response.iter_bytes() if is_async else _sync_bytes(iter(response.iter_bytes()), busy)
        try:
            async for raw in body:
                yield raw
        except StreamError:
            raise
        except Exception as exc:
            raise classify(exc, provider=provider) from exc
        finally:  # closed now rather than by the garbage collector
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()
    finally:
        if is_async:
            await cm.__aexit__(None, None, None)
        else:
            if busy[0]:  # a worker thread is still blocked reading the body
                _shutdown_socket(response)
            await asyncio.to_thread(cm.__exit__, None, None, None)


# -- native httpx ----------------------------------------------------------------------

try:  # orjson is optional (extra "fast"); it is ~3x faster than json for chunk-sized payloads
    import orjson

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value)

except ImportError:  # pragma: no cover - exercised only without the extra

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


#: Error bodies are read for the message only; a gateway's HTML page can be large.
_MAX_ERROR_BODY = 64 << 10
#: Read timeouts are the timeouts plugin's job (first chunk / idle / total); this is a safety net.
_DEFAULT_TIMEOUT = {"connect": 10.0, "read": 600.0, "write": 30.0, "pool": 30.0}
#: Endpoint -> path after ``base_url`` (each SDK's convention: OpenAI's base URL includes
#: ``/v1``, Anthropic's does not).
_PATHS = {"chat.completions": "/chat/completions", "responses": "/responses", "messages": "/v1/messages"}


def status_error(status: int, headers: Mapping[str, str], body: bytes, *, provider: str) -> ProviderError:
    """The :class:`ProviderError` for a non-2xx response (same fields as the SDK sources report)."""
    parsed: Any = None
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    etype = None
    message = body[:200].decode("utf-8", "replace").strip() if body else ""
    if isinstance(parsed, Mapping):
        inner = parsed.get("error", parsed)
        if isinstance(inner, Mapping):
            etype = inner.get("type") or None
            message = str(inner.get("message") or message)
        elif isinstance(inner, str):
            message = inner
    return http_status_error(
        status,
        headers,
        message=message or "no body",
        error_type=etype,
        body=redact_value(
            parsed if parsed is not None else (body.decode("utf-8", "replace") if body else None)
        ),
        provider=provider,
    )


async def _error_body(response: httpx.Response) -> bytes:
    body = b""
    try:
        async for piece in response.aiter_bytes():
            body += piece
            if len(body) >= _MAX_ERROR_BODY:
                break
    except Exception:  # the error status is what matters; a broken error body is not
        pass
    return body


class HttpxTransport(Transport):
    """One plain HTTP request per call, over ``client`` (an ``httpx.AsyncClient``, shared
    between streams) or, without one, a client of its own per stream, closed with it.

    ``headers`` are sent with every request (authentication, API version, the caller's own);
    ``timeout`` (anything ``httpx.Timeout`` takes) applies to this transport's requests.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
        timeout: Any = None,
    ) -> None:
        self.httpx = require("httpx", "native")
        self.base_url = base_url.rstrip("/")
        self.headers = {"accept": "text/event-stream", **(headers or {})}
        self.client = client
        self.timeout = timeout

    def request(self, call: Call) -> tuple[str, str, bytes | None]:
        """``(method, url, body)`` of the HTTP request for ``call``."""
        if call.endpoint == "responses.retrieve":
            if call.retrieve is None:
                raise ValueError("responses.retrieve needs (response_id, starting_after)")
            response_id, after = call.retrieve
            return "GET", f"{self.base_url}/responses/{response_id}?stream=true&starting_after={after}", None
        return "POST", self.base_url + _PATHS[call.endpoint], _dumps(call.body)

    def events(self, call: Call, *, provider: str, max_event_bytes: int) -> AsyncIterator[SSE]:
        return frame_events(self.body(call, provider=provider), provider=provider, max_event_bytes=max_event_bytes)

    async def body(self, call: Call, *, provider: str) -> AsyncIterator[bytes]:
        httpx = self.httpx
        own = self.client is None
        client = (
            httpx.AsyncClient(timeout=self.timeout or httpx.Timeout(**_DEFAULT_TIMEOUT))
            if own
            else self.client
        )
        response = None
        try:
            try:
                method, url, content = self.request(call)
                headers = self.headers
                if content is not None:
                    headers = {**headers, "content-type": "application/json"}
                request = client.build_request(method, url, content=content, headers=headers)
                if self.timeout is not None and not own:
                    request.extensions["timeout"] = httpx.Timeout(self.timeout).as_dict()
                response = await client.send(request, stream=True)
                if response.status_code >= 300:
                    raise status_error(
                        response.status_code, response.headers, await _error_body(response), provider=provider
                    )
                check_content_type(response.headers, provider)
            except StreamError:
                raise
            except Exception as exc:  # connection refused, connect timeout, ...
                raise classify(exc, provider=provider) from exc
            body = response.aiter_bytes()
            try:
                async for raw in body:
                    yield raw
            except StreamError:
                raise
            except Exception as exc:  # reset, read timeout, ... in the middle of the body
                raise classify(exc, provider=provider) from exc
            finally:
                await body.aclose()  # now, not at GC
        finally:
            # Closing a response whose body was not read to the end closes its
            # connection: a cancelled stream stops the provider's generation. One
            # read to the end went back to the client's pool already.
            if response is not None:
                await response.aclose()
            if own:
                await client.aclose()
