"""Chat Completions read from the raw body (``chat_body_events``) gives exactly what SSE framing then
``chat_events`` gives: the same events and the same typed error.

``chat_body_events`` frames the SSE inline: a piece of the body that is one whole ASCII ``data:``
line and its blank line is parsed from its bytes, any other piece goes through the SSE reader. Every
recorded Chat Completions body of the corpus, cut into pieces per event, at random and whole, and the
same bodies with payloads mutated (other objects, tool-call shapes, usage, finish reasons, non-ASCII
text, non-object data) and with framing faults (CR line ends, comments, event names, several data
lines, empty data, invalid UTF-8, a cut in the middle), must agree with the general path.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from schwarm_stream.sources import _openai_chat
from schwarm_stream.sources._sse import SSE, SSEReader
from tests.test_native_fastpath_chat import CHAT, _mutations


async def _pieces(pieces: list[Any]) -> AsyncIterator[Any]:
    for p in pieces:
        yield p


def _sse(pieces: list[bytes], max_event_bytes: int) -> list[SSE] | Exception:
    reader = SSEReader(unterminated=True, max_event_bytes=max_event_bytes)
    out: list[SSE] = []
    try:
        for p in pieces:
            out.extend(reader._general(p))  # the general line reader only
        out.extend(reader.end())
    except Exception as exc:
        return exc
    return out


async def _collect(it: AsyncIterator[Any]) -> tuple[list[Any], tuple[str, str] | None]:
    out: list[Any] = []
    try:
        async for ev in it:
            out.append(ev)
    except Exception as exc:
        return out, (type(exc).__name__, str(exc))
    return out, None


def general(pieces: list[bytes], monkeypatch: pytest.MonkeyPatch, max_event_bytes: int) -> Any:
    """SSE framing by the line reader, then chat_events with its fast path off."""
    framed = _sse(pieces, max_event_bytes)
    with monkeypatch.context() as m:
        m.setattr(_openai_chat, "_CHUNK_OBJECTS", ())
        if isinstance(framed, Exception):  # the framing error ends the stream after its events
            reader = SSEReader(unterminated=True, max_event_bytes=max_event_bytes)
            events: list[SSE] = []
            try:
                for p in pieces:
                    events.extend(reader._general(p))
            except Exception:
                pass

            async def failing() -> AsyncIterator[SSE]:
                for ev in events:
                    yield ev
                raise framed

            return asyncio.run(_collect(_openai_chat.chat_events(failing())))
        return asyncio.run(_collect(_openai_chat.chat_events(_pieces(framed))))


def body_path(pieces: list[bytes], max_event_bytes: int) -> Any:
    it = _openai_chat.chat_body_events(_pieces(pieces), max_event_bytes=max_event_bytes)
    return asyncio.run(_collect(it))


def per_event(body: bytes) -> list[bytes]:
    parts = body.split(b"\n\n")
    out = [p + b"\n\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def at_random(body: bytes, rnd: random.Random) -> list[bytes]:
    cuts = sorted(rnd.sample(range(1, len(body)), min(len(body) - 1, rnd.randint(1, 40)))) if len(body) > 1 else []
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


def check(pieces: list[bytes], monkeypatch: pytest.MonkeyPatch, max_event_bytes: int = 16 << 20) -> Any:
    fast = body_path(pieces, max_event_bytes)
    slow = general(pieces, monkeypatch, max_event_bytes)
    assert fast == slow
    return fast


@pytest.mark.parametrize("stream", CHAT, ids=[s.id for s in CHAT])
def test_recorded_bodies(stream: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(stream.id)
    check(per_event(stream.body), monkeypatch)
    check([stream.body], monkeypatch)
    check(at_random(stream.body, rnd), monkeypatch)


def _frame_faults() -> list[Any]:
    return [
        lambda e: e.replace(b"\n\n", b"\r\n\r\n"),
        lambda e: e.replace(b"\n\n", b"\r\r"),
        lambda e: b": keep-alive\n\n" + e,
        lambda e: b"event: message\n" + e,
        lambda e: b"event: other\n" + e,
        lambda e: e.replace(b"data: ", b"data:"),
        lambda e: e.replace(b"data: ", b"data:  "),
        lambda e: e[:-2] + b"\ndata: {}\n\n",
        lambda e: b"data: \n\n",
        lambda e: e.replace(b'"', b'"\xff', 1),
        lambda e: e.replace(b'"', "\u00e9".encode(), 1),
        lambda e: e.replace(b":", b":\r", 1),
        lambda e: e.replace(b',"', b',\r"', 1),  # CR as JSON whitespace: an SSE line end all the same
        lambda e: e.replace(b',"', b',\r\n"', 1),
        lambda e: e.replace(b",", b",\n", 1),
        lambda e: e[:-1],
        lambda e: e + b"\n",
        lambda e: b"id: 7\n" + e,
    ]


def _tool_mutations() -> list[Any]:
    def delta(d: dict[str, Any]) -> dict[str, Any]:
        chs = d.get("choices") or [{}]
        ch = chs[0] if isinstance(chs[0], dict) else {}
        if not isinstance(ch.get("delta"), dict):
            ch["delta"] = {}
        dl: dict[str, Any] = ch["delta"]
        return dl

    def calls(d: dict[str, Any], value: Any) -> None:
        dl = delta(d)
        dl.clear()
        dl["tool_calls"] = value

    return [
        lambda d: calls(d, [{"index": 0, "function": {"arguments": '{"a":'}}]),
        lambda d: calls(d, [{"index": 1, "function": {"arguments": "1}"}}]),
        lambda d: calls(d, [{"index": 0, "id": "call_x", "function": {"name": "f", "arguments": ""}}]),
        lambda d: calls(d, [{"index": 0, "id": "call_y", "function": {"arguments": "2"}}]),
        lambda d: calls(d, [{"function": {"arguments": "3"}}]),
        lambda d: calls(d, [{"id": "call_z", "function": {"arguments": "4"}}]),
        lambda d: calls(d, [{"index": True, "function": {"arguments": "5"}}]),
        lambda d: calls(d, [{"index": 0, "function": {"arguments": "\u00e9"}}]),
        lambda d: calls(d, [{"index": 0, "function": {"arguments": "\ud83d"}}]),
        lambda d: calls(d, [{"index": 0, "function": {"arguments": {"k": 1}}}]),
        lambda d: calls(d, [{"index": 0, "function": "x"}]),
        lambda d: calls(d, [{"index": 0, "function": {"arguments": "6"}}, {"index": 1, "function": {"arguments": "7"}}]),
        lambda d: calls(d, []),
        lambda d: calls(d, None),
        lambda d: calls(d, "x"),
    ]


@pytest.mark.parametrize("seed", range(60))
def test_mutated_bodies(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(seed)
    mutations = _mutations() + _tool_mutations() * 2
    faults = _frame_faults()
    stream = CHAT[seed % len(CHAT)]
    framed = _sse([stream.body], 16 << 20)
    assert isinstance(framed, list)
    events: list[bytes] = []
    for ev in framed:
        data = ev.data
        if rnd.random() < 0.25 and data != "[DONE]":
            try:
                d = json.loads(data)
            except ValueError:
                d = None
            if isinstance(d, dict):
                rnd.choice(mutations)(d)
                data = json.dumps(d, separators=(",", ":"))
            if rnd.random() < 0.05:
                data = rnd.choice(["[1]", "{bad", "null", "3", "[DONE]", '"s"'])
        raw = b"data: " + data.encode("utf-8", "surrogatepass") + b"\n\n"
        if rnd.random() < 0.04:
            raw = rnd.choice(faults)(raw)
        events.append(raw)
    if rnd.random() < 0.3:  # a cut: the stream ends early, maybe inside an event
        body = b"".join(events)
        events = per_event(body[: rnd.randrange(1, len(body) + 1)])
    check(events, monkeypatch)
    check(at_random(b"".join(events), rnd), monkeypatch)
    if rnd.random() < 0.3:
        check(events, monkeypatch, max_event_bytes=rnd.choice([40, 200, 400]))


def test_the_raw_fast_path_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    # Most pieces of a recorded body cut per event skip the SSE reader.
    calls = {"n": 0}
    feed = SSEReader.feed

    def counting(self: SSEReader, raw: bytes) -> Any:
        calls["n"] += 1
        return feed(self, raw)

    monkeypatch.setattr(SSEReader, "feed", counting)
    pieces = 0
    for stream in CHAT:
        parts = per_event(stream.body)
        pieces += len(parts)
        body_path(parts, 16 << 20)
    assert calls["n"] < pieces / 2
