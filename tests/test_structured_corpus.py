"""Typed streams on recorded real streams: the corpus answers that are JSON (structured-output and
JSON-mode recordings, e.g. openai-python's ``test_parse_pydantic_model``) and the recorded tool calls.

Each recording is replayed by the loopback server through the official SDK client, as recorded,
re-chunked at arbitrary byte boundaries, and truncated: the final value equals ``json.loads`` of the
recorded answer, partial values only grow into it, and a truncated recording never yields a final
value. Runs over the full corpus where it is found, else over the subset shipped in tests/data.
"""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import anthropic
import openai
import pytest

import schwarm_stream
from schwarm_stream import InvalidOutput, Partial, StreamError
from schwarm_stream.sources import anthropic_messages, openai_chat, openai_responses
from schwarm_stream.testing.server import ProviderServer, SSEReply
from tests.support.corpus import CorpusStream, corpus_root, load_corpus
from tests.test_structured_properties import grows_into

OFF: Any = {"plugins": {"autoload": False}}
HI = [{"role": "user", "content": "hi"}]


def _payloads(s: CorpusStream) -> list[dict[str, Any]]:
    out = []
    for line in s.body.decode("utf-8", "replace").splitlines():
        if line.startswith("data:"):
            data = line[5:].strip()
            try:
                payload = json.loads(data)
            except ValueError:
                continue
            if isinstance(payload, dict):
                out.append(payload)
    return out


def _recorded(s: CorpusStream) -> tuple[str, dict[int, tuple[str, str]]]:
    """The recorded answer text (choice 0) and tool calls (index -> name, arguments), read directly."""
    text: list[str] = []
    tools: dict[int, list[str]] = {}
    names: dict[int, str] = {}
    for d in _payloads(s):
        if s.protocol == "openai-chat":
            for ch in d.get("choices") or ():
                if (ch.get("index") or 0) != 0:
                    continue
                delta = ch.get("delta") or {}
                if isinstance(delta.get("content"), str):
                    text.append(delta["content"])
                for tc in delta.get("tool_calls") or ():
                    i = tc.get("index", 0)
                    fn = tc.get("function") or {}
                    if fn.get("name"):
                        names[i] = fn["name"]
                    tools.setdefault(i, []).append(fn.get("arguments") or "")
        elif s.protocol == "openai-responses":
            t = d.get("type")
            if t == "response.output_text.delta":
                text.append(d.get("delta") or "")
            elif t == "response.output_item.added" and (d.get("item") or {}).get("type") == "function_call":
                names[d.get("output_index", 0)] = d["item"].get("name", "")
            elif t == "response.function_call_arguments.delta":
                tools.setdefault(d.get("output_index", 0), []).append(d.get("delta") or "")
        else:
            t = d.get("type")
            if t == "content_block_start" and (d.get("content_block") or {}).get("type") == "tool_use":
                names[d["index"]] = d["content_block"].get("name", "")
            elif t == "content_block_delta":
                delta = d.get("delta") or {}
                if delta.get("type") == "text_delta":
                    text.append(delta.get("text", ""))
                elif delta.get("type") == "input_json_delta" and d["index"] in names:
                    tools.setdefault(d["index"], []).append(delta.get("partial_json", ""))
    calls = {i: (names[i], "".join(parts)) for i, parts in tools.items() if i in names}
    return "".join(text), calls


def _is_json(text: str) -> bool:
    try:
        return isinstance(json.loads(text), (dict, list))
    except ValueError:
        return False


def _complete(s: CorpusStream) -> bool:
    m = s.manifest
    return m.get("finish") not in (None, "length", "max_tokens", "error") and "error" not in str(
        m.get("features")
    )


_ROOT = corpus_root()
_ALL = load_corpus(_ROOT) if _ROOT is not None else []
JSON_ANSWERS = [s for s in _ALL if _complete(s) and _is_json(_recorded(s)[0])][:16]
TOOL_CALLS = [
    s
    for s in _ALL
    if _complete(s)
    and (calls := _recorded(s)[1])
    and all(_is_json(a) and json.loads(a) != {} for _, a in calls.values())
    and len({n for n, _ in calls.values()}) == len(calls)  # one call per name: the test keys by name
][:16]
CUT_JSON = [s for s in _ALL if str(s.manifest.get("note", "")).endswith("::test_parse_max_tokens_reached")][
    :4
]


def test_the_corpus_has_typed_answers_and_tool_calls() -> None:
    # guards the parametrized tests below against running over nothing
    assert TOOL_CALLS
    if _ROOT is not None and (_ROOT / "openai-python").is_dir() and len(_ALL) > 100:
        assert len(JSON_ANSWERS) >= 4  # the full corpus has structured-output recordings


