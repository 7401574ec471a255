"""The agent loop: stream a turn, run the tool calls, append the results, stream the next turn.

::

    from schwarm_stream.compose.agent import agent_loop, TurnStart, ToolResult

    loop = agent_loop(openai_chat(client, model=..., messages=msgs, tools=schemas),
                      tools={"get_weather": get_weather})
    async for event in loop:          # our normalized events, plus turn boundaries and tool results
        ...
    loop.message                      # the final assistant message
    loop.messages                     # the whole conversation, in the provider's own format

Works with :func:`~schwarm_stream.sources.openai_chat` (and compatible servers),
:func:`~schwarm_stream.sources.anthropic_messages`,
:func:`~schwarm_stream.sources.openai_responses`,
:func:`~schwarm_stream.sources.gemini_generate` (google-genai ``contents``),
:func:`~schwarm_stream.sources.ollama_chat` / :func:`~schwarm_stream.sources.native_ollama`
(``/api/chat`` messages) and :func:`~schwarm_stream.sources.bedrock_converse` (Converse
messages), SDK or native httpx alike. Tool calls are taken only
from a turn's *final, complete* message: whatever an attempt delivered before
a retry or recovery reset it is never executed.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .._events import Event
from .._message import Message, ToolCall
from .._pipeline import Pipeline, default_pipeline
from ..sources import (
    AnthropicMessagesSource,
    BedrockConverseSource,
    GeminiSource,
    NativeOllamaSource,
    OllamaChatSource,
    OpenAIChatSource,
    OpenAIResponsesSource,
    Source,
    to_converse,
    to_gemini,
    to_ollama,
)
from ._sync_bridge import Bridged

if TYPE_CHECKING:
    from .._stream import Stream, StreamStats

__all__ = [
    "AgentEvent",
    "AgentLoop",
    "Outcome",
    "SyncAgentLoop",
    "ToolFunction",
    "ToolResult",
    "Turn",
    "TurnEnd",
    "TurnStart",
    "agent_loop",
    "agent_loop_sync",
]

#: The conversation formats: OpenAI Chat, Anthropic Messages, OpenAI Responses, Gemini ``contents``,
#: Ollama ``/api/chat`` messages and Bedrock Converse messages.
Format = Literal["openai", "anthropic", "responses", "gemini", "ollama", "bedrock"]

#: How an :class:`AgentLoop` ended (:attr:`AgentLoop.outcome`).
Outcome = Literal["complete", "tool_error", "max_turns", "incomplete", "error"]

#: A tool: ``fn(**arguments)``, sync (run in a worker thread) or async.
ToolFunction = Callable[..., Any]


@dataclass(slots=True)
class TurnStart:
    """A turn (one model call) begins; ``turn`` counts from 1."""

    turn: int


@dataclass(slots=True)
class ToolResult:
    """A tool call of the turn's final message was executed.

    ``output`` is the tool's return value; ``content`` the string sent back to
    the model (``output`` itself when it is a string, else its JSON). When the
    tool raised, was unknown or got invalid arguments, ``error`` says why and
    ``content`` is that message (the model sees the error and may try again).
    """

    turn: int
    call: ToolCall
    output: Any = None
    content: str = ""
    error: str | None = None


@dataclass(slots=True)
class TurnEnd:
    """A turn is over: its final message, the tool results it produced and its stream's stats."""

    turn: int
    message: Message
    results: list[ToolResult] = field(default_factory=list)
    stats: StreamStats | None = None


AgentEvent = Event | TurnStart | ToolResult | TurnEnd
"""What iterating an :class:`AgentLoop` yields."""


@dataclass(slots=True)
class Turn:
    """One finished turn, as kept in :attr:`AgentLoop.turns`."""

    number: int
    message: Message
    results: list[ToolResult]
    stats: StreamStats


