"""``schwarm-stream compare``: CliRunner, real SDK clients, the loopback provider server."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from schwarm_stream.cli import cli
from schwarm_stream.testing.server import (
    OfflineProvider,
    RecordedRequest,
    SSEReply,
    ThreadedProviderServer,
    openai_chat_events,
)

KEYS = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test"}
OFFLINE_ONLY = "--offline compares the two built-in offline providers: it takes no --model or --base-url"
TOOL_CALL = {"id": "call_1", "name": "get_weather", "arguments": '{"city":"Rome"}'}


def by_model(request: RecordedRequest) -> SSEReply:
    """Model ``a`` and model ``b`` answer the same prompt differently; ``b`` also calls a tool."""
    model = request.json["model"]
    if model == "a":
        return SSEReply(openai_chat_events(["Hello\n", "world"], model="a"))
    if model == "b":
        return SSEReply(openai_chat_events(["Hello\n", "there"], tool_calls=[TOOL_CALL], model="b"))
    if model == "cut":  # ends without finish_reason and [DONE]: truncated
        return SSEReply(openai_chat_events(["Hel"], finish_reason=None, usage=None, done=False, model="cut"))
    raise AssertionError(f"unexpected model {model!r}")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def server() -> Iterator[ThreadedProviderServer]:
    with ThreadedProviderServer(by_model) as srv:
        yield srv


@pytest.fixture
def no_retry(tmp_path: Path) -> Path:
    """A config under which a failed stream fails once (each model's reply is the same every time)."""
    path = tmp_path / "schwarm.toml"
    path.write_text('[retry]\nattempts = 1\n\n[recovery]\nmid_stream = "raise"\n', encoding="utf-8")
    return path


def invoke(runner: CliRunner, *args: str, env: dict[str, str] | None = None) -> Any:
    base: dict[str, str | None] = {"OPENAI_API_KEY": None, "ANTHROPIC_API_KEY": None}
    return runner.invoke(cli, ["compare", *args], env={**base, **(env or {})}, prog_name="schwarm-stream")


def test_compare_prints_a_table_and_the_text_diff(runner: CliRunner, server: ThreadedProviderServer) -> None:
    result = invoke(runner, "--base-url", server.openai_base_url, "-m", "a", "-m", "b", "Greet me", env=KEYS)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["source", "ttfc", "ms"]
    rows = {line.split()[0]: line.split() for line in lines[2:4]}
    assert set(rows) == {"a", "b"}
    assert rows["a"][-1] == rows["b"][-1] == "yes"
    assert (rows["a"][-2], rows["b"][-2]) == ("0", "1")  # tool calls
    assert "--- text diff: a vs b" in lines
    assert "-world" in lines and "+there" in lines
    # the same prompt went to each model, through the official SDK
    sent = sorted((r.json["model"], json.dumps(r.json["messages"])) for r in server.requests)
    assert sent == [(m, json.dumps([{"role": "user", "content": "Greet me"}])) for m in ("a", "b")]
    assert all(r.headers["authorization"] == "Bearer sk-test" for r in server.requests)


def test_compare_json_is_the_report(runner: CliRunner, server: ThreadedProviderServer) -> None:
    args = ["--base-url", server.openai_base_url, "-m", "a", "-m", "b", "--json", "Greet me"]
    result = invoke(runner, *args, env=KEYS)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    a, b = report["results"]
    assert (a["name"], a["text"], a["tool_calls"]) == ("a", "Hello\nworld", [])
    assert (b["name"], b["text"]) == ("b", "Hello\nthere")
    assert b["tool_calls"] == [{"name": "get_weather", "arguments": '{"city":"Rome"}'}]
    assert a["complete"] and b["complete"] and a["error"] is None
    assert a["chunks"] == 2 and isinstance(a["output_tokens"], int)
    assert a["time_to_first_chunk"] is not None and a["duration"] >= a["time_to_first_chunk"]
    assert list(report["diffs"]) == ["b"] and "+there" in report["diffs"]["b"]


def test_compare_the_same_model_twice_gets_two_rows(
    runner: CliRunner, server: ThreadedProviderServer
) -> None:
    args = ["--base-url", server.openai_base_url, "-m", "a", "-m", "a", "--json", "Greet me"]
    result = invoke(runner, *args, env=KEYS)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [r["name"] for r in report["results"]] == ["a", "a#1"]
    assert report["diffs"] == {"a#1": ""}  # identical answers: an empty diff
    assert len(server.requests) == 2


def test_compare_anthropic_through_the_anthropic_sdk(runner: CliRunner) -> None:
    with ThreadedProviderServer(OfflineProvider()) as srv:
        args = ["--provider", "anthropic", "--base-url", srv.anthropic_base_url, "-m", "x", "-m", "y"]
        result = invoke(runner, *args, "--max-tokens", "64", "--json", "Hi there", env=KEYS)
        requests = srv.requests
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [(r["name"], r["text"], r["complete"]) for r in report["results"]] == [
        ("x", "You said: Hi there", True),
        ("y", "You said: Hi there", True),
    ]
    assert {r.route for r in requests} == {"anthropic-messages"}
    assert sorted(r.json["model"] for r in requests) == ["x", "y"]
    assert all(r.json["max_tokens"] == 64 for r in requests)


def test_a_failing_stream_exits_1_and_the_others_still_report(
    runner: CliRunner, server: ThreadedProviderServer, no_retry: Path
) -> None:
    args = ["--base-url", server.openai_base_url, "--config", str(no_retry), "-m", "a", "-m", "cut", "Greet"]
    result = invoke(runner, *args, env=KEYS)
    assert result.exit_code == 1
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:4]}
    assert rows["a"].endswith("yes")
    assert "no: StreamIncomplete" in rows["cut"]
    assert "error: 1 of 2 streams did not complete" in result.stderr

    as_json = invoke(runner, *args, "--json", env=KEYS)
    assert as_json.exit_code == 1
    cut = json.loads(as_json.stdout)["results"][1]
    assert (cut["name"], cut["complete"], cut["text"]) == ("cut", False, "Hel")
    assert cut["error"].startswith("StreamIncomplete:")


