"""Fault-matrix row 25: a slow async plugin is reported by name, and does not trip provider timeouts."""

from __future__ import annotations

import asyncio
import logging

import pytest

from schwarm_stream import Chunk, Pipeline, hookimpl
from schwarm_stream.sources import from_iterator


class SlowSink:
    @hookimpl
    async def stream_event(self, event: object) -> None:
        if isinstance(event, Chunk) and event.text == "b":
            await asyncio.sleep(0.3)


async def test_a_slow_async_hook_is_named_once_and_the_stream_completes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipeline = Pipeline(
        [("slow-sink", SlowSink())],
        config={"plugins": {"autoload": False}, "timeouts": {"slow_hook": 0.1, "idle": 0.2}},
    )
    with caplog.at_level(logging.WARNING, logger="schwarm_stream"):
        async with pipeline.open(from_iterator(["a", "b", "c"])) as stream:
            message = await stream.collect()
    warnings = [r.getMessage() for r in caplog.records if "timeouts.slow_hook" in r.getMessage()]
    assert len(warnings) == 1
    assert "plugin 'slow-sink'" in warnings[0] and "hook 'stream_event'" in warnings[0]
    # The core waited for the plugin, not for the provider: the 0.2 s idle timeout did not fire.
    assert message.complete and message.text == "abc"


async def test_no_warning_without_a_slow_hook(caplog: pytest.LogCaptureFixture) -> None:
    pipeline = Pipeline(config={"plugins": {"autoload": False}, "timeouts": {"slow_hook": 0.05}})
    with caplog.at_level(logging.WARNING, logger="schwarm_stream"):
        async with pipeline.open(from_iterator(["a", "b"])) as stream:
            await stream.collect()
    assert not [r for r in caplog.records if "slow_hook" in r.getMessage()]
