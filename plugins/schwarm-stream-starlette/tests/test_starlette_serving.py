"""Serving many streams over a real uvicorn server: compression, admission (503), admin endpoint,
broadcast and direct delivery, WebSocket permessage-deflate."""

from __future__ import annotations

import asyncio
import json
import shutil
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from schwarm_stream_starlette import Channel, StreamHub, admin_routes, serve
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

import schwarm_stream
from schwarm_stream import Admission, StreamRegistry
from schwarm_stream.sinks.sse import FrameCompressor, negotiate_encoding

OFF = {"plugins": {"autoload": False}}


class App:
    """A hub whose producers stream words, each after the test releases it (``gate``)."""

    def __init__(self, *, admission: Admission | None = None, words: int = 40, **settings: Any) -> None:
        self.registry = StreamRegistry()
        self.hub = StreamHub(admission=admission, **settings)
        self.pipeline = schwarm_stream.Pipeline(
            [self.hub.sink], config=OFF, registry=self.registry, admission=admission
        )
        self.words = words
        self.gate = asyncio.Event()
        self.first_sent = asyncio.Event()

    async def produce(self, channel: Channel) -> None:
        async def text() -> AsyncIterator[str]:
            yield "word0 "
            self.first_sent.set()
            await self.gate.wait()
            for n in range(1, self.words):
                yield f"word{n} "

        async with self.pipeline.open(text(), metadata=channel.metadata) as stream:
            await stream.collect()

    def app(self, *extra: Any) -> Starlette:
        hub = self.hub

        async def start(request: Request) -> Response:
            return JSONResponse({"id": (await hub.admit(self.produce)).id})

        async def oneshot(request: Request) -> Response:
            response: Response = hub.stream(request, self.produce)
            return response

        async def events(request: Request) -> Response:
            conn = request.query_params.get("conn")
            response: Response = hub.sse(request, request.path_params["id"], connection_id=conn)
            return response

        async def ws(websocket: WebSocket) -> None:
            await hub.websocket(
                websocket, websocket.path_params["id"], connection_id=websocket.query_params.get("conn")
            )

        return Starlette(
            routes=[
                Route("/chat", start, methods=["POST"]),
                Route("/oneshot", oneshot),
                Route("/chat/{id}", events),
                WebSocketRoute("/ws/{id}", ws),
                *extra,
            ],
            exception_handlers=hub.exception_handlers,
        )


def _chunks(events: list[Any]) -> str:
    return "".join(json.loads(e.data)["text"] for e in events if e.event == "chunk")


# -- compression -------------------------------------------------------------------------------------


def test_negotiation_follows_q_values_then_our_preference() -> None:
    assert negotiate_encoding(None) is None and negotiate_encoding("") is None
    assert negotiate_encoding("gzip") == "gzip"
    assert negotiate_encoding("gzip, zstd, br") == "zstd"
    assert negotiate_encoding("gzip;q=1, zstd;q=0.5") == "gzip"
    assert negotiate_encoding("zstd;q=0, gzip;q=0") is None
    assert negotiate_encoding("identity") is None
    assert negotiate_encoding("*") == "zstd"
    assert negotiate_encoding("*, zstd;q=0") == "br"
    assert negotiate_encoding("gzip, br", offered=("gzip",)) == "gzip"
    assert negotiate_encoding("deflate") is None
    with pytest.raises(ValueError):
        negotiate_encoding("x", offered=("lzma",))


@pytest.mark.parametrize("coding", ["gzip", "zstd", "br"])
def test_every_frame_decodes_on_its_own_arrival(coding: str) -> None:
    import brotli
    import zstandard

    comp = FrameCompressor(coding)
    decoders = {
        "gzip": zlib.decompressobj(31).decompress,
        "zstd": zstandard.ZstdDecompressor().decompressobj().decompress,
        "br": brotli.Decompressor().process,
    }
    decode = decoders[coding]
    frames = [f'id: {n}\nevent: chunk\ndata: {{"text":"word{n} "}}\n\n'.encode() for n in range(50)]
    for frame in frames:
        assert decode(comp.compress(frame)) == frame  # flushed: nothing waits for the next frame
    comp.finish()
    assert comp.bytes_out < comp.bytes_in