def test_an_unreachable_server_names_the_url(runner: CliRunner, no_retry: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on once the socket is closed
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    result = invoke(
        runner, "--base-url", url, "--config", str(no_retry), "-m", "a", "-m", "b", "hi", env=KEYS
    )
    assert result.exit_code == 1
    assert "error: 2 of 2 streams did not complete" in result.stderr
    assert f"hint: could not reach {url}" in result.stderr


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_offline_compares_two_built_in_providers(runner: CliRunner, provider: str) -> None:
    result = invoke(runner, "--offline", "--provider", provider, "Hello there")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[2:4]] == ["offline-fast", "offline-slow"]
    assert all(line.endswith("yes") for line in lines[2:4])
    assert lines[-2:] == ["--- text diff: offline-fast vs offline-slow", "(identical)"]

    report = json.loads(invoke(runner, "--offline", "--provider", provider, "--json", "Hello there").stdout)
    assert [r["text"] for r in report["results"]] == ["You said: Hello there"] * 2
    assert all(r["complete"] and r["output_tokens"] for r in report["results"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "only-one", "hi"], "compare needs at least two --model options (got 1)"),
        (["hi"], "compare needs at least two --model options (got 0)"),
        (["--offline", "-m", "a", "hi"], OFFLINE_ONLY),
        (["--offline", "--base-url", "http://127.0.0.1:1/v1", "hi"], OFFLINE_ONLY),
    ],
)
def test_usage_errors_exit_2_with_a_hint(runner: CliRunner, args: list[str], message: str) -> None:
    result = invoke(runner, *args, env=KEYS)
    assert result.exit_code == 2
    assert f"error: {message}" in result.stderr
    assert "hint: " in result.stderr


def test_missing_key_names_the_variable_and_the_offline_way(runner: CliRunner) -> None:
    result = invoke(runner, "--provider", "anthropic", "-m", "a", "-m", "b", "hi")
    assert result.exit_code == 2
    assert "error: ANTHROPIC_API_KEY is not set" in result.stderr
    assert "--offline" in result.stderr


def test_bad_config_key_is_named(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[retry]\nattemps_max = 3\n", encoding="utf-8")
    result = invoke(runner, "--config", str(bad), "--offline", "hi")
    assert result.exit_code == 2
    assert "retry.attemps_max" in result.stderr


def test_help_has_examples(runner: CliRunner) -> None:
    result = invoke(runner, "--help")
    assert result.exit_code == 0
    examples = result.output.split("Examples:")[1]
    assert "schwarm-stream compare --offline" in examples and "-m" in examples
    group_help = runner.invoke(cli, ["--help"], prog_name="schwarm-stream").output
    assert "compare" in group_help
