"""The issue's acceptance, end to end: ``schwarm-stream run --json --config FILE --base-url ...``.

A real ``schwarm-stream`` process, the real SDK clients inside it, a ThreadedProviderServer scripted
with faults. With ``mid_stream = "restart"`` a 429 with Retry-After, a mid-stream connection drop, a
stall and an Anthropic in-band ``overloaded_error`` mid-stream each end complete and exactly equal to
the unfaulted message (text and tool-call arguments); with ``mid_stream = "raise"`` a stream that ends
early exits non-zero with ``"complete": false`` and exactly the delivered text; a 400 is not retried.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schwarm_stream.testing.server import (
    JSONReply,
    SSEReply,
    Stall,
    ThreadedProviderServer,
    anthropic_error_event,
)
from tests.support.faults import ROUTE_OF, content_indices, golden, golden_events

PROVIDER = {"openai-chat": "openai", "anthropic-messages": "anthropic"}
MODEL = {"openai-chat": "gpt-4o-mini", "anthropic-messages": "claude-haiku-4-5"}
TOOL = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}

CONFIG = """
[retry]
attempts = 4
initial_wait = 0.01
max_wait = 0.05
max_retry_after = 60.0

[recovery]
mid_stream = "{mid_stream}"
max_recoveries = 2

[timeouts]
first_chunk = 5.0
idle = 0.5
total = 60.0

