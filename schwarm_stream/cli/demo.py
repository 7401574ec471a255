"""``schwarm-stream demo``: a tool-calling agent loop on the offline provider (or ``--faults``: five scenes)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, TextIO

import click

from .. import Chunk, Message, Pipeline, Reset, StreamError, ToolCallDelta
from ._common import EXIT_OK, EXIT_STREAM, dumps, error, fail, plural, render_event, result_dict
from ._render import Renderer, wants_color
from ._retries import on_stderr

WEATHER_TOOL_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name, e.g. Paris"}},
    "required": ["city"],
}


#: ``--provider``: the SDK each protocol's demo streams through (named in its header line).
DEMO_SDKS = {
    "openai": "OpenAI SDK",
    "anthropic": "Anthropic SDK",
    "responses": "OpenAI SDK",
    "gemini": "google-genai SDK",
    "ollama": "ollama SDK",
    "bedrock": "boto3 (Bedrock ConverseStream)",
}


def get_weather(city: str) -> dict[str, Any]:
    """The demo's tool: a deterministic, offline weather report."""
    return {"city": city, "temperature_c": 18 + len(city) % 7, "conditions": "partly cloudy"}


@click.command(
    short_help="A tool-calling agent loop on the offline provider (no key, no network).",
    epilog="""\b
Examples:
  schwarm-stream demo
  schwarm-stream demo --provider anthropic --prompt "Weather in Oslo?"
  schwarm-stream demo --provider gemini    # also ollama, bedrock (their SDK extras)
  schwarm-stream demo --faults             # truncation caught, reset restarted, partial JSON, native cuts
  schwarm-stream demo --json | jq .text""",
)
@click.option(
    "--provider",
    type=click.Choice(list(DEMO_SDKS)),
    default="openai",
    show_default=True,
    help="SDK and protocol: OpenAI Chat Completions, Anthropic Messages, OpenAI Responses, Gemini "
    "(google-genai), Ollama /api/chat (ollama) or Bedrock ConverseStream (boto3).",
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
    "a tool call's arguments as partial JSON; the same cut in Gemini, Ollama and Bedrock; Bedrock's "
    "modelStreamErrorException mid-answer, restarted.",
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
    from ..sources import anthropic_messages, openai_chat, openai_responses

    messages = [{"role": "user", "content": prompt}]
    try:
        if provider in ("gemini", "ollama", "bedrock"):
            return _native_protocol_source(provider, server, prompt)
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
        extra = "openai" if provider == "responses" else provider
        fail(f"the demo needs the {extra} SDK ({exc})", f"pip install 'schwarm-stream[{extra}]'")


def _native_protocol_source(provider: str, server: Any, prompt: str) -> Any:
    """Gemini, Ollama or Bedrock through its official SDK, pointed at the loopback server."""
    if provider == "gemini":
        import google.genai as genai

        from ..sources import gemini_generate

        gemini = genai.Client(api_key="offline", http_options={"base_url": server.url})
        tools = [{"function_declarations": [{"name": "get_weather", "parameters": WEATHER_TOOL_SCHEMA}]}]
        return gemini_generate(gemini, model="gemini-offline", contents=prompt, config={"tools": tools})
    if provider == "ollama":
        import ollama

        from ..sources import ollama_chat

        tool = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_TOOL_SCHEMA}}
        return ollama_chat(
            ollama.AsyncClient(host=server.url),
            model="offline",
            messages=[{"role": "user", "content": prompt}],
            tools=[tool],
        )
    import boto3

    from ..sources import bedrock_converse

    # dummy credentials for this client only: it talks to the loopback server, never to AWS
    bedrock = boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="offline",
        aws_secret_access_key="offline",
    )
    return bedrock_converse(
        bedrock,
        modelId="offline",
        messages=[{"role": "user", "content": [{"text": prompt}]}],
        toolConfig={
            "tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": WEATHER_TOOL_SCHEMA}}}]
        },
    )


async def _demo(
    provider: str, prompt: str, chunk_delay: float, max_turns: int, as_json: bool, out: TextIO
) -> int:
    from ..agent import ToolResult, TurnEnd, TurnStart, agent_loop
    from ..testing.server import OfflineProvider, ProviderServer

    color = wants_color(out)
    r = Renderer(out, color=color and not as_json, live=color and not as_json)
    pipeline = Pipeline()
    pipeline.register(on_stderr(r), name="schwarm-stream-cli.retries")  # as `run`: each retry, live
    async with ProviderServer(OfflineProvider(chunk_delay=chunk_delay)) as server:
        source = _demo_source(provider, server, prompt)
        loop = agent_loop(source, tools={"get_weather": get_weather}, max_turns=max_turns, pipeline=pipeline)
        if not as_json:
            r.line(
                f"schwarm-stream demo · offline provider at {server.url} · {DEMO_SDKS[provider]}", dim=True
            )
            r.line(f"user: {prompt}", bold=True)
        try:
            async for ev in loop:
                if as_json:
                    if isinstance(ev, TurnEnd):
                        out.write(dumps(_turn_dict(ev)) + "\n")
                        out.flush()
                    continue
                if isinstance(ev, TurnStart):
                    r.line(f"assistant (turn {ev.turn}):", fg="magenta", bold=True)
                elif isinstance(ev, (Chunk, ToolCallDelta, Reset)):
                    render_event(r, ev)
                    if loop.stream is not None:
                        r.status(loop.stream.stats())
                elif isinstance(ev, ToolResult):
                    r.tool_result(ev)
                elif isinstance(ev, TurnEnd) and ev.stats is not None:
                    r.stats_line(ev.stats)
        except StreamError as err:
            if as_json:
                message = err.partial or Message()
                out.write(dumps({"turn": len(loop.turns) + 1, **result_dict(message, err)}) + "\n")
            else:
                r.end_line()
                error(str(err))
            return EXIT_STREAM
    if not as_json:
        chunks = sum(t.stats.chunks for t in loop.turns)
        calls = sum(len(t.message.tool_calls) for t in loop.turns)
        attempts = sum(t.stats.attempts for t in loop.turns)
        ttft = loop.turns[0].stats.time_to_first_token if loop.turns else None
        ttft_text = "n/a" if ttft is None else f"{ttft * 1000:.0f} ms"
        retries = attempts - len(loop.turns)  # one request per turn; the rest were retries
        r.line(
            f"summary: {plural(len(loop.turns), 'turn')} · {plural(chunks, 'chunk')} · "
            f"time to first token {ttft_text} · {plural(calls, 'tool call')} · "
            f"{'no retries' if retries == 0 else plural(retries, 'retry', 'retries')} · outcome {loop.outcome}",
            bold=True,
        )
        if loop.outcome == "max_turns":
            error(f"the model still called tools after {plural(max_turns, 'turn')} (--max-turns {max_turns})")
    return EXIT_OK if loop.outcome == "complete" else EXIT_STREAM


def _turn_dict(ev: Any) -> dict[str, Any]:
    return {
        "turn": ev.turn,
        **result_dict(ev.message, None),
        "tool_results": [
            {"id": r.call.id, "name": r.call.name, "content": r.content, "error": r.error} for r in ev.results
        ],
        "stats": ev.stats.to_dict() if ev.stats is not None else None,
    }
