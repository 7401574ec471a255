"""One validated configuration object: from a dict, a TOML file or the environment.

::

    [retry]
    attempts = 4            # total attempts to open a stream before content arrives
    [recovery]
    mid_stream = "restart"
    [timeouts]
    idle = 15.0
    [plugins]
    disable = ["metrics"]

Environment variables use the prefix ``SCHWARM_STREAM__`` and ``__`` between
section and key: ``SCHWARM_STREAM__RETRY__ATTEMPTS=2``. Unknown keys and bad
values are rejected with a :class:`~schwarm_stream.ConfigError` naming the key.
Sections not declared here belong to plugins (``stream_config_schema``) and are
validated when the pipeline is built.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "Config",
    "LimitsConfig",
    "PluginsConfig",
    "RecoveryConfig",
    "RetryConfig",
    "TimeoutsConfig",
]

ENV_PREFIX = "SCHWARM_STREAM__"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryConfig(_Section):
    """Retrying the *opening* of a stream, before any content was delivered."""

    attempts: int = Field(
        4, ge=1, le=50, description="total attempts to open a stream before content arrives"
    )
    initial_wait: float = Field(0.5, ge=0, description="seconds before the first retry")
    max_wait: float = Field(8.0, ge=0, description="cap on the exponential backoff, seconds")
    jitter: float = Field(0.25, ge=0, le=1, description="fraction of the wait removed at random")
    max_retry_after: float = Field(
        60.0, ge=0, description="cap on an honoured Retry-After; longer means give up"
    )
    deadline: float | None = Field(
        120.0, gt=0, description="total seconds for all attempts; None: no deadline"
    )
    budget_ratio: float = Field(
        0.2,
        ge=0,
        description="per-provider retry budget: retries allowed per successful stream (token bucket)",
    )
    budget_min: int = Field(
        10, ge=0, description="retries always allowed per provider before the budget applies"
    )


class RecoveryConfig(_Section):
    """What to do when a stream breaks after content was delivered (the commit point)."""

    mid_stream: Literal["restart", "continue", "fallback", "resume", "partial", "raise"] = "raise"
    max_recoveries: int = Field(2, ge=0, le=20)
    on_incomplete: Literal["restart", "continue", "fallback", "resume", "partial", "raise"] | None = Field(
        None, description="strategy for a clean end without terminator; default: mid_stream"
    )


class TimeoutsConfig(_Section):
    """Timeouts we enforce ourselves (the SDKs' read timeout is 600 s and pings reset it)."""

    first_chunk: float | None = Field(
        30.0, gt=0, description="seconds from opening to the first content event"
    )
    idle: float | None = Field(15.0, gt=0, description="seconds allowed between provider events")
    total: float | None = Field(600.0, gt=0, description="seconds for the whole logical stream")


class LimitsConfig(_Section):
    """Byte caps that keep a hostile or broken provider from exhausting memory."""

    max_event_bytes: int = Field(1 << 20, gt=0, description="largest single text or argument fragment")
    max_tool_arguments_bytes: int = Field(4 << 20, gt=0, description="largest arguments of one tool call")
    max_message_bytes: int = Field(16 << 20, gt=0, description="largest whole message (text+reasoning+args)")


class PluginsConfig(_Section):
    """Which plugins take part, and what happens when one fails."""

    enable: list[str] = Field(
        default_factory=list, description="entry-point plugins loaded even without autoload"
    )
    disable: list[str] = Field(
        default_factory=list, description="plugin names to block (built-in or entry point)"
    )
    autoload: bool = Field(
        True, description="load entry-point plugins; SCHWARM_STREAM_DISABLE_PLUGIN_AUTOLOAD=1 wins"
    )
    policy: Literal["isolate", "strict"] = Field(
        "isolate", description="isolate: a failing hook is reported and skipped; strict: it fails the stream"
    )
    load_errors: Literal["warn", "raise"] = Field(
        "warn", description="an entry point that fails to load: warn and skip, or fail"
    )


class Config(BaseSettings):
    """The whole configuration. Build it with :meth:`from_dict`, :meth:`from_toml` or :meth:`from_env`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="allow",
        frozen=True,
        case_sensitive=False,
    )

    retry: RetryConfig = Field(default_factory=RetryConfig)
    recovery: RecoveryConfig = Field(default_factory=RecoveryConfig)
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    plugins: PluginsConfig = Field(default_factory=PluginsConfig)

    _plugin_sections: dict[str, BaseModel] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _plugin_sections_are_tables(self) -> Config:
        for name, value in (self.model_extra or {}).items():
            if not isinstance(value, Mapping):
                raise ValueError(f"config section {name!r} must be a table, got {type(value).__name__}")
        return self

    # -- constructors -----------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None = None, *, env: bool = False) -> Config:
        """Validate ``data``; with ``env=True`` environment variables override it."""
        return _validated(cls, dict(data or {}), env=env)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], *, env: bool = False) -> Config:
        """Read a TOML file; errors name the file and the key."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {p}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
        try:
            return _validated(cls, data, env=env)
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}", key=exc.key) from None

    @classmethod
    def from_env(cls) -> Config:
        """Defaults overridden by ``SCHWARM_STREAM__SECTION__KEY`` environment variables."""
        return _validated(cls, {}, env=True)

    # -- access -----------------------------------------------------------

    def section(self, name: str) -> Any:
        """A section by name: a built-in section model, or a plugin's section (validated model or raw dict)."""
        if name in type(self).model_fields:
            return getattr(self, name)
        if name in self._plugin_sections:
            return self._plugin_sections[name]
        return (self.model_extra or {}).get(name, {})

    def plugin_sections(self) -> dict[str, Mapping[str, Any]]:
        """Sections not known to the core, by name (they belong to plugins)."""
        return dict(self.model_extra or {})

    def with_plugin_sections(self, validated: dict[str, BaseModel]) -> Config:
        """A copy carrying the plugin sections validated against their schemas."""
        clone = self.model_copy()
        clone._plugin_sections = dict(validated)
        return clone


def _validated(cls: type[Config], data: dict[str, Any], *, env: bool) -> Config:
    try:
        return cls(**data) if env else _no_env(cls, data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc), key=_first_key(exc)) from None


def _no_env(cls: type[Config], data: dict[str, Any]) -> Config:
    # BaseSettings reads the environment in __init__; _env_prefix trick: an
    # unlikely prefix means "no environment" for a plain from_dict().
    return cls(_env_prefix="\0schwarm-no-env\0", **data)  # type: ignore[call-arg]


def _first_key(exc: ValidationError) -> str | None:
    errors = exc.errors()
    return ".".join(str(p) for p in errors[0]["loc"]) if errors else None


def format_validation_error(exc: ValidationError, *, prefix: str = "") -> str:
    """One line per problem: ``retry.attempts: Input should be greater than or equal to 1 (got 0)``."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if prefix:
            key = f"{prefix}.{key}" if key else prefix
        if err["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key")
        else:
            lines.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
    return "invalid configuration: " + "; ".join(lines)