class AgentLoop:
    """Runs turns until the model stops calling tools (or ``max_turns`` is reached).

    Iterate it for events, or ``await loop.run()`` for the final message. After
    the loop: :attr:`message` (final message), :attr:`messages` (the whole
    conversation in the provider's format, ready for the next user turn),
    :attr:`turns`, :attr:`tool_errors` and :attr:`outcome`:

    - ``"complete"``: the last message called no tool, and every tool call of
      the loop succeeded;
    - ``"tool_error"``: the last message called no tool, but at least one tool
      call of the loop failed (the tool raised, was unknown, or got arguments
      that are not valid JSON) -- also when the model went on after it.
      :attr:`tool_errors` lists those calls' :class:`ToolResult`;
    - ``"max_turns"``: the model still called tools after ``max_turns`` turns
      (those calls were not executed);
    - ``"incomplete"``: a plugin ended a turn with a partial message (its tool
      calls were not executed);
    - ``"error"``: a turn failed; its :class:`~schwarm_stream.StreamError` was raised.

    A failing tool call does not stop the loop: the model receives the error as
    that call's result (``"error: ..."``; Anthropic: a ``tool_result`` with
    ``is_error: true``; Bedrock: a ``toolResult`` with ``status: "error"``;
    Gemini: a ``function_response`` whose ``response`` is ``{"error": ...}``)
    and may try again. Whatever the outcome,
    :attr:`tool_errors` holds every failed call.
    """

    def __init__(
        self,
        source: Source,
        tools: Mapping[str, ToolFunction],
        *,
        max_turns: int = 8,
        pipeline: Pipeline | None = None,
        plugins: Sequence[Any] | None = None,
        config: Any = None,
        format: Format | None = None,
        metadata: Mapping[str, Any] | None = None,
        agent_id: str | None = None,
    ) -> None:
        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {max_turns}")
        if pipeline is not None and (plugins is not None or config is not None):
            raise TypeError("pass either pipeline= or plugins=/config=, not both")
        self.source = source
        self.tools = dict(tools)
        self.max_turns = max_turns
        self.format: Format = format or detect_format(source)
        if pipeline is None:
            pipeline = (
                default_pipeline()
                if plugins is None and config is None
                else Pipeline(plugins or (), config=config)
            )
        self.pipeline = pipeline
        self.metadata = dict(metadata or {})
        self.agent_id = agent_id
        self.messages: list[Any] = _initial_messages(source, self.format)
        self.turns: list[Turn] = []
        self.message: Message | None = None
        self.stream: Stream | None = None
        self.outcome: Outcome | None = None
        #: Every tool call of the loop that failed, in order (its ``error`` says why).
        self.tool_errors: list[ToolResult] = []
        self._started = False

    def __aiter__(self) -> AsyncIterator[AgentEvent]:
        if self._started:
            raise RuntimeError("an AgentLoop runs once; build a new one (or continue from loop.messages)")
        self._started = True
        return self._run()

    async def run(self) -> Message:
        """Run every turn, discarding the events; return the final message."""
        async for _ in self:
            pass
        if self.message is None:  # every turn sets it or raises; max_turns >= 1
            raise RuntimeError("the agent loop ended without a message")
        return self.message

    async def _run(self) -> AsyncIterator[AgentEvent]:
        source = self.source
        for number in range(1, self.max_turns + 1):
            yield TurnStart(number)
            metadata = {**self.metadata, "turn": number}
            stream = self.pipeline.open(source, metadata=metadata, agent_id=self.agent_id)
            self.stream = stream
            try:
                async with stream:
                    async for event in stream:
                        yield event
            except BaseException:
                self.message = stream.message
                self.outcome = "error"
                raise
            message = stream.message
            self.message = message
            self.messages.extend(_assistant_turn(message, self.format))
            results: list[ToolResult] = []
            if not message.complete:
                self.outcome = "incomplete"  # never run tool calls of a partial message
            elif not message.tool_calls:
                self.outcome = "tool_error" if self.tool_errors else "complete"
            elif number == self.max_turns:
                self.outcome = "max_turns"
            else:
                for call in message.tool_calls:
                    result = await self._execute(number, call)
                    results.append(result)
                    if result.error is not None:
                        self.tool_errors.append(result)
                    yield result
                self.messages.extend(_tool_results(results, self.format))
                source = _with_conversation(source, self.messages, self.format)
            stats = stream.stats()
            self.turns.append(Turn(number, message, results, stats))
            yield TurnEnd(number, message, results, stats)
            if self.outcome is not None:
                return

    async def _execute(self, turn: int, call: ToolCall) -> ToolResult:
        fn = self.tools.get(call.name)
        if fn is None:
            known = ", ".join(sorted(self.tools)) or "(none)"
            return _failed(turn, call, f"unknown tool {call.name!r}; available tools: {known}")
        if not call.valid:
            return _failed(turn, call, f"arguments of {call.name!r} are not valid JSON: {call.error}")
        args = call.parsed
        try:
            if inspect.iscoroutinefunction(fn):
                output = await (fn(**args) if isinstance(args, dict) else fn(args))
            elif isinstance(args, dict):
                output = await asyncio.to_thread(fn, **args)
            else:
                output = await asyncio.to_thread(fn, args)
            if inspect.isawaitable(output):  # an async callable object
                output = await output
        except Exception as exc:
            return _failed(turn, call, f"tool {call.name!r} raised {type(exc).__name__}: {exc}")
        content = output if isinstance(output, str) else json.dumps(output, default=str, ensure_ascii=False)
        return ToolResult(turn, call, output, content)


