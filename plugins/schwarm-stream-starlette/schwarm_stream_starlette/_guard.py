"""WebGuard: the request body size limit and (closed unless configured) CORS for a hub's app.

Wrap the whole ASGI app: ``app = hub.guard(Starlette(routes=...))`` (or add it as a Starlette
middleware: ``Middleware(WebGuard, max_body=..., cors_origins=[...])``).

- a request whose ``Content-Length`` exceeds ``max_body`` bytes is answered ``413`` before the endpoint
  runs; a body sent without a length (chunked) fails with ``413`` as soon as it grows past the limit;
- CORS is closed by default: no ``Access-Control-Allow-Origin`` header is ever sent unless
  ``cors_origins`` lists explicit origins (``"*"`` is refused), and then only to those origins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse

__all__ = ["WebGuard"]


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"error": "PayloadTooLarge", "message": f"request body larger than {limit} bytes"}, status_code=413
    )


class WebGuard:
    """ASGI middleware: body size limit (413) and explicit-origin CORS (see the module docstring)."""

    def __init__(
        self, app: Any, *, max_body: int | None = 1_048_576, cors_origins: Sequence[str] = ()
    ) -> None:
        origins = list(cors_origins)
        if any(o.strip() == "*" for o in origins):
            raise ValueError("cors_origins must list explicit origins, not '*'")
        if origins:
            app = CORSMiddleware(
                app,
                allow_origins=origins,
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["content-type", "last-event-id", "authorization"],
            )
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        limit = self.max_body
        if scope["type"] != "http" or limit is None:
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    await _too_large(limit)(scope, receive, send)
                    return
        received = 0

        async def limited() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"request body larger than {limit} bytes")
            return message

        await self.app(scope, limited, send)
