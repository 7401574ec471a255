"""The core knows no built-in: it asks plugins (hooks, well-known stash keys, stream state) instead.

Issue 15: ``stream.tool_call()`` reads a stash key any message-building plugin fills;
``stream.waiting`` says what the stream awaits, for any plugin; built-ins declare their
config sections through ``stream_config_schema``; deciders share ``decisions`` instead
of importing each other; every hook is a typed attribute of the hook table.
"""

from __future__ import annotations

import ast
import typing
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from schwarm_stream import Chunk, Message, Pipeline, Stream, TransportError, hookimpl
from schwarm_stream._dispatch import HookTable
from schwarm_stream._manager import BUILTIN_PLUGINS, builtin_config_schemas
from schwarm_stream._stream import TOOL_CALLS
from schwarm_stream.config import Config
from schwarm_stream.decisions import BACKOFF
from schwarm_stream.hookspecs import HOOK_NAMES
from schwarm_stream.sources import Source
from schwarm_stream.testing import Fail, ScriptedSource
from schwarm_stream.testing.switches import no_waits

PACKAGE = Path(__file__).resolve().parent.parent / "schwarm_stream"
CORE = [
    "_stream.py",
    "_loop.py",
    "_reads.py",
    "_delivery.py",
    "_control.py",
    "_hooks.py",
    "_dispatch.py",
    "_manager.py",
    "_pipeline.py",
    "config.py",
    "decisions.py",
    "builtins/accumulate.py",
    "builtins/buffer.py",
    "builtins/retry.py",
    "builtins/recovery.py",
    "builtins/timeouts.py",
]

OFF = {"plugins": {"autoload": False}}


def test_the_hook_table_has_a_typed_attribute_per_hook() -> None:
    assert set(typing.get_type_hints(HookTable)) == set(HOOK_NAMES)
    table = HookTable(Pipeline(config=OFF).plugin_manager)
    for name in HOOK_NAMES:
        assert getattr(table, name) is table[name]


@pytest.mark.parametrize("module", CORE)
def test_no_assert_as_a_runtime_check(module: str) -> None:
    tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
    asserts = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)]
    assert not asserts, f"{module}: assert on lines {asserts} vanishes under python -O"


def test_config_declares_only_the_cores_own_section() -> None:
    assert set(Config.model_fields) == {"plugins"}
    text = (PACKAGE / "config.py").read_text(encoding="utf-8")
    for section in ("RetryConfig", "RecoveryConfig", "TimeoutsConfig", "LimitsConfig"):
        assert section not in text


def test_each_builtin_section_is_declared_by_its_builtin_through_the_hook() -> None:
    schemas = builtin_config_schemas()
    assert set(schemas) == {"retry", "recovery", "timeouts", "limits"}
    owners = {section: model.__module__ for section, model in schemas.items()}
    assert owners == {
        "retry": BUILTIN_PLUGINS["retry"],
        "recovery": BUILTIN_PLUGINS["recovery"],
        "timeouts": BUILTIN_PLUGINS["timeouts"],
        "limits": BUILTIN_PLUGINS["accumulate"],
    }
    assert Config.known_sections() == ["limits", "plugins", "recovery", "retry", "timeouts"]


def test_builtin_sections_keep_attribute_access_and_messages() -> None:
    config = Config.from_dict({"retry": {"attempts": 2}, "limits": {"max_event_bytes": 10}})
    assert config.retry.attempts == 2 and config.section("retry") is config.retry
    assert config.limits.max_event_bytes == 10 and config.timeouts.hook == 30.0
    assert "retry" not in config.plugin_sections()  # not a plugin section the pipeline validates again
    with pytest.raises(Exception, match=r"retry\.attempts: Input should be greater than or equal to 1"):
        Config.from_dict({"retry": {"attempts": 0}})
    # pydantic's own constructors skip __init__: the sections are validated on first use
    assert Config.model_validate({"retry": {"attempts": 5}}).retry.attempts == 5