def agent_loop(
    source: Source,
    tools: Mapping[str, ToolFunction],
    *,
    max_turns: int = 8,
    pipeline: Pipeline | None = None,
    plugins: Sequence[Any] | None = None,
    config: Any = None,
    format: Format | None = None,
    metadata: Mapping[str, Any] | None = None,
    agent_id: str | None = None,
) -> AgentLoop:
    """An :class:`AgentLoop` over ``source`` with ``tools`` (name -> function).

    Iterate the loop (or ``await loop.run()``), then read ``loop.outcome``:
    ``"complete"`` only when the model stopped calling tools and no tool call
    failed. When a tool raised (or was unknown, or got arguments that are not
    valid JSON), the model receives the error as that call's result and the loop
    goes on, but it ends with ``"tool_error"`` instead of ``"complete"`` and
    ``loop.tool_errors`` lists the failed calls. ``"max_turns"``,
    ``"incomplete"`` and ``"error"`` are described on :class:`AgentLoop`.
    """
    return AgentLoop(
        source,
        tools,
        max_turns=max_turns,
        pipeline=pipeline,
        plugins=plugins,
        config=config,
        format=format,
        metadata=metadata,
        agent_id=agent_id,
    )


class SyncAgentLoop(Bridged):
    """An :class:`AgentLoop` for sync code (a script, Flask): ``for event in loop: ...``.

    The same turns, events, tool calls, outcome and errors as the async loop, which runs on a private
    event loop in a background thread (sync tools still run in worker threads, async tools on that
    loop). ``break`` closes the current turn's stream (it ends ``cancelled``, the connection is closed)
    and ends the thread; so does leaving ``with``. Made by :func:`agent_loop_sync`.
    """

    def __init__(self, loop: AgentLoop) -> None:
        super().__init__("schwarm-agent-loop")
        #: The async loop this one drives.
        self.agent = loop

    def __iter__(self) -> Iterator[AgentEvent]:
        return self._events(self.agent.__aiter__)

    def run(self) -> Message:
        """Run every turn, discarding the events; return the final message (as :meth:`AgentLoop.run`)."""
        for _ in self:
            pass
        if self.agent.message is None:
            raise RuntimeError("the agent loop ended without a message")
        return self.agent.message

    @property
    def message(self) -> Message | None:
        """The last turn's message (:attr:`AgentLoop.message`)."""
        return self.agent.message

    @property
    def messages(self) -> list[Any]:
        """The whole conversation in the provider's format (:attr:`AgentLoop.messages`)."""
        return self.agent.messages

    @property
    def turns(self) -> list[Turn]:
        """The finished turns (:attr:`AgentLoop.turns`)."""
        return self.agent.turns

    @property
    def tool_errors(self) -> list[ToolResult]:
        """Every failed tool call (:attr:`AgentLoop.tool_errors`)."""
        return self.agent.tool_errors

    @property
    def outcome(self) -> Outcome | None:
        """How the loop ended (:attr:`AgentLoop.outcome`)."""
        return self.agent.outcome

    @property
    def stream(self) -> Stream | None:
        """The current (or last) turn's stream."""
        return self.agent.stream


