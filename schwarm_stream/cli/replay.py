"""``schwarm-stream replay``: recorded SSE bodies through the official SDK client and the pipeline.

Gemini recordings come as raw SSE, as JSON lines of ``GenerateContentResponse`` (vercel/ai's
``*.chunks.txt``), as a JSON array of them, or as googleapis/js-genai replay JSON
(``testing.corpus.gemini_recordings`` reads them); a Vertex AI answer (``createTime`` on its responses, or
recorded at a ``publishers/.../models`` URL) is served on the loopback server's Vertex route to a
Vertex-mode google-genai client (``vertex-stream``), a Gemini API one to a Gemini API client.
"""

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

#: The replay protocol of a Vertex AI answer: Gemini's wire format read by a Vertex-mode google-genai client.
VERTEX = "vertex-stream"
GEMINI = ("gemini-stream", VERTEX)


@click.command(
    short_help="Replay recorded SSE bodies through the SDK client and the pipeline.",
    epilog="""\b
Examples:
  schwarm-stream replay recording.sse
  schwarm-stream replay --json ../shared/corpus/openai-python/**/*.bin
  schwarm-stream replay --protocol anthropic-messages body.txt
  schwarm-stream replay tests/data/corpus-gemini/vercel-ai/*.chunks.txt

Files are raw SSE bodies, or one JSON payload per line (*.chunks.txt, or any file whose first
non-blank character is '{'); for Gemini also a JSON array of responses or a js-genai replay
recording (*.json with "interactions"). Vertex AI answers are read by a Vertex-mode client
(vertex-stream).
Exit status: 0 only if every response completed, else 1.""",
)
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--protocol",
    type=click.Choice((*ROUTES, *NATIVE_ROUTES, VERTEX)),
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


def _vertex_replay_source(server: Any) -> Any:
    """A Vertex AI express-mode client (an API key; no Google Cloud credentials, nothing leaves 127.0.0.1)."""
    from ._common import fail

    try:
        from google import genai
    except ImportError:
        fail("replaying Vertex AI streams needs google-genai", "pip install 'schwarm-stream[gemini]'")
    from ..sources import gemini_generate

    client = genai.Client(vertexai=True, api_key="replay", http_options={"base_url": server.vertex_base_url})
    return gemini_generate(client, model="replay", contents="replay", config={"max_output_tokens": 1024})


def _replay_source(protocol: str, server: Any) -> Any:
    from ._sources import native_replay_source

    if protocol == VERTEX:
        return _vertex_replay_source(server)
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


def _reply(protocol: str, body: bytes | Any) -> Any:
    from ..testing.server import SSEReply
    from ._sources import native_replay_reply

    if not isinstance(body, bytes):  # already a reply (a recorded error answer)
        return body
    if protocol == VERTEX:
        return SSEReply([body])
    return native_replay_reply(protocol, body) if protocol in NATIVE_ROUTES else SSEReply([body])


def _gemini_bodies(path: Path, protocol: str | None) -> list[tuple[str, Any]] | None:
    """``(protocol, body or reply)`` per Gemini answer recorded in ``path`` as JSON lines, a JSON array or
    js-genai replay JSON; ``None`` when the file is none of those (raw SSE, another protocol)."""
    from ..testing.corpus import gemini_recordings
    from ..testing.server import JSONReply

    if protocol is not None and protocol not in GEMINI:
        return None
    recordings = gemini_recordings(path)
    if recordings is None:
        return None
    out: list[tuple[str, Any]] = []
    for r in recordings:
        proto = protocol or (VERTEX if r.vertex else "gemini-stream")
        out.append((proto, r.body if r.status == 200 else JSONReply(r.status, json.loads(r.body))))
    return out


def _is_vertex_sse(body: bytes) -> bool:
    """A raw Gemini SSE body whose first response carries what only Vertex AI fills."""
    from ..testing.corpus import _iter_sse, is_vertex_response

    for _event, data in _iter_sse(body[:65536]):
        try:
            return is_vertex_response(json.loads(data))
        except ValueError:
            return False
    return False


def _bodies(path: Path, protocol: str | None) -> list[tuple[str, Any]]:
    """``(protocol, body)`` per response recorded in ``path``; ValueError when it is not a stream."""
    from ..testing.corpus import detect_protocol, to_sse_body
    from ._sources import sniff_native

    gemini = _gemini_bodies(path, protocol)
    if gemini is not None:
        return gemini
    native = protocol if protocol in (*NATIVE_ROUTES, VERTEX) else None
    if protocol is None:
        native = sniff_native(path.read_bytes()[:65536])
        if native == "gemini-stream" and _is_vertex_sse(path.read_bytes()):
            native = VERTEX
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


#: The server route a replay protocol is served on, where the two differ.
_ROUTE = {VERTEX: "vertex-stream"}


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
                server.script(_ROUTE.get(proto, proto), _reply(proto, body))
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
