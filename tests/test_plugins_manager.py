"""Plugin discovery, enabling/disabling, listing and per-plugin config sections.

Entry-point plugins here are real installed distributions as ``importlib.metadata`` sees them: a
``*.dist-info`` folder (METADATA, entry_points.txt, top_level.txt) and a module, in a temporary
folder put on ``sys.path``. (tests/test_plugins_acceptance.py installs built distributions with pip.)
"""

from __future__ import annotations

import itertools
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import schwarm_stream
from schwarm_stream import ConfigError, Pipeline, PluginError, PluginLoadError, hookimpl
from schwarm_stream._manager import BUILTIN_PLUGINS, PluginInfo, make_plugin_manager
from schwarm_stream.testing import HookRecorder, ScriptedSource

_ids = itertools.count()

RECORDING_PLUGIN = """
from schwarm_stream import hookimpl

CALLS = []

@hookimpl
def stream_start(stream):
    CALLS.append(("start", stream.id))

@hookimpl
def stream_complete(stream, message):
    CALLS.append(("complete", message.text))
"""


def install_dist(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    entry_points: dict[str, str],
    modules: dict[str, str],
    dist: str | None = None,
    version: str = "1.2.3",
) -> str:
    """Make an installed distribution visible to importlib.metadata; returns its name."""
    dist = dist or f"schwarm-stream-fake{next(_ids)}"
    site = root / f"site-{dist}"
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    eps = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[schwarm_stream]\n{eps}\n")
    (info / "top_level.txt").write_text("\n".join(m.partition(".")[0] for m in modules) + "\n")
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(site))
    return dist


def unique(prefix: str) -> str:
    return f"{prefix}_{next(_ids)}"


def info_of(infos: list[PluginInfo], name: str) -> PluginInfo:
    (found,) = [i for i in infos if i.name == name]
    return found


# -- discovery ---------------------------------------------------------------------------------------


async def test_entry_point_plugin_is_loaded_lazily_listed_and_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = unique("sst_recording")
    dist = install_dist(
        tmp_path, monkeypatch, entry_points={"recording": mod}, modules={mod: RECORDING_PLUGIN}
    )
    pipeline = Pipeline()
    assert mod not in sys.modules  # building a Pipeline object loads nothing
    info = info_of(pipeline.plugins(), "recording")
    assert mod in sys.modules
    assert info.to_dict() == {
        "name": "recording",
        "builtin": False,
        "distribution": dist,
        "version": "1.2.3",
        "module": mod,
        "hooks": ["stream_complete", "stream_start"],
        "status": "enabled",
        "enabled": True,
        "blocked": False,
        "error": None,
    }
    async with pipeline.open(ScriptedSource(["hi"])) as stream:
        await stream.collect()
    assert sys.modules[mod].CALLS == [("start", stream.id), ("complete", "hi")]


def test_entry_point_pointing_at_an_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = unique("sst_instance")
    source = """
        from schwarm_stream import hookimpl

        class Plugin:
            @hookimpl
            def stream_end(self, stream):
                pass

        plugin = Plugin()
    """
    install_dist(tmp_path, monkeypatch, entry_points={"inst": f"{mod}:plugin"}, modules={mod: source})
    info = info_of(Pipeline().plugins(), "inst")
    assert info.enabled and info.hooks == ["stream_end"] and info.module == f"{mod}:plugin"


def test_entry_point_pointing_at_a_class_names_it_and_hints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    mod = unique("sst_class")
    source = """
        from schwarm_stream import hookimpl

        class Plugin:
            @hookimpl
            def stream_end(self, stream):
                pass
    """
    dist = install_dist(tmp_path, monkeypatch, entry_points={"klass": f"{mod}:Plugin"}, modules={mod: source})
    with caplog.at_level(logging.WARNING, logger="schwarm_stream"):
        info = info_of(Pipeline().plugins(), "klass")
    assert info.status == "failed" and not info.enabled
    assert info.error is not None
    for part in ("'klass'", dist, "class Plugin", "forget the ()", f'"{mod}:plugin" with plugin = Plugin()'):
        assert part in info.error
    assert info.error in caplog.text
    with pytest.raises(PluginLoadError) as exc_info:
        Pipeline(config={"plugins": {"load_errors": "raise"}}).plugins()
    assert exc_info.value.entry_point == "klass"
    assert exc_info.value.distribution == dist


