"""CallbackHandler: callbacks as a plugin, through the real OpenAI SDK client and the loopback server."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

import schwarm_stream
from schwarm_stream import StreamIncomplete, hookimpl
from schwarm_stream.compose.callbacks import CALLBACKS, CallbackHandler
from schwarm_stream.sources import openai_chat
from schwarm_stream.testing.server import (
    JSONReply,
    OfflineProvider,
    ProviderServer,
    SSEReply,
    openai_chat_events,
)

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
ASK: Any = [{"role": "user", "content": "Weather in Lisbon?"}]


@pytest.fixture
async def server() -> AsyncIterator[ProviderServer]:
    async with ProviderServer(OfflineProvider()) as srv:
        yield srv


def source(server: ProviderServer, **kw: Any) -> Any:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url)
    return openai_chat(client, model="m", messages=kw.pop("messages", ASK), **kw)


def hooks_of(handler: Any) -> list[str]:
    pm = schwarm_stream.Pipeline([handler]).plugin_manager
    return sorted(caller.name for caller in pm.get_hookcallers(handler) or [])


class Recorder(CallbackHandler):
    """Every callback, sync; records the calls in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def on_stream_start(self, stream: Any) -> Any:
        self.calls.append(("start", stream.id))

    def on_token(self, text: str, stream: Any) -> Any:
        self.calls.append(("token", text))

    def on_reasoning(self, text: str, stream: Any) -> Any:
        self.calls.append(("reasoning", text))

    def on_refusal(self, text: str, stream: Any) -> Any:
        self.calls.append(("refusal", text))

    def on_tool_call_delta(self, delta: Any, stream: Any) -> Any:
        self.calls.append(("tool", delta))

    def on_complete(self, message: Any, stream: Any) -> Any:
        self.calls.append(("complete", message))

    def on_error(self, error: Any, stream: Any) -> Any:
        self.calls.append(("error", error))

    def on_end(self, stream: Any) -> Any:
        self.calls.append(("end", stream.outcome))

    def of(self, kind: str) -> list[Any]:
        return [v for k, v in self.calls if k == kind]


class AsyncRecorder(Recorder):
    """The same callbacks as coroutines."""

    async def on_stream_start(self, stream: Any) -> None:
        self.calls.append(("start", stream.id))

    async def on_token(self, text: str, stream: Any) -> None:
        self.calls.append(("token", text))

    async def on_tool_call_delta(self, delta: Any, stream: Any) -> None:
        self.calls.append(("tool", delta))

    async def on_complete(self, message: Any, stream: Any) -> None:
        self.calls.append(("complete", message))

    async def on_error(self, error: Any, stream: Any) -> None:
        self.calls.append(("error", error))

    async def on_end(self, stream: Any) -> None:
        self.calls.append(("end", stream.outcome))


@pytest.mark.parametrize("handler_cls", [Recorder, AsyncRecorder])
async def test_callbacks_follow_the_stream(server: ProviderServer, handler_cls: type[Recorder]) -> None:
    handler = handler_cls()
    async with schwarm_stream.open(source(server, tools=TOOLS), plugins=[handler]) as stream:
        await stream.collect()
    message = stream.message
    kinds = [k for k, _ in handler.calls]
    assert kinds[0] == "start" and kinds[-2:] == ["complete", "end"]
    assert handler.calls[0] == ("start", stream.id)
    assert "".join(handler.of("token")) == message.text == "Let me check the weather."
    deltas = handler.of("tool")
    assert deltas[0].name == "get_weather" and deltas[0].id == message.tool_calls[0].id
    assert "".join(d.arguments for d in deltas) == message.tool_calls[0].arguments == '{"city":"Lisbon"}'
    assert handler.of("complete") == [message]
    assert handler.of("end") == ["complete"]
    assert handler.of("error") == []


async def test_reasoning_and_refusal_go_to_their_own_callbacks(server: ProviderServer) -> None:
    server.script(
        "openai-chat",
        SSEReply(openai_chat_events(["an", "swer"], reasoning_chunks=["hm", "m"], refusal_chunks=["no"])),
    )
    handler = Recorder()
    async with schwarm_stream.open(source(server), plugins=[handler]) as stream:
        await stream.collect()
    assert handler.of("reasoning") == ["hm", "m"]
    assert handler.of("token") == ["an", "swer"]
    assert handler.of("refusal") == ["no"]


