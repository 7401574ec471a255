"""The worked example of docs/testing-plugins.md runs as written, in a pytest session of its own.

The plugin module and the test code are copied out of the page; pytester runs them with the
schwarm_stream pytest plugin (pytest11) providing the fixtures, as a plugin author's project would.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parents[1] / "docs" / "testing-plugins.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_page_has_the_plugin_and_its_tests() -> None:
    blocks = python_blocks()
    assert blocks[0].startswith("# shout_guard.py")
    assert blocks[1].startswith("# test_shout_guard.py")


def test_worked_example_passes(pytester: pytest.Pytester) -> None:
    plugin, *tests = python_blocks()
    pytester.makepyfile(shout_guard=plugin)
    pytester.makepyfile(test_shout_guard="\n".join(tests))
    pytester.syspathinsert()
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--asyncio-mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"
    )
    result.assert_outcomes(passed=4)


WRITING = Path(__file__).resolve().parents[1] / "docs" / "writing-plugins.md"


async def test_writing_plugins_config_example_works() -> None:
    import types

    from schwarm_stream import Chunk, ConfigError
    from schwarm_stream.testing import ScriptedSource, StagedPipeline

    blocks = re.findall(r"```python\n(.*?)```", WRITING.read_text(encoding="utf-8"), flags=re.DOTALL)
    (code,) = [b for b in blocks if "stream_config_schema" in b]
    module = types.ModuleType("shout_example")
    exec(compile(code, "docs/writing-plugins.md", "exec"), module.__dict__)
    on = StagedPipeline([("shout", module)], config={"shout": {"enabled": True}})
    async with on.open(ScriptedSource(["hello"])) as stream:
        shown = [e.text async for e in stream if isinstance(e, Chunk)]
    assert shown == ["HELLO"] and stream.message.text == "hello"
    off = StagedPipeline([("shout", module)])
    assert (await off.open(ScriptedSource(["hello"])).collect()).text == "hello"
    with pytest.raises(
        ConfigError, match=r"plugin 'shout': invalid configuration: shout\.enable: unknown key"
    ):
        StagedPipeline([("shout", module)], config={"shout": {"enable": True}}).plugins()
