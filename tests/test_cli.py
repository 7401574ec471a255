"""The ``schwarm-stream`` command: CliRunner for every command, real subprocesses for the main paths."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from schwarm_stream._stream import StreamStats
from schwarm_stream.cli import cli
from schwarm_stream.cli._render import Renderer, format_stats, wants_color
from schwarm_stream.testing.server import (
    OfflineProvider,
    SSEReply,
    ThreadedProviderServer,
    anthropic_error_event,
    anthropic_events,
    openai_chat_events,
)
from tests.support.corpus import CorpusStream, corpus_root, load_corpus
from tests.support.oracle import OracleRejected, sdk_result

ANSI = re.compile(r"\x1b\[")
KEYS = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test"}
JSON_KEYS = {"complete", "text", "reasoning", "refusal", "tool_calls", "finish_reason", "usage", "error"}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def server() -> Iterator[ThreadedProviderServer]:
    with ThreadedProviderServer(OfflineProvider()) as srv:
        yield srv


def invoke(runner: CliRunner, *args: str, env: dict[str, str | None] | None = None) -> Any:
    # Provider keys are removed unless a test gives them: no test may depend on the caller's environment.
    base: dict[str, str | None] = {"OPENAI_API_KEY": None, "ANTHROPIC_API_KEY": None}
    return runner.invoke(cli, list(args), env={**base, **(env or {})}, prog_name="schwarm-stream")


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", [[], ["demo"], ["run"], ["replay"], ["plugins"], ["completion"]])
def test_every_command_has_help_with_examples(runner: CliRunner, command: list[str]) -> None:
    result = invoke(runner, *command, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "schwarm-stream" in result.output.split("Examples:")[1]


def test_version(runner: CliRunner) -> None:
    from schwarm_stream import __version__

    result = invoke(runner, "--version")
    assert result.exit_code == 0 and __version__ in result.output


# ---------------------------------------------------------------------------------------------- demo


@pytest.mark.parametrize("provider", ["openai", "anthropic", "responses", "gemini", "ollama", "bedrock"])
def test_demo_streams_a_tool_loop(runner: CliRunner, provider: str) -> None:
    result = invoke(
        runner, "demo", "--provider", provider, "--chunk-delay", "0", "--prompt", "Weather in Oslo?"
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert not ANSI.search(out)  # not a terminal: plain text
    assert "user: Weather in Oslo?" in out
    assert '→ get_weather({"city":"Oslo"})' in out
    assert '← get_weather: {"city": "Oslo"' in out
    assert "The tool returned:" in out
    summary = out.strip().splitlines()[-1]
    assert re.match(
        r"summary: 2 turns · \d+ chunks · time to first token \d+ ms · 1 tool call · no retries · outcome complete",
        summary,
    ), summary
    # --chunk-delay 0: the answers take no time, so no tokens-per-second figure (it would be noise)
    assert len(re.findall(r"^  \d+ tokens · first token \d+ ms · 1 attempt$", out, re.M)) == 2


def test_demo_json_prints_one_object_per_turn(runner: CliRunner) -> None:
    result = invoke(runner, "demo", "--json", "--chunk-delay", "0")
    assert result.exit_code == 0, result.output
    first, second = json_lines(result.output)
    assert JSON_KEYS <= set(first) and {"turn", "tool_results", "stats"} <= set(first)
    assert first["turn"] == 1 and first["complete"] is True and first["finish_reason"] == "tool_calls"
    [call] = first["tool_calls"]
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}
    [res] = first["tool_results"]
    assert res["id"] == call["id"] and json.loads(res["content"])["city"] == "Paris" and res["error"] is None
    assert second["turn"] == 2 and second["text"] == f"The tool returned: {res['content']}"
    assert second["tool_calls"] == [] and second["tool_results"] == []
    assert first["stats"]["attempts"] == 1 and first["stats"]["chunks"] > 0
    assert first["usage"]["output_tokens"] > 0


@pytest.mark.parametrize(
    ("provider", "finish_reason"), [("gemini", "STOP"), ("ollama", "stop"), ("bedrock", "tool_use")]
)
def test_demo_json_on_native_protocols(runner: CliRunner, provider: str, finish_reason: str) -> None:
    # each protocol's own SDK over a socket: its finish reason and its tool-call ids come through as sent
    result = invoke(runner, "demo", "--provider", provider, "--json", "--chunk-delay", "0")
    assert result.exit_code == 0, result.output
    first, second = json_lines(result.output)
    assert first["complete"] is True and first["finish_reason"] == finish_reason
    [call] = first["tool_calls"]
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}
    [res] = first["tool_results"]
    assert res["id"] == call["id"] and res["error"] is None
    assert second["complete"] is True and second["text"] == f"The tool returned: {res['content']}"


def test_demo_max_turns_is_not_a_success(runner: CliRunner) -> None:
    result = invoke(runner, "demo", "--max-turns", "1", "--chunk-delay", "0")
    assert result.exit_code == 1
    assert "outcome max_turns" in result.output


# ---------------------------------------------------------------------------------------------- run


def test_run_streams_and_exits_0(runner: CliRunner, server: ThreadedProviderServer) -> None:
    url = server.openai_base_url
    result = invoke(runner, "run", "--base-url", url, "--model", "m", "hello there", env=KEYS)
    assert result.exit_code == 0, result.output
    assert result.output == "You said: hello there\n"
    assert server.requests[0].json["messages"] == [{"role": "user", "content": "hello there"}]
    assert server.requests[0].headers["authorization"] == "Bearer sk-test"


def test_run_json_has_message_and_stats(runner: CliRunner, server: ThreadedProviderServer) -> None:
    result = invoke(runner, "run", "--base-url", server.openai_base_url, "-m", "m", "--json", "hi", env=KEYS)
    assert result.exit_code == 0, result.output
    [data] = json_lines(result.output)
    assert JSON_KEYS | {"stats"} <= set(data)
    assert data["complete"] is True and data["text"] == "You said: hi" and data["error"] is None
    assert data["finish_reason"] == "stop" and data["usage"]["output_tokens"] > 0
    stats = data["stats"]
    assert stats["attempts"] == 1 and stats["chunks"] > 0 and stats["time_to_first_token"] > 0


def test_run_anthropic(runner: CliRunner, server: ThreadedProviderServer) -> None:
    args = ["run", "--provider", "anthropic", "--base-url", server.anthropic_base_url, "-m", "m"]
    result = invoke(runner, *args, "--max-tokens", "64", "--json", "bonjour", env=KEYS)
    assert result.exit_code == 0, result.output
    [data] = json_lines(result.output)
    assert data["text"] == "You said: bonjour" and data["finish_reason"] == "end_turn"
    assert server.requests[0].json["max_tokens"] == 64
    headers = server.requests[0].headers  # the SDK sends the key as x-api-key or as a Bearer token
    assert "sk-ant-test" in (headers.get("x-api-key", ""), headers.get("authorization", "")[7:])


def test_run_stats_flag(runner: CliRunner, server: ThreadedProviderServer) -> None:
    result = invoke(runner, "run", "--base-url", server.openai_base_url, "-m", "m", "--stats", "hi", env=KEYS)
    assert result.exit_code == 0
    # a short answer from a local server: too quick for a meaningful rate, so none is shown
    assert re.search(r"^\d+ tokens · first token \d+ ms · 1 attempt$", result.output, re.M), result.output


def test_run_truncated_stream_exits_1(runner: CliRunner, server: ThreadedProviderServer) -> None:
    cut = openai_chat_events(["trun", "cated"], finish_reason=None, usage=None, done=False)
    server.script("openai-chat", SSEReply(cut))
    result = invoke(runner, "run", "--base-url", server.openai_base_url, "-m", "m", "--json", "x", env=KEYS)
    assert result.exit_code == 1
    [data] = json_lines(result.stdout)
    assert data["complete"] is False and data["text"] == "truncated"
    assert data["error"]["type"] == "StreamIncomplete" and "[DONE]" in data["error"]["message"]


def test_run_truncated_stream_human(runner: CliRunner, server: ThreadedProviderServer) -> None:
    server.script("anthropic-messages", SSEReply(anthropic_events(["half"], stop=False)))
    args = ["run", "--provider", "anthropic", "--base-url", server.anthropic_base_url, "-m", "m", "q"]
    result = invoke(runner, *args, env=KEYS)
    assert result.exit_code == 1
    assert result.stdout == "half\n"
    assert "error: StreamIncomplete: anthropic: the stream ended without message_stop" in result.stderr


@pytest.mark.parametrize("provider,var", [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")])
def test_run_missing_key_names_the_variable(runner: CliRunner, provider: str, var: str) -> None:
    result = invoke(runner, "run", "--provider", provider, "-m", "m", "hi")
    assert result.exit_code == 2
    assert f"error: {var} is not set" in result.stderr
    assert f"export {var}=" in result.stderr


def test_run_unknown_provider_lists_the_valid_ones(runner: CliRunner) -> None:
    result = invoke(runner, "run", "--provider", "mistral", "-m", "m", "hi", env=KEYS)
    assert result.exit_code == 2
    assert "'mistral' is not one of 'anthropic', 'bedrock', 'gemini', 'ollama', 'openai'" in result.stderr


def test_run_bad_config_key_is_named(runner: CliRunner, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[retry]\nattempts = 2\nattemps_max = 3\n")
    result = invoke(runner, "run", "--config", str(cfg), "-m", "m", "hi", env=KEYS)
    assert result.exit_code == 2
    assert "retry.attemps_max: unknown key" in result.stderr
    assert str(cfg) in result.stderr


def test_run_bad_config_value_and_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[timeouts]\nidle = -1\n")
    result = invoke(runner, "run", "--config", str(cfg), "-m", "m", "hi", env=KEYS)
    assert result.exit_code == 2 and "timeouts.idle" in result.stderr
    result = invoke(runner, "run", "--config", str(tmp_path / "nope.toml"), "-m", "m", "hi", env=KEYS)
    assert result.exit_code == 2 and "config file not found" in result.stderr


def test_run_connection_refused_names_the_url(runner: CliRunner, tmp_path: Path) -> None:
    cfg = tmp_path / "once.toml"
    cfg.write_text("[retry]\nattempts = 1\n")  # fail at once, retry plugin or not
    url = f"http://127.0.0.1:{closed_port()}/v1"
    result = invoke(runner, "run", "--config", str(cfg), "--base-url", url, "-m", "m", "hi", env=KEYS)
    assert result.exit_code == 1
    assert "TransportError" in result.stderr
    assert f"could not reach {url}" in result.stderr


def test_run_config_is_used(runner: CliRunner, server: ThreadedProviderServer, tmp_path: Path) -> None:
    cfg = tmp_path / "ok.toml"
    cfg.write_text('[plugins]\npolicy = "strict"\n[timeouts]\nidle = 5.0\n')
    args = ["run", "--config", str(cfg), "--base-url", server.openai_base_url, "-m", "m", "--json", "hi"]
    result = invoke(runner, *args, env=KEYS)
    assert result.exit_code == 0, result.output
    assert json_lines(result.output)[0]["complete"] is True


# ---------------------------------------------------------------------------------------------- replay


def write_body(tmp_path: Path, name: str, events: list[bytes]) -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join(events))
    return path


def test_replay_json_complete_and_truncated(runner: CliRunner, tmp_path: Path) -> None:
    good = write_body(tmp_path, "good.sse", openai_chat_events(["Hel", "lo"]))
    call = {"id": "toolu_1", "name": "get_weather", "input": {"city": "Rome"}}
    tools = write_body(tmp_path, "tools.sse", anthropic_events(["On it."], tool_uses=[call]))
    cut = write_body(tmp_path, "cut.sse", openai_chat_events(["Hel"], finish_reason=None, done=False))
    result = invoke(runner, "replay", "--json", str(good), str(tools), str(cut))
    assert result.exit_code == 1  # one file did not complete
    a, b, c = json_lines(result.output)
    assert set(a) == JSON_KEYS
    assert (
        a["complete"] is True and a["text"] == "Hello" and a["finish_reason"] == "stop" and a["error"] is None
    )
    assert b["tool_calls"] == [{"id": "toolu_1", "name": "get_weather", "arguments": '{"city":"Rome"}'}]
    assert b["finish_reason"] == "tool_use" and b["usage"]["input_tokens"] == 12
    assert c["complete"] is False and c["text"] == "Hel" and c["error"]["type"] == "StreamIncomplete"


def test_replay_serves_each_body_once(runner: CliRunner, tmp_path: Path) -> None:
    # Failures before any content would be retried by the retry plugin; a replay reports the recording.
    empty = write_body(
        tmp_path, "empty.sse", openai_chat_events([], finish_reason=None, usage=None, done=False)
    )
    busy = write_body(tmp_path, "busy.sse", [anthropic_events([])[0], anthropic_error_event()])
    result = invoke(runner, "replay", "--json", str(empty), str(busy))
    assert result.exit_code == 1
    a, b = json_lines(result.output)
    assert a["error"]["type"] == "StreamIncomplete"
    assert b["error"] == {
        "type": "ProviderError",
        "message": "anthropic error in stream (overloaded_error): Overloaded",
    }


def test_replay_all_complete_exits_0_and_human_output(runner: CliRunner, tmp_path: Path) -> None:
    good = write_body(tmp_path, "good.sse", openai_chat_events(["Hel", "lo"], reasoning_chunks=["hmm"]))
    result = invoke(runner, "replay", str(good))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{good}  openai-chat  complete  finish=stop  usage=12 in /")
    assert "  reasoning: hmm" in lines and "  text: Hello" in lines


def test_replay_forced_protocol_and_undetectable_file(runner: CliRunner, tmp_path: Path) -> None:
    good = write_body(tmp_path, "good.sse", openai_chat_events(["ok"]))
    result = invoke(runner, "replay", "--json", "--protocol", "anthropic-messages", str(good))
    assert result.exit_code == 1  # chat bytes read as Anthropic: no message_stop
    assert json_lines(result.output)[0]["complete"] is False
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n\n")
    result = invoke(runner, "replay", "--json", str(junk))
    assert result.exit_code == 1
    [data] = json_lines(result.output)
    assert data["complete"] is False and "cannot detect the stream protocol" in data["error"]["message"]


def test_replay_missing_file_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "replay", str(tmp_path / "missing.sse"))
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_replay_splits_multi_response_jsonl(runner: CliRunner, tmp_path: Path) -> None:
    def payloads(events: list[bytes]) -> list[str]:
        return [line[6:].decode() for e in events for line in e.splitlines() if line.startswith(b"data: {")]

    lines = payloads(anthropic_events(["one"], id="msg_1")) + payloads(anthropic_events(["two"], id="msg_2"))
    path = tmp_path / "two.chunks.txt"
    path.write_text("\n".join(lines) + "\n")
    result = invoke(runner, "replay", "--json", str(path))
    assert result.exit_code == 0, result.output
    assert [d["text"] for d in json_lines(result.output)] == ["one", "two"]


# ---------------------------------------------------------------------------------------------- plugins


def test_plugins_lists_builtins_with_all(runner: CliRunner) -> None:
    result = invoke(runner, "plugins", "--all", "--json")
    assert result.exit_code == 0
    infos = json.loads(result.output)
    accumulate = next(i for i in infos if i["name"] == "accumulate")
    assert accumulate["builtin"] is True and accumulate["status"] == "enabled"
    assert "stream_message" in accumulate["hooks"]
    result = invoke(runner, "plugins", "--json")
    assert all(not i["builtin"] for i in json.loads(result.output))
    human = invoke(runner, "plugins", "--all")
    assert human.exit_code == 0 and re.search(r"^accumulate  \[built-in\]  enabled$", human.output, re.M)


# ---------------------------------------------------------------------------------------------- completion


@pytest.mark.parametrize("shell,marker", [("bash", "complete -o"), ("zsh", "compdef"), ("fish", "complete ")])
def test_completion_scripts(runner: CliRunner, shell: str, marker: str) -> None:
    result = invoke(runner, "completion", shell)
    assert result.exit_code == 0
    assert "_SCHWARM_STREAM_COMPLETE" in result.output and marker in result.output


def test_completion_env_var_completes_commands() -> None:
    env = {**os.environ, "_SCHWARM_STREAM_COMPLETE": "bash_complete", "COMP_WORDS": "schwarm-stream re"}
    env["COMP_CWORD"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "schwarm_stream"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == ["plain,replay"]


# ---------------------------------------------------------------------------------------------- rendering


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def stats(**kw: Any) -> StreamStats:
    base: dict[str, Any] = {
        "state": "running",
        "attempts": 1,
        "chunks": 3,
        "tool_call_deltas": 0,
        "events": 3,
        "output_tokens": None,
        "tokens_per_second": 20.0,
        "elapsed": 1.0,
        "time_to_first_token": 0.2,
        "committed": True,
        "resets": 0,
    }
    fields = set(StreamStats.__dataclass_fields__)
    return StreamStats(**{k: v for k, v in {**base, **kw}.items() if k in fields})  # type: ignore[arg-type]


def test_status_line_only_on_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "80")
    tty = FakeTTY()
    assert wants_color(tty) and not wants_color(io.StringIO())
    r = Renderer(tty, color=True, live=True)
    r.text("Hello")
    r.status(stats(), force=True)
    r.text(" world")
    out = tty.getvalue()
    # the status row is drawn below the text, then erased and the cursor put back after "Hello"
    assert "\n\x1b[2m⏵ 3 chunks · 20.0 chunks/s · first token 200 ms · 1 attempt" in out
    assert out.endswith("\r\x1b[2K\x1b[1A\r\x1b[5C world")

    pipe = io.StringIO()
    r = Renderer(pipe, color=False, live=False)
    r.text("Hello")
    r.status(stats(), force=True)
    r.text(" world")
    assert pipe.getvalue() == "Hello world"


def test_status_line_is_taken_away_at_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    tty = FakeTTY()
    r = Renderer(tty, color=False, live=True)
    r.text("done\n")
    r.status(stats(), force=True)
    r.end_line()
    assert (
        tty.getvalue()
        == "done\n\n⏵ 3 chunks · 20.0 chunks/s · first token 200 ms · 1 attempt\r\x1b[2K\x1b[1A\r"
    )


def test_no_color_env_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert not wants_color(FakeTTY())


def test_format_stats() -> None:
    assert format_stats(stats(output_tokens=42, tokens_per_second=10.04, resets=1, attempts=2)) == (
        "42 tokens · 10.0 tok/s · first token 200 ms · 2 attempts · 1 reset"
    )
    waiting = stats(time_to_first_token=None, tokens_per_second=None, chunks=0, elapsed=1.25)
    assert format_stats(waiting, live=True) == "0 chunks · waiting 1.2 s · 1 attempt"


# ---------------------------------------------------------------------------------------------- subprocesses


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in KEYS}
    return subprocess.run(
        [sys.executable, "-m", "schwarm_stream", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_subprocess_demo_piped_is_plain_text() -> None:
    proc = run_cli("demo", "--chunk-delay", "0")
    assert proc.returncode == 0, proc.stderr
    assert not ANSI.search(proc.stdout)
    assert '→ get_weather({"city":"Paris"})' in proc.stdout
    assert re.search(r"^summary: 2 turns .* time to first token \d+ ms · 1 tool call", proc.stdout, re.M)


ROOT = corpus_root()


def pick_corpus() -> list[CorpusStream]:
    """A chat stream with tool calls, one with text, an Anthropic tool_use stream and a Responses one."""
    if ROOT is None:
        return []
    streams = load_corpus(ROOT)

    def first(protocol: str, feature: str) -> CorpusStream:
        return next(
            s
            for s in streams
            if s.protocol == protocol
            and feature in s.manifest["features"]
            and not any(f.startswith("n>1") or "UNTERMINATED" in f for f in s.manifest["features"])
            and s.manifest["fmt"] == "sse"
        )

    return [
        first("openai-chat", "tool_calls"),
        first("openai-chat", "text"),
        first("anthropic-messages", "tool_use"),
        first("openai-responses", "text"),
    ]


@pytest.mark.skipif(ROOT is None, reason="stream corpus not found (../shared/corpus)")
def test_subprocess_replay_json_matches_the_sdk_accumulator() -> None:
    picked = pick_corpus()
    proc = run_cli("replay", "--json", *(str(ROOT / s.file) for s in picked))
    results = json_lines(proc.stdout)
    assert len(results) == len(picked)
    for stream, ours in zip(picked, results, strict=True):
        try:
            expected = sdk_result(stream.protocol, stream.body)
        except OracleRejected:  # pragma: no cover - the picks are streams the SDK accepts
            pytest.fail(f"the SDK rejects {stream.file}; pick another")
        assert ours["complete"] is True and ours["error"] is None, stream.file
        assert ours["text"] == expected["text"], stream.file
        assert ours["finish_reason"] == expected["finish_reason"], stream.file
        assert ours["usage"] == expected["usage"], stream.file
        assert [t["name"] for t in ours["tool_calls"]] == [t["name"] for t in expected["tool_calls"]]
        for t, e in zip(ours["tool_calls"], expected["tool_calls"], strict=True):
            assert json.loads(t["arguments"] or "{}") == e.get(
                "input", json.loads(e.get("arguments") or "{}")
            )
    assert proc.returncode == 0


def test_format_stats_shows_no_rate_for_an_answer_that_took_no_time() -> None:
    instant = stats(output_tokens=42, tokens_per_second=84000.0, time_to_first_token=0.2, elapsed=0.2005)
    assert format_stats(instant) == "42 tokens · first token 200 ms · 1 attempt"


def test_demo_max_turns_says_why_it_failed(runner: CliRunner) -> None:
    result = invoke(runner, "demo", "--chunk-delay", "0", "--max-turns", "1")
    assert result.exit_code == 1
    assert "summary: 1 turn · " in result.output and "outcome max_turns" in result.output
    assert "the model still called tools after 1 turn (--max-turns 1)" in result.output


@pytest.mark.parametrize(
    "url", ["not a url", "ftp://example.test/v1", "http://127.0.0.1:notaport/v1", "http:///v1"]
)
@pytest.mark.parametrize("command", ["run", "compare"])
def test_invalid_base_url_is_a_usage_error(runner: CliRunner, command: str, url: str) -> None:
    models = ["-m", "m"] if command == "run" else ["-m", "a", "-m", "b"]
    result = invoke(runner, command, "--base-url", url, *models, "hi", env=KEYS)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--base-url'" in result.output
    assert "is the server running" not in result.output  # no connection was attempted


def test_demo_faults_shows_what_the_sdk_misses() -> None:
    proc = run_cli("demo", "--faults")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # 1: the bare SDK ends the cut stream without an error; we raise, keeping the partial text
    assert "openai SDK alone:  ended without an error, text 'The capital of Australia '" in out
    assert "schwarm_stream:    StreamIncomplete, partial text 'The capital of Australia ' kept" in out
    # 2: a reset mid-answer is restarted, with a Reset before the new attempt's text
    assert re.search(
        r"⟲ Reset \(attempt 2, restart\).*\n\s+The capital of Australia is Canberra, not Sydney\.", out
    )
    assert "complete=True after 2 attempts, 1 reset" in out
    # 3: the arguments parsed so far grow with each fragment, ending in the strict parse
    assert '-> {"city": ""}' in out and '-> {"city": "Canberra", "unit": ""}' in out
    assert 'final: get_forecast({"city": "Canberra", "unit": "celsius", "days": 3})' in out


def test_demo_faults_shows_the_native_protocols_cut_too() -> None:
    """Scene 4: google-genai, ollama and boto3 each end a cut body without an error; we raise."""
    pytest.importorskip("google.genai")
    pytest.importorskip("ollama")
    pytest.importorskip("boto3")
    proc = run_cli("demo", "--faults")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "4. The same cut in the native protocols" in out
    for protocol, sdk, signal in (
        ("gemini", "google-genai", "finish_reason"),
        ("ollama", "ollama", "done: true"),
        ("bedrock", "boto3", "messageStop"),
    ):
        assert re.search(
            rf"{protocol} +{sdk} alone: ended without an error, text 'The capital of Australia '\n"
            rf" +schwarm_stream: StreamIncomplete \(no {signal}\), partial 'The capital of Australia ' kept",
            out,
        ), out


def test_demo_faults_restarts_a_bedrock_model_stream_error() -> None:
    """Scene 5: boto3 raises modelStreamErrorException out of its iterator; we restart after a Reset."""
    pytest.importorskip("boto3")
    proc = run_cli("demo", "--faults")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.split("5. Bedrock: modelStreamErrorException mid-answer")[1]
    assert "boto3 alone:    EventStreamError out of the iterator" in out
    assert re.search(
        r"⟲ Reset \(attempt 2, restart\).*\n\s+The capital of Australia is Canberra, not Sydney\.", out
    )
    assert "complete=True after 2 attempts, 1 reset" in out
