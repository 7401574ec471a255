"""Fault matrix rows 8-12, 14, 15, 17, 19, 21 (research/reliability.md §3): faults after the commit point.

Every test checks "nothing lost" (§1.8): complete and equal to the SDK accumulator's view of the
unfaulted stream, or a typed error whose ``.partial`` is exactly what the consumer was shown.
Real SDK clients, real sockets, the loopback ProviderServer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from schwarm_stream import (
    InvalidToolArguments,
    LimitExceeded,
    ProtocolError,
    ProviderError,
    Reset,
    StreamIncomplete,
    StreamTimeout,
    TransportError,
)
from schwarm_stream.testing.server import (
    Drip,
    ProviderServer,
    SSEReply,
    Stall,
    anthropic_error_event,
    openai_error_chunk,
    responses_error_events,
)
from tests.support.faults import (
    PROTOCOLS,
    ROUTE_OF,
    consume,
    content_indices,
    fault_pipeline,
    golden,
    golden_events,
    view,
)

TOOL = {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}


pytestmark = pytest.mark.usefixtures("no_waits")


@pytest.fixture
def source(sdk_sources: Callable[..., Any]) -> Callable[..., Any]:
    return sdk_sources


def _in_band_error(protocol: str, after: list[bytes]) -> list[bytes]:
    """An in-band error event spliced after ``after`` (Responses: with the next sequence number)."""
    if protocol == "anthropic-messages":
        return [anthropic_error_event("overloaded_error", "Overloaded")]
    if protocol == "openai-chat":
        return [openai_error_chunk()]
    last = json.loads(after[-1].decode().split("data: ", 1)[1])["sequence_number"]
    return responses_error_events(sequence_number=last + 1)


async def _run(server: ProviderServer, src: Any, **config: Any) -> Any:
    pipe = fault_pipeline(**config)
    return await consume(pipe.open(src))


# -- row 8: TCP drop (FIN without the chunked terminator, or RST) mid-stream ------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("end", ["truncate", "rst"])
async def test_row08_drop_mid_stream_restart_is_golden_after_a_reset(
    server: ProviderServer, source: Callable[..., Any], protocol: str, end: str
) -> None:
    events = golden_events(protocol, tool=TOOL)
    cut = content_indices(protocol, events)[3]
    server.script(ROUTE_OF[protocol], SSEReply(events[:cut], end=end), SSEReply(events))
    seen, error = await _run(server, source(protocol), recovery={"mid_stream": "restart"})
    assert error is None
    assert seen.resets == 1 and isinstance(seen.events[[type(e) for e in seen.events].index(Reset)], Reset)
    assert seen.seqs_contiguous()
    # after the reset, what the consumer holds is the golden message
    assert seen.text() == golden(protocol, events)["text"]
    assert [c["arguments"] for c in seen.tool_calls()] == ['{"city":"Paris","days":3}']
    assert len(server.requests) == 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_row08_drop_mid_stream_message_equals_golden(
    server: ProviderServer, source: Callable[..., Any], protocol: str
) -> None:
    events = golden_events(protocol, tool=TOOL)
    cut = content_indices(protocol, events)[-2]  # inside the tool call's arguments
    server.script(ROUTE_OF[protocol], SSEReply(events[:cut], end="truncate"), SSEReply(events))
    pipe = fault_pipeline(recovery={"mid_stream": "restart"})
    async with pipe.open(source(protocol)) as stream:
        message = await stream.collect()
    assert message.complete and message.recovery == "restarted"
    assert view(message, protocol) == golden(protocol, events)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_row08_drop_with_raise_carries_exactly_the_delivered_partial(
    server: ProviderServer, source: Callable[..., Any], protocol: str
) -> None:
    events = golden_events(protocol, tool=TOOL)
    cut = content_indices(protocol, events)[-2]
    server.script(ROUTE_OF[protocol], SSEReply(events[:cut], end="rst"))
    seen, error = await _run(server, source(protocol), recovery={"mid_stream": "raise"})
    assert isinstance(error, TransportError)
    assert error.committed and error.attempts == 1
    assert seen.mismatch(error.partial) is None
    assert seen.text() and seen.tool_calls()  # text and part of the arguments were delivered
    assert len(server.requests) == 1


# -- row 9: clean EOF without the protocol terminator ---------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_row09_clean_eof_without_terminator_is_never_complete(
    server: ProviderServer, source: Callable[..., Any], protocol: str
) -> None:
    events = golden_events(protocol)
    cut = content_indices(protocol, events)[-1] + 1  # all the text, no finish / stop / completed
    server.script(ROUTE_OF[protocol], SSEReply(events[:cut], end="eof"))
    seen, error = await _run(server, source(protocol), recovery={"mid_stream": "raise"})
    assert isinstance(error, StreamIncomplete)
    assert seen.mismatch(error.partial) is None
    assert error.partial is not None and error.partial.text == golden(protocol, events)["text"]
    assert not error.partial.complete


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_row09_on_incomplete_restart_recovers_to_golden(
    server: ProviderServer, source: Callable[..., Any], protocol: str
) -> None:
    events = golden_events(protocol, tool=TOOL)
    cut = content_indices(protocol, events)[2]
    server.script(ROUTE_OF[protocol], SSEReply(events[:cut], end="eof"), SSEReply(events))
    pipe = fault_pipeline(recovery={"mid_stream": "raise", "on_incomplete": "restart"})
    async with pipe.open(source(protocol)) as stream:
        message = await stream.collect()
    assert view(message, protocol) == golden(protocol, events)


# -- row 10: stall mid-stream -> idle timeout -----------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_row10_stall_trips_the_idle_timeout_and_restart_is_golden(
    server: ProviderServer, source: Callable[..., Any], protocol: str
) -> None:
    events = golden_events(protocol, tool=TOOL)
    cut = content_indices(protocol, events)[4]
    server.script(ROUTE_OF[protocol], SSEReply([*events[:cut], Stall()]), SSEReply(events))
    pipe = fault_pipeline(recovery={"mid_stream": "restart"}, timeouts={"idle": 0.2})
    async with pipe.open(source(protocol)) as stream:
        message = await stream.collect()
    assert message.recovery == "restarted" and stream.resets == 1
    assert view(message, protocol) == golden(protocol, events)
    assert len(server.requests) == 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_row10_stall_with_raise_is_a_typed_idle_timeout_with_the_partial(
    server: ProviderServer, source: Callable[..., Any], protocol: str
) -> None:
    events = golden_events(protocol)
    cut = content_indices(protocol, events)[4]
    server.script(ROUTE_OF[protocol], SSEReply([*events[:cut], Stall()]))
    seen, error = await _run(server, source(protocol), timeouts={"idle": 0.2})
    assert isinstance(error, StreamTimeout) and error.kind == "idle"
    assert seen.mismatch(error.partial) is None and seen.text()
    await server.wait_connections(0)  # the stalled connection was closed by us


# -- row 11: slowloris drip -> total timeout ------------------------------------------------------


async def test_row11_slow_drip_is_cut_by_the_total_timeout_with_the_partial(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events("openai-chat")
    body = b"".join(events[1:])
    # Every byte arrives well within the idle timeout; only the total limit can stop it.
    server.script("openai-chat", SSEReply([events[0], Drip(body, 0.002)]))
    pipe = fault_pipeline(
        recovery={"mid_stream": "restart"}, timeouts={"idle": 5.0, "first_chunk": 5.0, "total": 0.3}
    )
    seen, error = await consume(pipe.open(source("openai-chat")))
    assert isinstance(error, StreamTimeout) and error.kind == "total"
    assert seen.mismatch(error.partial) is None
    assert len(server.requests) == 1  # a total timeout is never retried or recovered


# -- row 12: in-band provider error mid-stream -----------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_row12_in_band_error_mid_stream_restart_is_golden(
    server: ProviderServer, source: Callable[..., Any], protocol: str
) -> None:
    events = golden_events(protocol, tool=TOOL)
    cut = content_indices(protocol, events)[3]
    server.script(
        ROUTE_OF[protocol], SSEReply(events[:cut] + _in_band_error(protocol, events[:cut])), SSEReply(events)
    )
    pipe = fault_pipeline(recovery={"mid_stream": "restart"})
    async with pipe.open(source(protocol)) as stream:
        message = await stream.collect()
    assert message.recovery == "restarted"
    assert view(message, protocol) == golden(protocol, events)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_row12_in_band_error_with_raise_names_the_provider_type(
    server: ProviderServer, source: Callable[..., Any], protocol: str
) -> None:
    events = golden_events(protocol)
    cut = content_indices(protocol, events)[3]
    server.script(ROUTE_OF[protocol], SSEReply(events[:cut] + _in_band_error(protocol, events[:cut])))
    seen, error = await _run(server, source(protocol))
    assert isinstance(error, ProviderError) and error.in_band and error.committed
    expected_type = "overloaded_error" if protocol == "anthropic-messages" else "server_error"
    assert error.error_type == expected_type and expected_type in str(error)
    assert seen.mismatch(error.partial) is None


# -- rows 14, 15: invalid JSON and invalid UTF-8 mid-stream ------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_row14_invalid_json_is_a_protocol_error_with_offset_line_and_partial(
    server: ProviderServer, source: Callable[..., Any], protocol: str
) -> None:
    events = golden_events(protocol)
    cut = content_indices(protocol, events)[2]
    server.script(ROUTE_OF[protocol], SSEReply([*events[:cut], b'data: {"choices": [{"delta": {"cont\n\n']))
    seen, error = await _run(server, source(protocol))
    assert isinstance(error, ProtocolError) and error.offset is not None
    assert '{"choices": [{"delta": {"cont' in str(error)  # the raw line, for debugging
    assert seen.mismatch(error.partial) is None and seen.text()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_row15_invalid_utf8_is_a_protocol_error_never_a_replacement_character(
    server: ProviderServer, source: Callable[..., Any], protocol: str
) -> None:
    events = golden_events(protocol)
    cut = content_indices(protocol, events)[2]
    bad = events[cut].replace(b'"', b'"\xff\xfe', 1) if protocol != "openai-chat" else b"data: \xff\xfe\n\n"
    server.script(ROUTE_OF[protocol], SSEReply([*events[:cut], bad]))
    seen, error = await _run(server, source(protocol))
    assert isinstance(error, ProtocolError) and "UTF-8" in str(error)
    assert seen.mismatch(error.partial) is None
    assert "\ufffd" not in error.partial.text  # type: ignore[union-attr]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_row14_protocol_errors_are_recovered_by_restart(
    server: ProviderServer, source: Callable[..., Any], protocol: str
) -> None:
    events = golden_events(protocol, tool=TOOL)
    cut = content_indices(protocol, events)[2]
    server.script(ROUTE_OF[protocol], SSEReply([*events[:cut], b"data: {not json\n\n"]), SSEReply(events))
    pipe = fault_pipeline(recovery={"mid_stream": "restart"})
    async with pipe.open(source(protocol)) as stream:
        message = await stream.collect()
    assert view(message, protocol) == golden(protocol, events)


# -- row 17: giant event / giant tool arguments --------------------------------------------------------


async def test_row17_giant_event_is_a_limit_error_not_an_allocation(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events("openai-chat")
    giant = b"data: " + b"x" * (2 << 20)  # 2 MB without a line end, then more
    server.script("openai-chat", SSEReply([*events[:3], giant, giant, b"\n\n"]))
    seen, error = await _run(server, source("openai-chat"), limits={"max_event_bytes": 64 << 10})
    assert isinstance(error, LimitExceeded) and error.limit == "max_event_bytes"
    assert seen.mismatch(error.partial) is None and seen.text()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_row17_giant_tool_arguments_are_a_limit_error_with_the_partial(
    server: ProviderServer, source: Callable[..., Any], protocol: str
) -> None:
    pieces = ['{"blob": "', *(["y" * 1000] * 40), '"}']
    tool = {"name": "store", "arguments": "".join(pieces), "chunks": pieces}
    events = golden_events(protocol, tool={"name": "store", "arguments": tool["arguments"]})
    # rebuild with explicit chunks so every fragment is 1000 bytes
    from schwarm_stream.testing.server import anthropic_events, openai_chat_events, responses_events

    text = ["Storing."]
    if protocol == "openai-chat":
        events = openai_chat_events(text, tool_calls=[{"id": "call_0", **tool}])
    elif protocol == "anthropic-messages":
        events = anthropic_events(
            text, tool_uses=[{"name": "store", "input": tool["arguments"], "chunks": pieces}]
        )
    else:
        events = responses_events(text, function_calls=[tool])
    server.script(ROUTE_OF[protocol], SSEReply(events))
    seen, error = await _run(server, source(protocol), limits={"max_tool_arguments_bytes": 16_000})
    assert isinstance(error, LimitExceeded) and error.limit == "max_tool_arguments_bytes"
    assert seen.mismatch(error.partial) is None
    assert len(seen.tool_calls()[0]["arguments"]) <= 16_000


# -- row 19: truncated tool JSON at block stop / finish ----------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_row19_truncated_tool_json_is_never_silently_empty(
    server: ProviderServer, source: Callable[..., Any], protocol: str
) -> None:
    cut_args = '{"city": "Par'
    tool = {"name": "get_weather", "arguments": cut_args, "chunks": ['{"city"', ': "Par']}
    from schwarm_stream.testing.server import anthropic_events, openai_chat_events, responses_events

    if protocol == "openai-chat":
        events = openai_chat_events([], tool_calls=[{"id": "call_0", **tool}])
    elif protocol == "anthropic-messages":
        events = anthropic_events(
            [], tool_uses=[{"name": "get_weather", "input": cut_args, "chunks": tool["chunks"]}]
        )
    else:
        events = responses_events([], function_calls=[tool])
    server.script(ROUTE_OF[protocol], SSEReply(events))
    seen, error = await _run(server, source(protocol))
    assert isinstance(error, InvalidToolArguments)
    assert seen.mismatch(error.partial) is None
    call = error.partial.tool_calls[0]  # type: ignore[union-attr]
    assert call.arguments == cut_args and call.parsed is None and call.error


# -- row 21: usage chunk missing --------------------------------------------------------------------


async def test_row21_missing_usage_is_none_not_zero(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events("openai-chat", usage=None)
    server.script("openai-chat", SSEReply(events))
    async with fault_pipeline().open(source("openai-chat")) as stream:
        message = await stream.collect()
    assert message.complete and message.usage is None
    assert view(message, "openai-chat") == golden("openai-chat", events)
