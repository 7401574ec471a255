"""``schwarm-stream plugins``: the plugins a stream would use."""

from __future__ import annotations

import click

from .. import ConfigError, Pipeline
from ._common import dumps, fail


@click.command(
    short_help="List built-in and installed plugins.",
    epilog="""\b
Examples:
  schwarm-stream plugins
  schwarm-stream plugins --all --json""",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
def plugins(as_json: bool, show_all: bool) -> None:
    """List the plugins a stream would use: built-ins and installed entry points."""
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
