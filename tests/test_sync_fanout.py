"""``SyncFanout``: one stream to consumers in threads, with the async fan-out's policies and errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import openai
import pytest

from schwarm_stream import Chunk, Event, StreamIncomplete, open_sync
from schwarm_stream.compose.fanout import DROP_FLAG, SyncFanout, SyncSubscriber
from schwarm_stream.sources import from_iterator, openai_chat
from schwarm_stream.testing.server import SSEReply, Stall, ThreadedProviderServer, openai_chat_events
from tests.support.sync_checks import Ends, no_new_threads

N = 40  # text parts; the stream delivers N chunks + 1 finish
CORE = {"plugins": {"autoload": False, "disable": ["retry", "recovery", "timeouts"]}}


def parts(n: int = N) -> list[str]:
    return [f"w{i} " for i in range(n)]


def consume(sub: SyncSubscriber, into: list[Event], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            into.extend(sub)
        except Exception as exc:  # the stream's error, handed to every consumer
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"consumer-{sub.name}")
    thread.start()
    return thread


def test_consumers_in_threads_each_get_every_event_in_order() -> None:
    ends = Ends()
    with no_new_threads():
        with open_sync(from_iterator(parts()), plugins=[ends], config=CORE) as stream:
            fan = SyncFanout(stream, maxsize=4)  # block: backpressure, nothing lost
            ui, log = fan.subscribe("ui"), fan.subscribe("log")
            got: dict[str, list[Event]] = {"ui": [], "log": []}
            errors: list[BaseException] = []
            with fan:
                threads = [consume(ui, got["ui"], errors), consume(log, got["log"], errors)]
                for t in threads:
                    t.join()
    assert errors == []
    assert [e.seq for e in got["ui"]] == [e.seq for e in got["log"]] == list(range(1, N + 2))
    assert fan.message.text == "".join(parts()) and fan.message.complete and fan.message.flags == []
    assert fan.stats()["consumers"]["ui"]["received"] == N + 1
    assert ends.outcomes == ["complete"]


def test_a_drop_policy_counts_exactly_and_flags_the_message() -> None:
    with no_new_threads(), open_sync(from_iterator(parts()), config=CORE) as stream:
        fan = SyncFanout(stream, maxsize=64)
        main = fan.subscribe("main")
        late = fan.subscribe("late", policy="drop_newest", maxsize=1)
        with fan:
            first = list(main)  # the whole stream, read here; `late` reads nothing meanwhile
            kept = list(late)
    assert len(first) == N + 1
    assert [e.seq for e in kept] == [1]  # its one slot, the first event; the rest dropped
    assert late.subscriber.dropped == N and fan.stats()["dropped_events"] == N
    assert DROP_FLAG in fan.message.flags and fan.message.dropped_events == N
    assert fan.message.text == "".join(parts())  # the accumulator saw every event


def test_the_streams_error_reaches_every_consumer_and_the_with_block() -> None:
    with ThreadedProviderServer() as server:
        server.script(
            "openai-chat", SSEReply(openai_chat_events(["par", "tial"], finish_reason=None, done=False))
        )
        client = openai.OpenAI(api_key="sk-test", base_url=server.openai_base_url)
        source = openai_chat(client, model="m", messages=[{"role": "user", "content": "hi"}])
        got: dict[str, list[Event]] = {"a": [], "b": []}
        errors: list[BaseException] = []
        with no_new_threads(), open_sync(source, config=CORE) as stream:
            fan = SyncFanout(stream)
            a, b = fan.subscribe("a"), fan.subscribe("b")
            with pytest.raises(StreamIncomplete) as info:
                with fan:
                    for t in [consume(a, got["a"], errors), consume(b, got["b"], errors)]:
                        t.join()
    assert info.value.partial is not None and info.value.partial.text == "partial"
    assert len(errors) == 2 and all(e is info.value for e in errors)
    for name in ("a", "b"):
        assert "".join(e.text for e in got[name] if isinstance(e, Chunk)) == "partial"


def test_a_consumer_that_breaks_is_closed_and_leaving_early_closes_the_connection() -> None:
    release = threading.Event()
    with ThreadedProviderServer() as server:
        server.script("openai-chat", SSEReply([*openai_chat_events(["a"])[:2], Stall(release)]))
        client = openai.OpenAI(api_key="sk-test", base_url=server.openai_base_url)
        source = openai_chat(client, model="m", messages=[{"role": "user", "content": "hi"}])
        ends = Ends()
        try:
            with no_new_threads(), open_sync(source, plugins=[ends], config=CORE) as stream:
                fan = SyncFanout(stream, maxsize=1)
                sub = fan.subscribe("only")
                with pytest.raises(KeyError), fan:
                    for event in sub:
                        if isinstance(event, Chunk):
                            break
                    # a block pump no longer waits for a consumer that left
                    assert sub.subscriber.closed
                    raise KeyError("the caller gives up")  # leaving with an error cancels the pump
            server.wait_connections(0)
            assert ends.outcomes == ["cancelled"]
        finally:
            release.set()


def subscribers(fan: SyncFanout, n: int) -> Iterator[SyncSubscriber]:
    for i in range(n):
        yield fan.subscribe(f"c{i}")


def test_many_threads_one_stream() -> None:
    with no_new_threads(), open_sync(from_iterator(parts()), config=CORE) as stream:
        fan = SyncFanout(stream, maxsize=2)
        subs = list(subscribers(fan, 6))
        got: dict[str, list[Event]] = {s.name: [] for s in subs}
        errors: list[BaseException] = []
        with fan:
            for t in [consume(s, got[s.name], errors) for s in subs]:
                t.join()
    assert errors == [] and {len(v) for v in got.values()} == {N + 1}
