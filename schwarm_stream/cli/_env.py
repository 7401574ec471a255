"""Configuration and environment checks: every command meets a bad setting the same clean way (exit 2)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

from .. import Config, ConfigError, Pipeline
from ._common import PROVIDERS, fail


def config_failure(exc: ConfigError, hint: str) -> NoReturn:
    """A configuration error as ``error: bad configuration (key ...)`` plus a hint, exit 2."""
    where = f" (key {exc.key!r})" if exc.key else ""
    fail(f"bad configuration{where}: {exc}", hint)


def check_environment() -> None:
    """Validate the environment's settings and plugin sections now, before a command starts."""
    try:
        Pipeline(config=Config.from_env()).plugins()
    except ConfigError as exc:
        config_failure(exc, "fix or unset that SCHWARM_STREAM__* variable; docs/configuration.md lists them")


def load_pipeline(config_path: Path | None) -> Pipeline:
    """The pipeline for ``--config FILE`` (environment variables override it), or the environment's."""
    try:
        config = Config.from_toml(config_path, env=True) if config_path else Config.from_env()
        pipeline = Pipeline(config=config)
        pipeline.plugins()  # builds it now: plugin sections are validated here, not mid-stream
    except ConfigError as exc:
        if config_path and "not valid TOML" in str(exc):
            hint = "fix the TOML syntax at the line and column given"
        elif config_path and "not found" in str(exc):
            hint = "check the path given to --config"
        else:
            hint = "fix or remove that key; every section and key is described in docs/configuration.md"
        config_failure(exc, hint)
    return pipeline


def api_key(provider: str, command: str, hint: str) -> str:
    """The provider's key from its environment variable; a usage error naming the variable when unset."""
    env = PROVIDERS[provider]
    if env is None:  # the SDK's own credential chain (bedrock: boto3)
        return ""
    key = os.environ.get(env)
    if not key:
        fail(
            f"{env} is not set: `{command} --provider {provider}` needs an API key",
            f"export {env}=...  {hint}",
        )
    return key
