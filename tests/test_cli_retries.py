"""``schwarm-stream run`` shows each retry as it happens (issue 18 item 5): attempt, wait, cause, on stderr."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from pathlib import Path
from typing import Any

import openai
import pytest
from click.testing import CliRunner

from schwarm_stream import Pipeline
from schwarm_stream.cli import cli
from schwarm_stream.cli._retries import RetryReporter
from schwarm_stream.sources import openai_chat
from schwarm_stream.testing.server import JSONReply, SSEReply, ThreadedProviderServer, openai_chat_events

#: Four attempts, waits of a few milliseconds, no jitter: the backoff is 0.01, 0.02, 0.02 s.
FAST_RETRIES = {
    "OPENAI_API_KEY": "sk-test",
    "ANTHROPIC_API_KEY": None,
    "SCHWARM_STREAM__RETRY__ATTEMPTS": "4",
    "SCHWARM_STREAM__RETRY__INITIAL_WAIT": "0.01",
    "SCHWARM_STREAM__RETRY__MAX_WAIT": "0.02",
    "SCHWARM_STREAM__RETRY__JITTER": "0",
}
RETRY_LINE = re.compile(r"^retry: attempt (\d) of 4 in (\d+\.\d\d) s after TransportError: .+$")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("as_json", [False, True])
def test_a_dead_url_shows_each_retry_with_attempt_wait_and_cause(as_json: bool) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    args = ["run", "--base-url", url, "-m", "m", *(["--json"] if as_json else []), "hi"]
    result = CliRunner().invoke(cli, args, env=FAST_RETRIES, prog_name="schwarm-stream")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    retries = [m for m in map(RETRY_LINE.match, lines) if m]
    assert [int(m.group(1)) for m in retries] == [2, 3, 4]
    assert [float(m.group(2)) for m in retries] == [0.01, 0.02, 0.02]
    assert all("connection failed" in m.group(0) for m in retries)
    if as_json:
        assert json.loads(result.stdout)["stats"]["attempts"] == 4  # stdout stays one JSON object
    else:
        # the retries come first, then the final error, which says how many attempts it took
        last = max(i for i, line in enumerate(lines) if RETRY_LINE.match(line))
        assert lines[last + 1].startswith("error: TransportError") and "(after 4 attempts)" in lines[last + 1]
        assert f"could not reach {url}" in result.stderr


def test_one_attempt_prints_no_retry_line() -> None:
    env = {**FAST_RETRIES, "SCHWARM_STREAM__RETRY__ATTEMPTS": "1"}
    url = f"http://127.0.0.1:{closed_port()}/v1"
    result = CliRunner().invoke(cli, ["run", "--base-url", url, "-m", "m", "hi"], env=env)
    assert result.exit_code == 1
    assert "retry:" not in result.stderr and "attempts)" not in result.stderr
    assert "error: TransportError" in result.stderr


def test_the_reporter_writes_while_the_stream_is_still_running() -> None:
    # Live, not a summary: each line is written from stream_attempt, before the next attempt opens.
    seen: list[tuple[str, Any, int]] = []
    pipeline = Pipeline(
        config={"retry": {"initial_wait": 0.0, "jitter": 0.0}, "plugins": {"autoload": False}}
    )
    pipeline.register(RetryReporter(lambda line: seen.append((line, stream.outcome, len(server.requests)))))
    with ThreadedProviderServer() as server:
        busy = JSONReply(503, {"error": {"message": "busy", "type": "server_error"}})
        server.script("openai-chat", busy, SSEReply(openai_chat_events(["Hi", "!"])))
        client = openai.AsyncOpenAI(api_key="x", base_url=server.openai_base_url)
        stream = pipeline.open(openai_chat(client, model="m", messages=[{"role": "user", "content": "hi"}]))

        async def consume() -> str:
            async with stream:
                return (await stream.collect()).text

        assert asyncio.run(consume()) == "Hi!"
    [(line, outcome, requests_then)] = seen
    assert line.startswith("retry: attempt 2 of 4 now after ProviderError") and "503" in line
    assert outcome is None  # the stream had not ended when the line was written
    assert requests_then == 1  # ... and the second request had not been sent yet


def test_a_restart_after_content_is_shown_with_its_strategy(tmp_path: Path) -> None:
    cfg = tmp_path / "restart.toml"
    cfg.write_text('[recovery]\nmid_stream = "restart"\n[retry]\ninitial_wait = 0.01\njitter = 0.0\n')
    events = openai_chat_events(["Hello ", "there ", "friend."])
    with ThreadedProviderServer() as server:
        server.script("openai-chat", SSEReply(events[:2], end="rst"), SSEReply(events))
        args = ["run", "--config", str(cfg), "--base-url", server.openai_base_url, "-m", "m", "hi"]
        result = CliRunner().invoke(cli, args, env=FAST_RETRIES)
    assert result.exit_code == 0, result.output
    assert "[stream restarted (restart)" in result.stdout and result.stdout.endswith("Hello there friend.\n")
    assert re.search(r"^restart: attempt 2 in \d+\.\d\d s after TransportError: ", result.stderr, re.M)
    assert "retry:" not in result.stderr


def test_compare_names_the_stream_of_each_retry() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    args = ["compare", "--base-url", url, "-m", "a", "-m", "b", "hi"]
    result = CliRunner().invoke(cli, args, env=FAST_RETRIES)
    assert result.exit_code == 1
    for name in ("a", "b"):
        prefix = f"{name}: "
        numbers = [
            int(m.group(1))
            for line in result.stderr.splitlines()
            if line.startswith(prefix)
            if (m := RETRY_LINE.match(line[len(prefix) :]))
        ]
        assert numbers == [2, 3, 4], result.stderr
    assert "error: 2 of 2 streams did not complete" in result.stderr
