"""The ``schwarm-stream`` command: ``demo``, ``run``, ``compare``, ``replay``, ``plugins``, ``completion``.

Exit status: 0 when every stream completed, 1 when a stream failed (or ended
without its terminator), 2 for usage and configuration errors.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import click

from ._errors import ConfigError, MissingDependency, StreamError, TransportError
from ._events import Chunk, Reset, ToolCallDelta
from ._message import Message
from ._pipeline import Pipeline
from ._render import Renderer, format_stats, wants_color
from ._version import __version__

if TYPE_CHECKING:
    from .multi import ComparisonReport

__all__ = ["cli", "main"]

PROG = "schwarm-stream"
COMPLETE_VAR = "_SCHWARM_STREAM_COMPLETE"
PROVIDERS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
DEFAULT_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
ROUTES = ("openai-chat", "openai-responses", "anthropic-messages")

EXIT_OK, EXIT_STREAM, EXIT_USAGE = 0, 1, 2

WEATHER_TOOL_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name, e.g. Paris"}},
    "required": ["city"],
}


def _fail(message: str, hint: str | None = None, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    if hint:
        click.echo(click.style("hint: ", fg="yellow") + hint, err=True)
    sys.exit(code)


def _check_base_url(value: str | None) -> str | None:
    """An URL that cannot work is a usage error (exit 2) now, not four failed connection attempts later."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL with a host")
    return value


def _error_dict(error: BaseException | None) -> dict[str, str] | None:
    return None if error is None else {"type": type(error).__name__, "message": str(error)}


def _result_dict(message: Message, error: BaseException | None) -> dict[str, Any]:
    """The ``--json`` shape: the message summary plus ``error``."""
    return {**message.to_dict(), "error": _error_dict(error)}


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)


# ---------------------------------------------------------------------------------------------------
# the group


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
    _check_environment()  # every command meets bad SCHWARM_STREAM__* settings the same way


def _check_environment() -> None:
    """Validate the environment's settings and plugin sections now, before a command starts."""
    from .config import Config

    try:
        Pipeline(config=Config.from_env()).plugins()
    except ConfigError as exc:
        _config_failure(exc, "fix or unset that SCHWARM_STREAM__* variable; docs/configuration.md lists them")


def _config_failure(exc: ConfigError, hint: str) -> NoReturn:
    where = f" (key {exc.key!r})" if exc.key else ""
    _fail(f"bad configuration{where}: {exc}", hint)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``schwarm-stream`` script (and ``python -m schwarm_stream``)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        cli.main(args=args, prog_name=PROG, complete_var=COMPLETE_VAR, obj={"argv": args})
    except ConfigError as exc:  # raised late (e.g. when a stream opens): still a clean usage error
        _config_failure(exc, "docs/configuration.md describes every section and key")


# ---------------------------------------------------------------------------------------------------
# demo


def get_weather(city: str) -> dict[str, Any]:
    """The demo's tool: a deterministic, offline weather report."""
    return {"city": city, "temperature_c": 18 + len(city) % 7, "conditions": "partly cloudy"}


