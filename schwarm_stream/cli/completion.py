"""``schwarm-stream completion``: the shell completion script."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from ._common import COMPLETE_VAR, PROG, fail


@click.command(
    short_help="Print the shell completion script (bash, zsh, fish).",
    epilog="""\b
Examples:
  eval "$(schwarm-stream completion bash)"     # in ~/.bashrc
  eval "$(schwarm-stream completion zsh)"      # in ~/.zshrc
  schwarm-stream completion fish > ~/.config/fish/completions/schwarm-stream.fish""",
)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL.

    The same script is what click prints for `_SCHWARM_STREAM_COMPLETE=bash_source schwarm-stream`.
    """
    cls = get_completion_class(shell)
    if cls is None:  # the choice above lists only shells click supports; a click without one lands here
        fail(f"this click version has no completion for {shell}", "use bash, zsh or fish")
    root = ctx.find_root().command
    click.echo(cls(root, {}, PROG, COMPLETE_VAR).source())
