"""The authoring kit: scripted streams, the hook recorder, the staged pipeline and the pytest fixtures."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import schwarm_stream
from schwarm_stream import (
    Chunk,
    Finish,
    PluginError,
    Recovery,
    StreamError,
    StreamIncomplete,
    StreamTimeout,
    ToolCallDelta,
    TransportError,
    Usage,
    hookimpl,
)
from schwarm_stream.sources import openai_chat
from schwarm_stream.testing import (
    Fail,
    HookRecorder,
    ProviderServer,
    ScriptedSource,
    SSEReply,
    StagedPipeline,
    Stall,
    Truncate,
    openai_chat_events,
    tool_call_deltas,
)
from schwarm_stream.testing.switches import no_waits


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retry and recovery decide as configured, without sleeping (schwarm_stream.testing.switches)."""
    with no_waits():
        yield


pytest_plugins = ["pytester"]


class Shout:
    """A transformer used as 'the plugin under test'."""

    @hookimpl
    def stream_transform(self, event: Any) -> Any:
        if isinstance(event, Chunk):
            return event.replace(text=event.text.upper())
        return None


class RetryOnce:
    @hookimpl
    def stream_error(self, stream: Any, error: Any) -> Any:
        return Recovery("retry") if stream.attempt == 1 else None


# -- scripted sources ------------------------------------------------------------------------------


async def test_script_plays_strings_and_events_in_order() -> None:
    source = ScriptedSource(["Hel", Chunk("think", kind="reasoning"), "lo", Usage(3, 2)])
    pipeline = StagedPipeline()
    async with pipeline.open(source) as stream:
        events = [e async for e in stream]
    assert [type(e).__name__ for e in events] == ["Chunk", "Chunk", "Chunk", "Usage", "Finish"]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert stream.message.text == "Hello"
    assert stream.message.reasoning == "think"
    assert stream.message.finish_reason == "stop"
    assert stream.message.usage is not None and stream.message.usage.output_tokens == 2


async def test_script_with_own_finish_gets_no_second_one() -> None:
    source = ScriptedSource(["a", Finish("length")])
    message = await StagedPipeline().open(source).collect()
    assert message.finish_reason == "length"
    assert message.complete


async def test_fail_raises_the_given_stream_error_at_its_position() -> None:
    err = TransportError("connection reset by peer")
    stream = StagedPipeline().open(ScriptedSource(["Hel", "lo", Fail(err), "never"]))
    seen: list[str] = []
    with pytest.raises(TransportError) as info:
        async for ev in stream:
            if isinstance(ev, Chunk):
                seen.append(ev.text)
    assert info.value is err
    assert seen == ["Hel", "lo"]
    assert info.value.partial is not None and info.value.partial.text == "Hello"
    assert info.value.committed is True
    assert stream.outcome == "error"


async def test_fail_with_a_plain_exception_is_classified_by_the_core() -> None:
    stream = StagedPipeline().open(ScriptedSource(["x", Fail(KeyError("boom"))]))
    with pytest.raises(StreamError, match="KeyError") as info:
        await stream.collect()
    assert isinstance(info.value.__cause__, KeyError)
    assert info.value.partial is not None and info.value.partial.text == "x"


async def test_truncate_is_stream_incomplete() -> None:
    with pytest.raises(StreamIncomplete) as info:
        await StagedPipeline().open(ScriptedSource(["par", "tial", Truncate()])).collect()
    assert info.value.partial is not None and info.value.partial.text == "partial"
    assert info.value.partial.complete is False


async def test_each_opening_plays_the_next_script() -> None:
    source = ScriptedSource(["a", Fail(TransportError("503"))], ["a", "b"])
    pipeline = StagedPipeline([RetryOnce()])
    async with pipeline.open(source) as stream:
        message = await stream.collect()
    assert message.text == "ab"
    assert source.opens == 2
    assert [a.strategy for a in source.attempts] == [None, "restart"]  # content was delivered first


async def test_stall_until_aborted() -> None:
    stream = StagedPipeline().open(ScriptedSource(["a", Stall(), "never"]))
    got: list[str] = []

    with pytest.raises(StreamTimeout) as info:
        async for ev in stream:
            if isinstance(ev, Chunk):
                got.append(ev.text)
                # a watchdog firing while the source stalls: abort() interrupts the wait
                asyncio.get_running_loop().call_soon(stream.abort, StreamTimeout("idle", kind="idle"))
    assert got == ["a"]
    assert info.value.kind == "idle"


async def test_stall_with_seconds_continues() -> None:
    message = await StagedPipeline().open(ScriptedSource(["a", Stall(0.001), "b"])).collect()
    assert message.text == "ab"