@cli.command(
    short_help="A tool-calling agent loop on the offline provider (no key, no network).",
    epilog="""\b
Examples:
  schwarm-stream demo
  schwarm-stream demo --provider anthropic --prompt "Weather in Oslo?"
  schwarm-stream demo --faults             # truncation caught, reset restarted, partial JSON
  schwarm-stream demo --json | jq .text""",
)
@click.option(
    "--provider",
    type=click.Choice(["openai", "anthropic", "responses"]),
    default="openai",
    show_default=True,
    help="SDK and protocol: OpenAI Chat Completions, Anthropic Messages or OpenAI Responses.",
)
@click.option("--prompt", default="What's the weather in Paris?", show_default=True, help="The user message.")
@click.option(
    "--chunk-delay",
    type=click.FloatRange(min=0),
    default=0.02,
    show_default=True,
    help="Seconds between streamed events, so streaming is visible.",
)
@click.option("--max-turns", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per turn instead.")
@click.option(
    "--faults",
    is_flag=True,
    help="Instead: a truncated stream the SDK calls a success, caught; a reset mid-answer, restarted; "
    "a tool call's arguments as partial JSON.",
)
def demo(provider: str, prompt: str, chunk_delay: float, max_turns: int, as_json: bool, faults: bool) -> None:
    """Run a tool-calling agent loop on the built-in offline provider.

    The official SDK client talks to a local server on 127.0.0.1 that plays a
    deterministic model: it calls `get_weather`, the tool runs here, and the
    next turn answers with the result. No API key, no network.
    """
    out = sys.stdout
    if faults:
        from ._demo_faults import run_fault_scenes

        sys.exit(EXIT_OK if asyncio.run(run_fault_scenes(out)) else EXIT_STREAM)
    code = asyncio.run(_demo(provider, prompt, chunk_delay, max_turns, as_json, out))
    sys.exit(code)


def _demo_source(provider: str, server: Any, prompt: str) -> Any:
    from .sources import anthropic_messages, openai_chat, openai_responses

    messages = [{"role": "user", "content": prompt}]
    try:
        if provider == "anthropic":
            import anthropic

            client: Any = anthropic.AsyncAnthropic(api_key="offline", base_url=server.anthropic_base_url)
            tool = {
                "name": "get_weather",
                "description": "Current weather",
                "input_schema": WEATHER_TOOL_SCHEMA,
            }
            return anthropic_messages(
                client, model="offline", max_tokens=512, messages=messages, tools=[tool]
            )
        import openai

        client = openai.AsyncOpenAI(api_key="offline", base_url=server.openai_base_url)
        if provider == "responses":
            tool = {"type": "function", "name": "get_weather", "parameters": WEATHER_TOOL_SCHEMA}
            return openai_responses(client, model="offline", input=prompt, tools=[tool])
        tool = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_TOOL_SCHEMA}}
        return openai_chat(client, model="offline", messages=messages, tools=[tool])
    except ImportError as exc:
        extra = "anthropic" if provider == "anthropic" else "openai"
        _fail(f"the demo needs the {extra} SDK ({exc})", f"pip install 'schwarm-stream[{extra}]'")


async def _demo(
    provider: str, prompt: str, chunk_delay: float, max_turns: int, as_json: bool, out: TextIO
) -> int:
    from .agent import ToolResult, TurnEnd, TurnStart, agent_loop
    from .testing.server import OfflineProvider, ProviderServer

    color = wants_color(out)
    r = Renderer(out, color=color and not as_json, live=color and not as_json)
    async with ProviderServer(OfflineProvider(chunk_delay=chunk_delay)) as server:
        source = _demo_source(provider, server, prompt)
        loop = agent_loop(
            source, tools={"get_weather": get_weather}, max_turns=max_turns, pipeline=Pipeline()
        )
        if not as_json:
            sdk = "Anthropic" if provider == "anthropic" else "OpenAI"
            r.line(f"schwarm-stream demo · offline provider at {server.url} · {sdk} SDK", dim=True)
            r.line(f"user: {prompt}", bold=True)
        try:
            async for ev in loop:
                if as_json:
                    if isinstance(ev, TurnEnd):
                        out.write(_dumps(_turn_dict(ev)) + "\n")
                        out.flush()
                    continue
                if isinstance(ev, TurnStart):
                    r.line(f"assistant (turn {ev.turn}):", fg="magenta", bold=True)
                elif isinstance(ev, (Chunk, ToolCallDelta, Reset)):
                    _render_event(r, ev)
                    if loop.stream is not None:
                        r.status(loop.stream.stats())
                elif isinstance(ev, ToolResult):
                    r.tool_result(ev)
                elif isinstance(ev, TurnEnd) and ev.stats is not None:
                    r.stats_line(ev.stats)
        except StreamError as err:
            if as_json:
                message = err.partial or Message()
                out.write(_dumps({"turn": len(loop.turns) + 1, **_result_dict(message, err)}) + "\n")
            else:
                r.end_line()
                click.echo(click.style("error: ", fg="red", bold=True) + str(err), err=True)
            return EXIT_STREAM
    if not as_json:
        chunks = sum(t.stats.chunks for t in loop.turns)
        calls = sum(len(t.message.tool_calls) for t in loop.turns)
        attempts = sum(t.stats.attempts for t in loop.turns)
        ttft = loop.turns[0].stats.time_to_first_token if loop.turns else None
        ttft_text = "n/a" if ttft is None else f"{ttft * 1000:.0f} ms"
        retries = attempts - len(loop.turns)  # one request per turn; the rest were retries
        r.line(
            f"summary: {_plural(len(loop.turns), 'turn')} · {_plural(chunks, 'chunk')} · "
            f"time to first token {ttft_text} · {_plural(calls, 'tool call')} · "
            f"{'no retries' if retries == 0 else _plural(retries, 'retry', 'retries')} · outcome {loop.outcome}",
            bold=True,
        )
        if loop.outcome == "max_turns":
            click.echo(
                click.style("error: ", fg="red", bold=True)
                + f"the model still called tools after {_plural(max_turns, 'turn')} (--max-turns {max_turns})",
                err=True,
            )
    return EXIT_OK if loop.outcome == "complete" else EXIT_STREAM


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _turn_dict(ev: Any) -> dict[str, Any]:
    return {
        "turn": ev.turn,
        **_result_dict(ev.message, None),
        "tool_results": [
            {"id": r.call.id, "name": r.call.name, "content": r.content, "error": r.error} for r in ev.results
        ],
        "stats": ev.stats.to_dict() if ev.stats is not None else None,
    }


