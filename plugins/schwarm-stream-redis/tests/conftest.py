"""A real ``redis-server`` per test session (and private ones for restart tests), on free loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest
import redis.asyncio
from schwarm_stream_redis.testing import RedisServer

from schwarm_stream.testing.server import ProviderServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A server of its own, for tests that stop or restart it."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
async def rclient(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def provider() -> AsyncIterator[ProviderServer]:
    """The loopback provider server (OpenAI Chat / Anthropic / Responses SSE)."""
    async with ProviderServer() as srv:
        yield srv


@pytest.fixture
async def oai_client(provider: ProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official async OpenAI client, talking to ``provider``."""
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=provider.openai_base_url, max_retries=0)
    yield client
    await client.close()