def test_a_plain_config_reads_builtin_sections_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHWARM_STREAM__RETRY__ATTEMPTS", "3")
    monkeypatch.setenv("SCHWARM_STREAM__TELEPORTER__ON", "1")  # a plugin section: only from_env reads it
    assert Config().retry.attempts == 3
    assert "teleporter" not in Config().plugin_sections()
    assert Config.from_dict({"retry": {"attempts": 2}}, env=True).retry.attempts == 2  # explicit wins
    assert Config.from_dict({}).retry.attempts == 4  # from_dict alone reads no environment


class _CallsState:
    def __init__(self, index: int) -> None:
        self.index = index


class _OwnMessages:
    """A plugin replacing ``accumulate``: it fills the core's TOOL_CALLS key with its own objects."""

    @hookimpl
    def stream_start(self, stream: Stream) -> None:
        stream.stash[TOOL_CALLS] = {0: _CallsState(0)}

    @hookimpl
    def stream_message(self, stream: Stream) -> Message:
        return Message(text="own", complete=stream.building_complete, provider=stream.provider)


async def test_tool_call_asks_the_stash_not_the_accumulate_module() -> None:
    pipeline = Pipeline([("accumulate", _OwnMessages())], config=OFF)
    seen: list[Any] = []
    async with pipeline.open(ScriptedSource(["a"])) as stream:
        async for _ in stream:
            seen.append(stream.tool_call(0))
    assert isinstance(seen[0], _CallsState) and stream.tool_call(1) is None
    assert stream.message.text == "own" and stream.message.complete


class _Waiting:
    """Records ``stream.waiting`` as a source and as an async hook see it."""

    def __init__(self) -> None:
        self.in_source: list[str | None] = []
        self.in_hook: list[tuple[str | None, str | None]] = []

    @hookimpl
    async def stream_chunk(self, stream: Stream, chunk: Chunk) -> None:
        hook = stream.running_hook
        self.in_hook.append((stream.waiting, hook.hook_name if hook is not None else None))


class _WatchedSource(Source):
    provider = "scripted"
    model = "m"

    def __init__(self, record: list[str | None]) -> None:
        self.record = record

    async def _events(self, stream: Stream) -> AsyncIterator[Any]:
        for text in ("a", "b"):
            self.record.append(stream.waiting)  # the core awaits this generator: a provider read
            yield Chunk(text)

    def open(self, stream: Stream, attempt: Any) -> AsyncIterator[Any]:
        return self._events(stream)


async def test_stream_waiting_says_what_the_stream_awaits() -> None:
    plugin = _Waiting()
    pipeline = Pipeline([plugin], config=OFF)
    stream = pipeline.open(_WatchedSource(plugin.in_source))
    await stream.collect()
    assert plugin.in_source == ["provider", "provider"]
    assert plugin.in_hook == [("hook", "stream_chunk")] * 2
    assert stream.waiting is None and stream.running_hook is None and not stream.reading


class _Backoff:
    """Publishes its own waits under decisions.BACKOFF, after the retry plugin (called before it)."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    @hookimpl(trylast=True)
    def stream_attempt(self, stream: Stream) -> None:
        def wait(s: Stream, error: Any, number: int) -> float:
            self.asked.append(number)
            return 0.0

        stream.stash[BACKOFF] = wait


async def test_recovery_waits_through_the_shared_backoff_key() -> None:
    waits = _Backoff()
    config = {**OFF, "recovery": {"mid_stream": "restart"}}
    pipeline = Pipeline([waits], config=config)
    source = ScriptedSource(["a", Fail(TransportError("reset"))], ["b"])
    with no_waits():
        message = await pipeline.open(source).collect()
    assert message.text == "b" and message.recovery == "restarted"
    assert waits.asked == [1]


async def test_the_hook_limit_comes_from_the_timeouts_section() -> None:
    limits: list[float | None] = []

    class Probe:
        @hookimpl
        def stream_start(self, stream: Stream) -> None:
            limits.append(stream.hook_limit)

    await Pipeline([Probe()], config={**OFF, "timeouts": {"hook": 7.5}}).open(ScriptedSource(["a"])).collect()
    off = {"plugins": {"autoload": False, "disable": ["timeouts"]}}
    await Pipeline([Probe()], config=off).open(ScriptedSource(["a"])).collect()
    assert limits == [7.5, None]
