"""Sinks never die on any Python str (issue 14 item 2): lone surrogates over real sockets, all formats.

Frames are written to the socket with strict UTF-8 encoding, so an unencodable frame would kill the reply.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from httpx_sse import aconnect_sse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

import schwarm_stream
from schwarm_stream.sinks import SSESink, encode_sse, serve_websocket
from schwarm_stream.sinks._log import clean_text
from schwarm_stream.sources import from_iterator

SPLIT = ["a", "\ud83d", "\ude00", "b\udfffc", "\ud83d\ude00", "end"]
#: any Python text, surrogate halves included (hypothesis leaves them out by default)
ANY_TEXT = st.text(
    st.one_of(st.characters(codec=None), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF))
)


async def produce(sink: SSESink, parts: list[str]) -> schwarm_stream.Stream:
    async with schwarm_stream.Pipeline([sink]).open(from_iterator(parts)) as stream:
        await stream.collect()
    return stream


class SSEServer:
    """A bare HTTP/1.1 server over asyncio streams writing the sink's frames with strict UTF-8."""

    def __init__(self, sink: SSESink) -> None:
        self.sink = sink
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        path = head[0].split(" ")[1].strip("/")
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        try:
            async for frame in self.sink.frames(path, headers.get("last-event-id")):
                writer.write(frame.encode("utf-8"))  # strict: raises on a lone surrogate
                await writer.drain()
        finally:
            writer.close()

    async def __aenter__(self) -> SSEServer:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


async def read(url: str, last: str | None = None) -> list[Any]:
    headers = {"Last-Event-ID": last} if last else {}
    async with (
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "GET", url, headers=headers) as es,
    ):
        return [ev async for ev in es.aiter_sse() if ev.data]


def test_clean_text_joins_pairs_and_replaces_halves() -> None:
    assert clean_text("a\ud83d\ude00b") == "a\U0001f600b"
    assert clean_text("\ud83d") == "\ufffd"
    assert clean_text("\ude00\ud83d") == "\ufffd\ufffd"
    assert clean_text("plain é") == "plain é"
    encode_sse("\ud83d", event="x\udc00", id=1).encode("utf-8")


@pytest.mark.parametrize("fmt", ["json", "text", "vercel"])
async def test_sse_sink_survives_lone_surrogates_and_resumes_past_them(fmt: str) -> None:
    sink = SSESink(format=fmt, heartbeat=None)
    stream = await produce(sink, SPLIT)
    async with SSEServer(sink) as server:
        events = await read(f"{server.url}/{stream.id}")
        body = "".join(ev.data for ev in events)
        assert "end" in body and "\ufffd" in body
        ids = [ev.id for ev in events if ev.id]
        for last in ids[:4]:  # before, at and after the bad entries
            resumed = await read(f"{server.url}/{stream.id}", last=last)
            assert [ev.id for ev in resumed if ev.id] == [i for i in ids if int(i) > int(last)]


@pytest.fixture
async def ws_url() -> Any:
    sinks: dict[str, SSESink] = {}

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        url = urlsplit(ws.request.path)
        sink_id, cid = url.path.strip("/").split("/")
        after = parse_qs(url.query).get("after", [None])[0]
        await ws.close(await serve_websocket(sinks[sink_id], cid, ws.send, after))

    async with ws_serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield sinks, f"ws://127.0.0.1:{port}"


async def ws_read(url: str) -> list[Any]:
    async with connect(url) as ws:
        return [json.loads(m) async for m in ws]


@pytest.mark.parametrize("fmt", ["json", "text", "vercel"])
async def test_websocket_sink_survives_lone_surrogates(ws_url: Any, fmt: str) -> None:
    sinks, base = ws_url
    sinks[fmt] = sink = SSESink(format=fmt, heartbeat=None)
    stream = await produce(sink, SPLIT)
    messages = await ws_read(f"{base}/{fmt}/{stream.id}")
    assert "end" in json.dumps(messages, ensure_ascii=False)
    ids = [m["id"] for m in messages if "id" in m]
    resumed = await ws_read(f"{base}/{fmt}/{stream.id}?after={ids[1]}")
    assert [m["id"] for m in resumed if "id" in m] == ids[2:]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(parts=st.lists(ANY_TEXT, min_size=1, max_size=6), fmt=st.sampled_from(["json", "text", "vercel"]))
def test_any_text_crosses_sse_and_websocket(parts: list[str], fmt: str) -> None:
    async def run() -> None:
        sink = SSESink(format=fmt, heartbeat=None)
        stream = await produce(sink, [*parts, "END"])
        async with SSEServer(sink) as server:
            events = await read(f"{server.url}/{stream.id}")
            ids = [ev.id for ev in events if ev.id]
            assert ids and ids[-1] == str(sink.get(stream.id).last_id)
            last = ids[len(ids) // 2]
            resumed = await read(f"{server.url}/{stream.id}", last=last)
            assert [ev.id for ev in resumed if ev.id] == [i for i in ids if int(i) > int(last)]
        sent: list[str] = []

        async def send(msg: str) -> None:
            msg.encode("utf-8")
            sent.append(msg)

        assert await serve_websocket(sink, stream.id, send) == 1000
        assert all(json.loads(m) for m in sent)

    asyncio.run(run())
