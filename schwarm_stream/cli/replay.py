"""``schwarm-stream replay``: recorded SSE bodies through the official SDK client and the pipeline."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import click

from .. import Config, Message, Pipeline, StreamError
from ._common import EXIT_OK, EXIT_STREAM, NATIVE_ROUTES, ROUTES, dumps, result_dict
from ._render import wants_color


@click.command(
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
    type=click.Choice((*ROUTES, *NATIVE_ROUTES)),
    help="The wire protocol; detected from the body when omitted.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per response, one per line.")
def replay(files: tuple[Path, ...], protocol: str | None, as_json: bool) -> None:
    """Replay recorded provider streams through the official SDK client and the pipeline.

    Each body is served from a loopback server to the SDK client, read by our
    source and accumulated by the default plugins (entry-point plugins included).
    """
    ok = asyncio.run(_replay(files, protocol, as_json, sys.stdout))
    sys.exit(EXIT_OK if ok else EXIT_STREAM)


def _replay_source(protocol: str, server: Any) -> Any:
    from ._sources import native_replay_source

    if protocol in NATIVE_ROUTES:
        return native_replay_source(protocol, server)
    from ..sources import anthropic_messages, openai_chat, openai_responses

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


def _reply(protocol: str, body: bytes) -> Any:
    from ..testing.server import SSEReply
    from ._sources import native_replay_reply

    return native_replay_reply(protocol, body) if protocol in NATIVE_ROUTES else SSEReply([body])


def _bodies(path: Path, protocol: str | None) -> list[tuple[str, bytes]]:
    """``(protocol, body)`` per response recorded in ``path``; ValueError when it is not a stream."""
    from ..testing.corpus import detect_protocol, to_sse_body
    from ._sources import sniff_native

    native = protocol if protocol in NATIVE_ROUTES else None
    if protocol is None:
        native = sniff_native(path.read_bytes()[:65536])
    if native is not None:  # Gemini SSE and Ollama NDJSON bodies are served as they are
        return [(native, path.read_bytes())]
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


class _NotAStream(Exception):
    """A replay input that holds no stream (an HTTP error record, an unknown protocol)."""


async def _replay(files: Sequence[Path], protocol: str | None, as_json: bool, out: TextIO) -> bool:
    from ..testing.server import ProviderServer

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
                    out.write(dumps(result_dict(Message(), _NotAStream(str(exc)))) + "\n")
                else:
                    out.write(
                        f"{path}: {click.style('not a stream', fg='red') if color else 'not a stream'}: {exc}\n"
                    )
                continue
            for i, (proto, body) in enumerate(bodies):
                server.script(proto, _reply(proto, body))
                stream = pipeline.open(_replay_source(proto, server))
                err: StreamError | None = None
                try:
                    async with stream:
                        await stream.collect()
                except StreamError as exc:
                    err = exc
                message = stream.message
                all_ok = all_ok and err is None and message.complete
                name = f"{path}#{i}" if len(bodies) > 1 else str(path)
                if as_json:
                    out.write(dumps(result_dict(message, err)) + "\n")
                else:
                    _print_replay(out, name, proto, message, err, color)
                out.flush()
    return all_ok


def _print_replay(
    out: TextIO, name: str, protocol: str, message: Message, err: BaseException | None, color: bool
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
    if err is not None:
        out.write(style(f"  error: {type(err).__name__}: {err}", fg="red") + "\n")


def _preview(text: str, limit: int = 160) -> str:
    flat = text.replace("\n", "\\n")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
