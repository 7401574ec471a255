"""The iterator source: async and sync iterables of strings, factories that can be opened again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from schwarm_stream import Chunk, Finish, Pipeline, Reset, StreamError, TransportError, hookimpl
from schwarm_stream.sources import from_iterator


@pytest.fixture
def pipe(core_pipeline: Callable[..., Pipeline]) -> Pipeline:
    return core_pipeline()


class RetryOnce:
    """Decides ``retry`` for the first failure only."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    @hookimpl
    def stream_error(self, error: BaseException) -> str | None:
        self.errors.append(error)
        return "retry" if len(self.errors) == 1 else None


async def test_async_iterable(pipe: Pipeline) -> None:
    async def gen() -> AsyncIterator[str]:
        for piece in ["Hel", "", "lo"]:
            yield piece

    async with pipe.open(from_iterator(gen(), model="local")) as s:
        events = [e async for e in s]
    assert [e.text for e in events if isinstance(e, Chunk)] == ["Hel", "lo"]  # empty strings skipped
    assert isinstance(events[-1], Finish) and events[-1].reason == "stop"
    m = s.message
    assert (m.text, m.finish_reason, m.complete, m.model, m.provider) == (
        "Hello",
        "stop",
        True,
        "local",
        "iterator",
    )
    assert m.usage is None


async def test_sync_iterable_and_plain_list_via_as_source(pipe: Pipeline) -> None:
    def gen() -> Iterator[str]:
        yield from ["a", "b"]

    async with pipe.open(gen()) as s:
        assert (await s.collect()).text == "ab"
    async with pipe.open(["x", "y"]) as s:
        assert (await s.collect()).text == "xy"


async def test_sync_iterable_offloaded_to_a_thread(pipe: Pipeline) -> None:
    from schwarm_stream.sources import IteratorSource

    src = IteratorSource(iter(["p", "q"]), offload_sync=True)
    async with pipe.open(src) as s:
        assert (await s.collect()).text == "pq"


async def test_factory_is_reopened_on_retry(core_pipeline: Any) -> None:
    opened: list[int] = []

    async def flaky() -> AsyncIterator[str]:
        opened.append(1)
        if len(opened) == 1:
            raise ConnectionResetError("dropped before content")
        yield "fine"

    retry = RetryOnce()
    async with core_pipeline(retry).open(from_iterator(flaky)) as s:
        events = [e async for e in s]
    assert len(opened) == 2 and s.attempt == 2
    assert isinstance(retry.errors[0], TransportError)
    assert not any(isinstance(e, Reset) for e in events)  # nothing was delivered before the retry
    assert s.message.text == "fine" and s.message.complete


async def test_factory_reopened_after_content_gets_a_reset_and_a_fresh_message(core_pipeline: Any) -> None:
    calls: list[int] = []

    def factory() -> Iterator[str]:
        calls.append(1)
        yield "first "
        if len(calls) == 1:
            raise ConnectionResetError("mid-stream")
        yield "answer"

    async with core_pipeline(RetryOnce()).open(from_iterator(factory)) as s:
        events = [e async for e in s]
    resets = [e for e in events if isinstance(e, Reset)]
    assert len(resets) == 1 and resets[0].strategy == "restart"
    assert s.message.text == "first answer"  # not "first first answer"
    assert s.message.recovery == "restarted"


async def test_bare_iterator_cannot_be_reopened(core_pipeline: Any) -> None:
    def gen() -> Iterator[str]:
        raise ConnectionResetError("dropped")
        yield  # pragma: no cover

    retry = RetryOnce()
    with pytest.raises(StreamError, match="cannot be opened twice") as info:
        async with core_pipeline(retry).open(from_iterator(gen())) as s:
            await s.collect()
    assert info.value.retryable is False
    assert s.attempt == 2 and s.outcome == "error"


async def test_a_non_string_item_is_a_typed_error(pipe: Pipeline) -> None:
    with pytest.raises(StreamError, match="iterator sources yield str, got int"):
        bad: list[Any] = ["ok", 3]
        async with pipe.open(from_iterator(bad)) as s:
            await s.collect()
    assert s.message.text == "ok"


async def test_the_iterator_is_closed_when_the_consumer_breaks(pipe: Pipeline) -> None:
    closed: list[bool] = []

    async def gen() -> AsyncIterator[str]:
        try:
            for i in range(100):
                yield str(i)
        finally:
            closed.append(True)

    async with pipe.open(from_iterator(gen())) as s:
        async for _ in s:
            break
    assert closed == [True] and s.outcome == "cancelled"