async def test_entry_point_that_fails_to_import_does_not_stop_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = unique("sst_broken")
    dist = install_dist(
        tmp_path, monkeypatch, entry_points={"broken": mod}, modules={mod: "import does_not_exist_anywhere\n"}
    )
    pipeline = Pipeline()
    info = info_of(pipeline.plugins(), "broken")
    assert info.status == "failed"
    assert info.error is not None
    assert "failed to import: ModuleNotFoundError" in info.error and dist in info.error
    assert "disable it with [plugins] disable = ['broken']" in info.error
    assert (await pipeline.open(ScriptedSource(["ok"])).collect()).text == "ok"
    with pytest.raises(PluginLoadError, match="does_not_exist_anywhere"):
        Pipeline(config={"plugins": {"load_errors": "raise"}}).open(ScriptedSource(["x"]))


def test_entry_point_with_a_typo_in_a_hook_name_fails_to_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = unique("sst_typo")
    source = """
        from schwarm_stream import hookimpl

        @hookimpl
        def stream_chunks(stream, chunk):
            pass
    """
    install_dist(tmp_path, monkeypatch, entry_points={"typo": mod}, modules={mod: source})
    pipeline = Pipeline()
    info = info_of(pipeline.plugins(), "typo")
    assert info.status == "failed" and info.error is not None
    assert "stream_chunks() is marked @hookimpl but there is no such hook" in info.error
    assert not pipeline.plugin_manager.has_plugin("typo")


def test_entry_point_with_a_wrong_argument_name_fails_to_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = unique("sst_badarg")
    source = """
        from schwarm_stream import hookimpl

        @hookimpl
        def stream_chunk(stream, text):
            pass
    """
    dist = install_dist(tmp_path, monkeypatch, entry_points={"badarg": mod}, modules={mod: source})
    info = info_of(Pipeline().plugins(), "badarg")
    assert info.status == "failed" and info.error is not None
    assert "not a valid plugin" in info.error and dist in info.error and "text" in info.error


def test_entry_point_named_like_a_builtin_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = unique("sst_clash")
    install_dist(tmp_path, monkeypatch, entry_points={"accumulate": mod}, modules={mod: RECORDING_PLUGIN})
    infos = Pipeline().plugins()
    builtin, clash = [i for i in infos if i.name == "accumulate"]
    assert builtin.builtin and builtin.enabled
    assert clash.status == "failed" and clash.error is not None
    assert "has the name of a built-in plugin" in clash.error


def test_caller_plugin_with_a_typo_in_a_hook_name_is_an_error() -> None:
    class Typo:
        @hookimpl
        def stream_compete(self, stream: Any) -> None:
            pass

    with pytest.raises(
        PluginError, match=r"stream_compete\(\) is marked @hookimpl but there is no such hook"
    ):
        Pipeline([Typo()]).plugins()


# -- enable / disable --------------------------------------------------------------------------------


async def test_disable_by_config_blocks_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = unique("sst_dis")
    install_dist(tmp_path, monkeypatch, entry_points={"dis": mod}, modules={mod: RECORDING_PLUGIN})
    pipeline = Pipeline(config={"plugins": {"disable": ["dis"]}})
    info = info_of(pipeline.plugins(), "dis")
    assert info.status == "blocked" and info.blocked and not info.enabled and info.hooks == []
    await pipeline.open(ScriptedSource(["x"])).collect()
    assert mod not in sys.modules


def test_disable_by_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = unique("sst_env_a"), unique("sst_env_b")
    install_dist(
        tmp_path,
        monkeypatch,
        entry_points={"env-a": a, "env-b": b},
        modules={a: RECORDING_PLUGIN, b: RECORDING_PLUGIN},
    )
    monkeypatch.setenv("SCHWARM_STREAM_DISABLE_PLUGINS", "env-a, env-b")
    infos = Pipeline().plugins()
    assert info_of(infos, "env-a").blocked and info_of(infos, "env-b").blocked
    assert a not in sys.modules and b not in sys.modules


def test_disable_by_environment_config_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = unique("sst_envcfg")
    install_dist(tmp_path, monkeypatch, entry_points={"envcfg": mod}, modules={mod: RECORDING_PLUGIN})
    monkeypatch.setenv("SCHWARM_STREAM__PLUGINS__DISABLE", '["envcfg"]')
    assert info_of(Pipeline().plugins(), "envcfg").blocked


