"""Hook dispatch: pluggy's order, argument subsets, async impls, isolation, strict policy, transformers.

Most streams here come from the real OpenAI SDK client talking to the loopback ProviderServer; the
iterator source is used where the provider does not matter (ordering, argument adaptation).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import openai
import pytest

from schwarm_stream import (
    Chunk,
    Event,
    Finish,
    Pipeline,
    PluginError,
    StreamCancelled,
    StreamIncomplete,
    TransportError,
    hookimpl,
)
from schwarm_stream._manager import BUILTIN_PLUGINS, ESSENTIAL_PLUGINS
from schwarm_stream.sources import from_iterator, openai_chat
from schwarm_stream.testing.server import ProviderServer, SSEReply, Stall, openai_chat_events

HI: Any = [{"role": "user", "content": "hi"}]


def pipeline(*plugins: Any, strict: bool = False) -> Pipeline:
    """Only the core: no entry points and no optional built-ins (retry would change what we see)."""
    optional = sorted(set(BUILTIN_PLUGINS) - ESSENTIAL_PLUGINS)
    policy = "strict" if strict else "isolate"
    return Pipeline(plugins, config={"plugins": {"autoload": False, "disable": optional, "policy": policy}})


def chat(oai: openai.AsyncOpenAI) -> Any:
    return openai_chat(oai, model="gpt-x", messages=HI)


class Recorder:
    """Records every lifecycle hook it sees, in order, into a shared log."""

    def __init__(self, log: list[Any], name: str = "rec") -> None:
        self.log = log
        self.name = name

    @hookimpl
    def stream_start(self, stream: Any) -> None:
        self.log.append("start")

    @hookimpl
    def stream_event(self, event: Event) -> None:
        self.log.append(("event", type(event).__name__, getattr(event, "text", None)))

    @hookimpl
    def stream_complete(self, message: Any) -> None:
        self.log.append("complete")

    @hookimpl
    def stream_error(self, error: Any) -> None:
        self.log.append(("error", type(error).__name__))

    @hookimpl
    def stream_end(self, stream: Any) -> None:
        self.log.append(("end", stream.outcome))


# --------------------------------------------------------------------------------------------------------
# Order


class Named:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    @hookimpl
    def stream_chunk(self) -> None:
        self.log.append(self.name)


class First(Named):
    @hookimpl(tryfirst=True)
    def stream_chunk(self) -> None:
        self.log.append(self.name)


class Last(Named):
    @hookimpl(trylast=True)
    def stream_chunk(self) -> None:
        self.log.append(self.name)


async def test_impls_run_last_registered_first_with_tryfirst_and_trylast() -> None:
    log: list[str] = []
    plugins = [Last("z", log), Named("a", log), First("f", log), Named("b", log), Named("c", log)]
    async with pipeline(*plugins).open(from_iterator(["x"])) as s:
        await s.collect()
    # pluggy: tryfirst first, then LIFO among plain ones, trylast at the end
    assert log == ["f", "c", "b", "a", "z"]


async def test_order_matches_pluggy_own_hook_call() -> None:
    log: list[str] = []
    plugins = [Last("z", log), Named("a", log), First("f", log), Named("b", log)]
    p = pipeline(*plugins)
    p.plugin_manager.hook.stream_chunk(stream=None, chunk=None)
    expected, log[:] = list(log), []
    async with p.open(from_iterator(["x"])) as s:
        await s.collect()
    assert log == expected


# --------------------------------------------------------------------------------------------------------
# Argument subsets


async def test_impls_take_any_subset_of_arguments_by_name_in_any_order() -> None:
    seen: list[Any] = []

    class NoArgs:
        @hookimpl
        def stream_chunk(self) -> None:
            seen.append("none")

    class OnlyChunk:
        @hookimpl
        def stream_chunk(self, chunk: Chunk) -> None:
            seen.append(("chunk", chunk.text))

    class Reversed:
        @hookimpl
        def stream_chunk(self, chunk: Chunk, stream: Any) -> None:
            seen.append(("rev", chunk.text, stream.provider))

    class OnlyStream:
        @hookimpl
        def stream_error(self, error: Any) -> str:
            seen.append(("error", type(error).__name__))
            return "partial"

    plugins = [NoArgs(), OnlyChunk(), Reversed(), OnlyStream()]
    async with pipeline(*plugins).open(from_iterator(["a"], provider="p")) as s:
        await s.collect()
    assert seen == [("rev", "a", "p"), ("chunk", "a"), "none"]


def test_unknown_argument_name_is_rejected_at_registration() -> None:
    class Bad:
        @hookimpl
        def stream_chunk(self, chunk: Any, delta: Any) -> None: ...

    with pytest.raises(Exception, match="delta"):
        pipeline(Bad()).plugins()


def test_wrapper_impls_are_rejected_with_a_clear_error() -> None:
    class Wrapper:
        @hookimpl(wrapper=True)
        def stream_chunk(self, chunk: Any) -> Any:
            return (yield)

    with pytest.raises(PluginError, match="do not support wrappers") as info:
        pipeline(Wrapper()).open(from_iterator(["a"]))
    assert info.value.hook_name == "stream_chunk"
    assert "Wrapper" in info.value.plugin_name or info.value.plugin_name in str(info.value)

    class OldWrapper:
        @hookimpl(hookwrapper=True)
        def stream_event(self, event: Any) -> Any:
            yield

    with pytest.raises(PluginError, match=r"hook stream_event"):
        pipeline(OldWrapper()).open(from_iterator(["a"]))


# --------------------------------------------------------------------------------------------------------
# async impls


class AsyncEverything:
    """An ``async def`` implementation of every per-stream hook."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def _tick(self, name: str) -> None:
        await asyncio.sleep(0)
        self.calls.append(name)

    @hookimpl
    async def stream_start(self, stream: Any) -> None:
        await self._tick("stream_start")

    @hookimpl
    async def stream_attempt(self, attempt: Any) -> None:
        await self._tick("stream_attempt")

    @hookimpl
    async def stream_receive(self, event: Any) -> None:
        await self._tick("stream_receive")

    @hookimpl
    async def stream_transform(self, event: Event) -> Any:
        await self._tick("stream_transform")
        if isinstance(event, Chunk):
            return event.replace(text=event.text.upper())
        return None

    @hookimpl
    async def stream_flush(self) -> Sequence[Event]:
        await self._tick("stream_flush")
        return [Chunk("!")]

    @hookimpl
    async def stream_event(self, event: Any) -> None:
        await self._tick("stream_event")

    @hookimpl
    async def stream_chunk(self, chunk: Any) -> None:
        await self._tick("stream_chunk")

    @hookimpl
    async def stream_tool_call_delta(self, delta: Any) -> None:
        await self._tick("stream_tool_call_delta")

    @hookimpl
    async def stream_complete(self, message: Any) -> None:
        await self._tick("stream_complete")

    @hookimpl
    async def stream_error(self, error: Any) -> None:
        await self._tick("stream_error")

    @hookimpl
    async def stream_end(self) -> None:
        await self._tick("stream_end")