def agent_loop_sync(
    source: Source,
    tools: Mapping[str, ToolFunction],
    *,
    max_turns: int = 8,
    pipeline: Pipeline | None = None,
    plugins: Sequence[Any] | None = None,
    config: Any = None,
    format: Format | None = None,
    metadata: Mapping[str, Any] | None = None,
    agent_id: str | None = None,
) -> SyncAgentLoop:
    """Like :func:`agent_loop`, for sync code: a :class:`SyncAgentLoop`, the same parameters.

    ``for event in agent_loop_sync(source, tools={...}): ...`` (or ``loop.run()`` for the final
    message), then ``loop.outcome``, ``loop.messages`` and ``loop.tool_errors`` as on :class:`AgentLoop`.
    """
    return SyncAgentLoop(
        AgentLoop(
            source,
            tools,
            max_turns=max_turns,
            pipeline=pipeline,
            plugins=plugins,
            config=config,
            format=format,
            metadata=metadata,
            agent_id=agent_id,
        )
    )


def detect_format(source: Source) -> Format:
    """The conversation format a source speaks; a clear error for sources without one."""
    if isinstance(source, OpenAIChatSource):
        return "openai"
    if isinstance(source, AnthropicMessagesSource):
        return "anthropic"
    if isinstance(source, OpenAIResponsesSource):
        return "responses"
    if isinstance(source, GeminiSource):
        return "gemini"
    if isinstance(source, (OllamaChatSource, NativeOllamaSource)):
        return "ollama"
    if isinstance(source, BedrockConverseSource):
        return "bedrock"
    raise TypeError(
        "agent_loop() needs an openai_chat, anthropic_messages, openai_responses, gemini_generate, "
        f"ollama_chat, native_ollama or bedrock_converse source, got {type(source).__name__}; pass "
        "format='openai'|'anthropic'|'responses'|'gemini'|'ollama'|'bedrock' for a source that speaks "
        "one of them"
    )


def _failed(turn: int, call: ToolCall, error: str) -> ToolResult:
    return ToolResult(turn, call, None, f"error: {error}", error)


def _initial_messages(source: Source, fmt: Format) -> list[Any]:
    if fmt == "gemini":
        return _gemini_contents(getattr(source, "contents", []))
    kwargs: Mapping[str, Any] = getattr(source, "kwargs", {})
    if fmt == "responses":
        items = kwargs.get("input", [])
        return [{"role": "user", "content": items}] if isinstance(items, str) else list(items)
    return list(kwargs.get("messages", []))


def _gemini_contents(contents: Any) -> list[Any]:
    # google-genai takes a string, one Content or a list; the loop appends Content dicts, so a bare
    # string (alone or in the list) becomes the user Content the SDK would have made of it.
    def user(text: str) -> dict[str, Any]:
        return {"role": "user", "parts": [{"text": text}]}

    if isinstance(contents, str):
        return [user(contents)]
    if isinstance(contents, Sequence):
        return [user(c) if isinstance(c, str) else c for c in contents]
    return [contents]


