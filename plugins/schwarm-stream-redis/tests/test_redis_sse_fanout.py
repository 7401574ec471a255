"""1,000 SSE readers of one stream, spread over 4 web processes, two of which are killed mid-stream.

The producer (this process) writes the log; 4 web processes (Starlette, served by the starlette
plugin, answering from Redis with ``sse_frames``) serve 4 client processes of 250 SSE clients each.
While every reader waits on the stream (1,000 blocked ``XREAD`` in Redis), web processes 0 and 1
are SIGKILLed and restarted on their ports; their clients reconnect with ``Last-Event-ID``, to the
next web process or the restarted one. Every reader must end with exactly the frames of the whole
log: no event lost, none repeated.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from schwarm_stream_redis import RedisSettings, RedisStreamPlugin, sse_frames
from schwarm_stream_redis.testing import RedisServer, free_port, wait_written

from schwarm_stream import Pipeline
from schwarm_stream.sources import from_iterator

pytest.importorskip("schwarm_stream_starlette")  # a first-party distribution, installed by CI

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from sse_clients_proc import kept_frames  # noqa: E402

CLIENTS, WEB, CLIENT_PROCS = 1000, 4, 4


def web(port: int, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "sse_web_proc.py"), "--port", str(port), "--url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


async def until(predicate: Any, what: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_a_thousand_sse_readers_over_four_web_processes_survive_killed_processes(
    redis_server: RedisServer, rclient: redis.asyncio.Redis, tmp_path: Path
) -> None:
    gate = asyncio.Event()
    n = 120

    async def gen() -> AsyncIterator[str]:
        for i in range(n):
            if i == n // 2:
                await gate.wait()  # mid-stream: every reader waits here while processes die
            await asyncio.sleep(0.005)
            yield f"w{i} "

    sid = uuid.uuid4().hex
    plugin = RedisStreamPlugin(RedisSettings(url=redis_server.url, tenant="acme"), client=rclient)
    stream = Pipeline([plugin], config={"plugins": {"autoload": False}, "timeouts": {"idle": 120.0}}).open(
        from_iterator(gen), stream_id=sid
    )
    ports = [free_port() for _ in range(WEB)]
    webs = [web(p, redis_server.url) for p in ports]
    procs: list[subprocess.Popen[bytes]] = list(webs)
    produced = asyncio.create_task(stream.collect())
    try:
        await until(lambda: asyncio.to_thread(lambda: all(accepting(p) for p in ports)), "the web processes")
        await wait_written(stream, 1)
        per = CLIENTS // CLIENT_PROCS
        outs = [tmp_path / f"clients{k}.json" for k in range(CLIENT_PROCS)]

        def clients(k: int) -> subprocess.Popen[bytes]:
            argv = ["--stream-id", sid, "--ports", ",".join(map(str, ports)), "--clients", str(per)]
            argv += ["--first", str(k * per), "--out", str(outs[k])]
            proc = subprocess.Popen(  # noqa: ASYNC220 - a fire-and-forget start, like web()
                [sys.executable, str(HERE / "sse_clients_proc.py"), *argv],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs.append(proc)
            return proc

        readers = [clients(k) for k in range(CLIENT_PROCS)]

        async def all_blocked() -> bool:  # every reader is mid-stream, in XREAD BLOCK on the gated log
            info = await rclient.info("clients")
            return int(info["blocked_clients"]) >= CLIENTS

        await until(all_blocked, "1,000 readers waiting mid-stream")
        for k in (0, 1):  # two web processes die with 500 live responses between them
            webs[k].send_signal(signal.SIGKILL)
            webs[k].wait(10)
            webs[k] = web(ports[k], redis_server.url)
            procs.append(webs[k])
        # a reader process dies too, its 250 readers with it; restarted, they read the log from its start
        readers[0].send_signal(signal.SIGKILL)
        readers[0].wait(10)
        readers[0] = clients(0)
        gate.set()
        message = await asyncio.wait_for(produced, 40)
        assert message.text == "".join(f"w{i} " for i in range(n))

        async def clients_done() -> bool:
            return all(out.exists() for out in outs)

        await until(clients_done, "every client to finish", timeout=50)
    finally:
        gate.set()
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait(10)
        if not produced.done():
            produced.cancel()

    full = "".join([f async for f in await sse_frames(rclient, "acme", sid, heartbeat=0.1)])
    reference = kept_frames(full)
    assert len(reference) >= n + 1  # every word, the finish and the end
    # the log holds exactly the writer's events: every word once, in order
    words_in_log = [w for f in reference for w in re.findall(r"w\d+ ", f)]
    assert words_in_log == [f"w{i} " for i in range(n)]
    sha = hashlib.sha256("".join(reference).encode()).hexdigest()
    results = [r for out in outs for r in json.loads(out.read_text())]
    assert len(results) == CLIENTS
    wrong = [
        {k: r[k] for k in ("frames", "reconnects", "refused", "statuses")}
        for r in results
        if r["sha"] != sha or r["frames"] != len(reference)
    ]
    assert not wrong, f"{len(wrong)} of {CLIENTS} readers, expected {len(reference)} frames: {wrong[:3]}"
    # the kills really cut live responses: about half the readers had to resume by Last-Event-ID
    assert sum(1 for r in results if r["reconnects"] > 0) >= CLIENTS // 4
