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

The core declares only ``[plugins]``. Every other section belongs to a plugin,
which declares its model through ``stream_config_schema``: the built-in
plugins' sections (``[retry]``, ``[recovery]``, ``[timeouts]``, ``[limits]``)
are validated with the config itself (``config.retry``); the sections of other
plugins when the pipeline is built.
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

__all__ = ["Config", "ConfigSection", "PluginsConfig", "comma_list", "format_validation_error"]

ENV_PREFIX = "SCHWARM_STREAM__"


def comma_list(value: Any) -> Any:
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


class ConfigSection(BaseModel):
    """Base of a config section model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PluginsConfig(ConfigSection):
    """Which plugins take part, and what happens when one fails."""

    enable: Annotated[list[str], NoDecode, BeforeValidator(comma_list)] = Field(
        default_factory=list, description="entry-point plugins loaded even without autoload"
    )
    disable: Annotated[list[str], NoDecode, BeforeValidator(comma_list)] = Field(
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

    plugins: PluginsConfig = Field(default_factory=lambda: PluginsConfig.model_validate({}))

    #: the built-in plugins' sections, validated with the config (see __init__)
    _builtin_sections: dict[str, BaseModel] = PrivateAttr(default_factory=dict)
    _plugin_sections: dict[str, BaseModel] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        if values.get("_env_prefix", ENV_PREFIX) == ENV_PREFIX:
            # pydantic-settings reads the environment for declared fields only; the
            # built-in sections come from it the same way (explicit values win)
            values = _with_plugin_env(type(self), values, only=set(_builtin_schemas()))
        super().__init__(**values)
        # The built-in plugins declare their sections (retry, recovery, timeouts, limits)
        # through stream_config_schema like any plugin; they are part of the package, so
        # they are validated here, at once, with the same messages as a core field.
        self._builtin_sections = _builtin_sections(self.model_extra or {})

    def __getattr__(self, name: str) -> Any:
        # config.retry, config.timeouts, ...: a built-in plugin's validated section
        if not name.startswith("_"):
            sections = self._builtin()
            if name in sections:
                return sections[name]
        return super().__getattr__(name)  # type: ignore[misc]  # pydantic's: private attrs, extras

    def _builtin(self) -> dict[str, BaseModel]:
        # Read the private dict directly: ``self._builtin_sections`` goes through two ``__getattr__``s
        # (ours, then pydantic's), ~6 µs, and every stream start asks for several sections.
        private = self.__pydantic_private__
        sections: dict[str, BaseModel] | None = private.get("_builtin_sections") if private else None
        if not sections:  # built without __init__ (model_validate, model_construct): validate now
            sections = self._builtin_sections = _builtin_sections(self.model_extra or {})
        return sections

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
        """A section by name: a core or built-in section model, or a plugin's (validated model or raw dict)."""
        builtin = self._builtin()
        if name in builtin:
            return builtin[name]
        if name in _CORE_SECTIONS:
            return getattr(self, name)
        if name in self._plugin_sections:
            return self._plugin_sections[name]
        return (self.model_extra or {}).get(name, {})

    def plugin_sections(self) -> dict[str, Mapping[str, Any]]:
        """Sections not validated with the config, by name (they belong to plugins that are not built in)."""
        builtin = self._builtin()
        return {k: v for k, v in (self.model_extra or {}).items() if k not in builtin}

    @classmethod
    def known_sections(cls) -> list[str]:
        """The sections validated with the config: the core's and the built-in plugins'."""
        return sorted([*cls.model_fields, *_builtin_schemas()])

    def with_plugin_sections(self, validated: dict[str, BaseModel]) -> Config:
        """A copy carrying the plugin sections validated against their schemas."""
        clone = self.model_copy()
        clone._plugin_sections = dict(validated)
        return clone


#: the sections the core itself declares (``[plugins]``), looked up without pydantic's class property
_CORE_SECTIONS = frozenset(Config.model_fields)


def _validated(cls: type[Config], data: dict[str, Any], *, env: bool) -> Config:
    try:
        if env:
            return cls(**_with_plugin_env(cls, data))
        return _no_env(cls, data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc), key=_first_key(exc)) from None
    except SettingsError as exc:  # an environment value pydantic-settings could not even decode
        raise ConfigError(f"invalid configuration from the environment: {exc}") from None


def _with_plugin_env(
    cls: type[Config], data: dict[str, Any], *, only: set[str] | None = None
) -> dict[str, Any]:
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
        if len(path) < 2 or path[0] in cls.model_fields:  # pydantic-settings reads the core's own
            continue
        if only is not None and path[0] not in only:
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


_NO_ENV = "\0schwarm-no-env\0"


def _no_env(cls: type[Config], data: dict[str, Any]) -> Config:
    # BaseSettings reads the environment in __init__; _env_prefix trick: an
    # unlikely prefix means "no environment" for a plain from_dict().
    return cls(_env_prefix=_NO_ENV, **data)


def _loc_key(loc: tuple[Any, ...]) -> str:
    """``retry.attempts``: the dotted key, without pydantic's union-member tags (``literal[...]``)."""
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and "[" in p))


def _first_key(exc: ValidationError) -> str | None:
    errors = exc.errors()
    return _loc_key(errors[0]["loc"]) if errors else None


def _builtin_schemas() -> dict[str, type[BaseModel]]:
    """The sections the built-in plugins declare (asked through their ``stream_config_schema``)."""
    from ._manager import builtin_config_schemas

    return builtin_config_schemas()


def _builtin_sections(raw: Mapping[str, Any]) -> dict[str, BaseModel]:
    """Validate the built-in plugins' sections of ``raw``; errors name ``section.key`` as a field's would."""
    out: dict[str, BaseModel] = {}
    errors: list[Any] = []
    for name, model in _builtin_schemas().items():
        try:
            out[name] = model.model_validate(raw.get(name, {}))
        except ValidationError as exc:
            errors.extend({**e, "loc": (name, *e["loc"])} for e in exc.errors())
    if errors:
        raise ValidationError.from_exception_data("Config", errors)
    return out


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