def _assistant_turn(message: Message, fmt: Format) -> list[Any]:
    if fmt == "openai":
        return [message.to_openai()]
    if fmt == "anthropic":
        return [message.to_anthropic()]
    if fmt == "gemini":
        return [to_gemini(message)]  # thought signatures stay on the parts they came with
    if fmt == "ollama":
        turn = to_ollama(message)
        for call in turn.get("tool_calls", ()):  # the API wants an object; bad JSON got an error result
            fn = call["function"]
            if not isinstance(fn["arguments"], Mapping):
                fn["arguments"] = {}
        return [turn]
    if fmt == "bedrock":
        turn = to_converse(message)["output"]["message"]
        blocks: list[dict[str, Any]] = []
        for block in turn["content"]:
            if "text" in block and not block["text"]:
                continue  # Converse rejects a blank text block
            use = block.get("toolUse")
            if use is not None and not isinstance(use.get("input"), Mapping):
                block = {"toolUse": {**use, "input": {}}}  # input is a JSON object; see ollama above
            blocks.append(block)
        return [{"role": turn["role"], "content": blocks}]
    return _responses_items(message)


def _responses_items(message: Message) -> list[dict[str, Any]]:
    # Stateless input items (no server-side state needed): the text, then each call.
    items: list[dict[str, Any]] = []
    if message.text:
        items.append({"role": "assistant", "content": message.text})
    for t in message.tool_calls:
        items.append({"type": "function_call", "call_id": t.id, "name": t.name, "arguments": t.arguments})
    return items


def _json_value(result: ToolResult) -> Any:
    """The tool's output as plain JSON (``content`` is its JSON unless the output was a string)."""
    if isinstance(result.output, str):
        return result.output
    return json.loads(result.content)


def _tool_results(results: list[ToolResult], fmt: Format) -> list[Any]:
    if fmt == "openai":
        return [{"role": "tool", "tool_call_id": r.call.id, "content": r.content} for r in results]
    if fmt == "anthropic":
        blocks = [
            {"type": "tool_result", "tool_use_id": r.call.id, "content": r.content}
            | ({"is_error": True} if r.error else {})
            for r in results
        ]
        return [{"role": "user", "content": blocks}]
    if fmt == "gemini":
        # One user Content with a function_response part per call. ``response`` is an object:
        # "output" holds the result, "error" the failure (the google-genai FunctionResponse docs).
        parts = []
        for r in results:
            response = {"error": r.content} if r.error else {"output": _json_value(r)}
            fr: dict[str, Any] = {"name": r.call.name, "response": response}
            if r.call.id != f"call_{r.call.index}":  # a real id (not made up for an id-less call)
                fr["id"] = r.call.id
            parts.append({"function_response": fr})
        return [{"role": "user", "parts": parts}]
    if fmt == "ollama":
        # Ollama matches a result to its call by tool_name (and order): one "tool" message per call.
        return [{"role": "tool", "content": r.content, "tool_name": r.call.name} for r in results]
    if fmt == "bedrock":
        tool_results: list[dict[str, Any]] = []
        for r in results:
            value = None if r.error else _json_value(r)
            content = [{"json": value}] if isinstance(value, Mapping) else [{"text": r.content}]
            result: dict[str, Any] = {"toolUseId": r.call.id, "content": content}
            if r.error:
                result["status"] = "error"
            tool_results.append({"toolResult": result})
        return [{"role": "user", "content": tool_results}]
    return [{"type": "function_call_output", "call_id": r.call.id, "output": r.content} for r in results]


def _with_conversation(source: Source, messages: list[Any], fmt: Format) -> Source:
    if fmt == "responses":  # the Responses source has no with_messages(): copy it with a new input
        clone = copy.copy(source)
        clone.kwargs = {**source.kwargs, "input": list(messages)}  # type: ignore[attr-defined]
        return clone
    name = "with_contents" if fmt == "gemini" else "with_messages"
    with_messages = getattr(source, name, None)
    if with_messages is None:
        raise TypeError(f"{type(source).__name__} has no {name}(); it cannot run an agent loop")
    clone = with_messages(list(messages))
    if not isinstance(clone, Source):
        raise TypeError(f"{type(source).__name__}.{name}() returned {type(clone).__name__}, not a Source")
    return clone
