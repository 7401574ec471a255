"""A producer process for the multi-process tests (run as a script, not collected by pytest).

A loopback ProviderServer speaks OpenAI Chat; the official SDK client streams from it through
schwarm_stream's ``openai_chat`` source, with the Redis plugin writing the log. The scripted answer is:

1. attempt 1: ``--broken`` deltas, then the connection drops (``recovery.mid_stream = "restart"``
   turns that into a Reset and attempt 2);
2. attempt 2: ``--chunks`` deltas ``chunk_delay`` apart, holding after the first half until the file
   ``--gate`` exists (so the test can kill and restart readers mid-stream).

Files written: ``{out}.started`` once the first event was delivered, ``{out}`` the result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

import openai
import redis.asyncio
from schwarm_stream_redis import RedisSettings, RedisStreamPlugin, redis_log

from schwarm_stream import Pipeline
from schwarm_stream.sources import openai_chat
from schwarm_stream.testing.server import ProviderServer, Sleep, SSEReply, Stall, openai_chat_events


def words(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i} " for i in range(n)]


def with_sleeps(parts: list[bytes], delay: float, gate_at: int | None, gate: asyncio.Event) -> list[Any]:
    out: list[Any] = []
    for n, part in enumerate(parts):
        if n == gate_at:
            out.append(Stall(gate))
        out.append(part)
        out.append(Sleep(delay))
    return out


async def watch_gate(path: Path, gate: asyncio.Event) -> None:
    """Open the gate once the test created ``path`` (another process: a file is the simplest signal)."""
    while not await asyncio.to_thread(path.exists):  # noqa: ASYNC110 - polling another process's file
        await asyncio.sleep(0.02)
    gate.set()


async def main(a: argparse.Namespace) -> None:
    out = Path(a.out)
    gate = asyncio.Event()
    watcher = asyncio.create_task(watch_gate(Path(a.gate), gate)) if a.gate else None
    if watcher is None:
        gate.set()
    first = openai_chat_events(words("old", a.broken), finish_reason=None, usage=None, done=False)
    second = openai_chat_events(words("w", a.chunks))
    result: dict[str, Any] = {}
    async with ProviderServer() as server:
        if a.broken:
            server.script("openai-chat", SSEReply(with_sleeps(first, a.delay, None, gate), end="truncate"))
        server.script("openai-chat", SSEReply(with_sleeps(second, a.delay, 1 + a.chunks // 2, gate)))
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0)
        rclient = redis.asyncio.Redis.from_url(a.url)
        settings = RedisSettings(
            url=a.url, tenant=a.tenant, on_redis_error=a.mode, write_timeout=a.write_timeout, maxlen=a.maxlen
        )
        config = {
            "recovery": {"mid_stream": "restart", "max_recoveries": 2},
            "timeouts": {"idle": 120.0, "first_chunk": 120.0, "total": 600.0},
        }
        pipeline = Pipeline([RedisStreamPlugin(settings, client=rclient)], config=config)
        stream = pipeline.open(
            openai_chat(client, model="m", messages=[{"role": "user", "content": "hi"}]),
            stream_id=a.stream_id,
        )
        try:
            async with stream:
                async for _ in stream:
                    if not result:
                        result["first"] = True
                        Path(str(out) + ".started").write_text("1")  # noqa: ASYNC240 - once, tiny
        except Exception as exc:  # the test inspects the typed error
            result["error_type"] = type(exc).__name__
            result["error"] = str(exc)
        w = redis_log(stream)
        result.update(
            outcome=stream.outcome,
            text=stream.message.text,
            recovery=stream.message.recovery,
            degraded=w.degraded if w is not None else None,
            writer_state=w.state if w is not None else None,
            written_seq=w.written_seq if w is not None else None,
            delivered=stream.events_delivered,
        )
        await client.close()
        await rclient.aclose()
    if watcher is not None:
        watcher.cancel()
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, out)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--tenant", required=True)
    p.add_argument("--stream-id", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--gate", default="")
    p.add_argument("--chunks", type=int, default=40)
    p.add_argument("--broken", type=int, default=0)
    p.add_argument("--delay", type=float, default=0.01)
    p.add_argument("--mode", default="fail")
    p.add_argument("--write-timeout", type=float, default=2.0)
    p.add_argument("--maxlen", type=int, default=10_000)
    asyncio.run(main(p.parse_args()))