def _render_event(r: Renderer, ev: Any) -> None:
    if isinstance(ev, Chunk):
        r.text(ev.text, ev.kind)
    elif isinstance(ev, ToolCallDelta):
        r.tool_delta(ev)
    elif isinstance(ev, Reset):
        r.reset(ev)


# ---------------------------------------------------------------------------------------------------
# run


@cli.command(
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
    callback=lambda _ctx, _param, value: _check_base_url(value),
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
    env = PROVIDERS[provider]
    api_key = os.environ.get(env)
    if not api_key:
        _fail(
            f"{env} is not set: `run --provider {provider}` needs an API key",
            f"export {env}=...  (any non-empty value for a local server that ignores keys)",
        )
    pipeline = _pipeline(config_path)
    source = _run_source(provider, api_key, base_url, model, max_tokens, prompt)
    url = base_url or DEFAULT_URLS[provider]
    out = sys.stdout
    code = asyncio.run(_run(pipeline, source, url, as_json, show_stats, out))
    sys.exit(code)


def _pipeline(config_path: Path | None) -> Pipeline:
    from .config import Config

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
        _config_failure(exc, hint)
    return pipeline


def _run_source(
    provider: str, api_key: str, base_url: str | None, model: str, max_tokens: int, prompt: str
) -> Any:
    from .sources import anthropic_messages, openai_chat

    messages = [{"role": "user", "content": prompt}]
    try:
        if provider == "anthropic":
            import anthropic

            client: Any = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url)
            return anthropic_messages(client, model=model, max_tokens=max_tokens, messages=messages)
        import openai

        client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url)
        return openai_chat(client, model=model, messages=messages, max_completion_tokens=max_tokens)
    except (ImportError, MissingDependency) as exc:
        _fail(str(exc), f"pip install 'schwarm-stream[{provider}]'")


async def _run(
    pipeline: Pipeline, source: Any, url: str, as_json: bool, show_stats: bool, out: TextIO
) -> int:
    color = wants_color(out)
    r = Renderer(out, color=color and not as_json, live=color and not as_json)
    error: StreamError | None = None
    stream = pipeline.open(source)
    try:
        async with stream:
            async for ev in stream:
                if not as_json:
                    _render_event(r, ev)
                    r.status(stream.stats())
    except StreamError as err:
        error = err
    message = stream.message
    stats = stream.stats()
    if as_json:
        out.write(_dumps({**_result_dict(message, error), "stats": stats.to_dict()}) + "\n")
        out.flush()
    else:
        r.close_tool()
        if show_stats:
            click.echo(format_stats(stats), err=True)
    if error is not None:
        if not as_json:
            hint = None
            if isinstance(error, TransportError) and not error.committed:
                hint = f"could not reach {url}: is the server running and --base-url right?"
            click.echo(
                click.style("error: ", fg="red", bold=True) + f"{type(error).__name__}: {error}", err=True
            )
            if hint:
                click.echo(click.style("hint: ", fg="yellow") + hint, err=True)
        return EXIT_STREAM
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------
# compare

# --offline: two offline providers that differ only in pace, so the timing columns differ visibly.
OFFLINE_PAIR = (("offline-fast", 0.0), ("offline-slow", 0.02))


