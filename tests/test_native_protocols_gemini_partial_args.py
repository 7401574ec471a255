"""Vertex AI streamed function-call arguments (``stream_function_call_arguments``) through google-genai.

With that option on, a call arrives over several responses: its name with ``will_continue``, then
``partial_args`` (a JSON path and a value; a string may come in pieces, each with ``will_continue``),
until a ``function_call`` part without ``will_continue`` ends it. The stream is built as the API's
JSON shape (camelCase, one SSE event per response) and read by the official SDK over a socket to the
loopback server; the fragments are ToolCallDeltas whose text joins to exactly the arguments.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

genai = pytest.importorskip("google.genai")  # the extra "gemini"

from schwarm_stream import Config, Pipeline, ProtocolError, StreamIncomplete, ToolCallDelta  # noqa: E402
from schwarm_stream.sources import gemini_generate, to_gemini  # noqa: E402
from schwarm_stream.testing._gemini_wire import gemini_event  # noqa: E402
from schwarm_stream.testing.server import ProviderServer, SSEReply  # noqa: E402

EXACT = {"retry": {"attempts": 1}, "recovery": {"mid_stream": "raise"}}
HEAD = {"modelVersion": "gemini-2.5-pro", "responseId": "resp-partial"}


def event(fc: dict[str, Any] | None = None, *, finish: str | None = None) -> bytes:
    candidate: dict[str, Any] = {"index": 0}
    if fc is not None:
        candidate["content"] = {"role": "model", "parts": [{"functionCall": fc}]}
    if finish is not None:
        candidate["finishReason"] = finish
    usage = {"promptTokenCount": 9, "totalTokenCount": 9}
    if finish is not None:
        usage = {"promptTokenCount": 9, "candidatesTokenCount": 14, "totalTokenCount": 23}
    return gemini_event({"candidates": [candidate], "usageMetadata": usage, **HEAD})


def arg(path: str, more: bool = False, **value: Any) -> dict[str, Any]:
    out = {"jsonPath": path, **value}
    if more:
        out["willContinue"] = True
    return out


#: A call whose arguments stream: a string in three pieces, a number, a bool, a nested object, an
#: array of objects, a null; then the closing part (no will_continue) and the finish.
STREAM = [
    event({"name": "book_trip", "willContinue": True}),
    event({"partialArgs": [arg("$.city", True, stringValue="Bos")], "willContinue": True}),
    event({"partialArgs": [arg("$.city", True, stringValue="ton, \"MA\" ")], "willContinue": True}),
    event({"partialArgs": [arg("$.city", stringValue="é✓")], "willContinue": True}),
    event(
        {
            "partialArgs": [arg("$.nights", numberValue=3), arg("$.rate", numberValue=99.5)],
            "willContinue": True,
        }
    ),
    event({"partialArgs": [arg("$.flexible", boolValue=False)], "willContinue": True}),
    event(
        {
            "partialArgs": [arg("$.hotel.name", stringValue="Inn"), arg("$.hotel.stars", numberValue=4)],
            "willContinue": True,
        }
    ),
    event(
        {
            "partialArgs": [
                arg("$.guests[0].name", stringValue="Ada"),
                arg("$.guests[1].name", True, stringValue="Gra"),
            ],
            "willContinue": True,
        }
    ),
    event({"partialArgs": [arg("$.guests[1].name", stringValue="ce")], "willContinue": True}),
    event({"partialArgs": [arg("$['notes']", nullValue="NULL_VALUE")], "willContinue": True}),
    event({}),
    event(None, finish="STOP"),
]
EXPECTED = {
    "city": 'Boston, "MA" é✓',
    "nights": 3,
    "rate": 99.5,
    "flexible": False,
    "hotel": {"name": "Inn", "stars": 4},
    "guests": [{"name": "Ada"}, {"name": "Grace"}],
    "notes": None,
}


def source(url: str) -> Any:
    client = genai.Client(api_key="g-loopback-key", http_options={"base_url": url})
    return gemini_generate(client, model="gemini-2.5-pro", contents="Book it")


async def run(events: list[bytes]) -> tuple[list[ToolCallDelta], Any]:
    async with ProviderServer() as server:
        server.script("gemini-stream", SSEReply(events))
        async with Pipeline(config=Config.from_dict(EXACT)).open(source(server.url)) as stream:
            deltas = [e async for e in stream if isinstance(e, ToolCallDelta)]
        return deltas, stream.message


async def test_the_sdk_hands_partial_args_through() -> None:
    """The premise: google-genai parses partialArgs / willContinue on a response part."""
    async with ProviderServer() as server:
        server.script("gemini-stream", SSEReply(STREAM))
        client = genai.Client(api_key="k", http_options={"base_url": server.url})
        responses = [
            r async for r in await client.aio.models.generate_content_stream(model="m", contents="x")
        ]
    fc = responses[1].candidates[0].content.parts[0].function_call
    assert fc.will_continue is True and fc.partial_args[0].json_path == "$.city"
    assert fc.partial_args[0].string_value == "Bos" and fc.partial_args[0].will_continue is True


async def test_streamed_arguments_are_deltas_that_join_to_exactly_the_arguments() -> None:
    deltas, message = await run(STREAM)
    assert message.complete and message.finish_reason == "STOP"
    assert len({d.index for d in deltas}) == 1
    assert deltas[0].name == "book_trip" and all(d.name is None for d in deltas[1:])
    assert len([d for d in deltas if d.arguments]) >= 8  # incremental: one delta per response, not one
    text = "".join(d.arguments for d in deltas)
    assert json.loads(text) == EXPECTED
    assert text == json.dumps(EXPECTED, separators=(",", ":"), ensure_ascii=False)
    [call] = message.tool_calls
    assert (call.name, call.parsed) == ("book_trip", EXPECTED)
    assert to_gemini(message)["parts"][-1]["function_call"]["args"] == EXPECTED


async def test_a_call_without_arguments_is_an_empty_object() -> None:
    events = [event({"name": "ping", "willContinue": True}), event({}), event(None, finish="STOP")]
    _, message = await run(events)
    [call] = message.tool_calls
    assert (call.name, call.arguments, call.parsed) == ("ping", "{}", {})


async def test_a_stream_cut_inside_the_streamed_call_is_incomplete() -> None:
    for cut in range(1, len(STREAM) - 1):
        with pytest.raises(StreamIncomplete) as info:
            await run(STREAM[:cut])
        assert info.value.partial is not None and not info.value.partial.complete


async def test_arguments_that_go_back_into_a_closed_object_are_a_protocol_error() -> None:
    events = [
        event({"name": "f", "willContinue": True}),
        event(
            {"partialArgs": [arg("$.a.x", numberValue=1), arg("$.b", numberValue=2)], "willContinue": True}
        ),
        event({"partialArgs": [arg("$.a.y", numberValue=3)], "willContinue": True}),
        event({}),
        event(None, finish="STOP"),
    ]
    with pytest.raises(ProtocolError, match="already written"):
        await run(events)


async def test_a_finish_inside_a_streamed_call_closes_it() -> None:
    events = STREAM[:4] + [event(None, finish="STOP")]
    _, message = await run(events)
    [call] = message.tool_calls
    assert call.parsed == {"city": 'Boston, "MA" é✓'}


@pytest.mark.parametrize("path", ["a", "$", "$[0]", "$.a[x]"])
async def test_a_json_path_that_names_no_argument_is_a_protocol_error(path: str) -> None:
    events = [
        event({"name": "f", "willContinue": True}),
        event({"partialArgs": [arg(path, numberValue=1)], "willContinue": True}),
        event({}),
        event(None, finish="STOP"),
    ]
    with pytest.raises(ProtocolError, match="json_path"):
        await run(events)


async def test_a_string_left_open_ends_where_the_next_path_begins_and_the_signature_stays() -> None:
    """A shape seen in the wild: each string's piece says will_continue, the next path starts anyway,
    and the closing ``functionCall: {}`` shares the event with the finish; the name part carries the
    thought signature."""
    first = gemini_event(
        {
            "candidates": [
                {
                    "index": 0,
                    "content": {
                        "role": "model",
                        "parts": [
                            {
                                "functionCall": {"name": "get_weather", "willContinue": True},
                                "thoughtSignature": "c2ln",
                            }
                        ],
                    },
                }
            ],
            **HEAD,
        }
    )
    last = gemini_event(
        {
            "candidates": [
                {
                    "index": 0,
                    "content": {"role": "model", "parts": [{"functionCall": {}}]},
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 3, "totalTokenCount": 5},
            **HEAD,
        }
    )
    events = [
        first,
        event({"partialArgs": [arg("$.location", True, stringValue="Oslo")], "willContinue": True}),
        event({"partialArgs": [arg("$.unit", True, stringValue="K")], "willContinue": True}),
        last,
    ]
    deltas, message = await run(events)
    assert message.complete
    assert "".join(d.arguments for d in deltas) == '{"location":"Oslo","unit":"K"}'
    turn = to_gemini(message)
    [part] = [p for p in turn["parts"] if "function_call" in p]
    assert part["function_call"] == {"name": "get_weather", "args": {"location": "Oslo", "unit": "K"}}
    assert part["thought_signature"] == b"sig"


async def test_a_closing_part_after_a_call_that_ended_itself_is_no_call() -> None:
    """A call's last ``partial_args`` part without ``will_continue`` ends it (a recorded shape); an empty
    ``functionCall: {}`` after it has no call to end: it is not a second, nameless call."""
    events = [
        event({"name": "f", "willContinue": True}),
        event({"partialArgs": [arg("$.n", numberValue=1)]}),  # the call's last part: no will_continue
        event({}),
        event({"name": "g", "args": {"x": 1}}),
        event({}),
        event(None, finish="STOP"),
    ]
    deltas, message = await run(events)
    assert message.complete
    assert [(t.name, t.parsed) for t in message.tool_calls] == [("f", {"n": 1}), ("g", {"x": 1})]
    assert all(d.index in {t.index for t in message.tool_calls} for d in deltas)


async def test_a_call_whole_in_one_part_as_partial_args() -> None:
    """A recorded shape (js-genai's Vertex recording): the name and every argument in one part, as
    ``partial_args`` without ``will_continue``, in the event that finishes."""
    last = gemini_event(
        {
            "candidates": [
                {
                    "index": 0,
                    "content": {
                        "role": "model",
                        "parts": [
                            {
                                "functionCall": {
                                    "name": "divide",
                                    "partialArgs": [arg("$.d", numberValue=2), arg("$.n", numberValue=100)],
                                }
                            }
                        ],
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 3, "totalTokenCount": 5},
            **HEAD,
        }
    )
    _, message = await run([last])
    assert message.complete
    assert [(t.name, t.arguments) for t in message.tool_calls] == [("divide", '{"d":2,"n":100}')]


async def test_the_next_named_call_ends_the_open_one() -> None:
    events = [
        event({"name": "f", "willContinue": True}),
        event({"partialArgs": [arg("$.a", True, stringValue="x")], "willContinue": True}),
        event({"name": "g", "willContinue": True}),  # no closing part for f came
        event({"partialArgs": [arg("$.b", numberValue=1)], "willContinue": True}),
        event({}),
        event(None, finish="STOP"),
    ]
    _, message = await run(events)
    assert [(t.name, t.parsed) for t in message.tool_calls] == [("f", {"a": "x"}), ("g", {"b": 1})]
