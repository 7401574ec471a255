"""Fault matrix rows 1-7 (research/reliability.md §3): faults before the commit point, and the retry plugin.

Before the first content event nothing has to be taken back, so a retry is exact: the final message
equals the SDK accumulator's view of the unfaulted stream, no Reset is emitted, and the consumer saw
no content from a failed attempt. Real SDK clients over real sockets to the ProviderServer.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import openai
import pytest

from schwarm_stream import (
    Attempt,
    ConfigError,
    ProtocolError,
    ProviderError,
    Reset,
    Stream,
    StreamTimeout,
    TransportError,
    hookimpl,
)
from schwarm_stream.builtins import retry
from schwarm_stream.builtins.recovery import with_fallbacks
from schwarm_stream.config import Config
from schwarm_stream.testing import switches
from schwarm_stream.testing.server import (
    JSONReply,
    ProviderServer,
    SlowHeaders,
    SSEReply,
    Stall,
    anthropic_error_event,
    responses_error_events,
)
from schwarm_stream.testing.server import anthropic_events as ant_events
from tests.support.faults import (
    PROTOCOLS,
    ROUTE_OF,
    consume,
    fault_pipeline,
    golden,
    golden_events,
    sdk_source,
    view,
)

TOOL = {"name": "get_weather", "arguments": {"city": "Paris"}}


def _error(status: int, kind: str = "api_error", **headers: str) -> JSONReply:
    body = {"type": "error", "error": {"type": kind, "message": f"status {status}"}}
    return JSONReply(status, body, headers=headers)


class AttemptLog:
    """Records every attempt (number, strategy, delay) the core opens."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []

    @hookimpl
    def stream_attempt(self, stream: Stream, attempt: Attempt) -> None:
        self.attempts.append(attempt)


pytestmark = pytest.mark.usefixtures("no_waits")


@pytest.fixture
def source(sdk_sources: Callable[..., Any]) -> Callable[..., Any]:
    return sdk_sources


async def _golden_after_faults(
    server: ProviderServer, source: Callable[..., Any], protocol: str, *faults: Any, **config: Any
) -> tuple[Any, list[Attempt]]:
    events = golden_events(protocol, tool=TOOL)
    server.script(ROUTE_OF[protocol], *faults, SSEReply(events))
    log = AttemptLog()
    seen, error = await consume(fault_pipeline(log, **config).open(source(protocol)))
    assert error is None, error
    assert seen.resets == 0 and not any(isinstance(e, Reset) for e in seen.events)
    assert len(server.requests) == len(faults) + 1
    return seen, log.attempts


# -- row 1: 429 with retry-after(-ms) -------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_row01_429_retry_after_ms_is_honoured_and_the_result_is_golden(
    server: ProviderServer, source: Callable[..., Any], protocol: str
) -> None:
    previous = switches.set_testing(False)  # real waits here: the delay itself is under test
    try:
        fault = _error(429, "rate_limit_error", **{"retry-after-ms": "30"})
        _, attempts = await _golden_after_faults(server, source, protocol, fault)
    finally:
        switches.set_testing(previous.active, attempts=previous.attempts)
    assert [a.strategy for a in attempts] == [None, "retry"]
    assert attempts[1].delay == pytest.approx(0.03)  # the header's wait, not the backoff


