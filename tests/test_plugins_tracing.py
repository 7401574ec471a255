"""SCHWARM_STREAM_TRACE_PLUGINS: every hook call logged, only when the switch is on at pipeline build."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import pytest

from schwarm_stream import Chunk, hookimpl
from schwarm_stream.testing import ScriptedSource, StagedPipeline


class Upper:
    @hookimpl
    def stream_transform(self, event: Any) -> Any:
        return event.replace(text=event.text.upper()) if isinstance(event, Chunk) else None

    @hookimpl
    async def stream_complete(self, message: Any) -> None:
        pass


class Lifecycle:
    @hookimpl
    def stream_start(self, stream: Any) -> None:
        pass

    @hookimpl
    def stream_transform(self, stream: Any, event: Any) -> None:
        return None

    @hookimpl
    def stream_end(self, stream: Any) -> None:
        pass


class Fails:
    @hookimpl
    def stream_chunk(self, chunk: Any) -> None:
        raise ValueError("nope")


def trace_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "schwarm_stream.trace"]


async def test_trace_all_hooks(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SCHWARM_STREAM_TRACE_PLUGINS", "1")
    pipeline = StagedPipeline([("upper", Upper())])
    with caplog.at_level(logging.DEBUG, logger="schwarm_stream.trace"):
        async with pipeline.open(ScriptedSource(["ab"]), stream_id="s-42") as stream:
            await stream.collect()
    lines = trace_lines(caplog)
    assert any(
        "stream=s-42 plugin='upper' stream_transform(event=Chunk(text='ab'" in line
        and "-> Chunk(text='AB'" in line
        for line in lines
    )
    assert any("plugin='accumulate' stream_start() -> None" in line for line in lines)
    assert any("plugin='upper' stream_complete(message=Message(" in line for line in lines)  # an async impl
    assert stream.message.text == "ab"


async def test_trace_selected_hooks_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SCHWARM_STREAM_TRACE_PLUGINS", "stream_start, stream_end")
    pipeline = StagedPipeline([("life", Lifecycle())])
    with caplog.at_level(logging.DEBUG, logger="schwarm_stream.trace"):
        await pipeline.open(ScriptedSource(["ab"])).collect()
    lines = trace_lines(caplog)
    hooks = {line.split("plugin=")[1].split(" ")[1].split("(")[0] for line in lines}
    assert hooks == {"stream_start", "stream_end"}
    assert any("plugin='life' stream_start()" in line for line in lines)
    assert any("plugin='life' stream_end()" in line for line in lines)


async def test_trace_shows_raised_exceptions(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SCHWARM_STREAM_TRACE_PLUGINS", "stream_chunk")
    pipeline = StagedPipeline([("fails", Fails())])
    with caplog.at_level(logging.DEBUG, logger="schwarm_stream"):
        async with pipeline.open(ScriptedSource(["x"])) as stream:
            await stream.collect()
    assert any(
        "plugin='fails' stream_chunk(chunk=Chunk(text='x'" in line and "raised ValueError: nope" in line
        for line in trace_lines(caplog)
    )
    assert stream.plugin_errors[0].plugin_name == "fails"  # attribution survives the wrapping


def test_unknown_hook_name_in_the_switch_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SCHWARM_STREAM_TRACE_PLUGINS", "stream_chnk")
    with caplog.at_level(logging.WARNING, logger="schwarm_stream"):
        StagedPipeline().plugins()
        StagedPipeline().open(ScriptedSource(["x"]))
    assert "SCHWARM_STREAM_TRACE_PLUGINS names unknown hook(s) stream_chnk" in caplog.text


@pytest.mark.parametrize("value", ["", "0", "false"])
def test_off_leaves_the_implementations_unwrapped(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHWARM_STREAM_TRACE_PLUGINS", value)
    life = Lifecycle()
    pipeline = StagedPipeline([("life", life)])
    pipeline.plugins()
    (impl,) = [i for i in pipeline._table.impls["stream_transform"] if i.plugin_name == "life"]  # type: ignore[union-attr]
    assert impl.fn == life.stream_transform  # the bound method itself: no wrapper on the hot path


def test_trace_goes_to_stderr_without_logging_setup() -> None:
    code = (
        "import asyncio, schwarm_stream\n"
        "asyncio.run(schwarm_stream.open(['hi'], config={'plugins': {'autoload': False}}).collect())\n"
    )
    env = {"SCHWARM_STREAM_TRACE_PLUGINS": "stream_start", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "plugin='accumulate' stream_start() -> None" in result.stderr
