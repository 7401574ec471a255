"""Fault matrix rows 13, 16, 18, 20 (research/reliability.md §3): the bytes are odd, the answer is exact."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from schwarm_stream import ProtocolError
from schwarm_stream.testing import switches
from schwarm_stream.testing.server import ProviderServer, Split, SSEReply, sse
from tests.support.faults import (
    PROTOCOLS,
    ROUTE_OF,
    consume,
    fault_pipeline,
    golden,
    golden_events,
    view,
)

TOOL = {"name": "get_weather", "arguments": {"city": "Köln"}}


@pytest.fixture(autouse=True)
def _no_waits() -> Iterator[None]:
    with switches.no_waits(attempts=1):  # nothing here may need a retry to come out right
        yield


@pytest.fixture
def source(sdk_sources: Callable[..., Any]) -> Callable[..., Any]:
    return sdk_sources


async def _message(source: Callable[..., Any], protocol: str) -> Any:
    async with fault_pipeline().open(source(protocol)) as stream:
        return await stream.collect()


# -- row 13: comments, unknown fields, colon-less lines, CR / CRLF line ends ----------------------------


_NEWLINES = [
    pytest.param(b"\n", id="LF"),
    pytest.param(b"\r\n", id="CRLF"),
    pytest.param(b"\r", id="CR"),
]


@pytest.mark.parametrize(
    ("protocol", "newline"),
    [pytest.param(p, n.values[0], id=f"{p}-{n.id}") for p in PROTOCOLS for n in _NEWLINES],
)
async def test_row13_odd_but_valid_sse_framing_is_golden(
    server: ProviderServer, source: Callable[..., Any], protocol: str, newline: bytes
) -> None:
    events = golden_events(protocol, tool=TOOL)
    noisy = []
    for i, ev in enumerate(events):
        extra = [b": keep-alive comment", b"x-unknown-field: 1", b"colonless", b"retry: 1000"][i % 4]
        noisy.append((extra + b"\n" + ev).replace(b"\n", newline))
    server.script(ROUTE_OF[protocol], SSEReply(noisy))
    message = await _message(source, protocol)
    assert message.complete
    assert view(message, protocol) == golden(protocol, events)


# -- row 16: multibyte characters and CRLF split across reads ------------------------------------------


def _split_cases() -> list[tuple[str, str, int]]:
    cases = []
    for protocol in PROTOCOLS:
        body = b"".join(golden_events(protocol)).replace(b"\n", b"\r\n")
        for char in ("🎉", "ö", "東"):
            start = body.index(char.encode())
            cases += [(protocol, char, start + k) for k in range(1, len(char.encode()))]
        crlf = body.index(b"\r\n")
        cases.append((protocol, "CRLF", crlf + 1))
    return cases


@pytest.mark.parametrize(("protocol", "what", "at"), _split_cases())
async def test_row16_split_inside_a_character_or_a_crlf_is_reassembled(
    server: ProviderServer, source: Callable[..., Any], protocol: str, what: str, at: int
) -> None:
    events = golden_events(protocol)
    body = b"".join(events).replace(b"\n", b"\r\n")
    server.script(ROUTE_OF[protocol], SSEReply([Split(body, [at])]))
    message = await _message(source, protocol)
    assert view(message, protocol) == golden(protocol, events)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_row16_every_byte_its_own_read(
    server: ProviderServer, source: Callable[..., Any], protocol: str
) -> None:
    events = golden_events(protocol, "ä🎉東")
    body = b"".join(events)
    server.script(ROUTE_OF[protocol], SSEReply([Split(body, list(range(1, len(body))))]))
    message = await _message(source, protocol)
    assert message.text == "ä🎉東"
    assert view(message, protocol) == golden(protocol, events)


# -- row 18: tool-call index anomalies (Chat Completions) ----------------------------------------------


def _chunk(*tool_calls: dict[str, Any], finish: str | None = None) -> bytes:
    delta: dict[str, Any] = {"tool_calls": list(tool_calls)} if tool_calls else {}
    return sse(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


def _tc(index: int, args: str, *, id: str | None = None, name: str | None = None) -> dict[str, Any]:
    fn: dict[str, Any] = {"arguments": args}
    if name:
        fn["name"] = name
    out: dict[str, Any] = {"index": index, "function": fn}
    if id:
        out["id"] = id
        out["type"] = "function"
    return out


ANOMALIES = {
    # the first call has index 1 (the SDK helper raises IndexError)
    "gap": [_chunk(_tc(1, '{"a"', id="call_a", name="f")), _chunk(_tc(1, ": 1}"))],
    # DeepSeek/Qwen style: id and name repeated in every fragment (the SDK makes call_acall_a / ff)
    "repeated id and name": [
        _chunk(_tc(0, '{"a"', id="call_a", name="f")),
        _chunk(_tc(0, ": 1}", id="call_a", name="f")),
    ],
    # two entries for one index in a single chunk
    "two entries one chunk": [_chunk(_tc(0, '{"a"', id="call_a", name="f"), _tc(0, ": 1}"))],
    # parallel calls, fragments interleaved
    "interleaved": [
        _chunk(_tc(0, "", id="call_a", name="f"), _tc(1, "", id="call_b", name="g")),
        _chunk(_tc(0, '{"a"')),
        _chunk(_tc(1, '{"b": 2}')),
        _chunk(_tc(0, ": 1}")),
    ],
}
EXPECTED = {
    "gap": [("call_a", "f", {"a": 1})],
    "repeated id and name": [("call_a", "f", {"a": 1})],
    "two entries one chunk": [("call_a", "f", {"a": 1})],
    "interleaved": [("call_a", "f", {"a": 1}), ("call_b", "g", {"b": 2})],
}


@pytest.mark.parametrize("case", sorted(ANOMALIES))
async def test_row18_tool_call_index_anomalies_accumulate_by_index(
    server: ProviderServer, source: Callable[..., Any], case: str
) -> None:
    body = [*ANOMALIES[case], _chunk(finish="tool_calls"), b"data: [DONE]\n\n"]
    server.script("openai-chat", SSEReply(body))
    message = await _message(source, "openai-chat")
    assert message.complete
    assert [(t.id, t.name, t.parsed) for t in message.tool_calls] == EXPECTED[case]


# -- row 20: duplicate sequence numbers (Responses) -----------------------------------------------------


async def test_row20_duplicated_events_are_delivered_once(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events("openai-responses", tool=TOOL)
    doubled = []
    for ev in events:
        doubled.append(ev)
        payload = json.loads(ev.decode().split("data: ", 1)[1])
        if payload["type"].endswith(".delta"):
            doubled.append(ev)  # a replayed event: same sequence_number
    server.script("openai-responses", SSEReply(doubled))
    seen, error = await consume(fault_pipeline().open(source("openai-responses")))
    assert error is None and seen.seqs_contiguous()
    assert seen.text() == golden("openai-responses", events)["text"]


async def test_row20_a_gap_in_sequence_numbers_is_an_error_with_the_partial(
    server: ProviderServer, source: Callable[..., Any]
) -> None:
    events = golden_events("openai-responses", tool=TOOL)
    deltas = [i for i, ev in enumerate(events) if b"output_text.delta" in ev]
    kept = [ev for i, ev in enumerate(events) if i != deltas[1]]  # one text delta lost on the way
    server.script("openai-responses", SSEReply(kept))
    seen, error = await consume(
        fault_pipeline(recovery={"mid_stream": "raise"}).open(source("openai-responses"))
    )
    assert isinstance(error, ProtocolError) and "1 event(s) missing" in str(error)
    assert error.partial is not None and error.partial.text == seen.text()  # exactly what was delivered
    assert not error.partial.complete
