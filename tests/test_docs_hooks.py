"""docs/hooks.md is the hook contract: one section per hookspec, with the exact signature, and working examples.

datasette's discipline: a hookspec without a section fails, and so does a section without a hookspec.
Every example is executed as a plugin module on real streams (one completing, one failing and
restarted), and must not fail.
"""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from schwarm_stream import Recovery, TransportError, hookimpl, hookspecs
from schwarm_stream.hookspecs import HOOK_NAMES
from schwarm_stream.testing import Fail, ScriptedSource, StagedPipeline, tool_call_deltas
from schwarm_stream.testing.switches import no_waits


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retry and recovery decide as configured, without sleeping (schwarm_stream.testing.switches)."""
    with no_waits():
        yield


DOC = Path(__file__).resolve().parents[1] / "docs" / "hooks.md"
HEADING = re.compile(r"^## (\w+)\((.*)\)$", re.MULTILINE)
PARTS = ("**Arguments:**", "**Returns:**", "**Order:**", "**Example:**")


def sections() -> dict[str, tuple[str, str]]:
    """``{hook name: (argument list as written, section text)}``."""
    text = DOC.read_text(encoding="utf-8")
    found: dict[str, tuple[str, str]] = {}
    matches = list(HEADING.finditer(text))
    for m, nxt in zip(matches, [*matches[1:], None], strict=True):
        body = text[m.end() : nxt.start() if nxt else len(text)]
        assert m.group(1) not in found, f"docs/hooks.md documents {m.group(1)} twice"
        found[m.group(1)] = (m.group(2), body)
    return found


def spec_signature(name: str) -> str:
    return ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)


def test_every_hookspec_has_a_section() -> None:
    missing = [name for name in HOOK_NAMES if name not in sections()]
    assert not missing, f"hooks without a '## name(args)' section in docs/hooks.md: {missing}"


def test_every_section_is_a_hookspec() -> None:
    extra = [name for name in sections() if name not in HOOK_NAMES]
    assert not extra, f"docs/hooks.md documents hooks that do not exist: {extra}"


def test_sections_follow_the_declaration_order() -> None:
    assert list(sections()) == list(HOOK_NAMES)


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_heading_is_the_exact_signature(name: str) -> None:
    args, _ = sections()[name]
    assert args == spec_signature(name), (
        f"heading {name}({args}) but the hookspec is {name}({spec_signature(name)})"
    )


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_section_has_arguments_returns_order_and_example(name: str) -> None:
    _, body = sections()[name]
    for part in PARTS:
        assert part in body, f"section {name} has no {part}"
    for arg in spec_signature(name).split(", "):
        if arg:
            assert f"`{arg}`" in body, f"section {name} does not describe the argument {arg!r}"
    assert "```python" in body


def example_module(name: str) -> types.ModuleType:
    _, body = sections()[name]
    code = body.split("```python", 1)[1].split("```", 1)[0]
    module = types.ModuleType(f"hooks_md_{name}")
    exec(compile(code, f"docs/hooks.md#{name}", "exec"), module.__dict__)
    return module


class RestartOnce:
    """Turns the first failure into a restart, so the examples see a reset and a second attempt."""

    @hookimpl(tryfirst=True)
    def stream_error(self, stream: object, error: object) -> Recovery | None:
        return Recovery("restart") if getattr(stream, "attempt", 0) == 1 else None


@pytest.mark.parametrize("name", HOOK_NAMES)
async def test_example_runs_as_a_plugin(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = example_module(name)
    implemented = [n for n in HOOK_NAMES if callable(getattr(module, n, None))]
    assert name in implemented, f"the example of {name} does not implement it"
    pipeline = StagedPipeline([("example", module), ("restart-once", RestartOnce())])
    source = ScriptedSource(
        ["Hel", "lo ", *tool_call_deltas('{"a": 1}', name="f"), Fail(TransportError("reset by peer"))],
        ["Hel", "lo ", "world\n"],
    )
    async with pipeline.open(source, metadata={"user": "ada"}) as stream:
        message = await stream.collect()
    assert stream.plugin_errors == [], f"the example of {name} failed: {stream.plugin_errors}"
    assert stream.outcome == "complete"
    assert stream.resets == 1
    assert message.complete
