"""Terminal rendering for ``schwarm-stream run`` and ``demo``: live text, tool calls, a status line.

On a terminal: colour, and a status line (tokens, tokens/s, time to first
token, attempts) kept on the row below the text and redrawn at most ten
times a second. Piped: plain text only, no colour, no cursor movement; the
same numbers appear once per turn as an ordinary line.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import TYPE_CHECKING, Any, TextIO

import click

if TYPE_CHECKING:
    from .. import RegistryStats, Reset, StreamStats, ToolCallDelta
    from ..agent import ToolResult

__all__ = ["Renderer", "format_registry", "format_stats", "wants_color"]

_CLEAR_LINE = "\r\x1b[2K"
_UP = "\x1b[1A"
_REDRAW_EVERY = 0.1  # seconds between status redraws
_MIN_RATE_WINDOW = 0.25  # seconds of generation before a live rate is shown


def wants_color(out: TextIO) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (https://no-color.org)."""
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


def format_stats(stats: StreamStats, *, live: bool = False) -> str:
    """``"42 tokens · 310.5 tok/s · first token 85 ms · 1 attempt"`` (chunks while tokens are unknown)."""
    if stats.output_tokens is not None:
        amount, unit = _plural(stats.output_tokens, "token"), "tok/s"
    else:
        amount, unit = _plural(stats.chunks, "chunk"), "chunks/s"
    parts = [amount]
    ttft = stats.time_to_first_token
    # A rate over the first few milliseconds is noise: show it once there is something to average.
    # The same holds for a finished stream that took no time (``--chunk-delay 0``): no rate at all.
    settled = ttft is not None and stats.elapsed - ttft >= _MIN_RATE_WINDOW
    if stats.tokens_per_second is not None and settled:
        parts.append(f"{stats.tokens_per_second:.1f} {unit}")
    if stats.time_to_first_token is not None:
        parts.append(f"first token {stats.time_to_first_token * 1000:.0f} ms")
    elif live:
        parts.append(f"waiting {stats.elapsed:.1f} s")
    parts.append(_plural(stats.attempts, "attempt"))
    if stats.resets:
        parts.append(_plural(stats.resets, "reset"))
    return " · ".join(parts)


