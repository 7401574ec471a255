"""``open_sync``: the same stream for sync agent loops, through the real sync and async SDK clients."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from schwarm_stream import Chunk, StreamIncomplete, hookimpl, open_sync
from schwarm_stream._manager import BUILTIN_PLUGINS, ESSENTIAL_PLUGINS
from schwarm_stream.sources import from_iterator, openai_chat
from schwarm_stream.testing.server import SSEReply, Stall, ThreadedProviderServer, openai_chat_events

HI: Any = [{"role": "user", "content": "hi"}]
CORE = {"plugins": {"autoload": False, "disable": sorted(set(BUILTIN_PLUGINS) - ESSENTIAL_PLUGINS)}}


class Ends:
    def __init__(self) -> None:
        self.outcomes: list[str | None] = []
        self.completes = 0

    @hookimpl
    def stream_complete(self) -> None:
        self.completes += 1

    @hookimpl
    def stream_end(self, stream: Any) -> None:
        self.outcomes.append(stream.outcome)


@pytest.fixture
def tserver() -> Iterator[ThreadedProviderServer]:
    with ThreadedProviderServer() as srv:
        yield srv


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_iteration_and_message(client_kind: str, tserver: ThreadedProviderServer) -> None:
    tserver.script(
        "openai-chat",
        SSEReply(openai_chat_events(["Hel", "lo"], tool_calls=[{"name": "f", "arguments": {"a": 1}}])),
    )
    cls = openai.OpenAI if client_kind == "sync" else openai.AsyncOpenAI
    client: Any = cls(api_key="sk-test", base_url=tserver.openai_base_url)
    ends = Ends()
    with open_sync(openai_chat(client, model="m", messages=HI), plugins=[ends], config=CORE) as s:
        texts = [ev.text for ev in s if isinstance(ev, Chunk)]
    assert texts == ["Hel", "lo"]
    assert s.message.text == "Hello" and s.message.tool_calls[0].parsed == {"a": 1} and s.message.complete
    assert s.outcome == "complete" and s.stats().chunks == 2
    assert ends.outcomes == ["complete"] and ends.completes == 1


def test_collect_and_exception_propagation(tserver: ThreadedProviderServer) -> None:
    tserver.script(
        "openai-chat", SSEReply(openai_chat_events(["par", "tial"], finish_reason=None, done=False))
    )
    client = openai.OpenAI(api_key="sk-test", base_url=tserver.openai_base_url)
    ends = Ends()
    with pytest.raises(StreamIncomplete) as info:
        with open_sync(openai_chat(client, model="m", messages=HI), plugins=[ends], config=CORE) as s:
            s.collect()
    assert info.value.partial is not None and info.value.partial.text == "partial"
    assert ends.outcomes == ["error"] and ends.completes == 0
    assert s.message.text == "partial" and not s.message.complete


def test_break_closes_the_provider_connection_and_ends_once(tserver: ThreadedProviderServer) -> None:
    release = threading.Event()
    head = openai_chat_events(["a", "b"])[:3]
    tserver.script("openai-chat", SSEReply([*head, Stall(release)]))
    client = openai.OpenAI(api_key="sk-test", base_url=tserver.openai_base_url)
    ends = Ends()
    try:
        with open_sync(openai_chat(client, model="m", messages=HI), plugins=[ends], config=CORE) as s:
            for ev in s:
                if isinstance(ev, Chunk):
                    assert tserver.connections_open() == 1
                    break
        tserver.wait_connections(0)  # raises TimeoutError if the connection stayed open
        assert tserver.connections_open() == 0
        assert ends.outcomes == ["cancelled"] and ends.completes == 0
        # the background loop may have queued "b" before the consumer broke (bounded prefetch)
        assert s.message.text in ("a", "ab") and not s.message.complete
    finally:
        release.set()


def test_an_exception_in_the_consumer_closes_the_stream() -> None:
    ends = Ends()

    def forever() -> Iterator[str]:
        while True:
            yield "x"

    with pytest.raises(KeyError):
        with open_sync(from_iterator(forever()), plugins=[ends], config=CORE) as s:
            for _ in s:
                raise KeyError("consumer bug")
    assert ends.outcomes == ["cancelled"]


def test_cancel_from_another_thread(tserver: ThreadedProviderServer) -> None:
    from schwarm_stream import StreamCancelled

    tserver.script("openai-chat", SSEReply([*openai_chat_events(["a"])[:2], Stall()]))
    client = openai.OpenAI(api_key="sk-test", base_url=tserver.openai_base_url)
    ends = Ends()
    with pytest.raises(StreamCancelled):
        with open_sync(openai_chat(client, model="m", messages=HI), plugins=[ends], config=CORE) as s:
            for ev in s:
                if isinstance(ev, Chunk):
                    threading.Timer(0.01, s.cancel).start()
    assert ends.outcomes == ["cancelled"]
    tserver.wait_connections(0)


def test_sync_client_connection_is_reused_after_a_complete_stream(tserver: ThreadedProviderServer) -> None:
    tserver.script(
        "openai-chat", SSEReply(openai_chat_events(["one"])), SSEReply(openai_chat_events(["two"]))
    )
    client = openai.OpenAI(api_key="sk-test", base_url=tserver.openai_base_url)
    texts = []
    for _ in range(2):
        with open_sync(openai_chat(client, model="m", messages=HI), config=CORE) as s:
            texts.append(s.collect().text)
    assert texts == ["one", "two"]
    first, second = tserver.requests
    assert first.connection_id == second.connection_id  # keep-alive: the body was read cleanly
