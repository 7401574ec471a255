"""`schwarm-stream demo --provider X` without X's SDK installed: one error line naming the extra, no traceback."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from schwarm_stream.cli import cli


@pytest.mark.parametrize(
    ("provider", "blocked", "extra"),
    [
        ("openai", "openai", "openai"),
        ("responses", "openai", "openai"),
        ("anthropic", "anthropic", "anthropic"),
        ("gemini", "google.genai", "gemini"),
        ("ollama", "ollama", "ollama"),
        ("bedrock", "boto3", "bedrock"),
    ],
)
def test_demo_without_the_sdk_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, provider: str, blocked: str, extra: str
) -> None:
    # a None entry in sys.modules makes `import <blocked>` raise ImportError, as if it were not installed
    monkeypatch.setitem(sys.modules, blocked, None)
    result = CliRunner().invoke(cli, ["demo", "--provider", provider, "--chunk-delay", "0"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"the demo needs the {extra} SDK" in result.output
    assert f"pip install 'schwarm-stream[{extra}]'" in result.output