async def test_tool_call_deltas_accumulate_to_the_arguments() -> None:
    deltas = tool_call_deltas('{"city": "Paris"}', id="call_1", name="weather", pieces=4)
    assert len(deltas) == 4
    assert deltas[0].id == "call_1" and all(d.id is None for d in deltas[1:])
    message = await StagedPipeline().open(ScriptedSource([*deltas, Finish("tool_calls")])).collect()
    (call,) = message.tool_calls
    assert call.name == "weather" and call.parsed == {"city": "Paris"}


def test_bad_script_item_is_named() -> None:
    with pytest.raises(TypeError, match=r"script 1, item 1: .*got int"):
        ScriptedSource(["ok", 42])  # type: ignore[list-item]


# -- the recorder -----------------------------------------------------------------------------------


async def test_recorder_records_the_whole_lifecycle() -> None:
    recorder = HookRecorder()
    pipeline = StagedPipeline([recorder])
    async with pipeline.open(ScriptedSource(["Hel", "lo"])) as stream:
        await stream.collect()
    names = recorder.names(stream.id)
    assert names[0] == "stream_start"
    assert names[1] == "stream_attempt"
    assert names[-1] == "stream_end"
    assert names.count("stream_chunk") == 2
    assert names.index("stream_flush") < names.index("stream_complete")
    (complete,) = recorder.getcalls("stream_complete")
    assert complete.message.text == "Hello"
    assert recorder.text() == "Hello"
    assert [e.seq for e in recorder.events()] == [1, 2, 3]
    (end,) = recorder.getcalls("stream_end")
    assert end.outcome == "complete"
    assert recorder.stream_ids() == [stream.id]


async def test_recorder_sees_transformed_events_and_decisions() -> None:
    recorder = HookRecorder()
    pipeline = StagedPipeline([recorder, Shout(), RetryOnce()])
    source = ScriptedSource([Fail(TransportError("refused"))], ["hi"])
    await pipeline.open(source).collect()
    assert recorder.text() == "HI"
    received = [c.event for c in recorder.getcalls("stream_receive") if isinstance(c.event, Chunk)]
    assert [e.text for e in received] == ["hi"]  # before transformers
    (error,) = recorder.getcalls("stream_error")
    assert isinstance(error.error, TransportError)
    assert [a.attempt.number for a in recorder.getcalls("stream_attempt")] == [1, 2]


def test_recorder_rejects_unknown_hook_names() -> None:
    with pytest.raises(ValueError, match="stream_chunks"):
        HookRecorder().getcalls("stream_chunks")


def test_recorder_call_attribute_error_names_arguments() -> None:
    from schwarm_stream.testing import HookCall

    call = HookCall("stream_chunk", "s1", {"chunk": Chunk("x")})
    assert call.chunk.text == "x"
    with pytest.raises(AttributeError, match="has no argument 'message'; it has: chunk"):
        _ = call.message


def test_assert_called_counts() -> None:
    recorder = HookRecorder()
    with pytest.raises(AssertionError, match="never called"):
        recorder.assert_called("stream_start")
    recorder.calls.append(
        __import__("schwarm_stream.testing", fromlist=["HookCall"]).HookCall("stream_start", "s")
    )
    assert len(recorder.assert_called("stream_start", times=1)) == 1
    with pytest.raises(AssertionError, match="called 1 time"):
        recorder.assert_called("stream_start", times=2)


# -- the staged pipeline ---------------------------------------------------------------------------


async def test_staged_pipeline_registers_before_build_with_config() -> None:
    from pydantic import BaseModel

    class Section(BaseModel):
        suffix: str = "!"

    seen: list[str] = []

    class Configured:
        @hookimpl
        def stream_config_schema(self) -> Any:
            return {"suffixer": Section}

        @hookimpl
        def stream_configure(self, config: Any) -> None:
            seen.append(config.section("suffixer").suffix)

    pipeline = StagedPipeline(config={"suffixer": {"suffix": "?"}})
    assert pipeline.register(Configured(), name="suffixer") == "suffixer"
    assert not pipeline.built
    await pipeline.open(ScriptedSource(["x"])).collect()
    assert seen == ["?"]
    assert pipeline.built


async def test_staged_pipeline_unregister_before_and_after_build() -> None:
    shout = Shout()
    pipeline = StagedPipeline()
    pipeline.register(shout, name="shout")
    pipeline.unregister(name="shout")
    assert (await pipeline.open(ScriptedSource(["a"])).collect()).text == "a"
    recorder = HookRecorder()
    pipeline.register(recorder)  # after the build: a rebuild of the hook table
    await pipeline.open(ScriptedSource(["b"])).collect()
    assert recorder.text() == "b"
    pipeline.unregister(recorder)
    await pipeline.open(ScriptedSource(["c"])).collect()
    assert recorder.text() == "b"


def test_staged_pipeline_has_autoload_off_unless_asked() -> None:
    assert StagedPipeline().config.plugins.autoload is False
    assert StagedPipeline(config={"plugins": {"disable": []}}).config.plugins.autoload is False
    assert StagedPipeline(config={"plugins": {"autoload": True}}).config.plugins.autoload is True
    assert StagedPipeline(autoload=True).config.plugins.autoload is True


