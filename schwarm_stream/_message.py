"""The final message a stream accumulates: text, reasoning, tool calls, usage.

Built once per stream (pydantic is for the edges, not the per-chunk path), by the
``accumulate`` built-in plugin. A partial message (what was delivered before a
failure) has the same type with ``complete=False``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from .cost import Cost

__all__ = ["ContentBlock", "Message", "RecoveryKind", "TokenUsage", "ToolCall"]

RecoveryKind = Literal["restarted", "continued", "fallback", "resumed"]


class ToolCall(BaseModel):
    """One tool (function) call requested by the model.

    ``arguments`` is the JSON string exactly as the provider streamed it;
    :attr:`parsed` is its strict parse, done once when the stream ended. When the
    arguments are not valid JSON (for example cut off by ``max_tokens``),
    ``parsed`` is ``None`` and ``error`` says where parsing failed; never ``{}``.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: str
    parsed: Any = None
    error: str | None = None
    index: int = 0
    type: str = "function"

    @property
    def valid(self) -> bool:
        """Whether :attr:`arguments` parsed as JSON."""
        return self.error is None


class TokenUsage(BaseModel):
    """Token counts reported by the provider; ``None`` where it reported none."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int | None = None
    output_tokens: int | None = None
    extras: dict[str, Any] = Field(default_factory=dict)

    @property
    def total_tokens(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)

    # The detail counters live in ``extras`` under each provider's own names. Anthropic counts
    # cache reads and writes *beside* ``input_tokens``; OpenAI counts cached tokens *inside* them.

    @property
    def cache_read_tokens(self) -> int | None:
        """Input tokens served from the provider's prompt cache (``None``: not reported)."""
        x = self.extras
        if "cache_read_input_tokens" in x:  # Anthropic
            return _int(x["cache_read_input_tokens"])
        for details in ("prompt_tokens_details", "input_tokens_details"):  # OpenAI chat, Responses
            d = x.get(details)
            if isinstance(d, dict) and "cached_tokens" in d:
                return _int(d["cached_tokens"])
        return None

    @property
    def cache_write_tokens(self) -> int | None:
        """Input tokens written to the provider's prompt cache (Anthropic; ``None``: not reported)."""
        x = self.extras
        if "cache_creation_input_tokens" in x:
            return _int(x["cache_creation_input_tokens"])
        for details in ("prompt_tokens_details", "input_tokens_details"):
            d = x.get(details)
            if isinstance(d, dict) and "cache_write_tokens" in d:
                return _int(d["cache_write_tokens"])
        return None

    @property
    def reasoning_tokens(self) -> int | None:
        """Output tokens spent on reasoning, part of :attr:`output_tokens` (``None``: not reported)."""
        for details, key in (
            ("completion_tokens_details", "reasoning_tokens"),  # OpenAI chat
            ("output_tokens_details", "reasoning_tokens"),  # OpenAI Responses
            ("output_tokens_details", "thinking_tokens"),  # Anthropic, where reported
        ):
            d = self.extras.get(details)
            if isinstance(d, dict) and key in d:
                return _int(d[key])
        return None

    @property
    def cache_tokens_in_input(self) -> bool:
        """Whether :attr:`input_tokens` already includes the cache reads and writes (OpenAI) or not (Anthropic)."""
        return not ("cache_read_input_tokens" in self.extras or "cache_creation_input_tokens" in self.extras)

    @property
    def all_input_tokens(self) -> int | None:
        """Every input token, cached ones included (what the GenAI conventions call input tokens)."""
        if self.input_tokens is None:
            return None
        if self.cache_tokens_in_input:
            return self.input_tokens
        return self.input_tokens + (self.cache_read_tokens or 0) + (self.cache_write_tokens or 0)


