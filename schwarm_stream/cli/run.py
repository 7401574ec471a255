"""``schwarm-stream run``: one real request, streamed live (or ``--json``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any, TextIO

import click

from .. import Pipeline, StreamError, StreamRegistry, TransportError
from ._common import (
    DEFAULT_URLS,
    EXIT_OK,
    EXIT_STREAM,
    PROVIDERS,
    base_url_option,
    dumps,
    error,
    hint,
    render_event,
    result_dict,
)
from ._env import api_key, load_pipeline
from ._render import Renderer, format_registry, format_stats, wants_color
from ._retries import on_stderr
from ._sources import provider_source


@click.command(
    short_help="One real request, streamed live (or --json).",
    epilog="""\b
Examples:
  export OPENAI_API_KEY=sk-...
  schwarm-stream run --model gpt-4o-mini "Write a haiku about rivers"
  schwarm-stream run --provider anthropic --model claude-sonnet-4-5 --stats "Hi"
  schwarm-stream run --base-url http://localhost:8000/v1 --model my-model --json "Hi"
  schwarm-stream run --config schwarm.toml --model gpt-4o-mini "Hi"

Exit status: 0 complete, 1 the stream failed, 2 usage or configuration error.""",
)
@click.option(
    "--provider",
    type=click.Choice(sorted(PROVIDERS)),
    default="openai",
    show_default=True,
    help="Which SDK and API (the key comes from OPENAI_API_KEY or ANTHROPIC_API_KEY).",
)
@click.option(
    "--base-url",
    callback=base_url_option,
    help="API base URL (an OpenAI-compatible server, a proxy, a local test server).",
)
@click.option("--model", "-m", required=True, help="Model name, as the provider spells it.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML config ([retry], [recovery], [timeouts], [limits], [plugins], plugin sections).",
)
@click.option("--max-tokens", type=click.IntRange(min=1), default=1024, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (message, error, stats).")
@click.option("--stats", "show_stats", is_flag=True, help="Print the stream's statistics at the end.")
@click.argument("prompt")
def run(
    provider: str,
    base_url: str | None,
    model: str,
    config_path: Path | None,
    max_tokens: int,
    as_json: bool,
    show_stats: bool,
    prompt: str,
) -> None:
    """Send PROMPT to a real provider and stream the answer live."""
    key = api_key(provider, "run", "(any non-empty value for a local server that ignores keys)")
    pipeline = load_pipeline(config_path)
    source = provider_source(provider, key, base_url, model, max_tokens, prompt)
    url = base_url or DEFAULT_URLS[provider]
    code = asyncio.run(_run(pipeline, source, url, as_json, show_stats, sys.stdout))
    sys.exit(code)


async def _run(
    pipeline: Pipeline, source: Any, url: str, as_json: bool, show_stats: bool, out: TextIO
) -> int:
    color = wants_color(out)
    r = Renderer(out, color=color and not as_json, live=color and not as_json)
    # Each retry on stderr as it starts: a dead URL is four visible attempts, not seconds of silence.
    pipeline.register(on_stderr(r), name="schwarm-stream-cli.retries")
    pipeline.registry = registry = StreamRegistry()  # this command's streams only
    err: StreamError | None = None
    stream = pipeline.open(source)
    try:
        async with stream:
            async for ev in stream:
                if not as_json:
                    render_event(r, ev)
                    r.status(stream.stats())
    except StreamError as exc:
        err = exc
    message = stream.message
    stats = stream.stats()
    if as_json:
        result = {**result_dict(message, err), "stats": stats.to_dict()}
        out.write(dumps({**result, "registry": registry.get_all_stats().to_dict()}) + "\n")
        out.flush()
    else:
        r.close_tool()
        if show_stats:
            click.echo(format_stats(stats), err=True)
            click.echo(format_registry(registry.get_all_stats()), err=True)
    if err is not None:
        if not as_json:
            tries = f" (after {stats.attempts} attempts)" if stats.attempts > 1 else ""
            error(f"{type(err).__name__}: {err}{tries}")
            if isinstance(err, TransportError) and not err.committed:
                hint(f"could not reach {url}: is the server running and --base-url right?")
        return EXIT_STREAM
    return EXIT_OK