def test_autoload_off_by_environment_loads_only_enabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = unique("sst_auto_a"), unique("sst_auto_b")
    install_dist(
        tmp_path,
        monkeypatch,
        entry_points={"auto-a": a, "auto-b": b},
        modules={a: RECORDING_PLUGIN, b: RECORDING_PLUGIN},
    )
    monkeypatch.setenv("SCHWARM_STREAM_DISABLE_PLUGIN_AUTOLOAD", "1")
    infos = Pipeline().plugins()
    assert info_of(infos, "auto-a").status == "not loaded"
    assert info_of(infos, "auto-b").status == "not loaded"
    assert a not in sys.modules
    infos = Pipeline(config={"plugins": {"enable": ["auto-b"]}}).plugins()
    assert info_of(infos, "auto-a").status == "not loaded"
    assert info_of(infos, "auto-b").enabled
    assert b in sys.modules and a not in sys.modules


@pytest.mark.parametrize("value", ["0", "false", ""])
def test_autoload_env_false_values_keep_autoload(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = unique("sst_autoval")
    install_dist(tmp_path, monkeypatch, entry_points={"autoval": mod}, modules={mod: RECORDING_PLUGIN})
    monkeypatch.setenv("SCHWARM_STREAM_DISABLE_PLUGIN_AUTOLOAD", value)
    assert info_of(Pipeline().plugins(), "autoval").enabled


def test_autoload_off_by_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = unique("sst_autocfg")
    install_dist(tmp_path, monkeypatch, entry_points={"autocfg": mod}, modules={mod: RECORDING_PLUGIN})
    assert (
        info_of(Pipeline(config={"plugins": {"autoload": False}}).plugins(), "autocfg").status == "not loaded"
    )


def test_disable_wins_over_enable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = unique("sst_both")
    install_dist(tmp_path, monkeypatch, entry_points={"both": mod}, modules={mod: RECORDING_PLUGIN})
    config = {"plugins": {"autoload": False, "enable": ["both"], "disable": ["both"]}}
    assert info_of(Pipeline(config=config).plugins(), "both").blocked


def test_enable_of_a_missing_plugin_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match="'no-such-plugin' named in \\[plugins\\] enable are not installed"
    ) as info:
        Pipeline(config={"plugins": {"enable": ["no-such-plugin"]}}).plugins()
    assert info.value.key == "plugins.enable"


def test_disable_of_an_unknown_name_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="schwarm_stream"):
        Pipeline(config={"plugins": {"disable": ["nope"]}}).plugins()
    assert "plugin 'nope' named in [plugins] disable" in caplog.text


def test_essential_builtin_cannot_be_disabled() -> None:
    with pytest.raises(ConfigError, match="'accumulate' cannot be disabled") as info:
        Pipeline(config={"plugins": {"disable": ["accumulate"]}}).plugins()
    assert info.value.key == "plugins.disable"


def test_essential_builtin_cannot_be_disabled_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHWARM_STREAM_DISABLE_PLUGINS", "accumulate")
    with pytest.raises(ConfigError, match="replace it instead by registering your plugin under the name"):
        Pipeline().plugins()


async def test_essential_builtin_can_be_replaced() -> None:
    class Shortest:
        @hookimpl(trylast=True)
        def stream_message(self, stream: Any) -> Any:
            return schwarm_stream.Message(text="mine", complete=stream.building_complete)

    pipeline = Pipeline([("accumulate", Shortest())], config={"plugins": {"autoload": False}})
    infos = pipeline.plugins()
    replaced = [i for i in infos if i.name == "accumulate"]
    assert [(i.builtin, i.status) for i in replaced] == [(True, "replaced"), (False, "enabled")]
    assert (await pipeline.open(ScriptedSource(["x"])).collect()).text == "mine"


