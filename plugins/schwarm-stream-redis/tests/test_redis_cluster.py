"""The plugin on Redis Cluster (three masters started here on loopback) and on Valkey (when installed).

Every key of a stream carries the stream id as a hash tag, so each stream lives on one node and the
writer's and reader's pipelines never cross slots.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from schwarm_stream_redis import (
    LogMessage,
    RedisSettings,
    RedisStreamPlugin,
    read_stream,
    redis_log,
    sse_frames,
    stream_info,
)
from schwarm_stream_redis.testing import RedisClusterServers, RedisServer

from schwarm_stream import Pipeline
from schwarm_stream.sources import from_iterator

NO_AUTOLOAD = {"plugins": {"autoload": False}}


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServers]:
    servers = RedisClusterServers(3)
    servers.start()
    yield servers
    servers.close()


def words(n: int) -> Any:
    async def gen() -> AsyncIterator[str]:
        for i in range(n):
            yield f"w{i} "

    return from_iterator(gen)


async def roundtrip(client: Any, mode: str, n: int = 300) -> None:
    """A stream written and read back through ``client``: exactly the delivered events, then the end."""
    plugin = RedisStreamPlugin(RedisSettings(tenant="acme", write_mode=mode, batch_max=50), client=client)
    stream = Pipeline([plugin], config=NO_AUTOLOAD).open(words(n))
    async with stream:
        delivered = [ev async for ev in stream]
    assert redis_log(stream).state == "ok"  # type: ignore[union-attr]
    *events, end = [v async for v in read_stream(client, "acme", stream.id, block_ms=100)]
    assert events == delivered and end.status == "complete"
    # resume from the middle of the log, the way a browser reconnects
    shown = LogMessage()
    async for v in read_stream(client, "acme", stream.id, after=n // 2, block_ms=100):
        shown.feed(v)
    assert shown.text == "".join(f"w{i} " for i in range(n // 2, n))  # seq 1 is the first word
    frames = "".join([f async for f in await sse_frames(client, "acme", stream.id, heartbeat=0.1)])
    assert f"id: {end.seq}\n" in frames
    info = await stream_info(client, "acme", stream.id)
    assert info.end is not None and info.first_seq == 0


@pytest.mark.parametrize("mode", ["batched", "per_event"])
async def test_the_log_works_on_a_three_node_redis_cluster(cluster: RedisClusterServers, mode: str) -> None:
    client = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    try:
        await client.initialize()
        await roundtrip(client, mode)
        # streams spread over the nodes: each one on the node that owns its hash tag's slot
        plugin = RedisStreamPlugin(RedisSettings(tenant="acme", write_mode=mode), client=client)
        pipeline = Pipeline([plugin], config=NO_AUTOLOAD)
        owners = set()
        for _ in range(12):
            stream = pipeline.open(words(5))
            await stream.collect()
            key = redis_log(stream).key  # type: ignore[union-attr]
            owners.add(client.get_node_from_key(key).port)
            assert key_slot(key.encode()) == key_slot(stream.id.encode())
            shown = LogMessage()
            async for v in read_stream(client, "acme", stream.id, block_ms=100):
                shown.feed(v)
            assert shown.text == "w0 w1 w2 w3 w4 "
        assert len(owners) >= 2  # 12 random ids on 3 nodes: really a cluster, not one node
    finally:
        await client.aclose()


@pytest.fixture
def valkey() -> Iterator[RedisServer]:
    if shutil.which("valkey-server") is None:
        pytest.skip(
            "valkey-server is not installed (.ci/setup.d/25-valkey.sh installs it where the package manager "
            "has it: Debian trixie, or bookworm-backports)"
        )
    server = RedisServer(binary="valkey-server")
    server.start()
    yield server
    server.close()


@pytest.mark.parametrize("mode", ["batched", "per_event"])
async def test_the_log_works_on_valkey(valkey: RedisServer, mode: str) -> None:
    client = redis.asyncio.Redis.from_url(valkey.url)
    try:
        info = await client.info("server")
        assert info.get("server_name") == "valkey" and "valkey_version" in info  # really Valkey
        await roundtrip(client, mode)
    finally:
        await client.aclose()
