"""``schwarm-stream plugins``: the plugins a stream would use; ``enable``/``disable NAME`` change that.

``enable`` and ``disable`` edit the ``[plugins]`` table of the TOML file given by ``--config``
(the file ``run --config`` and ``compare --config`` read; created if missing), changing only the
``enable``/``disable`` lines. Without ``--config`` nothing is written: they print the environment
variable (and the TOML line) that does it, since the environment is the only configuration every
command and ``Pipeline()`` read by default.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .. import Config, ConfigError, Pipeline
from ._common import dumps, fail, hint
from ._env import config_failure
from ._toml_edit import set_table_keys, toml_value

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: ``SCHWARM_STREAM_DISABLE_PLUGINS=a,b`` blocks plugins whatever the config says.
DISABLE_ENV = "SCHWARM_STREAM_DISABLE_PLUGINS"
ENV_KEY = "SCHWARM_STREAM__PLUGINS__{}"


@click.group(
    invoke_without_command=True,
    short_help="List built-in and installed plugins; enable or disable one.",
    epilog="""\b
Examples:
  schwarm-stream plugins
  schwarm-stream plugins --all --json
  schwarm-stream plugins disable metrics --config schwarm.toml
  schwarm-stream plugins enable my-sink                # prints the setting to use""",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool, show_all: bool) -> None:
    """List the plugins a stream would use: built-ins and installed entry points.

    `plugins enable NAME` and `plugins disable NAME` change which take part.
    """
    if ctx.invoked_subcommand is not None:
        return
    try:
        infos = Pipeline().plugins()
    except ConfigError as exc:
        fail(f"bad configuration: {exc}", "check the SCHWARM_STREAM__* environment variables")
    shown = [i for i in infos if show_all or not i.builtin]
    if as_json:
        click.echo(dumps([i.to_dict() for i in shown]))
        return
    if not shown:
        click.echo("no third-party plugins installed (use --all to include the built-ins)")
        return
    for i in shown:
        origin = "built-in" if i.builtin else f"{i.distribution or '?'} {i.version or ''}".strip()
        click.echo(f"{i.name}  [{origin}]  {i.status}")
        if i.hooks:
            click.echo(f"    hooks: {', '.join(i.hooks)}")
        if i.error:
            click.echo(f"    error: {i.error}")


_CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The TOML file to edit ([plugins] table; created if missing). Without it: print the setting.",
)


@plugins.command(
    short_help="Let plugin NAME take part (a built-in, or an installed entry point).",
    epilog="""\b
Examples:
  schwarm-stream plugins enable metrics --config schwarm.toml
  schwarm-stream plugins enable my-sink""",
)
@click.argument("name")
@_CONFIG_OPTION
def enable(name: str, config_path: Path | None) -> None:
    """Enable plugin NAME: take it out of `plugins.disable`.

    An installed entry point also goes into `plugins.enable`, so it loads even with autoload off.
    """
    _change(name, "enable", config_path)


@plugins.command(
    short_help="Keep plugin NAME out of every stream.",
    epilog="""\b
Examples:
  schwarm-stream plugins disable metrics --config schwarm.toml
  schwarm-stream plugins disable my-sink""",
)
@click.argument("name")
@_CONFIG_OPTION
def disable(name: str, config_path: Path | None) -> None:
    """Disable plugin NAME: put it into `plugins.disable` (and out of `plugins.enable`)."""
    _change(name, "disable", config_path)


def _load(config_path: Path | None) -> tuple[str, dict[str, list[str]], Config]:
    """The file's text, its ``[plugins]`` lists (the environment's without a file) and the effective config."""
    text = ""
    try:
        if config_path is not None and config_path.exists():
            text = config_path.read_text(encoding="utf-8")
            table = tomllib.loads(text).get("plugins", {})
            config = Config.from_toml(config_path, env=True)
            current = {k: _names(table.get(k, [])) for k in ("enable", "disable")}
        else:
            config = Config.from_env()
            current = {"enable": list(config.plugins.enable), "disable": list(config.plugins.disable)}
    except ValueError as exc:  # TOMLDecodeError
        fail(f"{config_path}: not valid TOML: {exc}", "fix the TOML syntax at the line and column given")
    except ConfigError as exc:
        config_failure(exc, "fix that key first; docs/configuration.md describes every section and key")
    return text, current, config