@cli.command(
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
    callback=lambda _ctx, _param, value: _check_base_url(value),
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
        _fail(
            "--offline compares the two built-in offline providers: it takes no --model or --base-url",
            "drop --offline to compare real models, or drop --model/--base-url",
        )
    if not offline and len(models) < 2:
        _fail(
            f"compare needs at least two --model options (got {len(models)})",
            "repeat -m: schwarm-stream compare -m MODEL_A -m MODEL_B PROMPT  (or try --offline)",
        )
    pipeline = _pipeline(config_path)
    if offline:
        report = asyncio.run(_compare_offline(provider, pipeline, max_tokens, prompt))
    else:
        env = PROVIDERS[provider]
        api_key = os.environ.get(env)
        if not api_key:
            _fail(
                f"{env} is not set: `compare --provider {provider}` needs an API key",
                f"export {env}=...  (or try --offline: no key, no network)",
            )
        sources = [_run_source(provider, api_key, base_url, m, max_tokens, prompt) for m in models]
        report = asyncio.run(_compare_sources(sources, pipeline))
    out = sys.stdout
    out.write((_dumps(report.to_dict()) if as_json else report.render()) + "\n")
    out.flush()
    failed = [r for r in report.results if not r.complete]
    if failed and not as_json:
        url = base_url or DEFAULT_URLS[provider]
        click.echo(
            click.style("error: ", fg="red", bold=True)
            + f"{len(failed)} of {len(report.results)} streams did not complete",
            err=True,
        )
        if any((r.error or "").startswith("TransportError") and not r.chunks for r in failed):
            click.echo(
                click.style("hint: ", fg="yellow") + f"could not reach {url}: is --base-url right?", err=True
            )
    sys.exit(EXIT_STREAM if failed else EXIT_OK)


async def _compare_sources(
    sources: Sequence[Any], pipeline: Pipeline, names: Sequence[str] | None = None
) -> ComparisonReport:
    from .multi import compare as compare_streams

    return await compare_streams(*sources, names=names, pipeline=pipeline)


async def _compare_offline(
    provider: str, pipeline: Pipeline, max_tokens: int, prompt: str
) -> ComparisonReport:
    from contextlib import AsyncExitStack

    from .testing.server import OfflineProvider, ProviderServer

    async with AsyncExitStack() as servers:
        sources = []
        for name, delay in OFFLINE_PAIR:
            server = await servers.enter_async_context(ProviderServer(OfflineProvider(chunk_delay=delay)))
            url = server.anthropic_base_url if provider == "anthropic" else server.openai_base_url
            sources.append(_run_source(provider, "offline", url, name, max_tokens, prompt))
        return await _compare_sources(sources, pipeline, [name for name, _ in OFFLINE_PAIR])


# ---------------------------------------------------------------------------------------------------
# replay


@cli.command(
    short_help="Replay recorded SSE bodies through the SDK client and the pipeline.",
    epilog="""\b
Examples:
  schwarm-stream replay recording.sse
  schwarm-stream replay --json ../shared/corpus/openai-python/**/*.bin
  schwarm-stream replay --protocol anthropic-messages body.txt

Files are raw SSE bodies, or one JSON payload per line (*.chunks.txt, or any file whose first
non-blank character is '{').
Exit status: 0 only if every response completed, else 1.""",
)
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--protocol",
    type=click.Choice(ROUTES),
    help="The wire protocol; detected from the body when omitted.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per response, one per line.")
def replay(files: tuple[Path, ...], protocol: str | None, as_json: bool) -> None:
    """Replay recorded provider streams through the official SDK client and the pipeline.

    Each body is served from a loopback server to the SDK client, read by our
    source and accumulated by the default plugins (entry-point plugins included).
    """
    out = sys.stdout
    ok = asyncio.run(_replay(files, protocol, as_json, out))
    sys.exit(EXIT_OK if ok else EXIT_STREAM)


def _replay_source(protocol: str, server: Any) -> Any:
    from .sources import anthropic_messages, openai_chat, openai_responses

    hi = [{"role": "user", "content": "replay"}]
    if protocol == "anthropic-messages":
        import anthropic

        client: Any = anthropic.AsyncAnthropic(api_key="replay", base_url=server.anthropic_base_url)
        return anthropic_messages(client, model="replay", max_tokens=1024, messages=hi)
    import openai

    client = openai.AsyncOpenAI(api_key="replay", base_url=server.openai_base_url)
    if protocol == "openai-responses":
        return openai_responses(client, model="replay", input="replay")
    return openai_chat(client, model="replay", messages=hi)


def _bodies(path: Path, protocol: str | None) -> list[tuple[str, bytes]]:
    """``(protocol, body)`` per response recorded in ``path``; ValueError when it is not a stream."""
    from .testing.corpus import detect_protocol, to_sse_body

    if _is_json_lines(path):
        if not path.name.endswith(".chunks.txt"):  # the corpus's own files keep their lenient framing
            _check_json_lines(path)
        bodies = to_sse_body(path, protocol, json_lines=True)
    else:
        bodies = to_sse_body(path, protocol)
    return [(protocol or detect_protocol(body), body) for body in bodies]


