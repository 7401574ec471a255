"""``schwarm-stream compare``: the same prompt to several models at once, side by side."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import Pipeline, Stream, StreamError, StreamRegistry
from ._common import (
    DEFAULT_URLS,
    EXIT_OK,
    EXIT_STREAM,
    PROVIDERS,
    base_url_option,
    dumps,
    error,
    fail,
    hint,
)
from ._env import api_key, load_pipeline
from ._render import format_registry
from ._retries import on_stderr
from ._sources import provider_source

if TYPE_CHECKING:
    from ..multi import ComparisonReport

# --offline: two offline providers that differ only in pace, so the timing columns differ visibly.
# Listed fastest first; the slow one sleeps before each event after the first, so before its first chunk.
OFFLINE_PAIR = (("offline-fast", 0.0), ("offline-slow", 0.02))


@click.command(
    short_help="The same prompt to several models at once: timings, tokens, tool calls, a text diff.",
    epilog="""\b
Examples:
  schwarm-stream compare --offline "Hello there"
  schwarm-stream compare -m gpt-4o-mini -m gpt-4.1-mini "Write a haiku about rivers"
  schwarm-stream compare --provider anthropic -m claude-haiku-4-5 -m claude-sonnet-4-5 --json "Hi"
  schwarm-stream compare --base-url http://localhost:8000/v1 -m model-a -m model-b "Hi"

Exit status: 0 every stream complete, 1 a stream failed, 2 usage or configuration error.""",
)
@click.option(
    "--provider",
    type=click.Choice(sorted(PROVIDERS)),
    default="openai",
    show_default=True,
    help="Which SDK and API, for every model (the key comes from OPENAI_API_KEY or ANTHROPIC_API_KEY).",
)
@click.option(
    "--base-url",
    callback=base_url_option,
    help="API base URL shared by every model (an OpenAI-compatible server, a proxy).",
)
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    help="A model to compare; repeat it (at least two; the same model twice compares two runs).",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Compare two built-in offline providers on 127.0.0.1 (no key, no network); one streams 20 ms "
    "slower per event.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML config applied to every stream (as for `run`).",
)
@click.option("--max-tokens", type=click.IntRange(min=1), default=1024, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.argument("prompt")
def compare(
    provider: str,
    base_url: str | None,
    models: tuple[str, ...],
    offline: bool,
    config_path: Path | None,
    max_tokens: int,
    as_json: bool,
    prompt: str,
) -> None:
    """Send PROMPT to every model at once and compare the streams side by side.

    The report shows, per stream: time to first chunk, duration, chunks, input and
    output tokens, tool calls and whether it completed; then a text diff of each
    answer against the first one's.
    """
    if offline and (models or base_url):
        fail(
            "--offline compares the two built-in offline providers: it takes no --model or --base-url",
            "drop --offline to compare real models, or drop --model/--base-url",
        )
    if not offline and len(models) < 2:
        fail(
            f"compare needs at least two --model options (got {len(models)})",
            "repeat -m: schwarm-stream compare -m MODEL_A -m MODEL_B PROMPT  (or try --offline)",
        )
    pipeline = load_pipeline(config_path)
    # Each retry on stderr as it starts, named by the stream's row (merge tags each stream it opens).
    pipeline.register(on_stderr(label=_row_name), name="schwarm-stream-cli.retries")
    pipeline.registry = registry = StreamRegistry()  # the compared streams only (not the warm-up)
    if offline:
        report = asyncio.run(_measured(provider, _compare_offline(provider, pipeline, max_tokens, prompt)))
    else:
        key = api_key(provider, "compare", "(or try --offline: no key, no network)")
        sources = [provider_source(provider, key, base_url, m, max_tokens, prompt) for m in models]
        report = asyncio.run(_measured(provider, _compare_sources(sources, pipeline)))
    out = sys.stdout
    totals = registry.get_all_stats()
    out.write(
        (dumps({**report.to_dict(), "registry": totals.to_dict()}) if as_json else report.render()) + "\n"
    )
    out.flush()
    if not as_json:
        click.echo(format_registry(totals), err=True)
    failed = [r for r in report.results if not r.complete]
    if failed and not as_json:
        url = base_url or DEFAULT_URLS[provider]
        error(f"{len(failed)} of {len(report.results)} streams did not complete")
        if any((r.error or "").startswith("TransportError") and not r.chunks for r in failed):
            hint(f"could not reach {url}: is --base-url right?")
    sys.exit(EXIT_STREAM if failed else EXIT_OK)


def _row_name(stream: Stream) -> str | None:
    name = stream.metadata.get("merge_source")
    return name if isinstance(name, str) else None


async def _measured(provider: str, comparison: Coroutine[Any, Any, ComparisonReport]) -> ComparisonReport:
    """Warm the SDK up, then run ``comparison``: every stream starts with the same warm process."""
    await _warm_up(provider)
    return await comparison


async def _warm_up(provider: str) -> bool:
    """One unmeasured stream through the same SDK code, from a local offline server (no network).

    The first stream of a process pays for what the SDK sets up on first use, on the event loop:
    the OpenAI client imports its chat resources at the first ``client.chat`` and the chunk models
    are built at the first parse (100-150 ms, measured). In a comparison that lands in the time to
    first chunk of whichever stream opens first, which made "offline-fast" look slower than
    "offline-slow". Best effort: a failure here shows again, and is reported, in the real streams.
    ``True`` when the warm-up stream completed.
    """
    from ..testing.server import OfflineProvider, ProviderServer

    # The built-ins only: an installed plugin (a sink, a recorder) must not see this stream.
    pipeline = Pipeline(config={"plugins": {"autoload": False}})
    try:
        async with ProviderServer(OfflineProvider()) as server:
            url = server.anthropic_base_url if provider == "anthropic" else server.openai_base_url
            source = provider_source(provider, "offline", url, "warm-up", 16, "warm up")
            async with pipeline.open(source) as stream:
                return (await stream.collect()).complete
    except (StreamError, OSError):
        return False


async def _compare_sources(
    sources: Sequence[Any], pipeline: Pipeline, names: Sequence[str] | None = None
) -> ComparisonReport:
    from ..multi import compare as compare_streams

    return await compare_streams(*sources, names=names, pipeline=pipeline)


async def _compare_offline(
    provider: str, pipeline: Pipeline, max_tokens: int, prompt: str
) -> ComparisonReport:
    from contextlib import AsyncExitStack

    from ..testing.server import OfflineProvider, ProviderServer

    async with AsyncExitStack() as servers:
        sources = []
        for name, delay in OFFLINE_PAIR:
            server = await servers.enter_async_context(ProviderServer(OfflineProvider(chunk_delay=delay)))
            url = server.anthropic_base_url if provider == "anthropic" else server.openai_base_url
            sources.append(provider_source(provider, "offline", url, name, max_tokens, prompt))
        return await _compare_sources(sources, pipeline, [name for name, _ in OFFLINE_PAIR])