def test_staged_pipeline_configure_after_build_is_an_error() -> None:
    pipeline = StagedPipeline()
    pipeline.configure({"retry": {"attempts": 2}})
    assert pipeline.config.retry.attempts == 2
    pipeline.plugins()
    with pytest.raises(schwarm_stream.ConfigError, match="already built"):
        pipeline.configure({})


# -- the pytest fixtures -----------------------------------------------------------------------------


async def test_fixture_scripted_stream_with_registered_plugin(
    register_plugin: Any, scripted_stream: Any
) -> None:
    register_plugin(Shout(), name="shout")
    async with scripted_stream(["my ", "key"], stream_id="s-1", metadata={"user": "u"}) as stream:
        out = [e.text async for e in stream if isinstance(e, Chunk)]
    assert out == ["MY ", "KEY"]
    assert stream.id == "s-1" and stream.metadata == {"user": "u"}
    assert stream.message.text == "my key"  # accumulation sees what the provider sent


async def test_fixture_hook_recorder_sees_scripted_streams(
    hook_recorder: HookRecorder, scripted_stream: Any
) -> None:
    await scripted_stream(
        ["a", ToolCallDelta(0, id="c", name="f", arguments="{}")], finish="tool_calls"
    ).collect()
    hook_recorder.assert_called("stream_tool_call_delta", times=1)
    hook_recorder.assert_called("stream_complete", times=1)


class TestRegisterPluginScope:
    """register_plugin reaches the default pipeline for one test only."""

    async def test_registered_in_default_pipeline(self, register_plugin: Any) -> None:
        register_plugin(Shout(), name="shout-default")
        async with schwarm_stream.open(["abc"]) as stream:
            texts = [e.text async for e in stream if isinstance(e, Chunk)]
        assert texts == ["ABC"]

    async def test_gone_in_the_next_test(self) -> None:
        assert not schwarm_stream.default_pipeline().plugin_manager.has_plugin("shout-default")
        async with schwarm_stream.open(["abc"]) as stream:
            texts = [e.text async for e in stream if isinstance(e, Chunk)]
        assert texts == ["abc"]


def test_register_plugin_replacing_a_plugin_puts_it_back(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import schwarm_stream
        from schwarm_stream import hookimpl

        class MyAccumulate:
            @hookimpl(trylast=True)
            def stream_message(self, stream):
                return schwarm_stream.Message(text="replaced", complete=True)

        async def test_replace(register_plugin):
            register_plugin(MyAccumulate(), name="accumulate")
            assert (await schwarm_stream.open(["x"]).collect()).text == "replaced"

        async def test_back():
            assert (await schwarm_stream.open(["x"]).collect()).text == "x"
        """
    )
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--asyncio-mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"
    )
    result.assert_outcomes(passed=2)


async def test_fixture_provider_server_with_real_sdk(provider_server: ProviderServer) -> None:
    provider_server.script("openai-chat", SSEReply(openai_chat_events(["Hel", "lo"])))
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=provider_server.openai_base_url, max_retries=0)
    try:
        pipeline = StagedPipeline()
        message = await pipeline.open(
            openai_chat(client, model="m", messages=[{"role": "user", "content": "hi"}])
        ).collect()
    finally:
        await client.close()
    assert message.text == "Hello"
    assert provider_server.requests[0].json["stream"] is True


async def test_fixture_offline_provider_answers(offline_provider: ProviderServer) -> None:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=offline_provider.openai_base_url, max_retries=0)
    try:
        message = (
            await StagedPipeline()
            .open(openai_chat(client, model="m", messages=[{"role": "user", "content": "echo this"}]))
            .collect()
        )
    finally:
        await client.close()
    assert "echo this" in message.text


def test_schwarm_config_fixture_can_be_overridden(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def schwarm_config():
            return {"retry": {"attempts": 7}}

        def test_config(schwarm_pipeline):
            assert schwarm_pipeline.config.retry.attempts == 7
            assert schwarm_pipeline.config.plugins.autoload is False
        """
    )
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function"
    )
    result.assert_outcomes(passed=1)


async def test_plugin_failure_in_scripted_stream_is_reported(
    register_plugin: Any, scripted_stream: Any
) -> None:
    class Broken:
        @hookimpl
        def stream_chunk(self, chunk: Any) -> None:
            raise RuntimeError("kaputt")

    register_plugin(Broken(), name="broken")
    async with scripted_stream(["a", "b"]) as stream:
        message = await stream.collect()
    assert message.text == "ab"
    (error,) = stream.plugin_errors  # reported once per plugin and hook, counted per call
    assert isinstance(error, PluginError)
    assert (error.plugin_name, error.hook_name) == ("broken", "stream_chunk")
    assert stream.plugin_failures[("broken", "stream_chunk")] == 2
