"""The admin endpoint of the stream registry: opt-in, and every request authorized.

Mount the routes only where you want them::

    app = Starlette(routes=[..., *admin_routes(authorize=is_operator)])

- ``GET  {prefix}``               the live streams, ``get_all_stats()`` and the admission's stats;
- ``GET  {prefix}/{id}``          one live stream (404 when there is none);
- ``POST {prefix}/{id}/pause``    likewise ``resume`` and ``cancel`` (404 when there is no such stream).

``authorize(request)`` (sync or async) runs before every request: falsy means **403**. There is no
default: the routes cannot be built without it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from schwarm_stream import Admission, StreamRegistry, stream_registry

__all__ = ["AdminAuthorize", "admin_routes"]

#: ``authorize(request)`` -> truthy to allow an admin request, falsy to deny it (403); may be async.
AdminAuthorize = Callable[[HTTPConnection], "bool | Awaitable[bool]"]

_ACTIONS = ("pause", "resume", "cancel")


def admin_routes(
    *,
    authorize: AdminAuthorize,
    registry: StreamRegistry | None = None,
    admission: Admission | None = None,
    prefix: str = "/admin/streams",
) -> list[Route]:
    """Starlette routes exposing ``registry`` (default: the process-wide one); see the module docstring."""
    if authorize is None or not callable(authorize):
        raise TypeError(
            "admin_routes() needs authorize=: a callable deciding who may see and control streams"
        )
    reg = registry if registry is not None else stream_registry()
    prefix = "/" + prefix.strip("/")

    async def allowed(request: Request) -> bool:
        ok: Any = authorize(request)
        if inspect.isawaitable(ok):
            ok = await ok
        return bool(ok)

    def forbidden() -> Response:
        return JSONResponse(
            {"error": "Forbidden", "message": "not allowed to administer streams"}, status_code=403
        )

    def missing(stream_id: str) -> Response:
        return JSONResponse(
            {"error": "NotFound", "message": f"no live stream {stream_id[:64]!r}"}, status_code=404
        )

    async def overview(request: Request) -> Response:
        if not await allowed(request):
            return forbidden()
        return JSONResponse(
            {
                "streams": [i.to_dict() for i in reg.list()],
                "stats": reg.get_all_stats().to_dict(),
                "admission": admission.stats().to_dict() if admission is not None else None,
            }
        )

    async def one(request: Request) -> Response:
        if not await allowed(request):
            return forbidden()
        stream_id = request.path_params["id"]
        info = reg.info(stream_id)
        return missing(stream_id) if info is None else JSONResponse(info.to_dict())

    async def control(request: Request) -> Response:
        if not await allowed(request):
            return forbidden()
        stream_id, action = request.path_params["id"], request.path_params["action"]
        if action not in _ACTIONS:
            return JSONResponse(
                {
                    "error": "NotFound",
                    "message": f"no action {action[:32]!r}; actions: {', '.join(_ACTIONS)}",
                },
                status_code=404,
            )
        done = getattr(reg, action)(stream_id)
        return JSONResponse({"id": stream_id, "action": action, "ok": True}) if done else missing(stream_id)

    return [
        Route(prefix, overview, methods=["GET"]),
        Route(prefix + "/{id}", one, methods=["GET"]),
        Route(prefix + "/{id}/{action}", control, methods=["POST"]),
    ]
