"""Bad settings meet every subcommand the same way: one clean message, exit status 2, never a traceback.

Run as a user runs it: the installed ``schwarm-stream`` entry point in a subprocess, with the bad value in
the environment (issue 18, item 1).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from schwarm_stream.config import Config

# Every subcommand, with arguments that would otherwise be valid (none reaches the network: a bad
# setting must stop each one before it starts).
COMMANDS: dict[str, list[str]] = {
    "demo": ["demo", "--chunk-delay", "0"],
    "run": ["run", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "hi"],
    "compare": ["compare", "--offline", "hi"],
    "replay": ["replay", __file__],  # replay must not ignore bad settings
    "plugins": ["plugins", "--all"],
    "plugins-disable": ["plugins", "disable", "metrics"],
}

BAD_SETTINGS: dict[str, tuple[dict[str, str], str]] = {
    "attempts-zero": ({"SCHWARM_STREAM__RETRY__ATTEMPTS": "0"}, "retry.attempts"),
    "attempts-not-a-number": ({"SCHWARM_STREAM__RETRY__ATTEMPTS": "abc"}, "retry.attempts"),
    "misspelt-key": ({"SCHWARM_STREAM__RETRY__ATTEMPTZ": "3"}, "retry.attemptz"),
    "unknown-section": ({"SCHWARM_STREAM__TELEPORTER__ON": "1"}, "teleporter"),
    "unknown-strategy": ({"SCHWARM_STREAM__RECOVERY__MID_STREAM": "teleport"}, "recovery.mid_stream"),
    "accumulate-disabled": ({"SCHWARM_STREAM__PLUGINS__DISABLE": "accumulate"}, "accumulate"),
    "bad-policy": ({"SCHWARM_STREAM__PLUGINS__POLICY": "lenient"}, "plugins.policy"),
    "unknown-plugin-enabled": ({"SCHWARM_STREAM__PLUGINS__ENABLE": "no-such-plugin"}, "no-such-plugin"),
}


def _cli(args: list[str], extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHWARM_STREAM")}
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, "-m", "schwarm_stream", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("setting", sorted(BAD_SETTINGS))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_setting_is_a_clean_usage_error_on_every_command(command: str, setting: str) -> None:
    env, named = BAD_SETTINGS[setting]
    result = _cli(COMMANDS[command], env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert result.stderr.startswith("error: bad configuration"), result.stderr
    assert named in result.stderr, result.stderr
    assert "hint: " in result.stderr
    assert len(result.stderr.splitlines()) <= 3, result.stderr  # a message and a hint, not a dump


def test_help_still_works_with_a_bad_setting() -> None:
    result = _cli(["demo", "--help"], {"SCHWARM_STREAM__RETRY__ATTEMPTS": "0"})
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("jsonl", ["jsonl"]),
        ("jsonl, redact", ["jsonl", "redact"]),
        ('["jsonl","redact"]', ["jsonl", "redact"]),
    ],
)
def test_list_settings_accept_a_plain_or_comma_separated_string(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("SCHWARM_STREAM__PLUGINS__DISABLE", value)
    assert Config.from_env().plugins.disable == expected


def test_strategy_lists_accept_comma_separated_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHWARM_STREAM__RECOVERY__MID_STREAM", "resume,restart")
    assert Config.from_env().recovery.mid_stream == ["resume", "restart"]
    monkeypatch.setenv("SCHWARM_STREAM__RECOVERY__MID_STREAM", "restart")
    assert Config.from_env().recovery.mid_stream == "restart"


def test_plain_list_setting_runs_every_command_without_a_settings_traceback() -> None:
    # SCHWARM_STREAM__PLUGINS__ENABLE=name used to fail with a 67-line pydantic-settings traceback
    result = _cli(["plugins", "--all"], {"SCHWARM_STREAM__PLUGINS__DISABLE": "redact"})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "hint"),
    [(None, "check the path given to --config"), ("[retry\nattempts = 2\n", "fix the TOML syntax")],
)
def test_config_file_hints_fit_the_case(tmp_path: Path, content: str | None, hint: str) -> None:
    path = tmp_path / "settings.toml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = _cli(["run", "--config", str(path), "--model", "m", "hi"], {"OPENAI_API_KEY": "sk-test"})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert hint in result.stderr, result.stderr