async def test_on_error_gets_the_final_error_with_the_partial(server: ProviderServer) -> None:
    truncated = openai_chat_events(["par", "tial"], finish_reason=None, usage=None, done=False)
    server.script("openai-chat", SSEReply(truncated))
    handler = AsyncRecorder()
    with pytest.raises(StreamIncomplete):
        async with schwarm_stream.open(source(server), plugins=[handler]) as stream:
            await stream.collect()
    [error] = handler.of("error")
    assert isinstance(error, StreamIncomplete)
    assert error.partial is not None and error.partial.text == "partial"
    assert handler.of("complete") == []
    assert handler.calls[-1] == ("end", "error")


class RetryOnce:
    """A decision plugin: retry the first failure (stands in for the retry plugin)."""

    def __init__(self) -> None:
        self.seen = 0

    @hookimpl
    def stream_error(self, stream: Any, error: Any) -> str | None:
        self.seen += 1
        return "retry" if self.seen == 1 else None


async def test_a_failure_that_was_retried_is_not_an_error(server: ProviderServer) -> None:
    server.script("openai-chat", JSONReply(503, {"error": {"message": "busy", "type": "server_error"}}))
    handler, retry = Recorder(), RetryOnce()
    async with schwarm_stream.open(source(server), plugins=[retry, handler]) as stream:
        await stream.collect()
    assert retry.seen == 1 and stream.attempt == 2
    assert handler.of("error") == []
    assert handler.of("complete") == [stream.message]
    assert handler.of("start") == [stream.id]  # once per logical stream, not per attempt


def test_only_overridden_callbacks_become_hooks() -> None:
    class TokensOnly(CallbackHandler):
        def on_token(self, text: str, stream: Any) -> None:
            pass

    class Nothing(CallbackHandler):
        pass

    class EndOnly(CallbackHandler):
        async def on_error(self, error: Any, stream: Any) -> None:
            pass

    assert hooks_of(TokensOnly()) == ["stream_chunk"]
    assert hooks_of(Nothing()) == []
    assert hooks_of(EndOnly()) == ["stream_end"]
    assert hooks_of(Recorder()) == sorted(
        ["stream_start", "stream_chunk", "stream_tool_call_delta", "stream_complete", "stream_end"]
    )
    # a sync on_token keeps the per-chunk hook sync (the core's fast path)
    assert not inspect.iscoroutinefunction(vars(TokensOnly)["stream_chunk"])
    assert inspect.iscoroutinefunction(vars(AsyncRecorder)["stream_chunk"])


def test_subclasses_inherit_and_extend_the_forwarders() -> None:
    class Base(CallbackHandler):
        def __init__(self) -> None:
            self.seen: list[str] = []

        def on_token(self, text: str, stream: Any) -> None:
            self.seen.append("token:" + text)

    class Child(Base):
        def on_reasoning(self, text: str, stream: Any) -> None:
            self.seen.append("reasoning:" + text)

    child, base = Child(), Base()
    from schwarm_stream import Chunk

    for h in (child, base):
        h.stream_chunk(None, Chunk("a"))  # type: ignore[attr-defined]
        h.stream_chunk(None, Chunk("b", "reasoning"))  # type: ignore[attr-defined]
    assert child.seen == ["token:a", "reasoning:b"]
    assert base.seen == ["token:a"]


async def test_a_failing_callback_is_isolated(server: ProviderServer) -> None:
    class Broken(CallbackHandler):
        def on_token(self, text: str, stream: Any) -> None:
            raise RuntimeError("boom")

    async with schwarm_stream.open(source(server), plugins=[Broken()]) as stream:
        message = await stream.collect()
    assert message.complete and message.text.startswith("You said:")
    assert stream.plugin_errors and "stream_chunk" in str(stream.plugin_errors[0])


def test_callbacks_list_matches_the_base_class() -> None:
    assert all(callable(getattr(CallbackHandler, name)) for name in CALLBACKS)
