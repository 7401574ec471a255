"""Every recorded stream of the corpus, through the official SDK client over a loopback socket.

For each stream: the recorded body is served by :class:`ProviderServer`, the
official client (``openai.AsyncOpenAI`` / ``anthropic.AsyncAnthropic``) opens it
through our source, and our accumulated message is compared with what the
SDK's *own* accumulator makes of the same bytes (``tests/support/oracle.py``).

Where the SDK rejects a stream, or gets it wrong, the test states what we do
instead (see ``DIVERGENCES``).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import anthropic
import openai
import pytest

import schwarm_stream
from schwarm_stream import ProtocolError, ProviderError, StreamError, StreamIncomplete
from schwarm_stream.sources import anthropic_messages, openai_chat, openai_responses
from schwarm_stream.testing.server import ProviderServer, SSEReply
from tests.support.corpus import CorpusStream, corpus_root, is_subset, load_corpus
from tests.support.oracle import OracleRejected, sdk_result

ROOT = corpus_root()
STREAMS: list[CorpusStream] = load_corpus(ROOT) if ROOT is not None else []
# The full corpus where present, else the subset shipped in tests/data/corpus: never skipped.

ROUTE = {
    "openai-chat": "openai-chat",
    "openai-responses": "openai-responses",
    "anthropic-messages": "anthropic-messages",
}


def _source(protocol: str, server: ProviderServer) -> Any:
    if protocol == "anthropic-messages":
        ant = anthropic.AsyncAnthropic(api_key="x", base_url=server.anthropic_base_url)
        return anthropic_messages(ant, model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url)
    if protocol == "openai-responses":
        return openai_responses(client, model="m", input="hi")
    return openai_chat(client, model="m", messages=[{"role": "user", "content": "hi"}])


# Accumulation only: one attempt per recording, nothing retried or recovered.
PIPELINE = schwarm_stream.Pipeline(
    config={"plugins": {"autoload": False, "disable": ["retry", "recovery", "timeouts"]}}
)


async def replay(stream: CorpusStream) -> tuple[schwarm_stream.Message, BaseException | None]:
    async with ProviderServer() as server:
        server.script(ROUTE[stream.protocol], SSEReply([stream.body]))
        async with PIPELINE.open(_source(stream.protocol, server)) as s:
            try:
                await s.collect()
            except StreamError as exc:
                assert exc.partial is not None
                return exc.partial, exc
        return s.message, None


def ours(message: schwarm_stream.Message, protocol: str) -> dict[str, Any]:
    d = message.to_dict()
    if protocol == "anthropic-messages":  # the SDK keeps parsed input; compare parsed forms
        d["tool_calls"] = [{"id": t.id, "name": t.name, "input": t.parsed} for t in message.tool_calls]
    return d


def oracle_view(expected: dict[str, Any], protocol: str) -> dict[str, Any]:
    d = {k: expected[k] for k in ("text", "reasoning", "refusal", "finish_reason", "usage")}
    if protocol == "anthropic-messages":
        d["tool_calls"] = [
            {"id": t["id"], "name": t["name"], "input": t["input"]} for t in expected["tool_calls"]
        ]
    else:
        d["tool_calls"] = [
            {"id": t["id"], "name": t["name"], "arguments": t["arguments"]} for t in expected["tool_calls"]
        ]
    return d


def anthropic_terminated(body: bytes) -> bool:
    """A whole message_stop payload arrived (issue 14, item 11).

    Followed by its blank line or not: a body whose last bytes are a complete
    ``data: {"type":"message_stop"}`` at a clean end is accepted, like both SDKs
    do (11 fixtures end so, e.g. ``basic_response.txt``); a cut inside it does
    not parse and stays truncated.
    """
    return any(p.get("type") == "message_stop" for p in _payloads(body))


def _payloads(body: bytes) -> list[dict[str, Any]]:
    out = []
    for line in body.replace(b"\r\n", b"\n").split(b"\n"):
        if line.startswith(b"data: {"):
            try:
                out.append(json.loads(line[6:]))
            except ValueError:
                pass
    return out


def delta_texts(body: bytes) -> list[str]:
    return [p["delta"] for p in _payloads(body) if p.get("type") == "response.output_text.delta"]


def sequence_gap(body: bytes) -> bool:
    seqs = [p["sequence_number"] for p in _payloads(body) if "sequence_number" in p]
    return any(b != a + 1 for a, b in itertools.pairwise(seqs))


def trimmed_deltas(body: bytes) -> bool:
    done = "".join(p["text"] for p in _payloads(body) if p.get("type") == "response.output_text.done")
    return done != "".join(delta_texts(body))


def last_usage(body: bytes) -> dict[str, int] | None:
    """The last non-null usage object in a chat stream's raw payloads."""
    found = None
    for line in body.splitlines():
        if line.startswith(b"data: {"):
            u = json.loads(line[6:]).get("usage")
            if u:
                found = {"input_tokens": u["prompt_tokens"], "output_tokens": u["completion_tokens"]}
    return found