class ContentBlock(BaseModel):
    """One ordered part of the message, in provider order.

    ``type`` is ``text``, ``reasoning``, ``refusal``, ``tool_call``,
    ``redacted_reasoning`` or a provider block type we carry as ``data``.
    Reasoning blocks keep their ``signature`` (Anthropic requires it when the
    block is sent back in the next turn).
    """

    model_config = ConfigDict(frozen=True)

    type: str
    index: int = 0
    text: str = ""
    signature: str | None = None
    citations: list[Any] = Field(default_factory=list)
    tool_call: ToolCall | None = None
    data: Any = None


class Message(BaseModel):
    """The accumulated assistant message.

    ``complete`` is true only when the provider's terminator arrived
    (``[DONE]``/``finish_reason``, ``message_stop``, ``response.completed``).
    ``recovery`` says how a recovery strategy shaped it (``None``: a single clean
    attempt or a pre-commit retry, which is exact).
    """

    model_config = ConfigDict(frozen=True)

    role: Literal["assistant"] = "assistant"
    text: str = ""
    reasoning: str = ""
    refusal: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: str | None = None
    usage: TokenUsage | None = None
    id: str | None = None
    model: str | None = None
    #: the provider whose answer this is: after a fallback, the fallback's (so ``model`` and ``cost`` agree)
    provider: str | None = None
    content: list[ContentBlock] = Field(default_factory=list)
    complete: bool = False
    recovery: RecoveryKind | None = None
    choice: int = 0
    dropped_events: int = 0
    flags: list[str] = Field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The provider-neutral summary used by ``schwarm-stream replay --json``."""
        return {
            "complete": self.complete,
            "text": self.text,
            "reasoning": self.reasoning,
            "refusal": self.refusal,
            "tool_calls": [{"id": t.id, "name": t.name, "arguments": t.arguments} for t in self.tool_calls],
            "finish_reason": self.finish_reason,
            "usage": None
            if self.usage is None
            else {"input_tokens": self.usage.input_tokens, "output_tokens": self.usage.output_tokens},
        }

    def to_openai(self) -> dict[str, Any]:
        """This message as an OpenAI Chat Completions assistant message (for the next turn)."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.refusal:
            msg["refusal"] = self.refusal
        if self.tool_calls:
            msg["tool_calls"] = [
                {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
                for t in self.tool_calls
            ]
        return msg

    def to_anthropic(self) -> dict[str, Any]:
        """This message as an Anthropic Messages assistant turn, blocks in order, signatures kept."""
        blocks: list[dict[str, Any]] = []
        for b in self.content:
            if b.type == "text" and b.text:
                blocks.append({"type": "text", "text": b.text})
            elif b.type == "reasoning":
                blocks.append({"type": "thinking", "thinking": b.text, "signature": b.signature or ""})
            elif b.type == "redacted_reasoning":
                blocks.append({"type": "redacted_thinking", "data": b.data})
            elif b.type == "tool_call" and b.tool_call is not None:
                t = b.tool_call
                blocks.append(
                    {"type": "tool_use", "id": t.id, "name": t.name, "input": t.parsed if t.valid else {}}
                )
        return {"role": "assistant", "content": blocks}

    @property
    def cost(self) -> Cost:
        """What this message cost, from the provider's reported usage and a price table.

        Computed on each access by :func:`schwarm_stream.cost.cost_of` (the
        optional ``genai-prices`` package holds the prices). Never 0 for want of
        data: an unknown model, missing usage or the package not installed give
        ``Cost(total=None, reason=...)``.
        """
        from .cost import cost_of

        return cost_of(self)

    def __str__(self) -> str:
        return self.text


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_arguments(arguments: str) -> tuple[Any, str | None]:
    """Strictly parse tool-call arguments once; return ``(value, None)`` or ``(None, error)``.

    An empty string means "no arguments" for every provider we know and parses
    as ``{}``; anything else must be complete JSON.
    """
    if not arguments.strip():
        return {}, None
    try:
        return json.loads(arguments), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON at character {exc.pos} (line {exc.lineno}, column {exc.colno}): {exc.msg}"
