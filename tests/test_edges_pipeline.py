"""Issue 14 item 12: ``Pipeline.register()`` before the first stream, and disabled plugins' config sections."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import BaseModel

from schwarm_stream import Chunk, ConfigError, Pipeline, hookimpl

OPTIONAL_OFF = ["metrics", "retry", "recovery", "timeouts"]


class Counter:
    def __init__(self) -> None:
        self.chunks: list[str] = []

    @hookimpl
    def stream_chunk(self, stream: Any, chunk: Chunk) -> None:
        self.chunks.append(chunk.text)


class SectionModel(BaseModel):
    level: int = 1


class WithSection:
    """A plugin declaring the config section ``mysection``."""

    def __init__(self) -> None:
        self.configured: Any = None

    @hookimpl
    def stream_config_schema(self) -> dict[str, type[BaseModel]]:
        return {"mysection": SectionModel}

    @hookimpl
    def stream_configure(self, config: Any) -> None:
        self.configured = config


def _cfg(**extra: Any) -> dict[str, Any]:
    plugins = {"autoload": False, "disable": OPTIONAL_OFF, **extra.pop("plugins", {})}
    return {"plugins": plugins, **extra}


async def _run(pipeline: Pipeline) -> str:
    out = []
    async with pipeline.open(iter(["a", "b"])) as stream:
        async for ev in stream:
            if isinstance(ev, Chunk):
                out.append(ev.text)
    return "".join(out)


async def test_register_before_the_first_stream_returns_an_id_unregister_honours() -> None:
    pipeline = Pipeline(config=_cfg())
    counter = Counter()
    pid = pipeline.register(counter)
    assert not pid.startswith("<pending") and pid
    pipeline.unregister(name=pid)
    assert await _run(pipeline) == "ab"
    assert counter.chunks == [], "an unregistered handler kept firing"


async def test_register_before_build_id_is_the_registered_name_and_unregister_by_object() -> None:
    pipeline = Pipeline(config=_cfg())
    a, b = Counter(), Counter()
    ida, idb = pipeline.register(a), pipeline.register(b)
    assert ida != idb
    named = pipeline.register(Counter(), name="mine")
    assert named == "mine"
    pipeline.unregister(b)  # by object, before the build
    assert await _run(pipeline) == "ab"
    assert a.chunks == ["a", "b"] and b.chunks == []
    names = {i.name for i in pipeline.plugins()}
    assert ida in names and "mine" in names and idb not in names
    pipeline.unregister(name=ida)  # the same id works after the build
    assert await _run(pipeline) == "ab"
    assert a.chunks == ["a", "b"]


async def test_a_disabled_plugins_section_warns_and_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="schwarm_stream")
    plugin = WithSection()
    config = _cfg(plugins={"disable": [*OPTIONAL_OFF, "withsection"]}, mysection={"level": 3})
    pipeline = Pipeline([("withsection", plugin)], config=config)
    assert await _run(pipeline) == "ab"
    assert plugin.configured is None  # disabled: never configured
    warned = [r.getMessage() for r in caplog.records if "mysection" in r.getMessage()]
    assert warned and "'withsection'" in warned[0] and "disabled" in warned[0]


async def test_a_disabled_plugin_named_like_its_section_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="schwarm_stream")
    config = _cfg(plugins={"disable": [*OPTIONAL_OFF, "redis"]}, redis={"url": "redis://x"})
    assert await _run(Pipeline(config=config)) == "ab"
    assert any("'redis'" in r.getMessage() and "ignored" in r.getMessage() for r in caplog.records)


async def test_a_disabled_builtins_declared_section_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="schwarm_stream")
    config = _cfg(metrics={"whatever": 1})  # metrics is disabled by _cfg
    assert await _run(Pipeline(config=config)) == "ab"
    assert any("'metrics'" in r.getMessage() for r in caplog.records)


async def test_an_unknown_section_of_no_plugin_still_fails() -> None:
    pipeline = Pipeline(config=_cfg(mysectoin={"level": 3}))
    with pytest.raises(ConfigError, match="unknown config section"):
        await _run(pipeline)
