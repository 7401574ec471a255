"""What a stream cost (``schwarm_stream.cost``, ``Message.cost``, the span attribute), from real recorded usage.

Expected prices come from the price table itself (``genai-prices``: its own usage extractor fed the
provider's raw usage object, or its per-token prices), never from numbers written here that would
drift when the table is updated. One case is also checked by hand, in the comment where it is.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import schwarm_stream
from schwarm_stream import Usage
from schwarm_stream import cost as cost_module
from schwarm_stream.cost import Cost, cost_of, price_usage
from schwarm_stream.sources import anthropic_messages, openai_chat, openai_responses
from schwarm_stream.testing import ScriptedSource
from schwarm_stream.testing.server import ProviderServer, SSEReply
from tests.support.corpus import CorpusStream, corpus_root, load_corpus
from tests.test_metrics import Telemetry

genai_prices = pytest.importorskip("genai_prices", reason="the optional price table (genai-prices)")

RECORDINGS = Path(__file__).resolve().parent.parent / "examples" / "recordings"
HI: Any = [{"role": "user", "content": "hi"}]
KEY = "sk-test-ABCDEFGHIJKLMNOP"


def _payloads(body: bytes) -> list[dict[str, Any]]:
    out = []
    for line in body.decode().splitlines():
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
            out.append(json.loads(line[5:]))
    return out


def raw_usage(protocol: str, body: bytes) -> tuple[str, dict[str, Any]]:
    """The model and the usage object exactly as the recorded stream carries them (the provider's names)."""
    events = _payloads(body)
    if protocol == "openai-chat":
        last = [e for e in events if e.get("usage")][-1]
        return last["model"], last["usage"]
    if protocol == "openai-responses":
        done = [e for e in events if e.get("type") == "response.completed"][-1]["response"]
        return done["model"], done["usage"]
    start = next(e for e in events if e.get("type") == "message_start")["message"]
    usage = dict(start["usage"])
    for e in events:  # message_delta carries the final (cumulative) counts
        if e.get("type") == "message_delta":
            usage.update(e["usage"])
    return start["model"], usage


def table_price(model: str, usage: dict[str, Any], provider: str, flavor: str) -> Decimal:
    """The table's own price for the provider's raw usage object."""
    extracted = genai_prices.extract_usage(
        {"model": model, "usage": usage}, provider_id=provider, api_flavor=flavor
    )
    return Decimal(extracted.calc_price().total_price)


SAMPLES = [
    ("openai-chat-tool-call.sse", "openai-chat", "openai", "chat"),
    ("openai-responses-function-call.sse", "openai-responses", "openai", "responses"),
    ("anthropic-tool-use.sse", "anthropic-messages", "anthropic", "default"),
]


@pytest.mark.parametrize(("name", "protocol", "provider", "flavor"), SAMPLES, ids=[s[0] for s in SAMPLES])
async def test_recorded_stream_costs_what_the_table_says(
    name: str, protocol: str, provider: str, flavor: str
) -> None:
    body = (RECORDINGS / name).read_bytes()
    otel = Telemetry()
    async with ProviderServer() as server:
        server.script(protocol, SSEReply([body]))
        source: Any
        if protocol == "anthropic-messages":
            a = anthropic.AsyncAnthropic(api_key=KEY, base_url=server.anthropic_base_url, max_retries=0)
            source = anthropic_messages(a, model="claude-sonnet-4-20250514", max_tokens=64, messages=HI)
        else:
            o = openai.AsyncOpenAI(api_key=KEY, base_url=server.openai_base_url, max_retries=0)
            if protocol == "openai-responses":
                source = openai_responses(o, model="gpt-4o", input="hi")
            else:
                source = openai_chat(o, model="gpt-4o", messages=HI)
        async with otel.pipeline().open(source) as s:
            message = await s.collect()
    model, usage = raw_usage(protocol, body)
    expected = table_price(model, usage, provider, flavor)
    cost = message.cost
    assert cost.known and cost.total == expected > 0
    assert cost.currency == "USD" and cost.provider == provider and cost.table
    assert cost_of(message) == cost
    assert (cost.input or 0) + (cost.output or 0) == cost.total
    # the same number on the stream's span (a float: OpenTelemetry attributes have no decimals)
    span = next(sp for sp in otel.spans.get_finished_spans() if sp.name.startswith("chat "))
    assert (span.attributes or {})["schwarm_stream.cost.usd"] == pytest.approx(float(expected))
    otel.meter_provider.shutdown()
    otel.tracer_provider.shutdown()


# Usage objects of two recorded streams with cached and reasoning tokens, copied from vercel/ai's test
# fixtures (Apache-2.0, via the project's stream corpus): packages/openai/src/responses/__fixtures__/
# openai-file-search-tool.1.chunks.txt and packages/anthropic/src/__fixtures__/
# anthropic-code-execution-20260120-prompt-cache.1.chunks.txt (their last usage object).
GPT5_MINI = (
    "gpt-5-mini-2025-08-07",
    {
        "input_tokens": 3737,
        "input_tokens_details": {"cached_tokens": 2304},
        "output_tokens": 621,
        "output_tokens_details": {"reasoning_tokens": 512},
        "total_tokens": 4358,
    },
)
SONNET_CACHE = (
    "claude-sonnet-5",
    {
        "input_tokens": 6,
        "cache_creation_input_tokens": 3337,
        "cache_read_input_tokens": 6289,
        "output_tokens": 198,
        "output_tokens_details": {"thinking_tokens": 0},
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
    },
)


def token_usage(raw: dict[str, Any], main: tuple[str, str]) -> schwarm_stream.TokenUsage:
    """Our TokenUsage as the sources build it: the main counters, the rest in ``extras``."""
    extras = {k: v for k, v in raw.items() if k not in main}
    return schwarm_stream.TokenUsage(input_tokens=raw[main[0]], output_tokens=raw[main[1]], extras=extras)


def test_cached_and_reasoning_tokens_hand_checked() -> None:
    model, raw = GPT5_MINI
    usage = token_usage(raw, ("input_tokens", "output_tokens"))
    assert (usage.cache_read_tokens, usage.reasoning_tokens, usage.all_input_tokens) == (2304, 512, 3737)
    cost = price_usage(usage, model, "openai")
    assert cost.total == table_price(model, raw, "openai", "responses")
    # By hand, from the table's per-million prices: cached input at the cache-read rate, the rest of the
    # input at the input rate, and output (reasoning included, not added again) at the output rate.
    # With genai-prices 0.2.3 (2026-12): 1433 x $0.25 + 2304 x $0.025 + 621 x $2 per million
    # = $0.00035825 + $0.0000576 + $0.001242 = $0.00165785.
    p = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1, output_tokens=1), model, provider_id="openai"
    )
    mp = p.model_price
    million = Decimal(1_000_000)
    by_hand = ((3737 - 2304) * mp.input_mtok + 2304 * mp.cache_read_mtok + 621 * mp.output_mtok) / million
    assert cost.total == by_hand
    assert cost.input == ((3737 - 2304) * mp.input_mtok + 2304 * mp.cache_read_mtok) / million


