"""The jsonl recorder (found through its entry point) and the replay source."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from schwarm_stream_jsonl import jsonl_replay, read_recording

from schwarm_stream import (
    Chunk,
    ConfigError,
    Finish,
    Pipeline,
    ProviderError,
    Recovery,
    Reset,
    StreamIncomplete,
    StreamTimeout,
    TransportError,
    Usage,
    hookimpl,
)
from schwarm_stream.sources import openai_chat
from schwarm_stream.testing import (
    Fail,
    ProviderServer,
    ScriptedSource,
    SSEReply,
    StagedPipeline,
    openai_chat_events,
    tool_call_deltas,
)
from schwarm_stream.testing.switches import no_waits


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retry and recovery decide as configured, without sleeping (schwarm_stream.testing.switches)."""
    with no_waits():
        yield


def recording_pipeline(path: Path | str, *plugins: Any, flush: str = "end") -> Pipeline:
    """Only the built-ins and the jsonl plugin, loaded through its entry point."""
    config = {
        "jsonl": {"path": str(path), "flush": flush},
        "plugins": {"autoload": False, "enable": ["jsonl"]},
    }
    return Pipeline(plugins, config=config)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def lines_in_dir(path: Path) -> list[Path]:
    return list(path.iterdir())


class RestartOnce:
    @hookimpl(tryfirst=True)
    def stream_error(self, stream: Any) -> Any:
        return Recovery("restart") if stream.attempt == 1 else None


def test_found_through_the_entry_point(tmp_path: Path) -> None:
    (info,) = [i for i in recording_pipeline(tmp_path / "r.jsonl").plugins() if i.name == "jsonl"]
    assert info.distribution == "schwarm-stream-jsonl" and info.enabled
    assert info.hooks == ["stream_active", "stream_config_schema", "stream_end", "stream_event", "stream_start"]