def _source(server: ProviderServer, protocol: str) -> Any:
    if protocol == "anthropic-messages":
        a = anthropic.AsyncAnthropic(api_key="x", base_url=server.anthropic_base_url, max_retries=0)
        return anthropic_messages(a, model="claude-sonnet-4-20250514", max_tokens=64, messages=HI)
    o = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0)
    if protocol == "openai-responses":
        return openai_responses(o, model="gpt-4o", input="hi")
    return openai_chat(o, model="gpt-4o", messages=HI)


def _rechunked(body: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    parts, pos = [], 0
    while pos < len(body):
        n = rng.randint(1, 64)
        parts.append(body[pos : pos + n])
        pos += n
    return parts


async def _replay(s: CorpusStream, parts: list[bytes], **typed: Any) -> tuple[Any, list[Partial]]:
    partials: list[Partial] = []
    async with ProviderServer() as server:
        server.script(s.protocol, SSEReply(parts))
        source = _source(server, s.protocol)
        if s.protocol == "anthropic-messages" and "output" in typed:
            # recorded answers are text; a caller-shaped request (native structured output) reads text
            source = source.with_body(output_format={"type": "json_schema", "schema": {}})
        async with schwarm_stream.open(source, config=OFF, **typed) as stream:
            async for ev in stream:
                if isinstance(ev, Partial):
                    partials.append(ev)
            result = await (
                stream.get_final_output() if "output" in typed else stream.get_final_tool_arguments()
            )
    return result, partials


@pytest.mark.parametrize("recorded", JSON_ANSWERS, ids=lambda s: s.id)
@pytest.mark.parametrize("chunking", ["as-recorded", "rechunked"])
async def test_recorded_json_answer_typed(recorded: CorpusStream, chunking: str) -> None:
    text, _ = _recorded(recorded)
    expected = json.loads(text)
    parts = [recorded.body] if chunking == "as-recorded" else _rechunked(recorded.body, len(text))
    value, partials = await _replay(
        recorded, parts, output=dict[str, Any] if isinstance(expected, dict) else list
    )
    assert value == expected
    assert partials and partials[-1].data == expected
    for before, after in itertools.pairwise(partials):
        assert grows_into(before.data, after.data, before.incomplete)
    assert all(grows_into(p.data, expected, p.incomplete) for p in partials)


@pytest.mark.parametrize("recorded", TOOL_CALLS, ids=lambda s: s.id)
async def test_recorded_tool_calls_typed(recorded: CorpusStream) -> None:
    _, calls = _recorded(recorded)
    tools = {name: dict[str, Any] for name, _ in calls.values()}
    parts = _rechunked(recorded.body, 7)
    arguments, partials = await _replay(recorded, parts, tools=tools)
    assert arguments == {i: json.loads(a) for i, (_, a) in calls.items()}
    by_index: dict[int | None, list[Partial]] = {}
    for p in partials:
        by_index.setdefault(p.tool_index, []).append(p)
    assert set(by_index) == set(arguments)
    for index, seen in by_index.items():
        assert seen[-1].data == arguments[index] or grows_into(
            seen[-1].data, arguments[index], seen[-1].incomplete
        )
        assert all(grows_into(p.data, arguments[index], p.incomplete) for p in seen)


@pytest.mark.parametrize("recorded", [*JSON_ANSWERS[:4], *TOOL_CALLS[:4]], ids=lambda s: s.id)
async def test_truncated_recording_never_yields_a_final_value(recorded: CorpusStream) -> None:
    text, calls = _recorded(recorded)
    cut = recorded.body[: len(recorded.body) // 2]
    typed: dict[str, Any] = (
        {"output": dict[str, Any]}
        if text and _is_json(text)
        else {"tools": {n: dict[str, Any] for n, _ in calls.values()}}
    )
    with pytest.raises(StreamError):
        await _replay(recorded, [cut], **typed)


@pytest.mark.parametrize("recorded", CUT_JSON, ids=lambda s: s.id)
async def test_recorded_max_tokens_answer_is_invalid_output_never_a_value(recorded: CorpusStream) -> None:
    # openai-python's test_parse_max_tokens_reached: the JSON answer cut by max_tokens (finish=length)
    text, _ = _recorded(recorded)
    with pytest.raises(InvalidOutput) as info:
        await _replay(recorded, [recorded.body], output=dict[str, Any])
    assert info.value.truncated and info.value.raw_text == text
