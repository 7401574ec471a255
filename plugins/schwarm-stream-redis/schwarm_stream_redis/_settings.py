"""The ``[redis]`` configuration section."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._keys import validate_prefix, validate_tenant

__all__ = ["RedisSettings"]


class RedisSettings(BaseModel):
    """Settings of the Redis log writer (``[redis]`` in the config).

    The plugin installed by the entry point does nothing until ``url`` is set:
    installing the distribution must not make every stream talk to Redis.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(None, description="redis:// URL; None: the entry-point plugin stays inactive")
    tenant: str = Field("default", description="tenant of every stream's key unless metadata names one")
    tenant_metadata_key: str | None = Field(
        "tenant", description="stream metadata key whose value overrides `tenant`; None: ignore metadata"
    )
    key_prefix: str = Field("schwarm", description="first part of every key")
    maxlen: int = Field(
        10_000,
        ge=10,
        description="approximate cap on events per stream (XADD MINID ~ / MAXLEN ~: keeps at least this many)",
    )
    ttl: int = Field(
        3600, ge=1, description="seconds a log lives after its last write (EXPIRE, refreshed per write)"
    )
    on_redis_error: Literal["fail", "degrade"] = Field(
        "fail",
        description="Redis down or slow mid-stream: fail the stream, or go on without Redis "
        "(flagged, logged, and readers are told)",
    )
    write_timeout: float = Field(
        5.0, gt=0, description="seconds one batched write may take before it counts as a failure"
    )
    max_pending: int = Field(
        10_000, ge=1, description="events queued for Redis before the stream is paused until Redis catches up"
    )
    batch_max: int = Field(
        1000,
        ge=1,
        description="flush by size: a write starts once this many events are queued; batched: most events "
        "in one entry (a write takes everything queued); per_event: most entries in one round trip",
    )
    flush_interval: float = Field(
        0.002,
        ge=0,
        le=1.0,
        description="seconds an event may wait for more events to share its write (flush by timer); "
        "0: write as soon as the writer is free",
    )
    write_mode: Literal["batched", "per_event"] = Field(
        "batched",
        description="batched: the events of one write share one Redis entry (one XADD per batch); "
        "per_event: one entry (one XADD) per event, as schwarm-stream-redis 0.1 wrote",
    )

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, v: str) -> str:
        return validate_tenant(v)

    @field_validator("key_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return validate_prefix(v)