async def test_records_every_delivered_event_without_raw(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    source = ScriptedSource([Chunk("Hel", raw={"secret": "sk-raw"}), "lo", Usage(5, 2), Finish("stop")])
    async with recording_pipeline(path).open(source, metadata={"user": "ada"}) as stream:
        await stream.collect()
    records = lines(path)
    assert records[0]["type"] == "start" and records[0]["provider"] == "scripted"
    assert records[0]["metadata"] == {"user": "ada"} and records[0]["v"] == 1
    events = records[1:-1]
    assert [r["type"] for r in events] == ["Chunk", "Chunk", "Usage", "Finish"]
    assert [r["seq"] for r in events] == [1, 2, 3, 4]
    assert events[0] == {
        "stream": stream.id,
        "seq": 1,
        "type": "Chunk",
        "text": "Hel",
        "kind": "text",
        "index": 0,
        "choice": 0,
    }
    assert records[-1] == {"stream": stream.id, "type": "end", "outcome": "complete", "error": None}
    assert "sk-raw" not in path.read_text()
    assert all(r["stream"] == stream.id for r in records)


async def test_replay_rebuilds_the_same_message(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    script = [
        "Let me ",
        "check.",
        *tool_call_deltas('{"city": "Paris"}', id="call_1", name="weather"),
        Usage(9, 4),
        Finish("tool_calls"),
    ]
    async with recording_pipeline(path).open(ScriptedSource(script)) as original:
        expected = await original.collect()
    replayed_events: list[Any] = []
    async with StagedPipeline().open(jsonl_replay(path)) as replay:
        async for event in replay:
            replayed_events.append(event)
    got = replay.message
    assert got.text == expected.text == "Let me check."
    assert got.tool_calls[0].parsed == {"city": "Paris"} and got.tool_calls[0].id == "call_1"
    assert got.usage == expected.usage and got.finish_reason == "tool_calls" and got.complete
    assert [(type(e).__name__, e.seq) for e in replayed_events] == [
        (r["type"], r["seq"]) for r in lines(path)[1:-1]
    ]


@pytest.mark.parametrize(
    ("error", "check"),
    [
        (
            ProviderError("overloaded", status_code=529, error_type="overloaded_error", in_band=True),
            lambda e: (
                isinstance(e, ProviderError)
                and (e.status_code, e.error_type, e.in_band) == (529, "overloaded_error", True)
            ),
        ),
        (
            StreamTimeout("idle for 15 s", kind="idle"),
            lambda e: isinstance(e, StreamTimeout) and e.kind == "idle",
        ),
        (TransportError("connection reset"), lambda e: type(e) is TransportError),
    ],
)
async def test_a_recorded_error_replays_as_that_error_type(
    tmp_path: Path, error: Exception, check: Any
) -> None:
    path = tmp_path / "r.jsonl"
    with pytest.raises(type(error)) as original:
        await recording_pipeline(path).open(ScriptedSource(["par", "tial", Fail(error)])).collect()
    end = lines(path)[-1]
    assert end["outcome"] == "error" and end["error"]["type"] == type(error).__name__
    with pytest.raises(type(error)) as replayed:
        await StagedPipeline().open(jsonl_replay(path)).collect()
    assert check(replayed.value)
    assert str(replayed.value) == str(original.value)
    assert replayed.value.partial is not None and replayed.value.partial.text == "partial"


async def test_a_restarted_stream_replays_its_final_attempt(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    source = ScriptedSource(["first ", Fail(TransportError("drop"))], ["second ", "try"])
    async with recording_pipeline(path, RestartOnce()).open(source) as original:
        expected = await original.collect()
    assert "Reset" in [r["type"] for r in lines(path)]
    message = await StagedPipeline().open(jsonl_replay(path)).collect()
    assert message.text == expected.text == "second try"


async def test_concurrent_streams_share_one_file_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    pipeline = recording_pipeline(path)

    async def run(word: str) -> str:
        async with pipeline.open(ScriptedSource([c for c in word]), stream_id=f"id-{word}") as stream:
            async for _ in stream:
                await asyncio.sleep(0)  # interleave the two streams
        return stream.id

    ids = await asyncio.gather(run("alpha"), run("omega"))
    streams = read_recording(path)
    assert list(streams) == ids  # both started before either ended: order of start records
    for sid, word in zip(ids, ("alpha", "omega"), strict=True):
        assert (await StagedPipeline().open(jsonl_replay(path, stream_id=sid)).collect()).text == word
    types = [r["stream"] for r in lines(path)]
    assert types.index("id-omega") < len(types) - types[::-1].index("id-alpha")  # really interleaved


async def test_one_file_per_stream_with_the_stream_id_placeholder(tmp_path: Path) -> None:
    pipeline = recording_pipeline(tmp_path / "rec" / "{stream_id}.jsonl")
    await pipeline.open(ScriptedSource(["a"]), stream_id="one").collect()
    await pipeline.open(ScriptedSource(["b"]), stream_id="two").collect()
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == ["one.jsonl", "two.jsonl"]
    assert list(read_recording(tmp_path / "rec" / "two.jsonl")) == ["two"]


async def test_flush_every_event_makes_lines_visible_mid_stream(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    async with recording_pipeline(path, flush="event").open(ScriptedSource(["a", "b"])) as stream:
        async for event in stream:
            if isinstance(event, Chunk) and event.text == "a":
                assert lines(path)[-1]["text"] == "a"


async def test_off_without_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    pipeline = Pipeline(config={"plugins": {"autoload": False, "enable": ["jsonl"]}})
    assert (await pipeline.open(ScriptedSource(["a"])).collect()).text == "a"
    assert lines_in_dir(tmp_path) == []


def test_config_errors_name_the_plugin_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"plugin 'jsonl': invalid configuration: jsonl\.pth: unknown key"):
        Pipeline(
            config={"jsonl": {"pth": "x"}, "plugins": {"autoload": False, "enable": ["jsonl"]}}
        ).plugins()
    with pytest.raises(ConfigError, match=r"jsonl\.flush: Input should be 'end' or 'event'"):
        Pipeline(
            config={"jsonl": {"flush": "never"}, "plugins": {"autoload": False, "enable": ["jsonl"]}}
        ).plugins()


async def test_a_recording_without_end_record_replays_as_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    path.write_text(
        '{"v": 1, "stream": "s", "type": "start", "provider": "openai", "model": "m"}\n'
        '{"stream": "s", "seq": 1, "type": "Chunk", "text": "cut o", "kind": "text", "index": 0, "choice": 0}\n'
    )
    with pytest.raises(StreamIncomplete, match="without an end record") as info:
        await StagedPipeline().open(jsonl_replay(path)).collect()
    assert info.value.partial is not None and info.value.partial.text == "cut o"


def test_bad_lines_and_unknown_streams_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"stream": "s", "type": "start"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not a schwarm-stream-jsonl record"):
        read_recording(path)
    path.write_text('{"stream": "s", "type": "Bogus"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: .*unknown event type 'Bogus'"):
        read_recording(path)
    path.write_text('{"stream": "s", "type": "start"}\n')
    with pytest.raises(ValueError, match="no stream 'x' in the recording; it holds: s"):
        jsonl_replay(path, stream_id="x")


async def test_records_a_real_sdk_stream_and_replays_it(
    provider_server: ProviderServer, tmp_path: Path
) -> None:
    """A 'production' stream through the OpenAI SDK over a socket becomes a test fixture."""
    calls = [{"id": "call_9", "name": "get_weather", "arguments": '{"city": "Oslo"}'}]
    provider_server.script(
        "openai-chat",
        SSEReply(openai_chat_events(["It is ", "sunny"], tool_calls=calls, finish_reason="tool_calls")),
    )
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=provider_server.openai_base_url, max_retries=0)
    path = tmp_path / "prod.jsonl"
    try:
        source = openai_chat(client, model="gpt-test", messages=[{"role": "user", "content": "weather?"}])
        async with recording_pipeline(path).open(source) as stream:
            live = await stream.collect()
    finally:
        await client.close()
    replay = jsonl_replay(path)
    assert (replay.provider, replay.model) == ("openai", "gpt-test")
    again = await StagedPipeline().open(replay).collect()
    assert again.text == live.text == "It is sunny"
    assert [(t.id, t.name, t.parsed) for t in again.tool_calls] == [
        (t.id, t.name, t.parsed) for t in live.tool_calls
    ]
    assert again.finish_reason == live.finish_reason == "tool_calls"
    assert '"raw"' not in path.read_text()


async def test_a_reset_event_is_recorded_with_its_fields(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    source = ScriptedSource(["x", Fail(TransportError("drop"))], ["y"])
    await recording_pipeline(path, RestartOnce()).open(source).collect()
    (reset,) = [r for r in lines(path) if r["type"] == "Reset"]
    assert reset["attempt"] == 2 and reset["strategy"] == "restart" and "drop" in reset["reason"]
    events = read_recording(path)[reset["stream"]].events
    assert any(isinstance(e, Reset) for e in events)


# -- issue 14 item 2: any Python str ----------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schwarm_stream_jsonl.plugin import _dumps  # noqa: E402


async def test_lone_surrogates_are_recorded_and_replay_exactly(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    script = [Chunk("smile "), Chunk("\ud83d"), Chunk("\ude00"), Chunk(" lone \udfff"), Finish("stop")]
    async with recording_pipeline(path, flush="event").open(ScriptedSource(script)) as original:
        expected = await original.collect()  # before the fix: the recorder failed on '\ud83d'
    path.read_bytes().decode("utf-8")  # strict: the file is valid UTF-8
    records = lines(path)
    assert records[-1]["type"] == "end" and records[-1]["outcome"] == "complete"
    async with StagedPipeline().open(jsonl_replay(path)) as replay:
        async for _ in replay:
            pass
    assert replay.message.text == expected.text


@given(text=st.text(alphabet=st.characters(codec=None)))
@settings(max_examples=300, deadline=None)
def test_every_str_becomes_one_valid_utf8_json_line_that_reads_back(text: str) -> None:
    record = {"stream": "s", "seq": 1, "type": "Chunk", "text": text, "extra": {text: [text]}}
    line = _dumps(record)
    line.encode("utf-8")
    assert "\n" not in line and json.loads(line) == record