def test_anthropic_cache_reads_and_writes() -> None:
    model, raw = SONNET_CACHE
    usage = token_usage(raw, ("input_tokens", "output_tokens"))
    assert not usage.cache_tokens_in_input
    assert (usage.cache_read_tokens, usage.cache_write_tokens, usage.all_input_tokens) == (6289, 3337, 9632)
    assert usage.reasoning_tokens == 0
    cost = price_usage(usage, model, "anthropic")
    assert cost.total == table_price(model, raw, "anthropic", "default")
    p = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1, output_tokens=1), model, provider_id="anthropic"
    )
    mp = p.model_price
    by_hand = (
        6 * mp.input_mtok + 3337 * mp.cache_write_mtok + 6289 * mp.cache_read_mtok + 198 * mp.output_mtok
    ) / (Decimal(1_000_000))
    assert cost.total == by_hand


def test_chat_usage_shape() -> None:
    raw = {
        "prompt_tokens": 40,
        "completion_tokens": 9,
        "total_tokens": 49,
        "prompt_tokens_details": {"cached_tokens": 32},
        "completion_tokens_details": {"reasoning_tokens": 5},
    }
    usage = token_usage(raw, ("prompt_tokens", "completion_tokens"))
    assert (usage.cache_read_tokens, usage.reasoning_tokens, usage.cache_write_tokens) == (32, 5, None)
    assert price_usage(usage, "gpt-4o-2024-08-06", "openai").total == table_price(
        "gpt-4o-2024-08-06", raw, "openai", "chat"
    )


