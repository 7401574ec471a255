"""What every command shares: exit codes, error output, URL checks, JSON output, plurals."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn
from urllib.parse import urlsplit

import click

from .. import Chunk, Message, Reset, ToolCallDelta
from ._render import Renderer

PROG = "schwarm-stream"
COMPLETE_VAR = "_SCHWARM_STREAM_COMPLETE"
#: ``--provider`` names and the variable holding their key. ``bedrock`` has none: boto3's own credential
#: chain (keys, profile, bearer token) decides. ``ollama``: a local server ignores the key, any value will do.
PROVIDERS: dict[str, str | None] = {
    "anthropic": "ANTHROPIC_API_KEY",
    "bedrock": None,
    "gemini": "GEMINI_API_KEY",
    "ollama": "OLLAMA_API_KEY",
    "openai": "OPENAI_API_KEY",
}
DEFAULT_URLS = {
    "anthropic": "https://api.anthropic.com",
    "bedrock": "https://bedrock-runtime.us-east-1.amazonaws.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "ollama": "http://127.0.0.1:11434",
    "openai": "https://api.openai.com/v1",
}
#: ``replay --protocol`` names: the SSE protocols, then the bodies served as recorded.
ROUTES = ("openai-chat", "openai-responses", "anthropic-messages")
NATIVE_ROUTES = ("gemini-stream", "ollama-chat", "bedrock-converse-stream")

#: 0 every stream completed; 1 a stream failed or ended without its terminator; 2 usage or configuration.
EXIT_OK, EXIT_STREAM, EXIT_USAGE = 0, 1, 2


def error(message: str) -> None:
    """``error: message`` on stderr."""
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)


def hint(message: str) -> None:
    """``hint: message`` on stderr."""
    click.echo(click.style("hint: ", fg="yellow") + message, err=True)


def fail(message: str, hint_text: str | None = None, code: int = EXIT_USAGE) -> NoReturn:
    """Report an error (and a hint) and exit, by default with the usage status 2."""
    error(message)
    if hint_text:
        hint(hint_text)
    sys.exit(code)


def check_base_url(value: str | None) -> str | None:
    """An URL that cannot work is a usage error (exit 2) now, not four failed connection attempts later."""
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL with a host")
    return value


def base_url_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """click callback for ``--base-url``."""
    return check_base_url(value)


def error_dict(err: BaseException | None) -> dict[str, str] | None:
    return None if err is None else {"type": type(err).__name__, "message": str(err)}


def result_dict(message: Message, err: BaseException | None) -> dict[str, Any]:
    """The ``--json`` shape: the message summary plus ``error``."""
    return {**message.to_dict(), "error": error_dict(err)}


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 turn``, ``2 turns``; ``many`` for irregular plurals (``retries``)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def render_event(r: Renderer, ev: Any) -> None:
    """Draw one content event (text, tool-call fragment, reset); other events are not shown."""
    if isinstance(ev, Chunk):
        r.text(ev.text, ev.kind)
    elif isinstance(ev, ToolCallDelta):
        r.tool_delta(ev)
    elif isinstance(ev, Reset):
        r.reset(ev)
