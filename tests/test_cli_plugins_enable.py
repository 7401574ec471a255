"""``schwarm-stream plugins enable/disable NAME`` (issue 18 item 7): edit ``--config FILE`` or print the setting."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from schwarm_stream import Config, Pipeline
from schwarm_stream.cli import cli
from schwarm_stream.cli._toml_edit import set_table_keys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: No plugin setting from the caller's environment reaches these tests.
CLEAN_ENV: dict[str, str | None] = {
    "SCHWARM_STREAM_DISABLE_PLUGINS": None,
    "SCHWARM_STREAM__PLUGINS__ENABLE": None,
    "SCHWARM_STREAM__PLUGINS__DISABLE": None,
}


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Any:
    return CliRunner().invoke(cli, ["plugins", *args], env={**CLEAN_ENV, **(env or {})})


def status(path: Path, name: str) -> str:
    """The plugin's status in a pipeline built from the file, as `run --config` would build it."""
    [info] = [i for i in Pipeline(config=Config.from_toml(path)).plugins() if i.name == name]
    return info.status


def test_disable_then_enable_a_built_in_in_a_new_file(tmp_path: Path) -> None:
    cfg = tmp_path / "schwarm.toml"
    result = invoke("disable", "metrics", "--config", str(cfg))
    assert result.exit_code == 0, result.output
    assert "metrics: disabled in" in result.stdout
    assert tomllib.loads(cfg.read_text()) == {"plugins": {"disable": ["metrics"]}}
    assert status(cfg, "metrics") == "blocked"

    again = invoke("disable", "metrics", "--config", str(cfg))
    assert again.exit_code == 0 and "already disabled" in again.stdout

    result = invoke("enable", "metrics", "--config", str(cfg))
    assert result.exit_code == 0, result.output
    assert tomllib.loads(cfg.read_text()) == {"plugins": {"disable": []}}
    assert status(cfg, "metrics") == "enabled"


def test_only_the_plugins_lines_change(tmp_path: Path) -> None:
    cfg = tmp_path / "schwarm.toml"
    original = (
        "# my settings\n[retry]\nattempts = 2  # keep it short\n\n"
        "[plugins]\ndisable = ['timeouts']  # for now\npolicy = \"strict\"\n\n[timeouts]\nidle = 9.0\n"
    )
    cfg.write_text(original)
    result = invoke("disable", "metrics", "--config", str(cfg))
    assert result.exit_code == 0, result.output
    text = cfg.read_text()
    assert text == original.replace("disable = ['timeouts']  # for now", 'disable = ["timeouts", "metrics"]')
    assert status(cfg, "metrics") == "blocked" and status(cfg, "timeouts") == "blocked"


def test_an_installed_entry_point_goes_into_enable(tmp_path: Path) -> None:
    installed = [i.name for i in Pipeline(config={"plugins": {"autoload": False}}).plugins() if not i.builtin]
    if not installed:
        pytest.skip("no entry-point plugin installed in this environment (pip install -e plugins/*)")
    name = installed[0]
    cfg = tmp_path / "schwarm.toml"
    cfg.write_text(f'[plugins]\nautoload = false\ndisable = ["{name}"]\n')
    result = invoke("enable", name, "--config", str(cfg))
    assert result.exit_code == 0, result.output
    assert tomllib.loads(cfg.read_text())["plugins"] == {"autoload": False, "enable": [name], "disable": []}
    assert status(cfg, name) == "enabled"  # loaded although autoload is off


@pytest.mark.parametrize("action", ["enable", "disable"])
def test_an_unknown_name_is_a_clean_usage_error(tmp_path: Path, action: str) -> None:
    cfg = tmp_path / "schwarm.toml"
    result = invoke(action, "no-such-plugin", "--config", str(cfg))
    assert result.exit_code == 2
    assert "error: unknown plugin 'no-such-plugin'" in result.stderr
    assert "known plugins:" in result.stderr and "metrics" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert not cfg.exists()


def test_an_essential_built_in_cannot_be_disabled(tmp_path: Path) -> None:
    cfg = tmp_path / "schwarm.toml"
    cfg.write_text("[retry]\nattempts = 3\n")
    result = invoke("disable", "accumulate", "--config", str(cfg))
    assert result.exit_code == 2
    assert "accumulate" in result.stderr and "is unchanged" in result.stderr
    assert cfg.read_text() == "[retry]\nattempts = 3\n"


def test_without_config_it_prints_the_setting_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env: dict[str, str | None] = {"SCHWARM_STREAM__PLUGINS__DISABLE": "timeouts"}
    result = invoke("disable", "metrics", env=env)
    assert result.exit_code == 0, result.output
    assert "export SCHWARM_STREAM__PLUGINS__DISABLE=timeouts,metrics" in result.stdout
    assert '[plugins] disable = ["timeouts", "metrics"]' in result.stdout
    assert list(tmp_path.iterdir()) == []
    result = invoke("enable", "timeouts", env=env)
    assert result.exit_code == 0, result.output
    assert "unset SCHWARM_STREAM__PLUGINS__DISABLE" in result.stdout


def test_a_file_it_cannot_edit_exactly_is_left_alone(tmp_path: Path) -> None:
    cfg = tmp_path / "schwarm.toml"
    original = '[plugins]\ndisable = [\n  "timeouts",\n]\n'
    cfg.write_text(original)
    result = invoke("disable", "metrics", "--config", str(cfg))
    assert result.exit_code == 2
    assert "cannot edit" in result.stderr and 'disable = ["timeouts", "metrics"]' in result.stderr
    assert cfg.read_text() == original


def test_the_environment_that_overrides_the_file_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "schwarm.toml"
    result = invoke(
        "enable", "metrics", "--config", str(cfg), env={"SCHWARM_STREAM_DISABLE_PLUGINS": "metrics"}
    )
    assert result.exit_code == 0, result.output
    assert "SCHWARM_STREAM_DISABLE_PLUGINS names 'metrics'" in result.stderr


def test_a_broken_file_is_not_edited(tmp_path: Path) -> None:
    cfg = tmp_path / "schwarm.toml"
    cfg.write_text("[plugins\n")
    result = invoke("disable", "metrics", "--config", str(cfg))
    assert result.exit_code == 2 and "not valid TOML" in result.stderr
    assert cfg.read_text() == "[plugins\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", '[plugins]\ndisable = ["a"]\n'),
        ("[retry]\nattempts = 2", '[retry]\nattempts = 2\n\n[plugins]\ndisable = ["a"]\n'),
        ("[plugins]\nautoload = false\n", '[plugins]\ndisable = ["a"]\nautoload = false\n'),
        ("[plugins]\n  'disable' = []\n[x]\n", '[plugins]\n  disable = ["a"]\n[x]\n'),
    ],
)
def test_set_table_keys(text: str, expected: str) -> None:
    assert set_table_keys(text, "plugins", {"disable": ["a"]}) == expected


@pytest.mark.parametrize("text", ["plugins.disable = []\n", "plugins = { disable = [] }\n", "[plugins\n"])
def test_set_table_keys_refuses_what_it_cannot_edit_exactly(text: str) -> None:
    with pytest.raises(ValueError):
        set_table_keys(text, "plugins", {"disable": ["a"]})