# -- unknown is never 0 ---------------------------------------------------------------------------

SOME = schwarm_stream.TokenUsage(input_tokens=10, output_tokens=5)


@pytest.mark.parametrize(
    ("usage", "model", "provider", "reason"),
    [
        (None, "gpt-4o", "openai", "reported no token usage"),
        (schwarm_stream.TokenUsage(input_tokens=10), "gpt-4o", "openai", "reported no token usage"),
        (SOME, None, "openai", "reported no model"),
        (SOME, "gpt-4o", None, "no provider"),
        (SOME, "no-such-model-xyz", "openai", "not in the price table"),
        (SOME, "gpt-4o", "offline", "not in the price table"),
    ],
)
def test_unknown_has_a_reason_and_no_number(
    usage: schwarm_stream.TokenUsage | None, model: str | None, provider: str | None, reason: str
) -> None:
    cost = price_usage(usage, model, provider)
    assert cost.total is None and cost.input is None and cost.output is None and not cost.known
    assert cost.reason is not None and reason in cost.reason
    assert str(cost).startswith("unknown: ")
    assert cost.to_dict()["total"] is None


def test_table_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cost_module, "_lib", None)  # forget the import
    monkeypatch.setitem(sys.modules, "genai_prices", None)  # and make it fail
    cost = price_usage(SOME, "gpt-4o", "openai")
    assert cost.total is None and "pip install genai-prices" in (cost.reason or "")
    assert not cost_module.prices_available()


def test_no_message() -> None:
    assert cost_of(None).reason == "no message"


def test_known_cost_renders() -> None:
    c = Cost(total=Decimal("0.00027"), input=Decimal("0.00011"), output=Decimal("0.00016"))
    assert str(c) == "$0.00027" and c.known
    assert c.to_dict()["total"] == "0.00027"


# -- on the span ----------------------------------------------------------------------------------


async def test_span_says_unknown_with_the_reason() -> None:
    otel = Telemetry()
    async with otel.pipeline().open(ScriptedSource(["a", Usage(input_tokens=3, output_tokens=1)])) as s:
        await s.collect()
    a = otel.stream_span().attributes or {}
    assert "schwarm_stream.cost.usd" not in a
    assert "not in the price table" in str(a["schwarm_stream.cost.unknown"])
    assert s.message.cost.total is None


async def test_span_cost_from_a_scripted_openai_usage_and_off_switch() -> None:
    usage = Usage(input_tokens=44, output_tokens=16, extras={"total_tokens": 60})
    for enabled in (True, False):
        otel = Telemetry()
        source = ScriptedSource(["a", usage], provider="openai", model="gpt-4o-2024-08-06")
        async with otel.pipeline(cost=enabled).open(source) as s:
            await s.collect()
        a = otel.stream_span().attributes or {}
        expected = table_price(
            "gpt-4o-2024-08-06", {"prompt_tokens": 44, "completion_tokens": 16}, "openai", "chat"
        )
        assert s.message.cost.total == expected
        if enabled:
            assert a["schwarm_stream.cost.usd"] == pytest.approx(float(expected))
        else:
            assert "schwarm_stream.cost.usd" not in a and "schwarm_stream.cost.unknown" not in a


async def test_span_before_the_table_is_loaded_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cost_module, "prices_loaded", lambda: False)
    usage = Usage(input_tokens=44, output_tokens=16)
    for setting, says_loading in ((None, True), (True, False)):
        otel = Telemetry()
        source = ScriptedSource(["a", usage], provider="openai", model="gpt-4o-2024-08-06")
        async with otel.pipeline(cost=setting).open(source) as s:
            await s.collect()
        a = otel.stream_span().attributes or {}
        if says_loading:  # the default never makes a stream end wait for the import
            assert a["schwarm_stream.cost.unknown"] == "the price table is still loading"
            assert "schwarm_stream.cost.usd" not in a
        else:  # cost=True computes it, importing the table if need be
            assert a["schwarm_stream.cost.usd"] == pytest.approx(float(s.message.cost.total or 0))


