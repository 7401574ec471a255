"""StreamHub over a real uvicorn server: headers, resume, status codes, disconnect policies, WebSocket, config."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest
from httpx_sse import aconnect_sse
from schwarm_stream_starlette import Channel, StreamHub, WebSettings, serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

import schwarm_stream
from schwarm_stream import ConfigError
from schwarm_stream.sources import openai_chat
from schwarm_stream.testing.server import OfflineProvider, ProviderServer


def make_app(hub: StreamHub, provider_url: str, outcomes: list[str]) -> Starlette:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=provider_url, max_retries=0)
    pipeline = schwarm_stream.Pipeline([hub.sink])

    async def produce(channel: Channel) -> None:
        msgs: Any = [{"role": "user", "content": "please repeat this rather long sentence slowly"}]
        stream = pipeline.open(openai_chat(client, model="m", messages=msgs), metadata=channel.metadata)
        try:
            async with stream:
                await stream.collect()
        finally:
            outcomes.append(str(stream.outcome))

    async def start(request: Request) -> Response:
        return JSONResponse({"id": hub.start(produce).id})

    async def events(request: Request) -> Response:
        cut = request.query_params.get("cut")
        return hub.sse(request, request.path_params["id"], max_events=int(cut) if cut else None)

    async def ws(websocket: WebSocket) -> None:
        await hub.websocket(websocket, websocket.path_params["id"])

    return Starlette(
        routes=[
            Route("/chat", start, methods=["POST"]),
            Route("/chat/{id}", events),
            WebSocketRoute("/ws/{id}", ws),
        ]
    )


async def read_events(
    client: httpx.AsyncClient, url: str, last: str | None = None, limit: int | None = None
) -> list[Any]:
    headers = {"Last-Event-ID": last} if last else {}
    out = []
    async with aconnect_sse(client, "GET", url, headers=headers) as es:
        async for ev in es.aiter_sse():
            if ev.data:
                out.append(ev)
            if limit is not None and len(out) >= limit:
                break  # leaving the block closes the connection: a client disconnect
    return out


async def test_sse_headers_resume_and_status_codes() -> None:
    outcomes: list[str] = []
    hub = StreamHub(on_disconnect="finish", history=64)
    small = StreamHub(history=4)
    async with ProviderServer(OfflineProvider()) as provider:
        app = make_app(hub, provider.openai_base_url, outcomes)
        async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
            cid = (await client.post("/chat")).json()["id"]
            async with aconnect_sse(client, "GET", f"/chat/{cid}?cut=3") as es:
                assert es.response.headers["cache-control"] == "no-store"
                assert es.response.headers["x-accel-buffering"] == "no"
                assert es.response.headers["content-type"].startswith("text/event-stream")
                first = [ev async for ev in es.aiter_sse() if ev.data]
            assert [int(e.id) for e in first] == [1, 2, 3]
            rest = await read_events(client, f"/chat/{cid}", last=first[-1].id)
            ids = [int(e.id) for e in first + rest]
            assert ids == list(range(1, len(ids) + 1))  # nothing missing, nothing twice
            assert rest[-1].event == "done"
            text = "".join(json.loads(e.data)["text"] for e in first + rest if e.event == "chunk")
            assert text.startswith("You said: please repeat")
            assert (await client.get(f"/chat/{cid}", headers={"Last-Event-ID": "x"})).status_code == 400
            assert (await client.get("/chat/unknown")).status_code == 404
        async with serve(make_app(small, provider.openai_base_url, outcomes)) as url:
            async with httpx.AsyncClient(base_url=url) as client:
                cid = (await client.post("/chat")).json()["id"]
                await asyncio.wait_for(asyncio.shield(small.channels[cid].task), 10)  # type: ignore[arg-type]
                gone = await client.get(f"/chat/{cid}", headers={"Last-Event-ID": "1"})
                assert gone.status_code == 410 and gone.json()["error"] == "ResumeGone"
    assert outcomes == ["complete", "complete"]


@pytest.mark.parametrize("policy", ["cancel", "finish"])
async def test_client_disconnect_cancels_or_finishes_the_producer(policy: str) -> None:
    outcomes: list[str] = []
    hub = StreamHub(on_disconnect=policy, cancel_grace=0)
    async with ProviderServer(OfflineProvider(chunk_delay=0.05)) as provider:
        app = make_app(hub, provider.openai_base_url, outcomes)
        async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
            cid = (await client.post("/chat")).json()["id"]
            seen = await read_events(client, f"/chat/{cid}", limit=2)  # then the client goes away
            assert len(seen) == 2
            channel = hub.channels[cid]
            assert channel.task is not None
            await asyncio.wait_for(asyncio.shield(channel.task), 10)
            if policy == "cancel":
                assert outcomes == ["cancelled"]
                assert channel.cancelled_by_disconnect
                await provider.wait_disconnect()  # the provider connection was closed too
                tail = await read_events(client, f"/chat/{cid}", last=seen[-1].id)
                assert [e.event for e in tail][-3:] == ["end", "producer_error", "done"]
                assert json.loads(tail[-3].data)["outcome"] == "cancelled"
            else:
                assert outcomes == ["complete"]
                assert not channel.cancelled_by_disconnect
                tail = await read_events(client, f"/chat/{cid}", last=seen[-1].id)
                assert int(tail[0].id) == int(seen[-1].id) + 1
                assert [e.event for e in tail][-2:] == ["end", "done"]


async def test_websocket_endpoint_with_resume() -> None:
    outcomes: list[str] = []
    hub = StreamHub()
    async with ProviderServer(OfflineProvider()) as provider:
        app = make_app(hub, provider.openai_base_url, outcomes)
        async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
            cid = (await client.post("/chat")).json()["id"]
            ws_url = url.replace("http://", "ws://") + f"/ws/{cid}"
            async with connect(ws_url) as ws:
                messages = [json.loads(m) async for m in ws]
            assert messages[-1]["event"] == "done"
            ids = [m["id"] for m in messages]
            async with connect(ws_url + f"?after={ids[2]}") as ws:
                resumed = [json.loads(m) async for m in ws]
            assert [m["id"] for m in resumed] == ids[3:]


async def test_config_section_from_the_entry_point() -> None:
    pipeline = schwarm_stream.Pipeline(config={"starlette": {"on_disconnect": "cancel", "format": "vercel"}})
    assert "starlette" in {p.name for p in pipeline.plugins() if p.status == "enabled"}
    hub = StreamHub.from_config(pipeline.config, cancel_grace=1.5)
    assert hub.settings == WebSettings(on_disconnect="cancel", format="vercel", cancel_grace=1.5)
    assert hub.sink.headers["x-vercel-ai-ui-message-stream"] == "v1"
    with pytest.raises(ConfigError, match=r"starlette\.on_disconnect"):
        schwarm_stream.Pipeline(config={"starlette": {"on_disconnect": "ignore"}}).plugins()