async def test_row01_retry_after_seconds_is_honoured(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    fault = _error(429, "rate_limit_error", **{"retry-after": "0.05"})
    events = golden_events("openai-chat")
    server.script("openai-chat", fault, SSEReply(events))
    log = AttemptLog()
    previous = switches.set_testing(False)
    try:
        async with fault_pipeline(log).open(source("openai-chat")) as stream:
            message = await stream.collect()
    finally:
        switches.set_testing(previous.active, attempts=previous.attempts)
    assert view(message, "openai-chat") == golden("openai-chat", events)
    assert log.attempts[1].delay == pytest.approx(0.05)


async def test_row01_testing_switch_keeps_the_decision_but_skips_the_wait(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    server.script("openai-chat", _error(429, **{"retry-after": "30"}), SSEReply(golden_events("openai-chat")))
    log = AttemptLog()
    _, error = await consume(fault_pipeline(log).open(source("openai-chat")))
    assert error is None and [a.delay for a in log.attempts] == [0.0, 0.0]


async def test_row01_retry_after_over_the_cap_gives_up_at_once(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    server.script("openai-chat", _error(429, "rate_limit_error", **{"retry-after": "3600"}))
    seen, error = await consume(fault_pipeline(retry={"max_retry_after": 60}).open(source("openai-chat")))
    assert isinstance(error, ProviderError) and error.status_code == 429 and error.retry_after == 3600
    assert len(server.requests) == 1
    assert any("max_retry_after" in note for note in getattr(error, "__notes__", []))
    assert not seen.events and error.partial is not None and error.partial.text == ""


# -- row 2: 5xx, x-should-retry, exhaustion ----------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 529])
async def test_row02_server_errors_are_retried_to_golden(
    server: ProviderServer, source: Callable[..., Any], status: int
) -> None:
    _, attempts = await _golden_after_faults(
        server, source, "anthropic-messages", _error(status), _error(status, "overloaded_error")
    )
    assert [a.number for a in attempts] == [1, 2, 3]


async def test_row02_x_should_retry_false_is_obeyed(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    server.script("openai-chat", _error(500, **{"x-should-retry": "false"}))
    _, error = await consume(fault_pipeline().open(source("openai-chat")))
    assert isinstance(error, ProviderError) and error.status_code == 500
    assert len(server.requests) == 1


async def test_row02_exhausted_attempts_name_the_status_and_the_attempts(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    server.script("openai-chat", *[_error(503)] * 3)
    _, error = await consume(fault_pipeline(retry={"attempts": 3}).open(source("openai-chat")))
    assert isinstance(error, ProviderError) and error.status_code == 503
    assert error.attempts == 3 and len(server.requests) == 3
    assert "503" in str(error)
    assert any("all 3 attempts" in n for n in error.__notes__)


async def test_row02_the_deadline_stops_retries_whose_wait_would_pass_it(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    server.script("openai-chat", _error(503, **{"retry-after": "5"}))
    _, error = await consume(fault_pipeline(retry={"deadline": 2.0}).open(source("openai-chat")))
    assert isinstance(error, ProviderError) and len(server.requests) == 1
    assert any("retry.deadline" in n for n in error.__notes__)


async def test_row02_the_per_provider_budget_stops_a_retry_storm(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    pipe = fault_pipeline(retry={"attempts": 10, "budget_min": 3, "budget_ratio": 1.0})
    server.script("openai-chat", *[_error(503)] * 4)
    _, error = await consume(pipe.open(source("openai-chat")))
    assert isinstance(error, ProviderError)
    assert len(server.requests) == 4  # 1 + the 3 retries the bucket held
    assert any("retry budget" in n for n in error.__notes__)
    # The bucket is shared by the pipeline's streams: the next stream gets no retry at all.
    server.script("openai-chat", _error(503))
    _, error = await consume(pipe.open(source("openai-chat")))
    assert isinstance(error, ProviderError) and len(server.requests) == 5
    # A completed stream gives tokens back (budget_ratio): retries are possible again.
    server.script("openai-chat", SSEReply(golden_events("openai-chat")))
    _, error = await consume(pipe.open(source("openai-chat")))
    assert error is None
    server.script("openai-chat", _error(503), SSEReply(golden_events("openai-chat")))
    _, error = await consume(pipe.open(source("openai-chat")))
    assert error is None and len(server.requests) == 8
    # Another pipeline has its own bucket.
    bucket = retry.budget(pipe.config, "openai")
    assert bucket is not None and bucket.tokens == 1.0  # 0, +1 (complete), -1 (retry), +1 (complete)
    other = fault_pipeline(retry={"budget_min": 3})
    other._ensure()
    assert retry.budget(other.config, "openai").tokens == 3.0  # type: ignore[union-attr]


# -- row 3: client errors are never retried ------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
async def test_row03_client_errors_are_not_retried_even_when_the_header_says_so(
    server: ProviderServer, source: Callable[..., Any], status: int
) -> None:
    server.script("openai-chat", _error(status, "invalid_request_error", **{"x-should-retry": "true"}))
    seen, error = await consume(fault_pipeline().open(source("openai-chat")))
    assert isinstance(error, ProviderError) and error.status_code == status
    assert len(server.requests) == 1
    assert not seen.events and error.partial is not None and error.partial.text == ""
    assert not error.committed


async def test_row03_client_error_falls_back_only_when_configured(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events("anthropic-messages")
    server.script("openai-chat", _error(400, "invalid_request_error"))
    server.script("anthropic-messages", SSEReply(events))
    chain = with_fallbacks(source("openai-chat"), source("anthropic-messages"))
    _, error = await consume(fault_pipeline().open(chain))
    assert isinstance(error, ProviderError) and error.status_code == 400  # default: not for 4xx

    server.script("openai-chat", _error(400, "invalid_request_error"))
    chain = with_fallbacks(source("openai-chat"), source("anthropic-messages"))
    pipe = fault_pipeline(recovery={"fallback_before_commit": "any"})
    async with pipe.open(chain) as stream:
        message = await stream.collect()
    assert message.recovery == "fallback" and stream.resets == 0
    assert view(message, "anthropic-messages") == golden("anthropic-messages", events)


async def test_row03_exhausted_retries_fall_back_to_the_next_source(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events("openai-chat")
    server.script("anthropic-messages", *[_error(529, "overloaded_error")] * 2)
    server.script("openai-chat", SSEReply(events))
    chain = with_fallbacks(source("anthropic-messages"), source("openai-chat"))
    async with fault_pipeline(retry={"attempts": 2}).open(chain) as stream:
        message = await stream.collect()
    # the answer is OpenAI's: the message says so (the stream's own provider stays the chain's primary)
    assert message.recovery == "fallback" and message.provider == "openai" and stream.provider == "anthropic"
    assert view(message, "openai-chat") == golden("openai-chat", events)
    assert [r.route for r in server.requests] == ["anthropic-messages"] * 2 + ["openai-chat"]


# -- row 4: connection refused / slow headers ---------------------------------------------------


async def test_row04_connection_refused_is_retried_and_reported_with_attempts() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=f"http://127.0.0.1:{port}/v1")
    try:
        src = sdk_source("openai-chat", client)
        _, error = await consume(fault_pipeline(retry={"attempts": 3}).open(src))
    finally:
        await client.close()
    assert isinstance(error, TransportError) and error.attempts == 3 and not error.committed


async def test_row04_slow_headers_trip_the_first_chunk_timeout_and_are_retried(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events("openai-chat", tool=TOOL)
    slow = SlowHeaders(30.0, then=SSEReply(events))
    _, attempts = await _golden_after_faults(
        server, source, "openai-chat", slow, timeouts={"first_chunk": 0.2}
    )
    assert attempts[1].previous_error is not None
    err = attempts[1].previous_error
    assert isinstance(err, StreamTimeout) and err.kind == "first_chunk"


# -- row 5: 200 with a wrong content type (a proxy's HTML page) ---------------------------------------


async def test_row05_html_page_with_200_is_a_protocol_error_and_retried(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    html = JSONReply(200, b"<html><body>502 Bad Gateway</body></html>", headers={"content-type": "text/html"})
    _, attempts = await _golden_after_faults(server, source, "openai-chat", html)
    assert isinstance(attempts[1].previous_error, ProtocolError)
    assert "text/html" in str(attempts[1].previous_error)


# -- row 6: an error before content -----------------------------------------------------------------


async def test_row06_anthropic_overloaded_after_message_start_is_retried_without_a_reset(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    start = ant_events(["x"])[:1]  # message_start only
    fault = SSEReply([*start, b'event: ping\ndata: {"type": "ping"}\n\n', anthropic_error_event()])
    seen, attempts = await _golden_after_faults(server, source, "anthropic-messages", fault)
    err = attempts[1].previous_error
    assert isinstance(err, ProviderError) and err.in_band and err.status_code == 529 and not err.committed
    # the consumer saw no content from attempt 1: every chunk belongs to the golden answer
    assert seen.text() == golden("anthropic-messages", golden_events("anthropic-messages", tool=TOOL))["text"]


async def test_row06_responses_error_before_any_output_item_is_retried(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    from schwarm_stream.testing.server import responses_events

    created = responses_events(["x"])[:2]
    fault = SSEReply([*created, *responses_error_events(sequence_number=2)])
    _, attempts = await _golden_after_faults(server, source, "openai-responses", fault)
    assert isinstance(attempts[1].previous_error, ProviderError)


async def test_row06_only_pings_then_close_is_retried(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    ping = b'event: ping\ndata: {"type": "ping"}\n\n'
    _, attempts = await _golden_after_faults(
        server, source, "anthropic-messages", SSEReply([ping, ping], end="eof")
    )
    assert type(attempts[1].previous_error).__name__ == "StreamIncomplete"


# -- row 7: first-token timeout -----------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_row07_headers_and_pings_only_trip_the_first_chunk_timeout(
    server: ProviderServer, source: Callable[..., Any], protocol: str
) -> None:
    events = golden_events(protocol)
    head = events[:1]  # role chunk / message_start / response.created: no content
    ping = b": keep-alive\n\n"
    fault = SSEReply([*head, ping, ping, Stall()])
    _, attempts = await _golden_after_faults(
        server, source, protocol, fault, timeouts={"first_chunk": 0.2, "idle": 0.05}
    )
    err = attempts[1].previous_error
    assert isinstance(err, StreamTimeout) and err.kind == "first_chunk"


# -- config and the testing switch ------------------------------------------------------------------


def test_config_keys_of_the_issue_are_accepted_and_bad_values_are_named() -> None:
    cfg = Config.from_dict(
        {
            "retry": {"attempts": 4, "initial_wait": 0.5, "max_wait": 8.0, "max_retry_after": 60.0},
            "recovery": {"mid_stream": "restart", "max_recoveries": 2},
            "timeouts": {"first_chunk": 30.0, "idle": 15.0, "total": 600.0},
        }
    )
    assert cfg.recovery.mid_stream == "restart" and cfg.retry.attempts == 4
    with pytest.raises(ConfigError, match=r"retry\.attempts"):
        Config.from_dict({"retry": {"attempts": 0}})
    with pytest.raises(ConfigError, match=r"recovery\.mid_stream"):
        Config.from_dict({"recovery": {"mid_stream": "pray"}})
    with pytest.raises(ConfigError, match=r"timeouts\.stall: unknown key"):
        Config.from_dict({"timeouts": {"stall": 3}})
    with pytest.raises(ConfigError, match=r"recovery\.on_error\.bogus"):
        Config.from_dict({"recovery": {"on_error": {"bogus": "raise"}}})


def test_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHWARM_STREAM__RETRY__ATTEMPTS", "2")
    monkeypatch.setenv("SCHWARM_STREAM__RECOVERY__MID_STREAM", "partial")
    cfg = Config.from_env()
    assert cfg.retry.attempts == 2 and cfg.recovery.mid_stream == "partial"


async def test_testing_switch_overrides_attempts_and_restores(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    server.script("openai-chat", *[_error(503)] * 3)
    with switches.no_waits(attempts=2) as state:
        assert state.active and state.attempts == 2
        _, error = await consume(fault_pipeline().open(source("openai-chat")))
    assert isinstance(error, ProviderError) and len(server.requests) == 2
    assert switches.current().active and switches.current().attempts is None  # the outer fixture's state
    with pytest.raises(ValueError):
        switches.set_testing(True, attempts=0)


def test_backoff_is_exponential_capped_and_jittered_down() -> None:
    cfg = Config.from_dict({"retry": {"initial_wait": 0.5, "max_wait": 8.0, "jitter": 0.25}}).retry
    wait = retry.wait_backoff(cfg.initial_wait, cfg.max_wait, cfg.jitter)
    import tenacity

    for n, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = n
        values = [wait(state) for _ in range(50)]
        assert all(base * 0.75 <= v <= base for v in values)
