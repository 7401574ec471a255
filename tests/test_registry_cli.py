"""``run`` and ``compare`` show the stream registry's aggregates (their own streams only)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from schwarm_stream import RegistryStats, StatSummary
from schwarm_stream.cli import cli
from schwarm_stream.cli._render import format_registry
from schwarm_stream.testing.server import OfflineProvider, ThreadedProviderServer

KEYS = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": None}


@pytest.fixture
def server() -> Iterator[ThreadedProviderServer]:
    with ThreadedProviderServer(OfflineProvider()) as srv:
        yield srv


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env=KEYS, prog_name="schwarm-stream")


def test_run_json_carries_the_registry_of_its_stream(server: ThreadedProviderServer) -> None:
    result = invoke("run", "--base-url", server.openai_base_url, "-m", "m", "--json", "hi")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    reg = data["registry"]
    assert reg["ended"] == 1 and reg["live"] == 0 and reg["by_outcome"] == {"complete": 1}
    assert reg["output_tokens"] == data["usage"]["output_tokens"]
    assert reg["chunks"] == data["stats"]["chunks"]
    assert reg["time_to_first_content"]["count"] == 1


def test_run_stats_prints_the_registry_line(server: ThreadedProviderServer) -> None:
    result = invoke("run", "--base-url", server.openai_base_url, "-m", "m", "--stats", "hi")
    assert result.exit_code == 0, result.output
    assert "streams: 1 ended (1 complete)" in result.stderr
    assert "first content p50" in result.stderr and "tokens " in result.stderr


def test_compare_shows_the_compared_streams_only(server: ThreadedProviderServer) -> None:
    url = server.openai_base_url
    result = invoke("compare", "--base-url", url, "-m", "a", "-m", "b", "--json", "Greet me")
    assert result.exit_code == 0, result.stderr
    reg = json.loads(result.stdout)["registry"]
    assert reg["ended"] == 2 and reg["by_outcome"] == {"complete": 2}  # the warm-up stream is not counted
    human = invoke("compare", "--base-url", url, "-m", "a", "-m", "b", "Greet me")
    assert "streams: 2 ended (2 complete)" in human.stderr


def test_format_registry_names_errors_and_live_streams() -> None:
    empty = StatSummary()
    stats = RegistryStats(
        live=1,
        by_state={"running": 1},
        ended=3,
        by_outcome={"complete": 1, "error": 2},
        errors={"TransportError": 2},
        failures={"TransportError": 4},
        time_to_first_content=StatSummary(1, 0.085, 0.085, 0.085, 0.085, 0.085),
        duration=StatSummary(3, 1.0, 1.2, 1.5, 0.5, 1.5),
        input_tokens=12,
        output_tokens=420,
        chunks=30,
        attempts=7,
    )
    line = format_registry(stats)
    assert line == (
        "streams: 3 ended (1 complete, 2 error), 1 live · first content p50 85 ms, p99 85 ms"
        " · duration p50 1.20 s, p99 1.50 s · tokens 12 in, 420 out · errors: TransportError: 2"
    )
    none = RegistryStats(0, {}, 0, {}, {}, {}, empty, empty, 0, 0, 0, 0)
    assert format_registry(none) == "streams: 0 ended"