async def test_a_non_essential_builtin_can_be_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = unique("sst_builtin")
    (tmp_path / f"{mod}.py").write_text(textwrap.dedent(RECORDING_PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(BUILTIN_PLUGINS, "demo-builtin", mod)
    on = Pipeline(config={"plugins": {"autoload": False}})
    assert info_of(on.plugins(), "demo-builtin").enabled
    await on.open(ScriptedSource(["a"])).collect()
    calls = len(sys.modules[mod].CALLS)
    off = Pipeline(config={"plugins": {"autoload": False, "disable": ["demo-builtin"]}})
    info = info_of(off.plugins(), "demo-builtin")
    assert info.builtin and info.blocked
    await off.open(ScriptedSource(["b"])).collect()
    assert len(sys.modules[mod].CALLS) == calls


def test_caller_plugin_blocked_by_name() -> None:
    recorder = HookRecorder()
    pipeline = Pipeline([("rec", recorder)], config={"plugins": {"autoload": False, "disable": ["rec"]}})
    info = info_of(pipeline.plugins(), "rec")
    assert info.blocked
    assert not pipeline.plugin_manager.is_registered(recorder)


def test_caller_plugin_listing_names_its_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = unique("sst_owned")
    dist = install_dist(
        tmp_path, monkeypatch, entry_points={}, modules={mod: RECORDING_PLUGIN}, version="0.9"
    )
    import importlib

    module = importlib.import_module(mod)
    _pm, infos = make_plugin_manager([("owned", module)], autoload=False)
    info = info_of(infos, "owned")
    assert (info.distribution, info.version, info.module) == (dist, "0.9", mod)
    assert info.hooks == ["stream_complete", "stream_start"]


def test_listing_of_builtins() -> None:
    infos = Pipeline(config={"plugins": {"autoload": False}}).plugins()
    acc = info_of(infos, "accumulate")
    assert acc.builtin and acc.enabled and acc.distribution == "schwarm-stream"
    assert acc.version == schwarm_stream.__version__
    assert "stream_message" in acc.hooks
    assert {i.name for i in infos if i.builtin} == set(BUILTIN_PLUGINS)


# -- per-plugin config sections ------------------------------------------------------------------------

CONFIGURED_PLUGIN = """
from pydantic import BaseModel
from schwarm_stream import hookimpl


SEEN = []

class Section(BaseModel):
    model_config = {"extra": "forbid"}
    greeting: str = "hello"
    times: int = 1

@hookimpl
def stream_config_schema():
    return {"greeter": Section}

@hookimpl
def stream_configure(config):
    SEEN.append(config.section("greeter"))
"""


def test_entry_point_config_section_is_validated_and_handed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = unique("sst_cfg")
    install_dist(tmp_path, monkeypatch, entry_points={"greeter": mod}, modules={mod: CONFIGURED_PLUGIN})
    Pipeline(config={"greeter": {"greeting": "hi", "times": 3}}).plugins()
    (section,) = sys.modules[mod].SEEN
    assert (section.greeting, section.times) == ("hi", 3)


def test_entry_point_config_section_defaults_from_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = unique("sst_cfgtoml")
    install_dist(tmp_path, monkeypatch, entry_points={"greeter": mod}, modules={mod: CONFIGURED_PLUGIN})
    toml = tmp_path / "schwarm.toml"
    toml.write_text('[greeter]\ngreeting = "moin"\n')
    Pipeline(config=toml).plugins()
    assert sys.modules[mod].SEEN[-1].greeting == "moin"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"times": "many"},
            "plugin 'greeter': invalid configuration: greeter.times: Input should be a valid integer",
        ),
        ({"tims": 2}, "plugin 'greeter': invalid configuration: greeter.tims: unknown key"),
    ],
)
def test_entry_point_config_errors_name_plugin_and_key(
    section: dict[str, Any], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = unique("sst_cfgerr")
    install_dist(tmp_path, monkeypatch, entry_points={"greeter": mod}, modules={mod: CONFIGURED_PLUGIN})
    with pytest.raises(ConfigError) as info:
        Pipeline(config={"greeter": section}).plugins()
    assert message in str(info.value)
    assert info.value.key == "greeter"


def test_section_of_a_disabled_plugin_warns_and_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 14 item 12: disabling a plugin whose section is still set no longer fails every stream.
    mod = unique("sst_cfgoff")
    install_dist(tmp_path, monkeypatch, entry_points={"greeter": mod}, modules={mod: CONFIGURED_PLUGIN})
    Pipeline(config={"greeter": {}, "plugins": {"disable": ["greeter"]}}).plugins()
    assert any("'greeter'" in r.getMessage() and "disabled" in r.getMessage() for r in caplog.records)