def test_background_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cost_module, "_lib", None)
    monkeypatch.setattr(cost_module, "_loading", None)
    monkeypatch.delitem(sys.modules, "genai_prices")  # as in a fresh process (re-imported below)
    cost_module.load_prices_in_background()
    thread = cost_module._loading
    assert thread is not None
    thread.join(timeout=120)
    assert cost_module.prices_loaded() and cost_module.prices_available()
    cost_module.load_prices_in_background()
    assert cost_module._loading is thread  # once


def test_background_load_when_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cost_module, "_lib", None)
    monkeypatch.setattr(cost_module, "_loading", None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    cost_module.load_prices_in_background()
    assert cost_module._loading is None and cost_module.prices_loaded()
    assert "not installed" in (price_usage(SOME, "gpt-4o", "openai").reason or "")


# -- recorded streams with cached or reasoning tokens (the corpus; its shipped subset in any clone) ----


def _detailed_streams() -> list[CorpusStream]:
    root = corpus_root()
    if root is None:
        return []
    marker = re.compile(
        rb'"(cached_tokens|cache_read_input_tokens|cache_creation_input_tokens|reasoning_tokens)":[1-9]'
    )
    return [s for s in load_corpus(root) if marker.search(s.body)][:8]


DETAILED = _detailed_streams()


def test_the_subset_has_streams_with_cached_and_reasoning_tokens() -> None:
    assert DETAILED, "no recorded stream with cached or reasoning tokens found"


@pytest.mark.parametrize("recorded", DETAILED, ids=lambda s: s.id)
async def test_recorded_cached_and_reasoning_usage_costs_what_the_table_says(recorded: CorpusStream) -> None:
    async with ProviderServer() as server:
        server.script(recorded.protocol, SSEReply([recorded.body]))
        source: Any
        if recorded.protocol == "anthropic-messages":
            a = anthropic.AsyncAnthropic(api_key=KEY, base_url=server.anthropic_base_url, max_retries=0)
            source = anthropic_messages(a, model="m", max_tokens=64, messages=HI)
            provider, flavor = "anthropic", "default"
        else:
            o = openai.AsyncOpenAI(api_key=KEY, base_url=server.openai_base_url, max_retries=0)
            if recorded.protocol == "openai-responses":
                source, flavor = openai_responses(o, model="m", input="hi"), "responses"
            else:
                source, flavor = openai_chat(o, model="m", messages=HI), "chat"
            provider = "openai"
        async with schwarm_stream.Pipeline().open(source) as s:
            try:
                await s.collect()
            except schwarm_stream.StreamError:
                pass
    message = s.message
    if message.usage is None:  # a stream that failed before its usage (an in-band error): unknown
        assert s.outcome == "error"
        assert message.cost.total is None and "no token usage" in (message.cost.reason or "")
        return
    model, usage = raw_usage(recorded.protocol, recorded.body)
    assert message.model == model
    try:
        expected: Decimal | None = table_price(model, usage, provider, flavor)
    except LookupError:  # the table does not know this model: unknown, with the table's reason
        expected = None
    cost = message.cost
    assert cost.total == expected, cost.reason
    if expected is None:
        assert cost.reason is not None and "not in the price table" in cost.reason


async def test_stats_carry_the_cost_once_the_stream_ended() -> None:
    usage = Usage(input_tokens=44, output_tokens=16, extras={"total_tokens": 60})
    source = ScriptedSource(["a", "b", usage], provider="openai", model="gpt-4o-2024-08-06")
    async with schwarm_stream.open(source) as s:
        async for _ in s:
            assert s.stats().cost is None  # not priced while running
        stats = s.stats()
    expected = table_price(
        "gpt-4o-2024-08-06", {"prompt_tokens": 44, "completion_tokens": 16}, "openai", "chat"
    )
    assert stats.cost is not None and stats.cost.total == expected
    assert json.loads(json.dumps(stats.to_dict()))["cost"]["total"] == str(expected)


async def test_stats_of_an_unknown_model_say_unknown_not_zero() -> None:
    source = ScriptedSource(
        ["a", Usage(input_tokens=3, output_tokens=1)], provider="openai", model="no-such-model"
    )
    async with schwarm_stream.open(source) as s:
        await s.collect()
    cost = s.stats().cost
    assert cost is not None and cost.total is None and cost.reason
    assert s.stats().to_dict()["cost"]["total"] is None