def _names(value: object) -> list[str]:
    """A ``[plugins]`` list as written: a TOML array, or one comma-separated string."""
    if isinstance(value, str):
        return [n.strip() for n in value.split(",") if n.strip()]
    return [str(n) for n in value] if isinstance(value, list) else []


def _change(name: str, action: str, config_path: Path | None) -> None:
    text, current, config = _load(config_path)
    try:
        infos = Pipeline(config=config).plugins()
    except ConfigError as exc:
        config_failure(exc, "fix that setting first; docs/configuration.md describes every section and key")
    info = next((i for i in infos if i.name == name), None)
    if info is None:
        known = ", ".join(sorted(i.name for i in infos))
        fail(
            f"unknown plugin {name!r}", f"known plugins: {known} (`schwarm-stream plugins --all` lists them)"
        )
    wanted = {k: [n for n in v if n != name] for k, v in current.items()}
    if action == "disable":
        wanted["disable"].append(name)
    elif not info.builtin:  # a built-in is on unless disabled; an entry point is named to load it
        wanted["enable"].append(name)
    changed = {k: v for k, v in wanted.items() if v != current[k]}
    _validate(config_path, text, wanted)
    if not changed:
        click.echo(f"{name}: already {action}d{f' in {config_path}' if config_path else ''}; nothing changed")
    elif config_path is None:
        _print_settings(name, action, changed)
    else:
        _write(config_path, text, changed)
        click.echo(f"{name}: {action}d in {config_path} ([plugins] {_lines(changed)})")
    _warn_environment(name, action, config_path)


def _validate(config_path: Path | None, text: str, wanted: dict[str, list[str]]) -> None:
    """The new settings must make a valid pipeline (an essential built-in cannot be disabled)."""
    try:
        if config_path is None:
            config = Config.from_dict({"plugins": wanted})
        else:
            data = tomllib.loads(text) if text else {}
            data.setdefault("plugins", {}).update(wanted)
            config = Config.from_dict(data)
        Pipeline(config=config).plugins()
    except ConfigError as exc:
        where = f"; {config_path} is unchanged" if config_path else ""
        fail(f"cannot do that: {exc}{where}")


def _write(config_path: Path, text: str, changed: dict[str, list[str]]) -> None:
    try:
        new_text = set_table_keys(text, "plugins", changed)
    except ValueError as exc:
        fail(
            f"cannot edit {config_path} safely: {exc}; it is unchanged",
            f"set it by hand in [plugins]: {_lines(changed)}",
        )
    tmp = config_path.with_name(config_path.name + ".tmp")
    try:
        tmp.write_text(new_text, encoding="utf-8")
        os.replace(tmp, config_path)  # all or nothing: a crash cannot leave half a config file
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        fail(f"cannot write {config_path}: {exc}")


def _lines(changed: dict[str, list[str]]) -> str:
    return "; ".join(f"{k} = {toml_value(v)}" for k, v in changed.items())


def _print_settings(name: str, action: str, changed: dict[str, list[str]]) -> None:
    click.echo(f"To {action} {name!r}, set (no --config given, so nothing was written):")
    for key, value in changed.items():
        var = ENV_KEY.format(key.upper())
        click.echo(f"  export {var}={','.join(value)}" if value else f"  unset {var}")
    click.echo(f"or in the TOML file you pass to --config: [plugins] {_lines(changed)}")


def _warn_environment(name: str, action: str, config_path: Path | None) -> None:
    """The environment wins over the file: say so when it would undo this change."""
    if action == "enable" and name in [n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",")]:
        hint(f"{DISABLE_ENV} names {name!r}: it stays blocked until you remove it there")
    if config_path is not None:
        for key in ("enable", "disable"):
            var = ENV_KEY.format(key.upper())
            if any(k.upper() == var for k in os.environ):
                hint(f"{var} is set and overrides the file's [plugins] {key}")