def _is_json_lines(path: Path) -> bool:
    """One JSON payload per line (by the ``*.chunks.txt`` name or by content), not an SSE body."""
    if path.name.endswith(".chunks.txt"):
        return True
    with path.open("rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{")  # SSE starts with a field name (data:, event:, id:) or a comment (:)


def _check_json_lines(path: Path) -> None:
    """A broken line is reported by its number, before anything is replayed."""
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path.name}: line {number} is not valid JSON ({exc})") from None


async def _replay(files: Sequence[Path], protocol: str | None, as_json: bool, out: TextIO) -> bool:
    from .config import Config
    from .testing.server import ProviderServer, SSEReply

    # Each body is served once: a retry or recovery would only meet an empty script and report
    # that instead of what the recording holds. Every plugin still takes part.
    pipeline = Pipeline(
        config=Config.from_dict({"retry": {"attempts": 1}, "recovery": {"mid_stream": "raise"}})
    )
    color = wants_color(out) and not as_json
    all_ok = True
    async with ProviderServer() as server:
        for path in files:
            try:
                bodies = _bodies(path, protocol)
            except (ValueError, OSError) as exc:
                all_ok = False
                if as_json:
                    out.write(_dumps(_result_dict(Message(), _NotAStream(str(exc)))) + "\n")
                else:
                    out.write(
                        f"{path}: {click.style('not a stream', fg='red') if color else 'not a stream'}: {exc}\n"
                    )
                continue
            for i, (proto, body) in enumerate(bodies):
                server.script(proto, SSEReply([body]))
                stream = pipeline.open(_replay_source(proto, server))
                error: StreamError | None = None
                try:
                    async with stream:
                        await stream.collect()
                except StreamError as err:
                    error = err
                message = stream.message
                all_ok = all_ok and error is None and message.complete
                name = f"{path}#{i}" if len(bodies) > 1 else str(path)
                if as_json:
                    out.write(_dumps(_result_dict(message, error)) + "\n")
                else:
                    _print_replay(out, name, proto, message, error, color)
                out.flush()
    return all_ok


class _NotAStream(Exception):
    """A replay input that holds no stream (an HTTP error record, an unknown protocol)."""


def _print_replay(
    out: TextIO, name: str, protocol: str, message: Message, error: BaseException | None, color: bool
) -> None:
    def style(text: str, **kw: Any) -> str:
        return click.style(text, **kw) if color else text

    state = style("complete", fg="green") if message.complete else style("incomplete", fg="red")
    usage = message.usage
    usage_text = "none" if usage is None else f"{usage.input_tokens} in / {usage.output_tokens} out"
    out.write(
        f"{style(name, bold=True)}  {protocol}  {state}  finish={message.finish_reason}  usage={usage_text}\n"
    )
    if message.reasoning:
        out.write(f"  reasoning: {_preview(message.reasoning)}\n")
    if message.text:
        out.write(f"  text: {_preview(message.text)}\n")
    if message.refusal:
        out.write(f"  refusal: {_preview(message.refusal)}\n")
    for t in message.tool_calls:
        out.write(f"  tool call {t.id}: {t.name}({_preview(t.arguments)})\n")
    if error is not None:
        out.write(style(f"  error: {type(error).__name__}: {error}", fg="red") + "\n")


def _preview(text: str, limit: int = 160) -> str:
    flat = text.replace("\n", "\\n")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------------
# plugins


@cli.command(
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
        _fail(f"bad configuration: {exc}", "check the SCHWARM_STREAM__* environment variables")
    shown = [i for i in infos if show_all or not i.builtin]
    if as_json:
        click.echo(_dumps([i.to_dict() for i in shown]))
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


# ---------------------------------------------------------------------------------------------------
# completion


@cli.command(
    short_help="Print the shell completion script (bash, zsh, fish).",
    epilog="""\b
Examples:
  eval "$(schwarm-stream completion bash)"     # in ~/.bashrc
  eval "$(schwarm-stream completion zsh)"      # in ~/.zshrc
  schwarm-stream completion fish > ~/.config/fish/completions/schwarm-stream.fish""",
)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    The same script is what click prints for `_SCHWARM_STREAM_COMPLETE=bash_source schwarm-stream`.
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None  # the choice above only allows shells click supports
    click.echo(cls(cli, {}, PROG, COMPLETE_VAR).source())