@pytest.mark.parametrize("stream", STREAMS, ids=[s.id for s in STREAMS])
async def test_matches_the_sdk_accumulator(stream: CorpusStream) -> None:
    message, error = await replay(stream)
    got = ours(message, stream.protocol)
    try:
        expected = sdk_result(stream.protocol, stream.body)
    except OracleRejected as rejected:
        # The SDK cannot accumulate this stream; say what we do instead.
        if rejected.error == "APIError":  # in-band error chunk / event: ours is a typed, classified error
            assert isinstance(error, ProviderError) and error.in_band, error
        elif rejected.error == "JSONDecodeError":  # a malformed data line: typed, with the byte offset
            assert isinstance(error, ProtocolError) and error.offset is not None, error
        else:  # the SDK's RuntimeError on index-less lists, id rotation, resumed streams: we complete
            assert error is None, f"{rejected.reason}: we raised {error!r}"
            assert message.complete and message.content
        return

    if stream.protocol == "openai-responses" and sequence_gap(stream.body):
        # A hand-trimmed fixture: events were cut out and its sequence numbers jump.
        # The SDK reports the server's final object as if nothing were missing; we
        # stop at the gap, with the partial delivered so far.
        assert isinstance(error, ProtocolError) and "sequence_number jumped" in str(error), error
        assert "".join(delta_texts(stream.body)).startswith(message.text) and not message.complete
        return

    if stream.protocol == "anthropic-messages" and not anthropic_terminated(stream.body):
        # No whole message_stop ever arrives (the recording stops inside it, or
        # before it): the SDK reports success anyway; we report the truncation,
        # with the exact partial message.
        assert isinstance(error, StreamIncomplete), error
        assert not message.complete
        for call in got["tool_calls"]:
            if call["input"] is None:  # arguments still in flight: the SDK shows a lenient parse
                next(w for w in expected["tool_calls"] if w["id"] == call["id"])["input"] = None
    else:
        assert error is None, f"{type(error).__name__}: {error}"
        assert message.complete
    want = oracle_view(expected, stream.protocol)
    for key in DIVERGENCES.get(_divergence_key(stream, expected), ()):
        got.pop(key, None)
        want.pop(key, None)
    if expected["refusal"] == "" and got["refusal"] is None:
        # A role chunk with `"refusal": ""` makes the SDK's refusal an empty string;
        # no refusal text arrived, and ours says so with None.
        want["refusal"] = None
    if (
        stream.protocol == "anthropic-messages"
        and message.finish_reason == "max_tokens"
        and message.tool_calls
    ):
        # Cut off inside the tool input: the SDK hands out a partial dict as if it were
        # the input; ours keeps the raw JSON and marks the call invalid.
        cut = [t for t in message.tool_calls if not t.valid]
        assert cut and all(t.parsed is None and t.error for t in cut)
        got["tool_calls"] = [t for t in got["tool_calls"] if t["input"] is not None]
        want["tool_calls"] = want["tool_calls"][: len(got["tool_calls"])]
    if stream.protocol == "openai-responses" and trimmed_deltas(stream.body):
        # Hand-edited fixture: its text deltas do not add up to the `.done` texts.
        # The SDK reports the server's final object; ours is what was streamed.
        assert got["text"] == "".join(delta_texts(stream.body))
        got.pop("text")
        want.pop("text")
    if expected.get("usage") is None and stream.protocol == "openai-chat" and got["usage"] is not None:
        # The SDK replaces usage on every chunk, so a trailing `usage: null` erases it;
        # ours keeps the provider's last reported usage.
        assert got["usage"] == last_usage(stream.body)
        got["usage"] = None
    got.pop("complete")
    assert got == want


def _divergence_key(stream: CorpusStream, expected: dict[str, Any]) -> str:
    return (
        "mistral-list-content" if "mistral" in stream.file.lower() and b'"content":[' in stream.body else ""
    )


#: Keys we deliberately compute differently from the SDK, and why.
DIVERGENCES: dict[str, tuple[str, ...]] = {
    # Mistral streams `content` as a list of typed parts; the SDK's merge drops
    # them, we keep them (text parts as text, thinking parts as reasoning).
    # Checked separately in test_mistral_list_content.
    "mistral-list-content": ("text", "reasoning"),
}


def _mistral_parts(body: bytes) -> tuple[str, str]:
    """(text, reasoning) of choice 0 straight from the wire: string contents and text parts are text,
    thinking parts (a string or a list of text parts) are reasoning."""
    text: list[str] = []
    reasoning: list[str] = []
    for payload in _payloads(body):
        for choice in payload.get("choices") or []:
            content = (choice.get("delta") or {}).get("content") if choice.get("index") == 0 else None
            if isinstance(content, str):
                text.append(content)
            for part in content if isinstance(content, list) else ():
                if part.get("type") == "text":
                    text.append(part.get("text") or "")
                elif part.get("type") == "thinking":
                    inner = part.get("thinking")
                    parts = [inner] if isinstance(inner, str) else [p.get("text", "") for p in inner or ()]
                    reasoning.extend(parts)
    return "".join(text), "".join(reasoning)


MISTRAL = [s for s in STREAMS if _divergence_key(s, {}) == "mistral-list-content"]


@pytest.mark.parametrize("stream", MISTRAL, ids=[s.id for s in MISTRAL])
async def test_mistral_list_content(stream: CorpusStream) -> None:
    """The divergence above: where the SDK's merge drops Mistral's list-valued ``content``, we keep it."""
    message, error = await replay(stream)
    assert error is None and message.complete
    text, reasoning = _mistral_parts(stream.body)
    assert reasoning and text  # the recording has both kinds of parts
    assert (message.text, message.reasoning) == (text, reasoning)
    sdk = sdk_result(stream.protocol, stream.body)
    assert (sdk["text"], sdk["reasoning"]) != (text, reasoning)  # still a divergence, else drop it


def test_corpus_is_not_empty() -> None:
    assert ROOT is not None, "$SCHWARM_STREAM_CORPUS names no corpus"
    assert len(STREAMS) > (30 if is_subset(ROOT) else 250)
    assert {s.protocol for s in STREAMS} == set(ROUTE)
    assert MISTRAL, "no Mistral list-content stream left to check the divergence on"