@pytest.mark.parametrize("coding", ["gzip", "zstd", "br"])
async def test_sse_is_compressed_and_decoded_by_httpx(coding: str) -> None:
    a = App()
    async with serve(a.app()) as url, httpx.AsyncClient(base_url=url) as client:
        cid = (await client.post("/chat")).json()["id"]
        a.gate.set()
        headers = {"Accept-Encoding": coding}
        async with aconnect_sse(client, "GET", f"/chat/{cid}", headers=headers) as es:
            assert es.response.headers["content-encoding"] == coding
            assert es.response.headers["vary"] == "Accept-Encoding"
            assert "content-length" not in es.response.headers
            events = [e async for e in es.aiter_sse() if e.data]
        plain = await client.get(f"/chat/{cid}", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
    assert _chunks(events) == "".join(f"word{n} " for n in range(40))
    assert events[-1].event == "done"
    assert plain.text.count("event: chunk") == 40


async def test_a_compressed_event_arrives_before_the_next_is_produced() -> None:
    a = App()
    async with serve(a.app()) as url, httpx.AsyncClient(base_url=url) as client:
        cid = (await client.post("/chat")).json()["id"]
        await asyncio.wait_for(a.first_sent.wait(), 10)
        dec = zlib.decompressobj(31)
        text = ""
        async with client.stream("GET", f"/chat/{cid}", headers={"Accept-Encoding": "gzip"}) as resp:
            assert resp.headers["content-encoding"] == "gzip"
            raw = resp.aiter_raw()
            while "word0" not in text:  # the producer is held after word0: only a flush delivers it
                text += dec.decompress(await asyncio.wait_for(raw.__anext__(), 10)).decode()
            a.gate.set()
            async for piece in raw:
                text += dec.decompress(piece).decode()
        assert dec.eof  # the compressed stream was ended properly
    assert text.count("event: chunk") == 40


async def test_compression_can_be_switched_off() -> None:
    a = App(compression=())
    async with serve(a.app()) as url, httpx.AsyncClient(base_url=url) as client:
        cid = (await client.post("/chat")).json()["id"]
        a.gate.set()
        resp = await client.get(f"/chat/{cid}", headers={"Accept-Encoding": "gzip, zstd, br"})
        assert "content-encoding" not in resp.headers and resp.text.count("event: chunk") == 40


# -- admission ---------------------------------------------------------------------------------------


async def test_a_full_server_answers_503_with_retry_after() -> None:
    admission = Admission(max_streams=1, on_full="refuse", retry_after=1.5)
    a = App(admission=admission)
    async with serve(a.app()) as url, httpx.AsyncClient(base_url=url) as client:
        first = await client.post("/chat")
        assert first.status_code == 200
        await asyncio.wait_for(a.first_sent.wait(), 10)
        refused = await client.post("/chat")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
        assert refused.json()["error"] == "AdmissionRefused" and refused.json()["reason"] == "full"
        oneshot = await client.get("/oneshot")
        assert oneshot.status_code == 503 and oneshot.headers["retry-after"] == "2"
        assert len(a.hub.channels) == 1  # no producer was started for the refused requests
        assert admission.stats().admitted == 1  # the producer's stream used the request's permit
        a.gate.set()
        task = a.hub.channels[first.json()["id"]].task
        assert task is not None
        await asyncio.wait_for(asyncio.shield(task), 10)
        assert admission.stats().active == 0
        again = await client.get("/oneshot")
        assert again.status_code == 200 and again.text.count("event: chunk") == 40
    assert a.registry.get_all_stats().by_outcome == {"complete": 2}


async def test_a_waiting_request_is_admitted_when_a_slot_frees() -> None:
    admission = Admission(max_streams=1, timeout=30)
    a = App(admission=admission)
    async with serve(a.app()) as url, httpx.AsyncClient(base_url=url) as client:
        await client.post("/chat")
        await asyncio.wait_for(a.first_sent.wait(), 10)
        waiting = asyncio.create_task(client.post("/chat"))
        for _ in range(500):
            if admission.stats().waiting == 1:
                break
            await asyncio.sleep(0.01)
        assert admission.stats().waiting == 1 and not waiting.done()
        a.gate.set()
        assert (await asyncio.wait_for(waiting, 10)).status_code == 200


# -- the admin endpoint --------------------------------------------------------------------------------


async def test_the_admin_endpoint_is_authorized_and_controls_streams() -> None:
    def operator(request: HTTPConnection) -> bool:
        return request.headers.get("authorization") == "Bearer admin-token"

    a = App(admission=Admission(max_streams=5))
    routes = a.hub.admin_routes(authorize=operator, registry=a.registry)
    async with serve(a.app(*routes)) as url, httpx.AsyncClient(base_url=url) as client:
        await client.post("/chat")
        await asyncio.wait_for(a.first_sent.wait(), 10)
        denied = await client.get("/admin/streams")
        assert denied.status_code == 403
        wrong = await client.get("/admin/streams", headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 403
        auth = {"Authorization": "Bearer admin-token"}
        body = (await client.get("/admin/streams", headers=auth)).json()
        (info,) = body["streams"]
        assert info["state"] == "running" and info["chunks"] == 1 and info["provider"] == "iterator"
        assert body["stats"]["live"] == 1 and body["admission"]["active"] == 1
        sid = info["id"]
        assert (await client.get(f"/admin/streams/{sid}", headers=auth)).json()["id"] == sid
        assert (await client.post(f"/admin/streams/{sid}/cancel")).status_code == 403
        assert (await client.post(f"/admin/streams/{sid}/explode", headers=auth)).status_code == 404
        done = await client.post(f"/admin/streams/{sid}/cancel", headers=auth)
        assert done.status_code == 200 and done.json()["ok"] is True
        for _ in range(500):
            if a.registry.get_all_stats().ended == 1:
                break
            await asyncio.sleep(0.01)
        stats = (await client.get("/admin/streams", headers=auth)).json()["stats"]
        assert stats["by_outcome"] == {"cancelled": 1} and stats["errors"] == {"StreamCancelled": 1}
        assert (await client.get(f"/admin/streams/{sid}", headers=auth)).status_code == 404
        assert (await client.post(f"/admin/streams/{sid}/pause", headers=auth)).status_code == 404


def test_the_admin_routes_need_an_authorize_callable() -> None:
    with pytest.raises(TypeError, match="authorize"):
        admin_routes(authorize=None)  # type: ignore[arg-type,unused-ignore]


async def test_an_async_authorize_gates_the_admin_endpoint() -> None:
    async def never(request: HTTPConnection) -> bool:
        return False

    async with serve(Starlette(routes=admin_routes(authorize=never, prefix="ops/"))) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/ops")).status_code == 403


# -- broadcast and direct delivery ---------------------------------------------------------------------


async def test_broadcast_reaches_every_channel_and_send_one_connection() -> None:
    a = App()
    async with serve(a.app()) as url, httpx.AsyncClient(base_url=url) as client:
        ids = [(await client.post("/chat")).json()["id"] for _ in range(2)]
        await asyncio.wait_for(a.first_sent.wait(), 10)
        got: dict[str, list[Any]] = {"a": [], "b": []}
        ready = {"a": asyncio.Event(), "b": asyncio.Event()}

        async def read(name: str, cid: str) -> None:
            async with aconnect_sse(client, "GET", f"/chat/{cid}?conn=conn-{name}") as es:
                assert es.response.headers["x-connection-id"] == f"conn-{name}"
                ready[name].set()
                async for e in es.aiter_sse():
                    if e.data:
                        got[name].append(e)

        readers = [asyncio.create_task(read("a", ids[0])), asyncio.create_task(read("b", ids[1]))]
        await asyncio.wait_for(asyncio.gather(ready["a"].wait(), ready["b"].wait()), 10)
        for _ in range(500):
            if set(a.hub.connections) == {"conn-a", "conn-b"}:
                break
            await asyncio.sleep(0.01)
        assert a.hub.broadcast({"notice": "maintenance at noon"}, event="notice") == 2
        assert await a.hub.send("conn-b", {"only": "b"}, event="direct")
        assert not await a.hub.send("conn-nobody", {"x": 1})
        a.gate.set()
        await asyncio.wait_for(asyncio.gather(*readers), 10)
    for name in ("a", "b"):
        notices = [e for e in got[name] if e.event == "notice"]
        assert [json.loads(e.data) for e in notices] == [{"notice": "maintenance at noon"}]
        assert notices[0].id  # written into the channel: it has an id, a resume replays it
    direct = [e for e in got["b"] if e.event == "direct"]
    assert [json.loads(e.data) for e in direct] == [{"only": "b"}]
    assert not [e for e in got["a"] if e.event == "direct"]
    assert _chunks(got["a"]) == _chunks(got["b"]) == "".join(f"word{n} " for n in range(40))
    assert a.hub.connections == {}  # closed responses leave the directory


async def test_websocket_negotiates_permessage_deflate_and_gets_direct_messages() -> None:
    a = App()
    async with serve(a.app()) as url, httpx.AsyncClient(base_url=url) as client:
        cid = (await client.post("/chat")).json()["id"]
        await asyncio.wait_for(a.first_sent.wait(), 10)
        ws_url = url.replace("http://", "ws://") + f"/ws/{cid}?conn=sock-1"
        async with connect(ws_url, compression="deflate") as ws:
            assert ws.response is not None
            assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
            assert ws.response.headers["X-Connection-Id"] == "sock-1"
            assert [type(e).__name__ for e in ws.protocol.extensions] == ["PerMessageDeflate"]
            first = json.loads(await ws.recv())
            assert first["event"] == "start" or first["event"] == "chunk"
            for _ in range(500):
                if "sock-1" in a.hub.connections:
                    break
                await asyncio.sleep(0.01)
            assert await a.hub.send("sock-1", {"hello": "you"}, event="direct")
            a.gate.set()
            messages = [json.loads(m) async for m in ws]
        assert {"event": "direct", "data": {"hello": "you"}} in messages
        text = "".join(m["data"]["text"] for m in [first, *messages] if m["event"] == "chunk")
        assert text == "".join(f"word{n} " for n in range(40))


JS = Path(__file__).resolve().parents[3] / "tests" / "js"
NODE = shutil.which("node")


@pytest.mark.skipif(
    NODE is None or not (JS / "node_modules" / "eventsource").is_dir(),
    reason="needs node and `npm ci --prefix tests/js` (the eventsource package)",
)
@pytest.mark.parametrize("coding", ["gzip", "br"])
async def test_the_eventsource_package_reads_a_compressed_reply(coding: str) -> None:
    a = App()
    async with serve(a.app()) as url, httpx.AsyncClient(base_url=url) as client:
        cid = (await client.post("/chat")).json()["id"]
        a.gate.set()
        assert NODE is not None
        proc = await asyncio.create_subprocess_exec(
            NODE,
            str(JS / "read_eventsource.mjs"),
            f"{url}/chat/{cid}",
            coding,
            cwd=JS,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["encoding"] == coding  # the reply was compressed, and Node decoded it
    chunks = [json.loads(e["data"])["text"] for e in result["events"] if e["type"] == "chunk"]
    assert "".join(chunks) == "".join(f"word{n} " for n in range(40))
    assert result["events"][-1]["type"] == "done"


async def test_a_direct_message_has_no_id_and_is_not_replayed() -> None:
    a = App()
    async with serve(a.app()) as url, httpx.AsyncClient(base_url=url) as client:
        cid = (await client.post("/chat")).json()["id"]
        await asyncio.wait_for(a.first_sent.wait(), 10)
        text = ""
        headers = {"Accept-Encoding": "identity"}
        async with client.stream("GET", f"/chat/{cid}?conn=raw", headers=headers) as resp:
            pieces = resp.aiter_text()
            while "word0" not in text:
                text += await asyncio.wait_for(pieces.__anext__(), 10)
            assert await a.hub.send("raw", "just for you", event="direct")
            a.gate.set()
            async for piece in pieces:
                text += piece
        replay = (await client.get(f"/chat/{cid}", headers=headers)).text
    blocks = text.split("\n\n")
    (direct,) = [b for b in blocks if "event: direct" in b]
    assert direct.split("\n") == ["event: direct", "data: just for you"]  # no id: resume ignores it
    assert "event: direct" not in replay