[plugins]
autoload = false
"""


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedProviderServer]:
    with ThreadedProviderServer() as srv:
        yield srv


def _config(tmp_path: Path, mid_stream: str) -> Path:
    path = tmp_path / "schwarm.toml"
    path.write_text(CONFIG.format(mid_stream=mid_stream), encoding="utf-8")
    return path


def _run(server: ThreadedProviderServer, protocol: str, config: Path) -> tuple[int, dict[str, Any]]:
    base_url = server.openai_base_url if protocol == "openai-chat" else server.anthropic_base_url
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-test",
        "ANTHROPIC_API_KEY": "x",
        "SCHWARM_STREAM_DISABLE_PLUGIN_AUTOLOAD": "1",
        "NO_COLOR": "1",
    }
    cmd = [
        *_command(),
        "run",
        "--json",
        "--provider",
        PROVIDER[protocol],
        "--model",
        MODEL[protocol],
        "--config",
        str(config),
        "--base-url",
        base_url,
        "What's the weather in Paris?",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, f"no JSON output; stderr: {proc.stderr}"
    return proc.returncode, json.loads(lines[-1])


def _command() -> list[str]:
    exe = Path(sys.executable).with_name("schwarm-stream")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "schwarm_stream"]


def _matches_golden(result: dict[str, Any], protocol: str, events: list[bytes]) -> None:
    want = golden(protocol, events)
    assert result["complete"] is True and result["error"] is None
    assert result["text"] == want["text"]
    assert result["finish_reason"] == want["finish_reason"]
    assert result["usage"] == want["usage"]
    got_calls = [(c["id"], c["name"], json.loads(c["arguments"])) for c in result["tool_calls"]]
    if protocol == "anthropic-messages":
        assert got_calls == [(c["id"], c["name"], c["input"]) for c in want["tool_calls"]]
    else:
        assert [c["arguments"] for c in result["tool_calls"]] == [c["arguments"] for c in want["tool_calls"]]
        assert got_calls == [(c["id"], c["name"], json.loads(c["arguments"])) for c in want["tool_calls"]]


def _requests(server: ThreadedProviderServer, protocol: str) -> int:
    return sum(1 for r in server.requests if r.route == ROUTE_OF[protocol])


@pytest.mark.parametrize("protocol", ["openai-chat", "anthropic-messages"])
def test_429_with_retry_after_ends_exactly_golden(
    server: ThreadedProviderServer, tmp_path: Path, protocol: str
) -> None:
    events = golden_events(protocol, tool=TOOL)
    before = _requests(server, protocol)
    limited = JSONReply(
        429,
        {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
        headers={"retry-after": "0.05"},
    )
    server.script(ROUTE_OF[protocol], limited, SSEReply(events))
    code, result = _run(server, protocol, _config(tmp_path, "restart"))
    assert code == 0, result
    _matches_golden(result, protocol, events)
    assert _requests(server, protocol) - before == 2
    assert result["stats"]["attempts"] == 2 and result["stats"]["resets"] == 0


@pytest.mark.parametrize("protocol", ["openai-chat", "anthropic-messages"])
@pytest.mark.parametrize("where", [2, -2])  # inside the text, inside the tool call's arguments
def test_mid_stream_drop_ends_exactly_golden(
    server: ThreadedProviderServer, tmp_path: Path, protocol: str, where: int
) -> None:
    events = golden_events(protocol, tool=TOOL)
    cut = content_indices(protocol, events)[where]
    server.script(ROUTE_OF[protocol], SSEReply(events[:cut], end="truncate"), SSEReply(events))
    code, result = _run(server, protocol, _config(tmp_path, "restart"))
    assert code == 0, result
    _matches_golden(result, protocol, events)
    assert result["stats"]["resets"] == 1


@pytest.mark.parametrize("protocol", ["openai-chat", "anthropic-messages"])
def test_stall_ends_exactly_golden(server: ThreadedProviderServer, tmp_path: Path, protocol: str) -> None:
    events = golden_events(protocol, tool=TOOL)
    cut = content_indices(protocol, events)[3]
    release = threading.Event()
    try:
        server.script(ROUTE_OF[protocol], SSEReply([*events[:cut], Stall(release)]), SSEReply(events))
        code, result = _run(server, protocol, _config(tmp_path, "restart"))
    finally:
        release.set()
    assert code == 0, result
    _matches_golden(result, protocol, events)
    assert result["stats"]["resets"] == 1


def test_anthropic_overloaded_mid_stream_ends_exactly_golden(
    server: ThreadedProviderServer, tmp_path: Path
) -> None:
    protocol = "anthropic-messages"
    events = golden_events(protocol, tool=TOOL)
    cut = content_indices(protocol, events)[4]
    server.script(ROUTE_OF[protocol], SSEReply([*events[:cut], anthropic_error_event()]), SSEReply(events))
    code, result = _run(server, protocol, _config(tmp_path, "restart"))
    assert code == 0, result
    _matches_golden(result, protocol, events)


@pytest.mark.parametrize("protocol", ["openai-chat", "anthropic-messages"])
def test_early_end_with_raise_exits_non_zero_with_exactly_the_delivered_text(
    server: ThreadedProviderServer, tmp_path: Path, protocol: str
) -> None:
    events = golden_events(protocol)
    cut = content_indices(protocol, events)[5]
    delivered = "".join(_texts(protocol, events[:cut]))
    before = _requests(server, protocol)
    server.script(ROUTE_OF[protocol], SSEReply(events[:cut], end="eof"))
    code, result = _run(server, protocol, _config(tmp_path, "raise"))
    assert code != 0
    assert result["complete"] is False
    assert result["text"] == delivered and delivered
    assert result["error"]["type"] == "StreamIncomplete"
    assert _requests(server, protocol) - before == 1


@pytest.mark.parametrize("protocol", ["openai-chat", "anthropic-messages"])
def test_400_is_not_retried(server: ThreadedProviderServer, tmp_path: Path, protocol: str) -> None:
    before = _requests(server, protocol)
    bad = JSONReply(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}})
    server.script(ROUTE_OF[protocol], bad)
    code, result = _run(server, protocol, _config(tmp_path, "restart"))
    assert code != 0 and result["complete"] is False
    assert result["error"]["type"] == "ProviderError" and "400" in result["error"]["message"]
    assert _requests(server, protocol) - before == 1


def _texts(protocol: str, events: list[bytes]) -> list[str]:
    out = []
    for raw in events:
        line = next((ln for ln in raw.decode().splitlines() if ln.startswith("data: {")), None)
        if line is None:
            continue
        data = json.loads(line[6:])
        if protocol == "openai-chat":
            out.append(((data.get("choices") or [{}])[0].get("delta") or {}).get("content") or "")
        elif data.get("type") == "content_block_delta":
            out.append(data["delta"].get("text", ""))
    return out
