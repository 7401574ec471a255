"""Edges of the web endpoint over a real uvicorn server: lone surrogates, body limit, CORS, authorization."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schwarm_stream_starlette import Channel, StreamHub, WebGuard, WebSettings, serve
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import schwarm_stream
from schwarm_stream.sources import from_iterator

#: any Python text, surrogate halves included (hypothesis leaves them out by default)
ANY_TEXT = st.text(
    st.one_of(st.characters(codec=None), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF))
)
SPLIT = ["a", "\ud83d", "\ude00", "b\udfffc", "\ud83d\ude00", "end"]


def make_app(hub: StreamHub, parts: list[str]) -> Any:
    pipeline = schwarm_stream.Pipeline([hub.sink])

    async def produce(channel: Channel) -> None:
        async with pipeline.open(from_iterator(parts), metadata=channel.metadata) as stream:
            await stream.collect()

    async def start(request: Request) -> Response:
        body = await request.body()
        return JSONResponse({"id": hub.start(produce).id, "got": len(body)})

    async def events(request: Request) -> Response:
        return hub.sse(request, request.path_params["id"])

    async def ws(websocket: WebSocket) -> None:
        await hub.websocket(websocket, websocket.path_params["id"])

    return hub.guard(
        Starlette(
            routes=[
                Route("/chat", start, methods=["POST"]),
                Route("/chat/{id}", events),
                WebSocketRoute("/ws/{id}", ws),
            ]
        )
    )


async def read(client: httpx.AsyncClient, url: str, last: str | None = None) -> list[Any]:
    headers = {"Last-Event-ID": last} if last else {}
    async with aconnect_sse(client, "GET", url, headers=headers) as es:
        return [ev async for ev in es.aiter_sse() if ev.data]


@pytest.mark.parametrize("fmt", ["json", "text", "vercel"])
async def test_lone_surrogates_reach_the_browser_and_resume_past_them(fmt: str) -> None:
    hub = StreamHub(format=fmt)
    async with serve(make_app(hub, SPLIT)) as url, httpx.AsyncClient(base_url=url) as client:
        cid = (await client.post("/chat")).json()["id"]
        events = await read(client, f"/chat/{cid}")
        body = "".join(ev.data for ev in events)
        assert "end" in body  # the reply did not die at the bad entry
        assert "\ufffd" in body or "\\ufffd" in body or "�" in body
        ids = [ev.id for ev in events if ev.id]
        # reconnect from before the bad entry, and from right after it: both reach the end
        for last in (ids[0], ids[2]):
            resumed = await read(client, f"/chat/{cid}", last=last)
            assert resumed and "end" in "".join(ev.data for ev in resumed)
            assert [ev.id for ev in resumed if ev.id] == [i for i in ids if int(i) > int(last)]


async def test_lone_surrogates_over_the_websocket_endpoint() -> None:
    hub = StreamHub()
    async with serve(make_app(hub, SPLIT)) as url, httpx.AsyncClient(base_url=url) as client:
        cid = (await client.post("/chat")).json()["id"]
        async with connect(url.replace("http://", "ws://") + f"/ws/{cid}") as ws:
            messages = [json.loads(m) async for m in ws]
        assert messages[-1]["event"] == "done"
        text = "".join(m["data"]["text"] for m in messages if m["event"] == "chunk")
        assert text == "a\ufffd\ufffdb\ufffdc\U0001f600end"


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(parts=st.lists(ANY_TEXT, min_size=1, max_size=6))
def test_any_text_crosses_the_starlette_endpoint(parts: list[str]) -> None:
    import asyncio

    async def run() -> None:
        hub = StreamHub()
        async with serve(make_app(hub, [*parts, "END"])) as url, httpx.AsyncClient(base_url=url) as client:
            cid = (await client.post("/chat")).json()["id"]
            events = await read(client, f"/chat/{cid}")
            assert events[-1].event == "done"
            ids = [ev.id for ev in events if ev.id]
            resumed = await read(client, f"/chat/{cid}", last=ids[len(ids) // 2])
            assert resumed[-1].event == "done"

    asyncio.run(run())


async def test_request_body_limit_answers_413() -> None:
    hub = StreamHub(max_body=1000)
    async with serve(make_app(hub, ["x"])) as url, httpx.AsyncClient(base_url=url) as client:
        ok = await client.post("/chat", content=b"x" * 1000)
        assert ok.status_code == 200 and ok.json()["got"] == 1000
        big = await client.post("/chat", content=b"x" * 1001)
        assert big.status_code == 413

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b"y" * 100

        streamed = await client.post("/chat", content=chunked())  # no Content-Length
        assert streamed.status_code == 413


def test_default_body_limit_is_one_mebibyte() -> None:
    assert WebSettings().max_body == 1_048_576
    assert WebSettings().cors_origins == ()


async def test_cors_is_closed_by_default_and_explicit_when_configured() -> None:
    for hub, allowed in (
        (StreamHub(), None),
        (StreamHub(cors_origins=["https://app.example"]), "https://app.example"),
    ):
        async with serve(make_app(hub, ["x"])) as url, httpx.AsyncClient(base_url=url) as client:
            cid = (await client.post("/chat")).json()["id"]
            for origin in ("https://evil.example", "https://app.example"):
                got = await client.get(f"/chat/{cid}", headers={"Origin": origin})
                pre = await client.options(
                    f"/chat/{cid}", headers={"Origin": origin, "Access-Control-Request-Method": "GET"}
                )
                expect = origin if origin == allowed else None
                assert got.headers.get("access-control-allow-origin") == expect
                assert pre.headers.get("access-control-allow-origin") == expect
    with pytest.raises(ValueError):
        WebSettings(cors_origins=("*",))
    with pytest.raises(ValueError):
        WebGuard(None, cors_origins=["*"])


@pytest.mark.parametrize("is_async", [False, True])
async def test_authorization_hook_denies_other_clients_channels(is_async: bool) -> None:
    def check(conn: HTTPConnection, channel_id: str) -> bool:
        return conn.headers.get("x-owner") == channel_id or conn.query_params.get("owner") == channel_id

    async def acheck(conn: HTTPConnection, channel_id: str) -> bool:
        return check(conn, channel_id)

    hub = StreamHub(authorize=acheck if is_async else check)
    async with serve(make_app(hub, ["hello"])) as url, httpx.AsyncClient(base_url=url) as client:
        cid = (await client.post("/chat")).json()["id"]
        denied = await client.get(f"/chat/{cid}", headers={"x-owner": "someone-else"})
        assert denied.status_code == 403 and "hello" not in denied.text
        allowed = await client.get(f"/chat/{cid}", headers={"x-owner": cid})
        assert allowed.status_code == 200 and "hello" in allowed.text
        ws_base = url.replace("http://", "ws://") + f"/ws/{cid}"
        async with connect(ws_base + "?owner=nobody") as ws:
            msgs = []
            try:
                async for m in ws:
                    msgs.append(json.loads(m))
            except ConnectionClosed:
                pass
        assert ws.close_code == 4403 and msgs == [
            {"event": "error", "data": {"status": 403, "message": "not allowed to read this channel"}}
        ]
        async with connect(ws_base + f"?owner={cid}") as ws:
            ok = [json.loads(m) async for m in ws]
        assert ok[-1]["event"] == "done"
