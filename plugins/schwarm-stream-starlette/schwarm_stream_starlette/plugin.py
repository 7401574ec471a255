"""The entry-point plugin: declares and validates the ``[starlette]`` config section.

It implements no per-event hook, so installing the distribution costs streams nothing. A
:class:`~schwarm_stream_starlette.StreamHub` reads the validated section with
:meth:`StreamHub.from_config <schwarm_stream_starlette.StreamHub.from_config>`::

    [starlette]
    on_disconnect = "cancel"   # or "finish" (default)
    cancel_grace = 5.0
    format = "vercel"
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schwarm_stream import hookimpl

__all__ = ["WebSettings", "stream_config_schema"]


class WebSettings(BaseModel):
    """How a :class:`~schwarm_stream_starlette.StreamHub` serves channels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    on_disconnect: Literal["finish", "cancel"] = Field(
        "finish",
        description="when the last client of a channel disconnects: let the producer finish (so a "
        "reconnect can resume), or cancel it after cancel_grace seconds",
    )
    cancel_grace: float = Field(5.0, ge=0, description="seconds a reconnect has before 'cancel' applies")
    ping: float = Field(15.0, gt=0, description="seconds between SSE keep-alive comments")
    send_timeout: float | None = Field(
        30.0, gt=0, description="give up on a client stuck this long on a send"
    )
    history: int = Field(1024, ge=1, description="entries kept per channel for Last-Event-ID resume")
    keep_closed: int = Field(256, ge=0, description="finished channels kept for late resumes")
    retry: int | None = Field(3000, ge=0, description="reconnection delay sent to browsers, ms")
    format: Literal["json", "text", "vercel"] = Field("json", description="event vocabulary")
    expose_errors: bool = Field(False, description="send error messages, not only error types")
    max_body: int | None = Field(
        1_048_576, ge=0, description="largest request body in bytes (413 beyond it; None: no limit)"
    )
    compression: tuple[Literal["zstd", "br", "gzip"], ...] = Field(
        ("zstd", "br", "gzip"),
        description="content codings SSE replies may use when the client accepts them, preferred first "
        "(zstd needs zstandard, br needs brotli; empty: never compress)",
    )
    compression_level: int | None = Field(
        None, description="the coder's level (None: gzip 6, zstd 3, brotli 5: fast enough to flush per event)"
    )
    cors_origins: tuple[str, ...] = Field(
        (), description="origins allowed to read the endpoints cross-origin (empty: CORS closed; '*' refused)"
    )

    @field_validator("cors_origins")
    @classmethod
    def _explicit_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(o.strip() == "*" for o in value):
            raise ValueError("cors_origins must list explicit origins, not '*'")
        return value


@hookimpl
def stream_config_schema() -> dict[str, type[BaseModel]]:
    return {"starlette": WebSettings}
