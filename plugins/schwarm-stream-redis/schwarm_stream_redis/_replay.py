"""Rebuilding what a reader shows from the events it read (resets included)."""

from __future__ import annotations

from typing import Any

from schwarm_stream import Chunk, Event, Finish, Reset, ToolCallDelta

from ._codec import End

__all__ = ["LogMessage"]


class LogMessage:
    """The message as a reader of the log sees it: text, reasoning, tool calls, finish reason.

    Feed it every value :func:`read_stream` yields; a :class:`~schwarm_stream.Reset`
    clears what was shown, exactly as a browser would. ``last_seq`` is the
    cursor to resume from; ``end`` the terminal entry once read.
    """

    def __init__(self) -> None:
        self.text = ""
        self.reasoning = ""
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.last_seq = 0
        self.end: End | None = None

    def feed(self, value: Event | End) -> None:
        """Apply one event (or the end) read from the log."""
        self.last_seq = value.seq
        if isinstance(value, Chunk):
            if value.kind == "reasoning":
                self.reasoning += value.text
            elif value.kind == "text":
                self.text += value.text
        elif isinstance(value, ToolCallDelta):
            call = self.tool_calls.setdefault(value.index, {"id": None, "name": None, "arguments": ""})
            if value.id and call["id"] is None:
                call["id"] = value.id
            if value.name and call["name"] is None:
                call["name"] = value.name
            call["arguments"] += value.arguments
        elif isinstance(value, Finish):
            self.finish_reason = value.reason
        elif isinstance(value, Reset):
            self.text, self.reasoning, self.tool_calls, self.finish_reason = "", "", {}, None
        elif isinstance(value, End):
            self.end = value
