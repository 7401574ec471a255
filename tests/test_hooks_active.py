"""stream_active(config): installed but unconfigured plugins drop out of the pipeline's hook table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import schwarm_stream
from schwarm_stream import Chunk, PluginError, hookimpl
from schwarm_stream.hookspecs import HOOK_NAMES
from schwarm_stream.sources import from_iterator

FIRST_PARTY = ("jsonl", "redact", "redis")
STREAM_HOOKS = [
    n for n in HOOK_NAMES if n not in ("stream_config_schema", "stream_configure", "stream_active")
]


def table(pipeline: schwarm_stream.Pipeline) -> Any:
    return pipeline._ensure()[1]


def stream_impl_plugins(pipeline: schwarm_stream.Pipeline) -> set[str]:
    t = table(pipeline)
    return {impl.plugin_name for name in STREAM_HOOKS for impl in t[name]}


def installed() -> set[str]:
    names = {info.name for info in schwarm_stream.Pipeline().plugins() if info.status == "enabled"}
    missing = [p for p in FIRST_PARTY if p not in names]
    if missing:
        pytest.skip(f"first-party plugins not installed in this environment: {missing}")
    return names


def test_installed_but_unconfigured_first_party_plugins_have_no_stream_hooks() -> None:
    installed()
    pipeline = schwarm_stream.Pipeline()
    present = stream_impl_plugins(pipeline)
    assert not present & set(FIRST_PARTY), present
    assert set(FIRST_PARTY) <= table(pipeline).inactive
    # their configuration hooks still ran: the sections are declared and validated
    assert set(FIRST_PARTY) <= {impl.plugin_name for impl in table(pipeline).stream_config_schema}
    assert pipeline.config.section("redact") is not None


def test_configured_first_party_plugins_are_in_the_hook_table(tmp_path: Path) -> None:
    installed()
    cfg = {
        "jsonl": {"path": str(tmp_path / "{stream_id}.jsonl")},
        "redact": {"enabled": True},
        "redis": {"url": "redis://127.0.0.1:1/0"},
    }
    pipeline = schwarm_stream.Pipeline(config=cfg)
    t = table(pipeline)
    assert {"jsonl", "redact", "redis"} <= stream_impl_plugins(pipeline)
    assert {"redis", "jsonl"} <= {i.plugin_name for i in t.stream_event}
    assert "redact" in {i.plugin_name for i in t.stream_transform}
    assert not t.inactive & set(FIRST_PARTY)


async def test_configured_jsonl_records_and_unconfigured_does_not(tmp_path: Path) -> None:
    installed()
    out = tmp_path / "rec.jsonl"
    on = schwarm_stream.Pipeline(config={"jsonl": {"path": str(out)}})
    async with on.open(from_iterator(["a", "b"])) as stream:
        await stream.collect()
    assert out.read_text(encoding="utf-8").count("\n") >= 4  # start, two chunks, end
    off = schwarm_stream.Pipeline()
    async with off.open(from_iterator(["a", "b"])) as stream:
        assert (await stream.collect()).text == "ab"


class Counter:
    """A plugin that is active only when told so."""

    def __init__(self, active: bool | None) -> None:
        self.active = active
        self.chunks = 0

    @hookimpl
    def stream_active(self) -> bool | None:  # a subset of the arguments, like any hook
        return self.active

    @hookimpl
    def stream_chunk(self, chunk: Chunk) -> None:
        self.chunks += 1


@pytest.mark.parametrize(("active", "expected"), [(False, 0), (True, 2), (None, 2)])
async def test_own_plugin_inactive_only_when_it_returns_false(active: bool | None, expected: int) -> None:
    plugin = Counter(active)
    pipeline = schwarm_stream.Pipeline([plugin], config={"plugins": {"autoload": False}})
    async with pipeline.open(from_iterator(["a", "b"])) as stream:
        await stream.collect()
    assert plugin.chunks == expected


async def test_a_plugin_registered_later_is_asked_too() -> None:
    pipeline = schwarm_stream.Pipeline(config={"plugins": {"autoload": False}})
    async with pipeline.open(from_iterator(["a"])) as stream:
        await stream.collect()
    off, on = Counter(False), Counter(True)
    pipeline.register(off)
    pipeline.register(on)
    async with pipeline.open(from_iterator(["a", "b", "c"])) as stream:
        await stream.collect()
    assert (off.chunks, on.chunks) == (0, 3)


def test_async_or_raising_stream_active_fails_the_build() -> None:
    class Async:
        @hookimpl
        async def stream_active(self, config: Any) -> bool:
            return False

    class Raising:
        @hookimpl
        def stream_active(self, config: Any) -> bool:
            raise RuntimeError("boom")

    for plugin in (Async(), Raising()):
        pipeline = schwarm_stream.Pipeline([plugin], config={"plugins": {"autoload": False}})
        with pytest.raises(PluginError) as info:
            pipeline.plugin_manager  # noqa: B018 - builds the pipeline
        assert info.value.hook_name == "stream_active"
