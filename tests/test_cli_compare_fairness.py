"""``compare``: "offline-fast" reaches its first chunk no later than "offline-slow", by construction.

Why it did not (issue 18 item 5): the first stream of a process pays what the SDK sets up on first
use (the OpenAI client imports its chat resources at the first ``client.chat``; the chunk models are
built at the first parse), 100-150 ms on the event loop, and "offline-fast" is opened first. Now an
unmeasured warm-up stream goes first, and the pair differs only in the slow one's sleeps. No timing
is asserted here: the configured delays, the order of the steps and the warm-up's success are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from schwarm_stream.cli import _sources, cli
from schwarm_stream.cli import compare as compare_cmd
from schwarm_stream.testing.server import (
    OfflineProvider,
    RecordedRequest,
    Sleep,
    SSEReply,
    ThreadedProviderServer,
)

ROUTE = {
    "openai": ("openai-chat", "/v1/chat/completions"),
    "anthropic": ("anthropic-messages", "/v1/messages"),
}


def _request(provider: str) -> RecordedRequest:
    route, path = ROUTE[provider]
    body: dict[str, Any] = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    if provider == "anthropic":
        body["max_tokens"] = 64
    return RecordedRequest("POST", path, {}, {}, json.dumps(body).encode(), body, route)


def _is_content(provider: str, part: bytes) -> bool:
    for line in part.decode().splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        data = json.loads(line[6:])
        if provider == "anthropic":
            return bool(data.get("type") == "content_block_delta")
        return any(c.get("delta", {}).get("content") for c in data.get("choices") or [])
    return False


def _wait_before_first_content(provider: str, delay: float) -> tuple[float, int]:
    """Seconds the offline provider sleeps before its first content event, and how many events it sends."""
    reply = OfflineProvider(chunk_delay=delay)(_request(provider))
    assert isinstance(reply, SSEReply)
    waited, first = 0.0, None
    for part in reply.parts:
        if isinstance(part, Sleep):
            waited += part.seconds if first is None else 0.0
        elif isinstance(part, bytes) and first is None and _is_content(provider, part):
            first = waited
    assert first is not None, "the offline answer has no content event"
    return first, sum(isinstance(p, bytes) for p in reply.parts)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_pair_differs_only_in_the_slow_ones_sleeps(provider: str) -> None:
    (fast_name, fast_delay), (slow_name, slow_delay) = compare_cmd.OFFLINE_PAIR
    assert (fast_name, slow_name) == ("offline-fast", "offline-slow")
    fast_wait, fast_events = _wait_before_first_content(provider, fast_delay)
    slow_wait, slow_events = _wait_before_first_content(provider, slow_delay)
    assert fast_wait == 0.0 < slow_wait  # the slow one sleeps before its first chunk, the fast one never
    assert fast_events == slow_events  # the same answer, event for event


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Records, in order: each source built (by model name), the warm-up's result, the measured comparison."""
    seen: list[Any] = []
    real_source, real_warm_up, real_compare = (
        _sources.provider_source,
        compare_cmd._warm_up,
        compare_cmd._compare_sources,
    )

    def provider_source(*args: Any) -> Any:
        seen.append(args[3])
        return real_source(*args)

    async def warm_up(provider: str) -> bool:
        seen.append("warm-up start")
        ok = await real_warm_up(provider)
        seen.append(("warm-up complete", ok))
        return ok

    async def compare_sources(*args: Any) -> Any:
        seen.append("measured")
        return await real_compare(*args)

    monkeypatch.setattr(compare_cmd, "provider_source", provider_source)
    monkeypatch.setattr(compare_cmd, "_warm_up", warm_up)
    monkeypatch.setattr(compare_cmd, "_compare_sources", compare_sources)
    yield seen


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_offline_warms_the_sdk_up_before_the_measured_streams(steps: list[Any], provider: str) -> None:
    result = CliRunner().invoke(cli, ["compare", "--offline", "--provider", provider, "Hello there"])
    assert result.exit_code == 0, result.output
    assert steps == [
        "warm-up start",
        "warm-up",
        ("warm-up complete", True),
        "offline-fast",
        "offline-slow",
        "measured",
    ]


def test_real_models_get_the_same_warm_up(steps: list[Any]) -> None:
    # The first model listed would pay the same first-use cost: the warm-up runs on a local server.
    with ThreadedProviderServer(OfflineProvider()) as server:
        args = ["compare", "--base-url", server.openai_base_url, "-m", "a", "-m", "b", "Hi"]
        result = CliRunner().invoke(cli, args, env={"OPENAI_API_KEY": "sk-test"})
        assert result.exit_code == 0, result.output
        # the warm-up never reaches the compared server
        assert sorted(r.json["model"] for r in server.requests) == ["a", "b"]
    assert steps == ["a", "b", "warm-up start", "warm-up", ("warm-up complete", True), "measured"]
