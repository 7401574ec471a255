"""Issue 14, items 2, 6, 8 and 11, at the sources: through real sockets, on the SDK and the native path.

Every test runs the official openai / anthropic SDK client and the native (httpx) source against
the loopback ProviderServer, with hand-written SSE bodies.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from schwarm_stream import Chunk, Extra, StreamError, StreamIncomplete, ToolCallDelta
from schwarm_stream.sources import native_anthropic, native_openai_chat, native_openai_responses
from schwarm_stream.testing import switches
from schwarm_stream.testing.server import ProviderServer, SSEReply
from tests.support.faults import ROUTE_OF, fault_pipeline

HI = [{"role": "user", "content": "hi"}]
PATHS = ("sdk", "native")
EMOJI = "\U0001f600"


@pytest.fixture(autouse=True)
def _no_waits() -> Iterator[None]:
    with switches.no_waits(attempts=1):
        yield


@pytest.fixture
def make(server: ProviderServer, sdk_sources: Callable[..., Any]) -> Callable[[str, str], Any]:
    def make(protocol: str, path: str) -> Any:
        if path == "sdk":
            return sdk_sources(protocol)
        if protocol == "openai-chat":
            return native_openai_chat(server.openai_base_url, "sk-test", model="m", messages=HI)
        if protocol == "openai-responses":
            return native_openai_responses(server.openai_base_url, "sk-test", model="m", input="hi")
        return native_anthropic(server.anthropic_base_url, "sk-test", model="m", max_tokens=64, messages=HI)

    return make


def ev(payload: Any, event: str | None = None, *, end: bytes = b"\n\n") -> bytes:
    """One SSE event; json.dumps escapes lone surrogates as ``\\uD83D`` like the servers in question."""
    data = payload if isinstance(payload, str) else json.dumps(payload)
    head = b"" if event is None else f"event: {event}\n".encode()
    return head + b"data: " + data.encode("ascii") + end


# -- bodies per protocol: text deltas, reasoning deltas, tool argument fragments, then the end ------------


def chat_body(
    texts: list[str] = (),  # type: ignore[assignment]
    reasoning: list[str] = (),  # type: ignore[assignment]
    args: list[str] = (),  # type: ignore[assignment]
    refusal: list[str] = (),  # type: ignore[assignment]
    *,
    finish: bool = True,
    usage: bool = True,
    done: bool = True,
) -> list[bytes]:
    def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
        return ev(
            {
                "id": "c1",
                "object": "chat.completion.chunk",
                "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
            }
        )

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"reasoning_content": r}) for r in reasoning]
    out += [chunk({"content": t}) for t in texts]
    out += [chunk({"refusal": r}) for r in refusal]
    for i, a in enumerate(args):
        head: dict[str, Any] = (
            {"id": "call_1", "type": "function", "function": {"name": "f"}} if i == 0 else {}
        )
        fn = {**head.pop("function", {}), "arguments": a}
        out.append(chunk({"tool_calls": [{"index": 0, **head, "function": fn}]}))
    if finish:
        out.append(chunk({}, "tool_calls" if args else "stop"))
    if usage:
        out.append(
            ev(
                {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "model": "m",
                    "choices": [],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
                }
            )
        )
    if done:
        out.append(b"data: [DONE]\n\n")
    return out


def anthropic_body(
    texts: list[str] = (),  # type: ignore[assignment]
    reasoning: list[str] = (),  # type: ignore[assignment]
    args: list[str] = (),  # type: ignore[assignment]
    *,
    stop: bytes | None = None,
) -> list[bytes]:
    msg: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 1, "output_tokens": 0},
    }
    out = [ev({"type": "message_start", "message": msg}, "message_start")]
    i = 0
    if reasoning:
        out.append(
            ev(
                {
                    "type": "content_block_start",
                    "index": i,
                    "content_block": {"type": "thinking", "thinking": ""},
                },
                "content_block_start",
            )
        )
        out += [
            ev(
                {
                    "type": "content_block_delta",
                    "index": i,
                    "delta": {"type": "thinking_delta", "thinking": r},
                },
                "content_block_delta",
            )
            for r in reasoning
        ]
        out.append(ev({"type": "content_block_stop", "index": i}, "content_block_stop"))
        i += 1
    out.append(
        ev(
            {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}},
            "content_block_start",
        )
    )
    out += [
        ev(
            {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": t}},
            "content_block_delta",
        )
        for t in texts
    ]
    out.append(ev({"type": "content_block_stop", "index": i}, "content_block_stop"))
    i += 1
    if args:
        out.append(
            ev(
                {
                    "type": "content_block_start",
                    "index": i,
                    "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
                },
                "content_block_start",
            )
        )
        out += [
            ev(
                {
                    "type": "content_block_delta",
                    "index": i,
                    "delta": {"type": "input_json_delta", "partial_json": a},
                },
                "content_block_delta",
            )
            for a in args
        ]
        out.append(ev({"type": "content_block_stop", "index": i}, "content_block_stop"))
    out.append(
        ev(
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}},
            "message_delta",
        )
    )
    out.append(ev({"type": "message_stop"}, "message_stop") if stop is None else stop)
    return out


def responses_body(
    texts: list[str] = (),  # type: ignore[assignment]
    reasoning: list[str] = (),  # type: ignore[assignment]
    args: list[str] = (),  # type: ignore[assignment]
    refusal: list[str] = (),  # type: ignore[assignment]
    *,
    completed: bytes | None = None,
) -> tuple[list[bytes], int]:
    seq = iter(range(1000))
    resp = {"id": "resp_1", "object": "response", "model": "m", "status": "in_progress", "output": []}

    def e(d: dict[str, Any]) -> bytes:
        return ev({**d, "sequence_number": next(seq)}, d["type"])

    out = [e({"type": "response.created", "response": resp})]
    out += [
        e(
            {
                "type": "response.reasoning_summary_text.delta",
                "output_index": 0,
                "item_id": "r",
                "summary_index": 0,
                "delta": r,
            }
        )
        for r in reasoning
    ]
    out += [
        e(
            {
                "type": "response.output_text.delta",
                "output_index": 1,
                "item_id": "m",
                "content_index": 0,
                "delta": t,
            }
        )
        for t in texts
    ]
    out += [
        e(
            {
                "type": "response.refusal.delta",
                "output_index": 1,
                "item_id": "m",
                "content_index": 0,
                "delta": r,
            }
        )
        for r in refusal
    ]
    if args:
        out.append(
            e(
                {
                    "type": "response.output_item.added",
                    "output_index": 2,
                    "item": {
                        "type": "function_call",
                        "id": "fc_1",
                        "call_id": "call_1",
                        "name": "f",
                        "arguments": "",
                        "status": "in_progress",
                    },
                }
            )
        )
        out += [
            e(
                {
                    "type": "response.function_call_arguments.delta",
                    "output_index": 2,
                    "item_id": "fc_1",
                    "delta": a,
                }
            )
            for a in args
        ]
    n = next(seq)
    done = {
        **resp,
        "status": "completed",
        "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
    }
    last = {"type": "response.completed", "response": done, "sequence_number": n}
    out.append(ev(last, "response.completed") if completed is None else completed)
    return out, n


async def run(source: Any) -> tuple[list[Any], StreamError | None, Any]:
    events: list[Any] = []
    error = None
    stream = fault_pipeline().open(source)
    try:
        async with stream as s:
            async for e in s:
                events.append(e)
    except StreamError as exc:
        error = exc
    return events, error, stream.message


def texts_of(events: list[Any], kind: str) -> str:
    return "".join(e.text for e in events if isinstance(e, Chunk) and e.kind == kind)


def args_of(events: list[Any]) -> str:
    return "".join(e.arguments for e in events if isinstance(e, ToolCallDelta))


def replaced(events: list[Any]) -> int:
    return sum(e.data for e in events if isinstance(e, Extra) and e.kind == "replaced_surrogates")


def body_for(
    protocol: str, texts: list[str], reasoning: list[str], args: list[str], refusal: list[str]
) -> list[bytes]:
    if protocol == "openai-chat":
        return chat_body(texts, reasoning, args, refusal)
    if protocol == "openai-responses":
        return responses_body(texts, reasoning, args, refusal)[0]
    return anthropic_body(texts, reasoning, args)  # no refusal deltas in Messages


CASES = [pytest.param(p, path, id=f"{p}-{path}") for p in ROUTE_OF for path in PATHS]


# -- item 2: split surrogate pairs ------------------------------------------------------------------------------


@pytest.mark.parametrize(("protocol", "path"), CASES)
async def test_split_surrogate_pair_is_joined(
    server: ProviderServer, make: Callable[[str, str], Any], protocol: str, path: str
) -> None:
    refusal = ["no \ud83d", "\ude00!"] if protocol != "anthropic-messages" else []
    body = body_for(
        protocol,
        texts=["hi \ud83d", "\ude00 there \ud83d", "\ude00"],
        reasoning=["think \ud83d", "\ude00"],
        args=['{"e": "\ud83d', '\ude00"}'],
        refusal=refusal,
    )
    server.script(ROUTE_OF[protocol], SSEReply(body))
    events, error, message = await run(make(protocol, path))
    assert error is None, error
    for e in events:  # every delivered piece is encodable: no sink can die on it
        if isinstance(e, Chunk):
            e.text.encode("utf-8")
        elif isinstance(e, ToolCallDelta):
            e.arguments.encode("utf-8")
    assert texts_of(events, "text") == message.text == f"hi {EMOJI} there {EMOJI}"
    assert texts_of(events, "reasoning") == message.reasoning == f"think {EMOJI}"
    assert args_of(events) == message.tool_calls[0].arguments == f'{{"e": "{EMOJI}"}}'
    assert message.tool_calls[0].parsed == {"e": EMOJI}
    if refusal:
        assert texts_of(events, "refusal") == message.refusal == f"no {EMOJI}!"
    assert replaced(events) == 0 and "replaced_surrogates" not in message.flags


@pytest.mark.parametrize(("protocol", "path"), CASES)
async def test_unpaired_surrogates_become_replacement_characters_and_are_counted(
    server: ProviderServer, make: Callable[[str, str], Any], protocol: str, path: str
) -> None:
    # a lone low surrogate inside, a high one not followed by its low half, one held at the end
    body = body_for(
        protocol, texts=["a\udc00b", "c\ud83d", "d", "e\ud83d"], reasoning=[], args=['"\udc00"'], refusal=[]
    )
    server.script(ROUTE_OF[protocol], SSEReply(body))
    events, error, message = await run(make(protocol, path))
    assert error is None, error
    assert texts_of(events, "text") == message.text == "a\ufffdbc\ufffdde\ufffd"
    assert args_of(events) == message.tool_calls[0].arguments == '"\ufffd"'
    assert replaced(events) == 4
    assert "replaced_surrogates" in message.flags


# -- item 6: two tool calls sharing index 0 -------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_a_reused_tool_call_index_is_rekeyed_in_the_events_too(
    server: ProviderServer, make: Callable[[str, str], Any], path: str
) -> None:
    def chunk(tc: dict[str, Any] | None, reason: str | None = None) -> bytes:
        delta = {"tool_calls": [tc]} if tc else {}
        return ev(
            {
                "id": "c1",
                "object": "chat.completion.chunk",
                "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
            }
        )

    body = [
        chunk({"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}}),
        chunk({"index": 0, "function": {"arguments": '{"x": 1}'}}),
        chunk({"index": 0, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": ""}}),
        chunk({"index": 0, "function": {"arguments": '{"y": 2}'}}),
        chunk(None, "tool_calls"),
        b"data: [DONE]\n\n",
    ]
    server.script("openai-chat", SSEReply(body))
    events, error, message = await run(make("openai-chat", path))
    assert error is None, error
    deltas = [(e.index, e.id, e.arguments) for e in events if isinstance(e, ToolCallDelta)]
    assert deltas == [(0, "call_a", ""), (0, None, '{"x": 1}'), (1, "call_b", ""), (1, None, '{"y": 2}')]
    assert [(t.index, t.id, t.name, t.arguments) for t in message.tool_calls] == [
        (0, "call_a", "f", '{"x": 1}'),
        (1, "call_b", "g", '{"y": 2}'),
    ]


# -- item 8: a chat stream cut after the last finish_reason ----------------------------------------------------


@pytest.mark.parametrize("end", ["rst", "truncate"])
@pytest.mark.parametrize("path", PATHS)
async def test_chat_cut_after_finish_reason_completes_on_both_paths(
    server: ProviderServer, make: Callable[[str, str], Any], path: str, end: str
) -> None:
    body = chat_body(["Hel", "lo"], usage=False, done=False)
    server.script("openai-chat", SSEReply(body, end=end))  # type: ignore[arg-type]
    _events, error, message = await run(make("openai-chat", path))
    assert error is None, f"{type(error).__name__}: {error}"
    assert message.complete and message.text == "Hello" and message.finish_reason == "stop"
    assert message.usage is None  # lost, not guessed
    assert "usage_missing" in message.flags


@pytest.mark.parametrize("path", PATHS)
async def test_chat_cut_before_finish_reason_stays_an_error(
    server: ProviderServer, make: Callable[[str, str], Any], path: str
) -> None:
    server.script(
        "openai-chat", SSEReply(chat_body(["Hel", "lo"], finish=False, usage=False, done=False), end="rst")
    )
    _events, error, message = await run(make("openai-chat", path))
    assert error is not None and not message.complete and message.text == "Hello"


# -- item 11: a terminator at the end of the body without its blank line --------------------------------------


def _terminated(protocol: str, tail: bytes | None) -> list[bytes]:
    """A body whose terminator is ``tail`` (``None``: the whole terminator without the blank line)."""
    if protocol == "openai-chat":
        body = chat_body(["Hel", "lo"], finish=False, usage=False, done=False)
        return [*body, b"data: [DONE]" if tail is None else tail]
    if protocol == "anthropic-messages":
        return anthropic_body(
            ["Hel", "lo"],
            stop=b'event: message_stop\ndata: {"type":"message_stop"}' if tail is None else tail,
        )
    _, n = responses_body(["Hel", "lo"])
    done = {
        "type": "response.completed",
        "sequence_number": n,
        "response": {
            "id": "resp_1",
            "status": "completed",
            "output": [],
            "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
        },
    }
    whole = ev(done, "response.completed", end=b"\n")
    return responses_body(["Hel", "lo"], completed=whole if tail is None else tail)[0]


@pytest.mark.parametrize("newline", [b"", b"\n", b"\r"], ids=["none", "LF", "CR"])
@pytest.mark.parametrize(("protocol", "path"), CASES)
async def test_a_whole_terminator_without_its_blank_line_completes(
    server: ProviderServer, make: Callable[[str, str], Any], protocol: str, path: str, newline: bytes
) -> None:
    body = _terminated(protocol, None)
    body[-1] = body[-1].rstrip(b"\n") + newline
    server.script(ROUTE_OF[protocol], SSEReply(body))
    _events, error, message = await run(make(protocol, path))
    assert error is None, f"{type(error).__name__}: {error}"
    assert message.complete and message.text == "Hello"


_CUTS = {
    "openai-chat": b"data: [DO",
    "anthropic-messages": b'event: message_stop\ndata: {"type":"message_st',
    "openai-responses": b'event: response.completed\ndata: {"type":"response.completed","sequence_number":3,"resp',
}


@pytest.mark.parametrize(("protocol", "path"), CASES)
async def test_a_cut_inside_the_terminator_stays_truncated(
    server: ProviderServer, make: Callable[[str, str], Any], protocol: str, path: str
) -> None:
    server.script(ROUTE_OF[protocol], SSEReply(_terminated(protocol, _CUTS[protocol])))
    _events, error, message = await run(make(protocol, path))
    assert isinstance(error, StreamIncomplete), error
    assert not message.complete and message.text == "Hello"
