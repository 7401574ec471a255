"""A loopback provider server for tests, examples and the offline demo.

It speaks the streaming HTTP protocols of OpenAI Chat Completions, OpenAI Responses and Anthropic
Messages well enough for the official SDK clients, pointed at it with ``base_url``, to run unchanged. Each
request is answered from a per-route script of replies, or by a ``responder`` callable, and every reply
can inject a fault: error statuses with retry headers, slow headers, stalls, drips, split bytes, a body
that ends cleanly without the protocol terminator, a truncated chunked body, or a TCP reset.

Example::

    async with ProviderServer() as server:
        server.script("openai-chat", SSEReply(openai_chat_events(["Hel", "lo"])))
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0)
        ...
        assert server.requests[0].json["stream"] is True

Routes: ``POST /v1/chat/completions`` is ``"openai-chat"``, ``POST /v1/responses`` is
``"openai-responses"``, ``GET /v1/responses/{id}`` is ``"openai-responses-retrieve"`` (stream resume,
``?stream=true&starting_after=N``), ``POST /v1/messages`` is ``"anthropic-messages"``; Bedrock, Gemini,
Vertex AI and Ollama routes are listed by :data:`ROUTES` below. Any other path gets a 404 JSON error. Credentials are accepted in either form (``Authorization: Bearer`` or ``x-api-key``)
and only checked when ``api_key`` is given.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

from ._http import (
    Action,
    Connection,
    Drip,
    Head,
    JSONReply,
    RawReply,
    RecordedRequest,
    Reply,
    Sleep,
    SlowHeaders,
    Split,
    SSEReply,
    Stall,
    error_body,
)
from ._wire import (
    anthropic_error_event,
    anthropic_events,
    chunk_text,
    events_after,
    openai_chat_events,
    openai_error_chunk,
    responses_error_events,
    responses_events,
    sse,
)
from .offline import OfflineProvider

__all__ = [
    "ROUTES",
    "Action",
    "Drip",
    "JSONReply",
    "OfflineProvider",
    "ProviderServer",
    "RawReply",
    "RecordedRequest",
    "Reply",
    "Responder",
    "SSEReply",
    "Sleep",
    "SlowHeaders",
    "Split",
    "Stall",
    "ThreadedProviderServer",
    "anthropic_error_event",
    "anthropic_events",
    "chunk_text",
    "events_after",
    "openai_chat_events",
    "openai_error_chunk",
    "responses_error_events",
    "responses_events",
    "sse",
]

#: A callable that answers requests no script is queued for; it may be sync or async.
Responder = Callable[[RecordedRequest], Reply | Awaitable[Reply]]

#: The route names accepted by :meth:`ProviderServer.script`.
ROUTES: tuple[str, ...] = (
    "openai-chat",
    "openai-responses",
    "openai-responses-retrieve",
    "anthropic-messages",
)
#: AWS Bedrock ``POST /model/{modelId}/converse-stream`` and ``/converse`` (boto3's ``endpoint_url`` is
#: :attr:`ProviderServer.url`); the body is binary event-stream frames (``testing._bedrock_wire``).
ROUTES += ("bedrock-converse-stream", "bedrock-converse")
#: Google Gemini ``POST /v1beta/models/{model}:streamGenerateContent`` (``?alt=sse``) and
#: ``:generateContent`` (google-genai's ``http_options={"base_url": server.url}``): ``testing._gemini_wire``.
#: Ollama ``POST /api/chat`` (NDJSON; ``ollama.AsyncClient(host=server.url)``): ``testing._ollama_wire``.
ROUTES += ("gemini-stream", "gemini-generate", "ollama-chat")
#: Vertex AI ``POST /v1beta1/publishers/{publisher}/models/{model}:streamGenerateContent`` (``?alt=sse``;
#: express mode, ``genai.Client(vertexai=True, api_key=...)``) and
#: ``/v1beta1/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}:...`` (project
#: mode: ``project=``, ``location=``, ``credentials=``), also under ``/v1`` and for a tuned model's
#: ``projects/{p}/locations/{l}/endpoints/{id}``; ``:generateContent`` is ``"vertex-generate"``. The
#: client's ``http_options={"base_url": server.vertex_base_url}``. The bodies are Gemini's
#: (``testing._gemini_wire``, ``vertex=True`` adds the fields Vertex fills).
ROUTES += ("vertex-stream", "vertex-generate")

_RETRIEVE = re.compile(r"^/v1/responses/[^/]+$")
_BEDROCK = re.compile(r"^/model/[^/]+/(converse-stream|converse)$")
_GEMINI = re.compile(r"^/v1(?:beta|alpha)?/models/[^/:]+:(streamGenerateContent|generateContent)$")
_VERTEX = re.compile(
    r"^/v1(?:beta1)?/(?:projects/[^/]+/locations/[^/]+/(?:publishers/[^/]+/models|endpoints)"
    r"|publishers/[^/]+/models)/[^/:]+:(streamGenerateContent|generateContent)$"
)


def _route(method: str, path: str) -> str | None:
    if method == "POST" and (bedrock := _BEDROCK.match(path)):
        return f"bedrock-{bedrock.group(1)}"
    if method == "POST" and (gemini := _GEMINI.match(path)):
        return "gemini-stream" if gemini.group(1) == "streamGenerateContent" else "gemini-generate"
    if method == "POST" and (vertex := _VERTEX.match(path)):
        return "vertex-stream" if vertex.group(1) == "streamGenerateContent" else "vertex-generate"
    if method == "POST" and path == "/api/chat":
        return "ollama-chat"
    if method == "POST":
        return {
            "/v1/chat/completions": "openai-chat",
            "/v1/responses": "openai-responses",
            "/v1/messages": "anthropic-messages",
        }.get(path)
    if method == "GET" and _RETRIEVE.match(path):
        return "openai-responses-retrieve"
    return None


def _api_keys(headers: dict[str, str]) -> set[str]:
    """The credentials a request carries, in either provider's form."""
    keys = set()
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        keys.add(auth[7:].strip())
    if "x-api-key" in headers:
        keys.add(headers["x-api-key"])
    if "x-goog-api-key" in headers:  # google-genai's header
        keys.add(headers["x-goog-api-key"])
    return keys


