"""``agent_loop_sync``: the agent loop for sync code, through the sync SDK clients on a loopback socket.

Each test compares with the async loop or checks what the async loop guarantees: the same events and
outcome, the same error with its partial message, and a ``break`` (or an interruption) that closes the
provider connection, ends the stream ``cancelled`` and leaves no thread behind.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from schwarm_stream import Chunk, StreamIncomplete
from schwarm_stream.compose.agent import (
    AgentLoop,
    SyncAgentLoop,
    ToolResult,
    TurnEnd,
    TurnStart,
    agent_loop,
    agent_loop_sync,
)
from schwarm_stream.sources import anthropic_messages, openai_chat, openai_responses
from schwarm_stream.testing.server import (
    OfflineProvider,
    SSEReply,
    Stall,
    ThreadedProviderServer,
    openai_chat_events,
)
from tests.support.sync_checks import Ends, no_new_threads
from tests.test_agent import ANTHROPIC_TOOLS, ASK, CHAT_TOOLS, RESPONSES_TOOLS  # the async loop's tests

CORE = {"plugins": {"autoload": False, "disable": ["retry", "recovery", "timeouts"]}}


@pytest.fixture
def server() -> Iterator[ThreadedProviderServer]:
    with ThreadedProviderServer(OfflineProvider()) as srv:
        yield srv


def chat(server: ThreadedProviderServer, sync: bool = True) -> Any:
    cls = openai.OpenAI if sync else openai.AsyncOpenAI
    # A stalled test fails in a minute, not after the SDK's 600 s default read timeout.
    client: Any = cls(api_key="sk-test", base_url=server.openai_base_url, timeout=60)
    return openai_chat(client, model="m", messages=[{"role": "user", "content": ASK}], tools=CHAT_TOOLS)


def claude(server: ThreadedProviderServer, sync: bool = True) -> Any:
    cls = anthropic.Anthropic if sync else anthropic.AsyncAnthropic
    client: Any = cls(api_key="x", base_url=server.anthropic_base_url)
    return anthropic_messages(
        client, model="m", max_tokens=256, messages=[{"role": "user", "content": ASK}], tools=ANTHROPIC_TOOLS
    )


def responses(server: ThreadedProviderServer, sync: bool = True) -> Any:
    cls = openai.OpenAI if sync else openai.AsyncOpenAI
    client: Any = cls(api_key="sk-test", base_url=server.openai_base_url)
    return openai_responses(client, model="m", input=ASK, tools=RESPONSES_TOOLS)


def weather(city: str) -> dict[str, Any]:
    return {"city": city, "temperature_c": 21}


def shape(events: list[Any]) -> list[str]:
    """Event types in order, and the text of chunks: what both loops must agree on."""
    return [f"{type(e).__name__}:{e.text}" if isinstance(e, Chunk) else type(e).__name__ for e in events]


@pytest.mark.parametrize("make", [chat, claude, responses])
def test_the_same_turns_events_and_conversation_as_the_async_loop(
    server: ThreadedProviderServer, make: Any
) -> None:
    async def run_async() -> tuple[AgentLoop, list[Any]]:
        loop = agent_loop(make(server, sync=False), tools={"get_weather": weather})
        return loop, [ev async for ev in loop]

    reference, expected = asyncio.run(run_async())
    with no_new_threads():
        loop = agent_loop_sync(make(server), tools={"get_weather": weather})
        assert isinstance(loop, SyncAgentLoop)
        events = list(loop)  # a plain for loop, no `with`: the thread ends with the iteration

    assert shape(events) == shape(expected)
    assert [type(e).__name__ for e in events if isinstance(e, (TurnStart, ToolResult, TurnEnd))] == [
        "TurnStart",
        "ToolResult",
        "TurnEnd",
        "TurnStart",
        "TurnEnd",
    ]
    assert loop.outcome == reference.outcome == "complete"
    assert loop.message is not None and reference.message is not None
    assert loop.message.text == reference.message.text and "Berlin" in loop.message.text
    assert loop.messages == reference.messages
    assert [t.number for t in loop.turns] == [1, 2] and loop.tool_errors == []


def test_run_returns_the_final_message_and_tool_errors_are_kept(server: ThreadedProviderServer) -> None:
    def broken(city: str) -> str:
        raise ValueError(f"no weather for {city}")

    with no_new_threads(), agent_loop_sync(chat(server), tools={"get_weather": broken}) as loop:
        message = loop.run()
    assert message is loop.message and message.complete
    assert loop.outcome == "tool_error"
    assert [r.error for r in loop.tool_errors] == [
        "tool 'get_weather' raised ValueError: no weather for Berlin"
    ]


def test_a_failing_turn_raises_the_async_loops_error_with_its_partial_message() -> None:
    with ThreadedProviderServer() as server:
        server.script(
            "openai-chat", SSEReply(openai_chat_events(["par", "tial"], finish_reason=None, done=False))
        )
        ends = Ends()
        with no_new_threads():
            loop = agent_loop_sync(chat(server), tools={}, plugins=[ends], config=CORE)
            seen: list[Any] = []
            with pytest.raises(StreamIncomplete) as info:
                for event in loop:
                    seen.append(event)
    assert info.value.partial is not None and info.value.partial.text == "partial"
    assert loop.outcome == "error" and loop.message is not None and loop.message.text == "partial"
    assert "".join(e.text for e in seen if isinstance(e, Chunk)) == "partial"
    assert ends.outcomes == ["error"]


def stalled_chat(server: ThreadedProviderServer, release: threading.Event) -> Any:
    """A chat source whose answer stops after its first chunk until ``release`` is set."""
    server.script("openai-chat", SSEReply([*openai_chat_events(["a"])[:2], Stall(release)]))
    return chat(server)


def test_break_closes_the_turns_stream_and_the_connection_and_ends_the_thread() -> None:
    release = threading.Event()
    with ThreadedProviderServer() as server:
        try:
            ends = Ends()
            with no_new_threads():
                loop = agent_loop_sync(stalled_chat(server, release), tools={}, plugins=[ends], config=CORE)
                for event in loop:
                    if isinstance(event, Chunk):
                        assert server.connections_open() == 1
                        break
                server.wait_connections(0)  # TimeoutError if the provider connection stayed open
            assert ends.outcomes == ["cancelled"]
            assert loop.stream is not None and loop.stream.outcome == "cancelled"
        finally:
            release.set()


def test_an_exception_in_the_consumer_inside_with_closes_everything() -> None:
    release = threading.Event()
    with ThreadedProviderServer() as server:
        try:
            ends = Ends()
            with no_new_threads(), pytest.raises(KeyError):
                with agent_loop_sync(
                    stalled_chat(server, release), tools={}, plugins=[ends], config=CORE
                ) as loop:
                    for event in loop:
                        if isinstance(event, Chunk):
                            raise KeyError("consumer bug")
            server.wait_connections(0)
            assert ends.outcomes == ["cancelled"]
        finally:
            release.set()


def test_ctrl_c_while_waiting_for_the_next_event_cancels_the_turn(ctrl_c: None) -> None:
    """A real SIGINT to the main thread while it blocks on the stalled stream (what Ctrl-C does)."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread only")  # pytest runs tests there
    release = threading.Event()
    main = threading.main_thread().ident
    assert main is not None
    with ThreadedProviderServer() as server:
        try:
            ends = Ends()
            with no_new_threads():
                loop = agent_loop_sync(stalled_chat(server, release), tools={}, plugins=[ends], config=CORE)
                chunks = 0
                with pytest.raises(KeyboardInterrupt):
                    for event in loop:
                        if isinstance(event, Chunk):
                            chunks += 1
                            # The stream stalls after this chunk: the next wait is interrupted.
                            threading.Timer(0.05, signal.pthread_kill, (main, signal.SIGINT)).start()
                server.wait_connections(0)
            assert chunks == 1 and ends.outcomes == ["cancelled"]
        finally:
            release.set()
