"""Pipeline.register after the first stream, and plugin sections from the environment."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from schwarm_stream import Config, ConfigError, Pipeline, hookimpl
from schwarm_stream.sources import from_iterator


class Greeting(BaseModel):
    word: str = "hello"
    times: int = 1


class Greeter:
    def __init__(self) -> None:
        self.configured: list[Any] = []

    @hookimpl
    def stream_config_schema(self) -> dict[str, type[BaseModel]]:
        return {"greeter": Greeting}

    @hookimpl
    def stream_configure(self, config: Config) -> None:
        self.configured.append(config.section("greeter"))


async def test_register_before_the_first_stream_joins_the_build_with_its_section() -> None:
    pipeline = Pipeline(config={"plugins": {"autoload": False}, "greeter": {"word": "hi", "times": 2}})
    greeter = Greeter()
    pipeline.register(greeter, name="greeter")
    async with pipeline.open(from_iterator(["a"])) as s:
        await s.collect()
    assert greeter.configured == [Greeting(word="hi", times=2)]
    assert "greeter" in {p.name for p in pipeline.plugins()}


async def test_register_after_first_stream_validates_configures_and_lists() -> None:
    pipeline = Pipeline(config={"plugins": {"autoload": False}})
    async with pipeline.open(from_iterator(["a"])) as s:  # builds the pipeline without the greeter
        await s.collect()
    greeter = Greeter()
    pipeline.register(greeter, name="greeter")
    assert greeter.configured == [Greeting()]
    assert "greeter" in {p.name for p in pipeline.plugins()}
    pipeline.unregister(name="greeter")
    assert "greeter" not in {p.name for p in pipeline.plugins()}


def test_register_rejects_an_invalid_section_and_leaves_nothing_registered() -> None:
    pipeline = Pipeline(config={"plugins": {"autoload": False}})
    assert pipeline.plugin_manager is not None  # built now
    pipeline.config = Config.from_dict({"greeter": {"times": "many"}})
    with pytest.raises(ConfigError, match=r"greeter\.times"):
        pipeline.register(Greeter(), name="greeter")
    assert pipeline.plugin_manager.get_plugin("greeter") is None


def test_plugin_sections_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHWARM_STREAM__GREETER__TIMES", "3")
    monkeypatch.setenv("SCHWARM_STREAM__GREETER__TAGS", '["x", "y"]')
    monkeypatch.setenv("SCHWARM_STREAM__RETRY__ATTEMPTS", "2")
    config = Config.from_env()
    assert config.retry.attempts == 2
    assert config.plugin_sections()["greeter"] == {"times": "3", "tags": ["x", "y"]}
    explicit = Config.from_dict({"greeter": {"times": 5}}, env=True)
    assert explicit.plugin_sections()["greeter"]["times"] == 5  # explicit data wins