class _Changes:
    """A broadcast "something changed" signal; waiters re-check their condition (no lock, no tasks)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._event.wait()


class ProviderServer:
    """The scripted provider server on an asyncio event loop (an async context manager).

    - ``responder`` answers every request whose route has no scripted reply queued; it may return a
      reply or an awaitable of one (see :class:`OfflineProvider`).
    - ``api_key``: when given, requests must carry it (Bearer, ``x-api-key`` or ``x-goog-api-key``), else
      401 (a Vertex AI client in project mode sends its credentials' token as Bearer).

    Every request, including unknown paths, is appended to :attr:`requests` before it is answered.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
    ) -> None:
        self.requests: list[RecordedRequest] = []
        self._responder = responder
        self._host = host
        self._port = port
        self._api_key = api_key
        self._scripts: dict[str, deque[Reply]] = {route: deque() for route in ROUTES}
        self._server: asyncio.Server | None = None
        # Our own serving task per connection. asyncio's client_connected_cb task is never cancelled:
        # Python 3.11 logs a spurious "Unhandled exception" when that task ends cancelled.
        self._connections: dict[asyncio.Task[None], Connection] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._ids = 0
        self._last_reply: Connection | None = None
        self._changes = _Changes()
        self._closing = False

    # -- addresses ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("ProviderServer is not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url`` for ``openai.OpenAI`` / ``AsyncOpenAI`` (``url + "/v1"``)."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """``base_url`` for ``anthropic.Anthropic`` / ``AsyncAnthropic`` (the SDK appends ``/v1/...``)."""
        return self.url

    @property
    def gemini_base_url(self) -> str:
        """``http_options={"base_url": ...}`` for ``genai.Client(api_key=...)``, the Gemini API (the SDK
        appends ``/v1beta/models/...``): routes ``gemini-stream`` and ``gemini-generate``."""
        return self.url

    @property
    def vertex_base_url(self) -> str:
        """``http_options={"base_url": ...}`` for ``genai.Client(vertexai=True, ...)``, with ``api_key=``
        (express mode) or ``project=``, ``location=`` and ``credentials=`` (the SDK appends
        ``/v1beta1/[projects/P/locations/L/]publishers/google/models/...``): routes ``vertex-stream`` and
        ``vertex-generate``. Vertex needs no other address: the path tells the routes apart."""
        return self.url

    # -- scripting ------------------------------------------------------------------------------------

    def script(self, route: str, *replies: Reply) -> None:
        """Queue ``replies`` for ``route``; each request to that route consumes the next one.

        When a route's queue is empty, the responder answers; without a responder the server replies
        500 with a JSON error naming the route. Safe to call from another thread (appending to a deque
        is atomic), which :class:`ThreadedProviderServer` relies on.
        """
        if route not in self._scripts:
            raise ValueError(f"unknown route {route!r}; expected one of {', '.join(ROUTES)}")
        self._scripts[route].extend(replies)

    def pending(self, route: str) -> int:
        """How many scripted replies for ``route`` have not been used yet."""
        return len(self._scripts[route])

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting connections."""
        if self._server is not None:
            raise RuntimeError("ProviderServer already started")
        self._closing = False
        self._server = await asyncio.start_server(self._on_client, self._host, self._port)

    async def close(self) -> None:
        """Stop accepting, kill open connections and wait until every connection task has finished."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        # A connection accepted just before close() may not have registered yet: loop until none is left.
        while self._connections or self._handlers:
            for task, conn in list(self._connections.items()):
                conn.abort()
                task.cancel()
            await asyncio.gather(*self._connections, *self._handlers, return_exceptions=True)
            await asyncio.sleep(0)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> ProviderServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- observation ----------------------------------------------------------------------------------

    def connections_open(self) -> int:
        """The number of client connections currently open."""
        return len(self._connections)

    async def wait_connections(self, count: int = 0, timeout: float = 5.0) -> None:
        """Wait until at most ``count`` connections are open (e.g. 0 after the client closed).

        Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        await self._wait(lambda: len(self._connections) <= count, timeout, f"connections_open() <= {count}")

    async def wait_disconnect(self, timeout: float = 5.0) -> None:
        """Wait until the client of the most recently started reply has disconnected.

        If no reply has started yet, waits for one first. Raises ``TimeoutError`` after ``timeout``.
        """

        def gone() -> bool:
            return self._last_reply is not None and self._last_reply.disconnected.is_set()

        await self._wait(gone, timeout, "the streaming client to disconnect")

    async def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            await asyncio.wait_for(self._changes.wait_for(predicate), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}") from None

    # -- serving --------------------------------------------------------------------------------------

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing:
            writer.transport.abort()
            return
        self._ids += 1
        handler = asyncio.current_task()
        assert handler is not None
        conn = Connection(
            reader,
            writer,
            self._ids,
            dispatch=self._dispatch,
            on_reply=self._reply_started,
            on_disconnect=lambda _conn: self._changes.notify(),
        )
        task = asyncio.create_task(conn.serve())
        self._connections[task] = conn
        self._handlers.add(handler)
        self._changes.notify()
        try:
            await asyncio.wait({task})  # returns (never raises) when close() cancels the serving task
        finally:
            self._connections.pop(task, None)
            self._handlers.discard(handler)
            self._changes.notify()

    def _reply_started(self, conn: Connection) -> None:
        self._last_reply = conn
        self._changes.notify()

    async def _dispatch(self, head: Head) -> Reply:
        """Record the request, then pick its reply: script queue, responder, or an error."""
        parts = urlsplit(head.target)
        route = _route(head.method, parts.path)
        try:
            payload = json.loads(head.body) if head.body else None
        except ValueError:
            payload = None
        request = RecordedRequest(
            method=head.method,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=head.headers,
            body=head.body,
            json=payload,
            route=route,
            connection_id=head.connection_id,
        )
        self.requests.append(request)
        if route is None:
            return JSONReply(404, error_body(f"no route for {head.method} {parts.path}", "not_found_error"))
        if self._api_key is not None and self._api_key not in _api_keys(head.headers):
            return JSONReply(401, error_body("invalid api key", "authentication_error"))
        queue = self._scripts[route]
        if queue:
            return queue.popleft()
        if self._responder is None:
            return JSONReply(
                500, error_body(f"no scripted reply for route {route!r} and no responder", "api_error")
            )
        try:
            reply = self._responder(request)
            if inspect.isawaitable(reply):
                reply = await reply
        except Exception as exc:  # a test helper must answer, not hang the client
            return JSONReply(500, error_body(f"responder raised {exc!r}", "api_error"))
        return reply


class ThreadedProviderServer:
    """A :class:`ProviderServer` running its own event loop in a daemon thread.

    For sync code (``openai.OpenAI``), the CLI and subprocess tests::

        with ThreadedProviderServer(OfflineProvider()) as server:
            client = openai.OpenAI(api_key="sk-test", base_url=server.openai_base_url)

    The responder runs on the server thread. Use ``threading.Event`` (not ``asyncio.Event``) in
    :class:`Stall` actions.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
    ) -> None:
        self.server = ProviderServer(responder, host=host, port=port, api_key=api_key)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        return self.server.url

    @property
    def openai_base_url(self) -> str:
        """``base_url`` for the OpenAI clients."""
        return self.server.openai_base_url

    @property
    def anthropic_base_url(self) -> str:
        """``base_url`` for the Anthropic clients."""
        return self.server.anthropic_base_url

    @property
    def gemini_base_url(self) -> str:
        """``http_options`` ``base_url`` for a Gemini API ``genai.Client``."""
        return self.server.gemini_base_url

    @property
    def vertex_base_url(self) -> str:
        """``http_options`` ``base_url`` for a Vertex AI ``genai.Client(vertexai=True, ...)``."""
        return self.server.vertex_base_url

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order."""
        return self.server.requests

    def script(self, route: str, *replies: Reply) -> None:
        """Queue replies for ``route`` (see :meth:`ProviderServer.script`)."""
        self.server.script(route, *replies)

    def connections_open(self) -> int:
        """The number of client connections currently open."""
        return self.server.connections_open()

    def wait_connections(self, count: int = 0, timeout: float = 5.0) -> None:
        """Block until at most ``count`` connections are open; ``TimeoutError`` after ``timeout``."""
        self._call(self.server.wait_connections(count, timeout))

    def wait_disconnect(self, timeout: float = 5.0) -> None:
        """Block until the client of the latest reply disconnected; ``TimeoutError`` after ``timeout``."""
        self._call(self.server.wait_disconnect(timeout))

    def start(self) -> None:
        """Start the loop thread and the server; returns once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("ThreadedProviderServer already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="schwarm-provider-server", daemon=True)
        self._thread.start()
        try:
            self._call(self.server.start())
        except BaseException:
            self._stop_loop()
            raise

    def close(self) -> None:
        """Close the server and its connections, then stop and join the loop thread."""
        if self._loop is None:
            return
        try:
            self._call(self.server.close())
        finally:
            self._stop_loop()

    def _call(self, coro: Awaitable[None]) -> None:
        if self._loop is None:
            raise RuntimeError("ThreadedProviderServer is not started")

        async def run() -> None:
            await coro

        asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def __enter__(self) -> ThreadedProviderServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
