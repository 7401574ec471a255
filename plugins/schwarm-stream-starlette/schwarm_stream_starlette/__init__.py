"""Serve schwarm_stream channels to browsers from Starlette or FastAPI.

::

    from starlette.applications import Starlette
    from starlette.routing import Route
    from schwarm_stream_starlette import StreamHub

    hub = StreamHub(on_disconnect="finish")
    pipeline = schwarm_stream.Pipeline([hub.sink])

    async def answer(channel):                       # the producer: any agent loop
        async with pipeline.open(source, metadata=channel.metadata) as stream:
            async for _ in stream:
                pass

    async def start(request):                        # POST /chat -> {"id": ...}
        return JSONResponse({"id": hub.start(answer).id})

    async def events(request):                       # GET /chat/{id}: SSE, Last-Event-ID resume
        return hub.sse(request, request.path_params["id"])

SSE responses come from sse-starlette (keep-alive pings, disconnect detection, send timeout) with
``Cache-Control: no-store`` and ``X-Accel-Buffering: no`` so proxies neither cache nor buffer them.
"""

from ._admin import AdminAuthorize, admin_routes
from ._guard import WebGuard
from ._hub import Authorize, Channel, Connection, Producer, StreamHub, refused_response
from ._serve import ThreadedServer, serve
from .plugin import WebSettings

__version__ = "0.1.0"

__all__ = [
    "AdminAuthorize",
    "Authorize",
    "Channel",
    "Connection",
    "Producer",
    "StreamHub",
    "ThreadedServer",
    "WebGuard",
    "WebSettings",
    "__version__",
    "admin_routes",
    "refused_response",
    "serve",
]