async def test_async_impls_of_every_stream_hook_are_awaited(
    server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    server.script(
        "openai-chat",
        SSEReply(openai_chat_events(["he", "llo"], tool_calls=[{"name": "f", "arguments": {"a": 1}}])),
    )
    plugin = AsyncEverything()
    async with pipeline(plugin).open(chat(oai)) as s:
        texts = [ev.text async for ev in s if isinstance(ev, Chunk)]
    assert texts == ["HE", "LLO", "!"]
    assert s.message.text == "hello"  # accumulation sees events before transformers
    assert s.message.tool_calls[0].parsed == {"a": 1}
    for hook in (
        "stream_start",
        "stream_attempt",
        "stream_receive",
        "stream_transform",
        "stream_flush",
        "stream_event",
        "stream_chunk",
        "stream_tool_call_delta",
        "stream_complete",
        "stream_end",
    ):
        assert hook in plugin.calls, hook
    assert plugin.calls.count("stream_end") == 1 and plugin.calls[-1] == "stream_end"
    assert "stream_error" not in plugin.calls
    assert s.plugin_errors == []


async def test_async_stream_error_is_called_on_failure(
    server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    server.script("openai-chat", SSEReply(openai_chat_events(["a"], finish_reason=None, done=False)))
    plugin = AsyncEverything()
    with pytest.raises(StreamIncomplete):
        async with pipeline(plugin).open(chat(oai)) as s:
            await s.collect()
    assert "stream_error" in plugin.calls and "stream_complete" not in plugin.calls
    assert plugin.calls.count("stream_end") == 1


def _decider(result: Any, log: list[str], name: str, *, is_async: bool) -> Any:
    if is_async:

        class A:
            @hookimpl
            async def stream_error(self, error: Any) -> Any:
                await asyncio.sleep(0)
                log.append(name)
                return result

        return A()

    class S:
        @hookimpl
        def stream_error(self, error: Any) -> Any:
            log.append(name)
            return result

    return S()


@pytest.mark.parametrize("first_async", [True, False])
async def test_stream_error_is_firstresult_and_an_async_none_is_not_a_result(
    first_async: bool, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    server.script(
        "openai-chat", SSEReply(openai_chat_events(["par", "tial"], finish_reason=None, done=False))
    )
    log: list[str] = []
    # call order: third, second, first (LIFO)
    first = _decider("raise", log, "first", is_async=False)
    second = _decider("partial", log, "second", is_async=True)
    third = _decider(None, log, "third", is_async=first_async)
    async with pipeline(first, second, third).open(chat(oai)) as s:
        await s.collect()  # "partial" wins: no exception
    assert log == ["third", "second"]  # "first" never asked
    assert s.outcome == "partial"
    assert s.message.text == "partial" and s.message.complete is False
    assert isinstance(s.error, StreamIncomplete)


async def test_an_invalid_decision_is_reported_and_the_next_impl_decides() -> None:
    log: list[str] = []
    good = _decider("partial", log, "good", is_async=False)
    bad = _decider("explode", log, "bad", is_async=True)

    async def broken() -> Any:
        yield "x"
        raise ConnectionResetError("gone")

    async with pipeline(good, bad).open(from_iterator(broken)) as s:
        await s.collect()
    assert log == ["bad", "good"]
    assert s.outcome == "partial"
    assert [e.hook_name for e in s.plugin_errors] == ["stream_error"]


# --------------------------------------------------------------------------------------------------------
# Isolation and the strict policy

HOOKS_UNDER_TEST = [
    "stream_start",
    "stream_attempt",
    "stream_receive",
    "stream_transform",
    "stream_flush",
    "stream_event",
    "stream_chunk",
    "stream_tool_call_delta",
    "stream_message",
    "stream_complete",
    "stream_end",
]


def _raising(hook: str, *, is_async: bool) -> Any:
    from schwarm_stream._dispatch import SPEC_ARGS, _spec_args

    _spec_args()
    args = ", ".join(SPEC_ARGS[hook])
    src = f"async def {hook}({args}):\n    raise RuntimeError('boom in {hook}')\n"
    if not is_async:
        src = src.replace("async def", "def")
    ns: dict[str, Any] = {}
    exec(src, ns)  # a module-like plugin with exactly the hook's signature
    fn = hookimpl(ns[hook])
    return type("Raiser", (), {hook: staticmethod(fn)})()


class Witness:
    """A well-behaved plugin implementing every hook under test (registered first: called last)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    @hookimpl
    def stream_start(self) -> None:
        self.seen.add("stream_start")

    @hookimpl
    def stream_attempt(self) -> None:
        self.seen.add("stream_attempt")

    @hookimpl
    def stream_receive(self) -> None:
        self.seen.add("stream_receive")

    @hookimpl
    def stream_transform(self) -> None:
        self.seen.add("stream_transform")

    @hookimpl
    def stream_flush(self) -> None:
        self.seen.add("stream_flush")

    @hookimpl
    def stream_event(self) -> None:
        self.seen.add("stream_event")

    @hookimpl
    def stream_chunk(self) -> None:
        self.seen.add("stream_chunk")

    @hookimpl
    def stream_tool_call_delta(self) -> None:
        self.seen.add("stream_tool_call_delta")

    @hookimpl
    def stream_complete(self) -> None:
        self.seen.add("stream_complete")

    @hookimpl
    def stream_end(self) -> None:
        self.seen.add("stream_end")


@pytest.mark.parametrize("is_async", [False, True], ids=["def", "async"])
@pytest.mark.parametrize("hook", HOOKS_UNDER_TEST)
async def test_a_raising_impl_is_isolated_and_reported(
    hook: str,
    is_async: bool,
    server: ProviderServer,
    oai: openai.AsyncOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if hook == "stream_message" and is_async:
        with pytest.raises(PluginError, match="must be a plain def"):
            pipeline(_raising(hook, is_async=True)).open(chat(oai))
        return
    server.script(
        "openai-chat",
        SSEReply(openai_chat_events(["ok"], tool_calls=[{"name": "f", "arguments": {"x": 1}}])),
    )
    witness = Witness()
    raiser = _raising(hook, is_async=is_async)
    with caplog.at_level(logging.WARNING, logger="schwarm_stream"):
        async with pipeline(witness, ("raiser", raiser)).open(chat(oai)) as s:
            await s.collect()
    assert s.outcome == "complete"
    assert s.message.text == "ok" and s.message.tool_calls[0].parsed == {"x": 1}
    if hook != "stream_message":
        assert hook in witness.seen  # the other impl of that hook still ran
    [err] = s.plugin_errors
    assert (err.plugin_name, err.hook_name) == ("raiser", hook)
    assert isinstance(err.__cause__, RuntimeError)
    assert s.plugin_failures[("raiser", hook)] >= 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w for w in warnings if "'raiser'" in w and hook in w] == [warnings[0]]  # once, not per chunk


@pytest.mark.parametrize("is_async", [False, True], ids=["def", "async"])
@pytest.mark.parametrize("hook", ["stream_start", "stream_receive", "stream_transform", "stream_chunk"])
async def test_strict_policy_fails_the_stream_naming_plugin_and_hook(
    hook: str, is_async: bool, server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    server.script("openai-chat", SSEReply(openai_chat_events(["ok"])))
    log: list[Any] = []
    with pytest.raises(PluginError) as info:
        async with pipeline(Recorder(log), ("raiser", _raising(hook, is_async=is_async)), strict=True).open(
            chat(oai)
        ) as s:
            await s.collect()
    assert (info.value.plugin_name, info.value.hook_name) == ("raiser", hook)
    assert "'raiser'" in str(info.value) and hook in str(info.value)
    assert "complete" not in log
    assert log.count(("end", "error")) == 1 and log[-1] == ("end", "error")
    assert s.outcome == "error" and s.error is info.value
    await server.wait_connections(0)


async def test_strict_failure_in_stream_end_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="schwarm_stream"):
        async with pipeline(("raiser", _raising("stream_end", is_async=False)), strict=True).open(
            from_iterator(["a"])
        ) as s:
            await s.collect()
    assert s.outcome == "complete"
    assert any("'raiser'" in r.getMessage() and "stream_end" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------------------------------------
# Transformer chain


class Upstream:
    """Called first (registered last): modify, drop, split, insert."""

    @hookimpl
    def stream_transform(self, event: Event) -> Any:
        if not isinstance(event, Chunk):
            return None
        if event.text == "drop":
            return ()
        if event.text == "split":
            return [event.replace(text="sp"), event.replace(text="lit")]
        if event.text == "insert":
            return (Chunk("<"), event, Chunk(">"))
        return event.replace(text=event.text.upper())


class Downstream:
    """Called second: sees Upstream's output one event at a time, in order."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def stream_transform(self, event: Event) -> Any:
        if isinstance(event, Chunk):
            self.seen.append(event.text)
            return event.replace(text=f"[{event.text}]")
        return None


async def test_transformer_chain_modify_drop_split_insert_in_order(
    server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    server.script("openai-chat", SSEReply(openai_chat_events(["a", "drop", "split", "insert", "b"])))
    down = Downstream()
    async with pipeline(down, Upstream()).open(chat(oai)) as s:
        events = [ev async for ev in s]
    texts = [ev.text for ev in events if isinstance(ev, Chunk)]
    assert down.seen == ["A", "sp", "lit", "<", "insert", ">", "B"]
    assert texts == ["[A]", "[sp]", "[lit]", "[<]", "[insert]", "[>]", "[B]"]
    assert [ev.seq for ev in events] == list(range(1, len(events) + 1))  # contiguous after the chain
    assert s.message.text == "adropsplitinsertb"  # accumulation sees the provider's events
    assert s.chunks == 7


class Holder:
    """Holds every chunk back and releases them joined in stream_flush."""

    def __init__(self) -> None:
        self.held: list[str] = []

    @hookimpl(tryfirst=True)
    def stream_transform(self, event: Event) -> Any:
        if isinstance(event, Chunk):
            self.held.append(event.text)
            return ()
        return None

    @hookimpl
    def stream_flush(self) -> Any:
        out, self.held = self.held, []
        return [Chunk("".join(out))] if out else None


async def test_flush_releases_held_events_before_complete(
    server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    server.script("openai-chat", SSEReply(openai_chat_events(["a", "b", "c"])))
    log: list[Any] = []
    down = Downstream()
    async with pipeline(Recorder(log), down, Holder()).open(chat(oai)) as s:
        chunks = [ev.text async for ev in s if isinstance(ev, Chunk)]
    assert chunks == ["[abc]"]  # the flushed event went through the later transformer
    assert down.seen == ["abc"]
    i = log.index(("event", "Chunk", "[abc]"))
    assert log.index("complete") > i and log[-1] == ("end", "complete")


async def test_flush_releases_held_events_before_error(
    server: ProviderServer, oai: openai.AsyncOpenAI
) -> None:
    server.script("openai-chat", SSEReply(openai_chat_events(["a", "b"], finish_reason=None, done=False)))
    log: list[Any] = []
    got: list[str] = []
    with pytest.raises(StreamIncomplete) as info:
        async with pipeline(Recorder(log), Holder()).open(chat(oai)) as s:
            async for ev in s:
                if isinstance(ev, Chunk):
                    got.append(ev.text)
    assert got == ["ab"]
    assert log.index(("event", "Chunk", "ab")) < log.index(("error", "StreamIncomplete"))
    assert info.value.partial is not None and info.value.partial.text == "ab"


# --------------------------------------------------------------------------------------------------------
# stream_end exactly once; stream_complete only on success


async def test_end_once_and_complete_on_success(server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    server.script("openai-chat", SSEReply(openai_chat_events(["x"])))
    log: list[Any] = []
    async with pipeline(Recorder(log)).open(chat(oai)) as s:
        await s.collect()
    assert log[0] == "start" and log[-2:] == ["complete", ("end", "complete")]
    assert [x for x in log if isinstance(x, tuple) and x[0] == "end"] == [("end", "complete")]


async def test_end_once_and_no_complete_on_error(server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    server.script("openai-chat", SSEReply(openai_chat_events(["x"]), end="rst"))
    server.script("openai-chat", SSEReply([openai_chat_events(["x"])[0]], end="rst"))
    log: list[Any] = []
    p = pipeline(Recorder(log))
    async with p.open(chat(oai)) as s:
        await s.collect()
    log.clear()
    with pytest.raises(TransportError):
        async with p.open(chat(oai)) as s:
            await s.collect()
    assert "complete" not in log
    assert log[-2:] == [("error", "TransportError"), ("end", "error")]
    assert sum(1 for x in log if isinstance(x, tuple) and x[0] == "end") == 1


async def test_end_once_when_the_consumer_breaks(server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    stall = asyncio.Event()
    server.script("openai-chat", SSEReply([*openai_chat_events(["a", "b"])[:2], Stall(stall)]))
    log: list[Any] = []
    async with pipeline(Recorder(log)).open(chat(oai)) as s:
        async for ev in s:
            if isinstance(ev, Chunk):
                break
    assert "complete" not in log and log[-1] == ("end", "cancelled")
    assert sum(1 for x in log if isinstance(x, tuple) and x[0] == "end") == 1
    await server.wait_connections(0)  # break closed the provider connection


async def test_end_once_when_the_task_is_cancelled(server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    server.script("openai-chat", SSEReply([*openai_chat_events(["a"])[:2], Stall()]))
    log: list[Any] = []
    got_chunk = asyncio.Event()

    async def consume() -> None:
        async with pipeline(Recorder(log)).open(chat(oai)) as s:
            async for ev in s:
                if isinstance(ev, Chunk):
                    got_chunk.set()

    task = asyncio.create_task(consume())
    await got_chunk.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "complete" not in log and log[-1] == ("end", "cancelled")
    assert sum(1 for x in log if isinstance(x, tuple) and x[0] == "end") == 1
    await server.wait_connections(0)


async def test_end_once_on_stream_cancel(server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    server.script("openai-chat", SSEReply([*openai_chat_events(["a"])[:2], Stall()]))
    log: list[Any] = []
    with pytest.raises(StreamCancelled) as info:
        async with pipeline(Recorder(log)).open(chat(oai)) as s:
            async for ev in s:
                if isinstance(ev, Chunk):
                    asyncio.get_running_loop().call_later(0.01, s.cancel)
    assert info.value.partial is not None and info.value.partial.text == "a"
    assert "complete" not in log and log[-1] == ("end", "cancelled")
    assert ("error", "StreamCancelled") not in log or log.count(("error", "StreamCancelled")) <= 1
    assert sum(1 for x in log if isinstance(x, tuple) and x[0] == "end") == 1
    assert s.outcome == "cancelled"
    await server.wait_connections(0)


async def test_cancel_from_a_hook_ends_the_stream(server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    server.script("openai-chat", SSEReply(openai_chat_events(["a", "b", "c"])))
    log: list[Any] = []

    class CancelAtB:
        @hookimpl
        def stream_chunk(self, stream: Any, chunk: Chunk) -> None:
            if chunk.text == "b":
                stream.cancel("enough")

    with pytest.raises(StreamCancelled, match="enough"):
        async with pipeline(Recorder(log), CancelAtB()).open(chat(oai)) as s:
            await s.collect()
    assert s.message.text == "ab" and s.message.complete is False
    assert log[-1] == ("end", "cancelled") and "complete" not in log


async def test_finish_event_reaches_stream_event(server: ProviderServer, oai: openai.AsyncOpenAI) -> None:
    server.script("openai-chat", SSEReply(openai_chat_events(["x"])))
    seen: list[Any] = []

    class Sink:
        @hookimpl
        def stream_event(self, event: Event) -> None:
            seen.append(type(event))

    async with pipeline(Sink()).open(chat(oai)) as s:
        await s.collect()
    assert Finish in seen and Chunk in seen
    assert seen.count(Chunk) == 1


def test_config_schema_and_configure_are_called_once_per_pipeline() -> None:
    calls: list[str] = []

    class P:
        @hookimpl
        def stream_configure(self, config: Any) -> None:
            calls.append("configure")

    p = pipeline(P())
    p.open(from_iterator(["a"]))
    p.open(from_iterator(["b"]))
    assert calls == ["configure"]
