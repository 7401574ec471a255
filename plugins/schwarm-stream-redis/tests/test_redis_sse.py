"""SSE from Redis equals what the local SSE sink sends, ids = seq, and Last-Event-ID resumes exactly."""

from __future__ import annotations

import re
from typing import Any

import openai
import pytest
import redis.asyncio
from schwarm_stream_redis import RedisSettings, RedisStreamPlugin, StreamUnknown, sse_frames
from schwarm_stream_redis.testing import RedisServer

from schwarm_stream import Pipeline
from schwarm_stream.sinks import SSESink
from schwarm_stream.sources import openai_chat
from schwarm_stream.testing.server import ProviderServer, SSEReply, openai_chat_events


async def text_of(frames: Any) -> str:
    return "".join([f async for f in frames])


def ids(sse: str) -> list[int]:
    return [int(m) for m in re.findall(r"^id: (\d+)$", sse, flags=re.M)]


@pytest.mark.parametrize("fmt", ["json", "vercel"])
async def test_sse_from_redis_is_byte_identical_to_the_local_sink_and_resumes_exactly(
    redis_server: RedisServer,
    rclient: redis.asyncio.Redis,
    provider: ProviderServer,
    oai_client: openai.AsyncOpenAI,
    fmt: str,
) -> None:
    first = openai_chat_events(["lost ", "words "], finish_reason=None, usage=None, done=False)
    calls = [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}]
    second = openai_chat_events(["line one\n", "data: forged\n\nid: 999\n", "end"], tool_calls=calls)
    provider.script("openai-chat", SSEReply(first, end="truncate"), SSEReply(second))
    local = SSESink(format=fmt, heartbeat=None)
    redis_plugin = RedisStreamPlugin(RedisSettings(url=redis_server.url, tenant="acme"), client=rclient)
    pipe = Pipeline(
        [local, redis_plugin], config={"plugins": {"autoload": False}, "recovery": {"mid_stream": "restart"}}
    )
    stream = pipe.open(openai_chat(oai_client, model="m", messages=[]))
    message = await stream.collect()
    assert message.recovery == "restarted"

    from_local = await text_of(local.frames(stream.id, None))
    from_redis = await text_of(await sse_frames(rclient, "acme", stream.id, None, format=fmt, heartbeat=0.1))
    assert from_redis == from_local
    assert 999 not in ids(from_redis)  # model output cannot forge an event or move the cursor
    event_ids = ids(from_redis)
    assert event_ids == sorted(event_ids) and event_ids[-1] >= stream.events_delivered
    # a browser that got id N from the worker reconnects to another web process with Last-Event-ID: N
    for n in event_ids[:-1]:
        resumed = await text_of(
            await sse_frames(rclient, "acme", stream.id, str(n), format=fmt, heartbeat=0.1)
        )
        assert resumed == await text_of(local.frames(stream.id, str(n)))
        assert min(ids(resumed)) > n


async def test_sse_request_errors_come_before_the_first_frame(rclient: redis.asyncio.Redis) -> None:
    with pytest.raises(StreamUnknown):
        await sse_frames(rclient, "acme", "0" * 32)
