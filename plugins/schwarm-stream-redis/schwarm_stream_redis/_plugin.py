"""The sink plugin: every delivered event of a stream goes to a Redis Stream.

Hook order and what "written before local sinks see it" means here:

- ``stream_start`` (``tryfirst``) writes the start entry and *waits* for it:
  once the stream runs, its key exists, so a reader given the id never gets
  "unknown" for a live stream.
- ``stream_event`` (``tryfirst``) queues the event before any other
  ``stream_event`` / ``stream_chunk`` implementation (SSE sink, recorders) is
  called. The queue is written in delivery order, in pipelined batches. So
  the Redis log has the same order as every local sink, but an event can
  reach a local sink (and the consumer) before Redis has acknowledged it; the
  lag is bounded by ``max_pending`` events (then the stream is paused) and
  by one write round trip. Entry ids are derived from ``seq``, so a client
  that saw event N locally and resumes from N anywhere gets exactly N+1…,
  even if N had not reached Redis yet.
- ``stream_complete`` (``tryfirst``) queues the ``end status=complete``
  entry with the final message summary and waits until Redis acknowledged
  everything: the consumer's ``async for`` ends only after the whole log,
  terminal entry included, is in Redis (or, with ``on_redis_error="fail"``,
  with a :class:`RedisSinkError`).
- ``stream_end`` writes the terminal entry for the other outcomes
  (``error``, ``partial``, ``cancelled``) and stops the writer.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from schwarm_stream import Recovery, StashKey, hookimpl

from ._errors import InvalidStreamRef, RedisSinkError
from ._keys import stream_key, validate_tenant
from ._settings import RedisSettings
from ._writer import LogWriter

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from schwarm_stream import Config, Event, Message, Stream, StreamError

__all__ = ["SECTION", "RedisStreamPlugin", "redis_log"]

log = logging.getLogger("schwarm_stream.redis")

#: The config section the entry-point plugin reads.
SECTION = "redis"

WRITER = StashKey[LogWriter]()


def redis_log(stream: Stream) -> LogWriter | None:
    """The Redis log writer of ``stream`` (key, state, ``degraded`` flag, error), or ``None``."""
    return stream.stash.get(WRITER)


def message_summary(message: Message) -> dict[str, Any]:
    """What the terminal entry says about the message: text, tool calls, finish reason, usage."""
    summary = message.to_dict()
    summary["recovery"] = message.recovery
    summary["id"] = message.id
    summary["model"] = message.model
    return summary


class RedisStreamPlugin:
    """Writes every delivered event of a stream to ``{prefix}:{tenant}:stream:{stream.id}``.

    ``RedisStreamPlugin()`` (what the ``redis`` entry point registers) reads the
    ``[redis]`` config section and stays inactive until ``url`` is set.
    ``RedisStreamPlugin(RedisSettings(...), client=redis_client)`` takes its
    settings (and optionally a ``redis.asyncio.Redis`` client you own) directly;
    then disable the entry point (``[plugins] disable = ["redis"]``) or leave
    ``[redis] url`` unset, since only one writer per stream is used.
    """

    def __init__(self, settings: RedisSettings | None = None, *, client: Redis | None = None) -> None:
        self._settings = settings
        self._client = client
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Redis]] = (
            weakref.WeakKeyDictionary()
        )

    # -- configuration -----------------------------------------------------------------------------

    @hookimpl
    def stream_config_schema(self) -> dict[str, type[BaseModel]] | None:
        # only the config-driven instance owns the section (two instances may be registered)
        return {SECTION: RedisSettings} if self._settings is None else None

    @hookimpl(optionalhook=True)  # optional: older schwarm-stream versions have no such hook
    def stream_active(self, config: Config) -> bool:
        # no url and no client: no stream hook of this instance runs (costs nothing per event)
        if self._client is not None:
            return True
        settings = self._settings
        if settings is None:
            section = config.section(SECTION)
            settings = section if isinstance(section, RedisSettings) else None
        return settings is not None and settings.url is not None

    def settings_for(self, stream: Stream) -> RedisSettings | None:
        """The settings that apply to ``stream`` (``None``: this instance is inactive for it)."""
        if self._settings is not None:
            return self._settings
        section = stream.config.section(SECTION)
        return section if isinstance(section, RedisSettings) else None

    def client_for(self, settings: RedisSettings) -> Redis | None:
        """The client to write with: the one given, else one per (event loop, url)."""
        if self._client is not None:
            return self._client
        if settings.url is None:
            return None
        from redis.asyncio import Redis

        per_loop = self._clients.setdefault(asyncio.get_running_loop(), {})
        client = per_loop.get(settings.url)
        if client is None:
            client = per_loop[settings.url] = Redis.from_url(settings.url)
        return client

    async def aclose(self) -> None:
        """Close the clients this plugin created on the running event loop."""
        per_loop = self._clients.pop(asyncio.get_running_loop(), {})
        for client in per_loop.values():
            await client.aclose()

    # -- the stream ----------------------------------------------------------------------------------

    @hookimpl(tryfirst=True)
    async def stream_start(self, stream: Stream) -> None:
        settings = self.settings_for(stream)
        if settings is None or WRITER in stream.stash:
            return  # inactive, or another instance already writes this stream
        client = self.client_for(settings)
        if client is None:
            return
        tenant: Any = settings.tenant
        if settings.tenant_metadata_key is not None:
            tenant = stream.metadata.get(settings.tenant_metadata_key, tenant)
        try:
            key = stream_key(validate_tenant(tenant), stream.id, prefix=settings.key_prefix)
        except InvalidStreamRef as exc:
            raise RedisSinkError(
                f"cannot log stream to Redis: {exc}", reason="invalid_ref", provider=stream.provider
            ) from None
        writer = LogWriter(client, key=key, tenant=tenant, stream=stream, settings=settings)
        writer.owner = self  # only this instance feeds it (two instances may be registered)
        stream.stash[WRITER] = writer
        info = {
            "stream_id": stream.id,
            "tenant": tenant,
            "provider": stream.provider,
            "model": stream.model,
            "operation": stream.operation,
            "agent_id": stream.agent_id,
        }
        await writer.open(info)

    @hookimpl(tryfirst=True)
    def stream_event(self, stream: Stream, event: Event) -> None:
        writer = stream.stash.get(WRITER)
        if writer is not None and writer.owner is self:
            writer.push(event)

    @hookimpl(tryfirst=True)
    async def stream_complete(self, stream: Stream, message: Message) -> None:
        writer = stream.stash.get(WRITER)
        if writer is None or writer.owner is not self:
            return
        await writer.finish(stream.events_delivered + 1, "complete", message=message_summary(message))
        if writer.state == "failed" and writer.error is not None:
            raise writer.error

    @hookimpl(tryfirst=True)
    def stream_error(self, stream: Stream, error: StreamError) -> Recovery | None:
        # a broken log is not cured by reopening the provider stream
        return Recovery("raise") if isinstance(error, RedisSinkError) else None

    @hookimpl
    async def stream_end(self, stream: Stream) -> None:
        writer = stream.stash.get(WRITER)
        if writer is None or writer.owner is not self:
            return
        seq = stream.events_delivered + 1
        try:
            err = stream.error
            await writer.finish(
                seq,
                stream.outcome or "cancelled",
                message=message_summary(stream.message),
                error={"type": type(err).__name__, "message": str(err)} if err is not None else None,
            )
        finally:
            await writer.close(seq)
