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

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

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


def _comma_list(value: Any) -> Any:
    """A list setting given as one string: ``a,b`` (or a JSON list ``["a","b"]``) becomes a list.

    Environment variables are strings; a plain name must not need JSON quoting.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            return value  # pydantic reports it as not a list, naming the key
    return [item.strip() for item in text.split(",") if item.strip()]


def _strategies(value: Any) -> Any:
    """``"resume,restart"`` is the list ``["resume", "restart"]``; one name stays one strategy."""
    if isinstance(value, str) and ("," in value or value.strip().startswith("[")):
        return _comma_list(value)
    return value


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
        description="per-provider retry budget: tokens given back per completed stream (a retry takes one)",
    )
    budget_min: int = Field(
        10,
        ge=0,
        description="size of the per-provider token bucket (retries in a burst); 0 turns the budget off",
    )


Strategy = Literal["restart", "continue", "fallback", "resume", "partial", "raise"]
ErrorClass = Literal[
    "incomplete", "timeout", "transport", "provider", "protocol", "invalid_tool_arguments", "limit", "other"
]


class RecoveryConfig(_Section):
    """What to do when a stream breaks after content was delivered (the commit point).

    A strategy, or a list of them (the first one applicable wins, e.g.
    ``["resume", "restart"]``). The default ``raise`` never shows a consumer
    anything it has to take back; ``restart`` needs consumers that honour
    :class:`~schwarm_stream.Reset` events.
    """

    mid_stream: Annotated[Strategy | list[Strategy], BeforeValidator(_strategies)] = Field(
        "raise", description="strategy for retryable failures after the commit point"
    )
    max_recoveries: int = Field(2, ge=0, le=20, description="recoveries per stream after the commit point")
    on_incomplete: Annotated[Strategy | list[Strategy] | None, BeforeValidator(_strategies)] = Field(
        None, description="strategy for a clean end without terminator; default: mid_stream"
    )
    on_error: dict[ErrorClass, Strategy | list[Strategy]] = Field(
        default_factory=dict,
        description="strategy per error class; also recovers classes that are not retryable",
    )
    replay_tool_calls: bool = Field(
        False, description="allow restart/fallback/continue after a tool call was delivered whole"
    )
    fallback_before_commit: Literal["retryable", "any", "never"] = Field(
        "retryable",
        description="use with_fallbacks() sources before content when retries are used up: for "
        "retryable errors, for any error (also 400/401/...), or never",
    )


class TimeoutsConfig(_Section):
    """Timeouts we enforce ourselves (the SDKs' read timeout is 600 s and pings reset it)."""

    first_chunk: float | None = Field(
        30.0, gt=0, description="seconds from opening to the first content event"
    )
    idle: float | None = Field(15.0, gt=0, description="seconds allowed between provider events")
    total: float | None = Field(600.0, gt=0, description="seconds for the whole logical stream")
    slow_hook: float | None = Field(
        5.0, gt=0, description="warn (once per plugin and hook) when an async hook runs longer than this"
    )
    hook: float | None = Field(
        30.0,
        gt=0,
        description="an async hook call running longer than this fails as a PluginError (plugin policy)",
    )


class LimitsConfig(_Section):
    """Byte caps that keep a hostile or broken provider from exhausting memory."""

    max_event_bytes: int = Field(1 << 20, gt=0, description="largest single text or argument fragment")
    max_tool_arguments_bytes: int = Field(4 << 20, gt=0, description="largest arguments of one tool call")
    max_message_bytes: int = Field(16 << 20, gt=0, description="largest whole message (text+reasoning+args)")


class PluginsConfig(_Section):
    """Which plugins take part, and what happens when one fails."""

    enable: Annotated[list[str], NoDecode, BeforeValidator(_comma_list)] = Field(
        default_factory=list, description="entry-point plugins loaded even without autoload"
    )
    disable: Annotated[list[str], NoDecode, BeforeValidator(_comma_list)] = Field(
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
        if env:
            return cls(**_with_plugin_env(cls, data))
        return _no_env(cls, data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc), key=_first_key(exc)) from None
    except SettingsError as exc:  # an environment value pydantic-settings could not even decode
        raise ConfigError(f"invalid configuration from the environment: {exc}") from None


def _with_plugin_env(cls: type[Config], data: dict[str, Any]) -> dict[str, Any]:
    """Add plugin sections from ``SCHWARM_STREAM__SECTION__KEY`` variables.

    pydantic-settings only reads the environment for declared fields; plugin
    sections are declared later, by the plugins. Values stay strings (the
    plugin's model converts them) unless they look like JSON lists or tables.
    """
    merged = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    for name, value in os.environ.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if len(path) < 2 or path[0] in cls.model_fields:
            continue
        parsed: Any = value
        if value[:1] in "[{":
            try:
                parsed = json.loads(value)
            except ValueError:
                pass
        node = merged.setdefault(path[0], {})
        if not isinstance(node, dict):
            continue
        for part in path[1:-1]:
            node = node.setdefault(part, {})
        node.setdefault(path[-1], parsed)  # explicit data wins over the environment
    return merged


def _no_env(cls: type[Config], data: dict[str, Any]) -> Config:
    # BaseSettings reads the environment in __init__; _env_prefix trick: an
    # unlikely prefix means "no environment" for a plain from_dict().
    return cls(_env_prefix="\0schwarm-no-env\0", **data)  # type: ignore[call-arg]


def _loc_key(loc: tuple[Any, ...]) -> str:
    """``retry.attempts``: the dotted key, without pydantic's union-member tags (``literal[...]``)."""
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and "[" in p))


def _first_key(exc: ValidationError) -> str | None:
    errors = exc.errors()
    return _loc_key(errors[0]["loc"]) if errors else None


def format_validation_error(exc: ValidationError, *, prefix: str = "") -> str:
    """One line per problem: ``retry.attempts: Input should be greater than or equal to 1 (got 0)``."""
    lines = []
    seen: set[str] = set()
    for err in exc.errors():
        key = _loc_key(err["loc"])
        if prefix:
            key = f"{prefix}.{key}" if key else prefix
        if key in seen:  # a union reports once per member: the first (the plain value's) says it best
            continue
        seen.add(key)
        if err["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key")
        else:
            lines.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
    return "invalid configuration: " + "; ".join(lines)
