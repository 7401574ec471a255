"""Closing a SyncStream's iterator without ``with`` closes the provider stream (issue 14 item 7).

Through the official openai client against the kit's provider server: the reply stalls after the first
chunk, so the rest of the answer is never sent; the server must see the connection closed, the stream
must end ``cancelled`` once, and ``stream_complete`` must not fire.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import schwarm_stream
from schwarm_stream import Chunk, hookimpl, open_sync
from schwarm_stream._manager import BUILTIN_PLUGINS, ESSENTIAL_PLUGINS
from schwarm_stream.sources import openai_chat
from schwarm_stream.testing.server import (
    ProviderServer,
    SlowHeaders,
    SSEReply,
    Stall,
    ThreadedProviderServer,
    openai_chat_events,
)

HI: Any = [{"role": "user", "content": "hi"}]
CORE = {"plugins": {"autoload": False, "disable": sorted(set(BUILTIN_PLUGINS) - ESSENTIAL_PLUGINS)}}


class Ends:
    def __init__(self) -> None:
        self.outcomes: list[str | None] = []
        self.completes = 0
        self.ended = threading.Event()

    @hookimpl
    def stream_complete(self) -> None:
        self.completes += 1

    @hookimpl
    def stream_end(self, stream: Any) -> None:
        self.outcomes.append(stream.outcome)
        self.ended.set()


@pytest.fixture
def tserver() -> Iterator[ThreadedProviderServer]:
    with ThreadedProviderServer() as srv:
        yield srv


def _open(tserver: ThreadedProviderServer, ends: Ends, release: threading.Event) -> Any:
    head = openai_chat_events(["a", "b"])[:3]
    tserver.script("openai-chat", SSEReply([*head, Stall(release)]))
    client = openai.OpenAI(api_key="sk-test", base_url=tserver.openai_base_url)
    return open_sync(openai_chat(client, model="m", messages=HI), plugins=[ends], config=CORE)


def _assert_cancelled(tserver: ThreadedProviderServer, ends: Ends) -> None:
    tserver.wait_connections(0)  # TimeoutError if the connection stayed open
    tserver.wait_disconnect()  # the client went away while the reply was stalled (answer not all sent)
    assert ends.ended.wait(5)
    assert ends.outcomes == ["cancelled"] and ends.completes == 0


def test_break_without_with_closes_the_provider_stream(tserver: ThreadedProviderServer) -> None:
    release, ends = threading.Event(), Ends()
    try:
        for ev in _open(tserver, ends, release):
            if isinstance(ev, Chunk):
                break
        _assert_cancelled(tserver, ends)
    finally:
        release.set()


def test_closing_the_iterator_closes_the_provider_stream(tserver: ThreadedProviderServer) -> None:
    release, ends = threading.Event(), Ends()
    try:
        s = _open(tserver, ends, release)
        it = iter(s)
        while not isinstance(next(it), Chunk):
            pass
        it.close()  # type: ignore[attr-defined]
        _assert_cancelled(tserver, ends)
        assert s.outcome == "cancelled" and not s.message.complete
    finally:
        release.set()


def test_garbage_collected_iterator_closes_the_provider_stream(tserver: ThreadedProviderServer) -> None:
    release, ends = threading.Event(), Ends()
    try:
        it = iter(_open(tserver, ends, release))
        while not isinstance(next(it), Chunk):
            pass
        del it
        gc.collect()
        _assert_cancelled(tserver, ends)
    finally:
        release.set()


async def test_cancelled_while_the_sync_client_still_connects_the_late_response_is_closed() -> None:
    # A sync SDK client's __enter__ runs in a worker thread; the task is cancelled while it still waits
    # for the headers. The response that arrives afterwards must be closed, not left holding the connection.
    release = threading.Event()
    async with ProviderServer() as server:
        server.script(
            "openai-chat", SlowHeaders(0.5, SSEReply([*openai_chat_events(["a"])[:2], Stall(release)]))
        )
        client = openai.OpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0)
        stream = schwarm_stream.open(openai_chat(client, model="m", messages=HI), config=CORE)

        async def consume() -> None:
            async with stream:
                async for _ in stream:
                    pass

        task = asyncio.create_task(consume())
        try:
            for _ in range(500):
                if server.requests:
                    break
                await asyncio.sleep(0.01)
            assert server.requests, "the request never reached the server"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await server.wait_disconnect()  # TimeoutError when the late response kept the connection open
            await server.wait_connections(0)
        finally:
            release.set()
            client.close()