def format_registry(stats: RegistryStats) -> str:
    """The stream registry's aggregates on one line, for ``run --stats`` and ``compare``.

    ``"streams: 2 ended (2 complete) · first content p50 85 ms, p99 120 ms · duration p50 1.20 s,
    p99 1.50 s · tokens 12 in, 420 out"``, then errors by type when there were any.
    """
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(stats.by_outcome.items()))
    parts = [f"streams: {stats.ended} ended" + (f" ({outcomes})" if outcomes else "")]
    if stats.live:
        parts[0] += f", {stats.live} live"
    t = stats.time_to_first_content
    if t.count and t.p50 is not None and t.p99 is not None:
        parts.append(f"first content p50 {t.p50 * 1000:.0f} ms, p99 {t.p99 * 1000:.0f} ms")
    d = stats.duration
    if d.count and d.p50 is not None and d.p99 is not None:
        parts.append(f"duration p50 {d.p50:.2f} s, p99 {d.p99:.2f} s")
    if stats.input_tokens or stats.output_tokens:
        parts.append(f"tokens {stats.input_tokens} in, {stats.output_tokens} out")
    if stats.errors:
        parts.append("errors: " + ", ".join(f"{k}: {n}" for k, n in sorted(stats.errors.items())))
    return " · ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class Renderer:
    """Writes a stream to a terminal or a pipe. ``live`` enables the status line (TTY only)."""

    def __init__(self, out: TextIO, *, color: bool = False, live: bool = False) -> None:
        self.out = out
        self.color = color
        self.live = live
        self._col = 0  # characters written since the last newline
        self._status_shown = False
        self._last_draw = 0.0
        self._kind: str | None = None  # kind of the text being written (text, reasoning, tool)
        self._tool_index: int | None = None

    # -- low level -----------------------------------------------------------------------------

    def _style(self, text: str, **style: Any) -> str:
        return click.style(text, **style) if self.color else text

    def _write(self, text: str, visible: int | None = None) -> None:
        if self._status_shown:
            self._hide_status()
        self.out.write(text)
        nl = text.rfind("\n")
        if nl >= 0:
            self._col = len(click.unstyle(text[nl + 1 :]))
        else:
            self._col += visible if visible is not None else len(click.unstyle(text))

    def flush(self) -> None:
        self.out.flush()

    def end_line(self) -> None:
        """Finish the current line, if any text is on it (and take the status line away)."""
        if self._status_shown:
            self._hide_status()
            self.flush()
        if self._col:
            self._write("\n")
            self.flush()
        self._kind = None
        self._tool_index = None

    def line(self, text: str, **style: Any) -> None:
        """A whole line of its own (notes, headers, errors)."""
        self.end_line()
        self._write(self._style(text, **style) + "\n")
        self.flush()

    # -- stream content ------------------------------------------------------------------------

    def text(self, text: str, kind: str = "text") -> None:
        """A text, reasoning or refusal delta, written as it arrives."""
        if kind != self._kind:
            self.end_line()
            if kind == "reasoning":
                self._write(self._style("thinking: ", dim=True, italic=True))
            elif kind == "refusal":
                self._write(self._style("refusal: ", fg="red"))
            self._kind = kind
        if kind == "reasoning":
            self._write(self._style(text, dim=True, italic=True), len(text))
        else:
            self._write(text)
        self.flush()

    def tool_delta(self, delta: ToolCallDelta) -> None:
        """A tool call as it streams: ``→ name(`` then the argument fragments."""
        if self._kind != "tool" or delta.index != self._tool_index:
            self.end_line()
            self._write(self._style(f"→ {delta.name or 'tool'}(", fg="cyan", bold=True))
            self._kind, self._tool_index = "tool", delta.index
        if delta.arguments:
            self._write(self._style(delta.arguments, fg="cyan"), len(delta.arguments))
        self.flush()

    def close_tool(self) -> None:
        """The tool calls of a turn are final: close the open parenthesis."""
        if self._kind == "tool":
            self._write(self._style(")", fg="cyan", bold=True))
        self.end_line()

    def tool_result(self, result: ToolResult) -> None:
        self.close_tool()
        if result.error:
            self.line(f"← {result.call.name}: {result.error}", fg="red")
        else:
            self.line(f"← {result.call.name}: {result.content}", fg="green")

    def reset(self, reset: Reset) -> None:
        self.line(
            f"[stream restarted ({reset.strategy}): discard the text above; {reset.reason}]", fg="yellow"
        )

    # -- status line ---------------------------------------------------------------------------

    def status(self, stats: StreamStats, *, force: bool = False) -> None:
        """Redraw the live status line (TTY only; throttled unless ``force``)."""
        if not self.live:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < _REDRAW_EVERY:
            return
        width = shutil.get_terminal_size().columns
        if self._col and self._col % width == 0:
            return  # the cursor sits in the pending-wrap column: moving back to it is unreliable
        self._last_draw = now
        if self._status_shown:
            self._hide_status()
        text = format_stats(stats, live=True)[: max(0, width - 3)]
        self.out.write("\n" + self._style("⏵ " + text, dim=True))
        self._status_shown = True
        self.out.flush()

    def _hide_status(self) -> None:
        # Erase the status row, go back up to the text row and to its column.
        width = shutil.get_terminal_size().columns
        col = self._col % width
        self.out.write(_CLEAR_LINE + _UP + "\r" + (f"\x1b[{col}C" if col else ""))
        self._status_shown = False

    def stats_line(self, stats: StreamStats) -> None:
        """The turn's final numbers, as an ordinary line (TTY and pipe alike)."""
        self.close_tool()
        self.line("  " + format_stats(stats), dim=True)
