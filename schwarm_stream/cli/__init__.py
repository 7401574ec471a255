"""The ``schwarm-stream`` command: ``demo``, ``run``, ``compare``, ``replay``, ``plugins``, ``completion``.

Exit status: 0 when every stream completed, 1 when a stream failed (or ended
without its terminator), 2 for usage and configuration errors.

One module per command (``demo``, ``run``, ``compare``, ``replay``, ``plugins``,
``completion``); what they share is in ``_common`` (exit codes, error output),
``_env`` (configuration checks), ``_sources`` (SDK sources for a prompt) and
``_render`` (terminal output). This module holds the group and :func:`main`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

try:
    import click
except ImportError as exc:  # the command line is an extra
    from .._errors import MissingDependency

    raise MissingDependency(
        "the schwarm-stream command needs the 'click' package: pip install 'schwarm-stream[cli]'"
    ) from exc

from .. import ConfigError, __version__
from . import compare, completion, demo, plugins, replay, run
from ._common import COMPLETE_VAR, PROG
from ._env import check_environment, config_failure

__all__ = ["cli", "main"]


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  schwarm-stream demo                      # a tool-calling agent, offline
  schwarm-stream replay corpus/*.sse --json
  schwarm-stream run --model gpt-4o-mini "Say hi"
  schwarm-stream compare --offline "Hello there"
  schwarm-stream plugins --all

Shell completion: eval "$(schwarm-stream completion bash)" (or zsh, fish).""",
)
@click.version_option(__version__, "-V", "--version", prog_name=PROG)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Stream LLM answers through schwarm_stream: exact, resilient, observable.

    Every command talks to providers through the official SDK clients. `demo`
    and `replay` only use a loopback server on 127.0.0.1 (no API key, no network).
    """
    argv = (ctx.obj or {}).get("argv", []) if isinstance(ctx.obj, dict) else []
    asks_help = {"-h", "--help"} & set(argv)  # a bad setting must not hide the help text
    if ctx.resilient_parsing or asks_help or ctx.invoked_subcommand in (None, "completion"):
        return
    check_environment()  # every command meets bad SCHWARM_STREAM__* settings the same way


for _command in (demo.demo, run.run, compare.compare, replay.replay, plugins.plugins, completion.completion):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``schwarm-stream`` script (and ``python -m schwarm_stream``)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        cli.main(args=args, prog_name=PROG, complete_var=COMPLETE_VAR, obj={"argv": args})
    except ConfigError as exc:  # raised late (e.g. when a stream opens): still a clean usage error
        config_failure(exc, "docs/configuration.md describes every section and key")
