"""Helper shared by the examples (not an example itself): which provider to talk to.

With ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` set, the examples use the real API (model from
``OPENAI_MODEL`` / ``ANTHROPIC_MODEL``). Otherwise they start the built-in offline provider on
127.0.0.1 and point the official SDK client at it: no key, no network. The SDK calls are the same.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from schwarm_stream.testing.server import OfflineProvider, ProviderServer, ThreadedProviderServer

CHUNK_DELAY = 0.01  # seconds between the offline provider's events, so streaming is visible


@asynccontextmanager
async def openai_client() -> AsyncIterator[tuple[Any, str]]:
    """``(client, model)``: an ``openai.AsyncOpenAI`` for the OpenAI API or the offline provider."""
    import openai  # imported here: each example pays only for the SDK it uses

    if os.environ.get("OPENAI_API_KEY"):
        yield openai.AsyncOpenAI(), os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
        return
    async with ProviderServer(OfflineProvider(chunk_delay=CHUNK_DELAY)) as server:
        yield openai.AsyncOpenAI(api_key="offline", base_url=server.openai_base_url), "offline"


@asynccontextmanager
async def anthropic_client() -> AsyncIterator[tuple[Any, str]]:
    """``(client, model)``: an ``anthropic.AsyncAnthropic`` for the Anthropic API or the offline provider."""
    import anthropic

    if os.environ.get("ANTHROPIC_API_KEY"):
        yield anthropic.AsyncAnthropic(), os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-5")
        return
    async with ProviderServer(OfflineProvider(chunk_delay=CHUNK_DELAY)) as server:
        yield anthropic.AsyncAnthropic(api_key="offline", base_url=server.anthropic_base_url), "offline"


@contextmanager
def openai_sync_client() -> Iterator[tuple[Any, str]]:
    """A sync ``openai.OpenAI`` client; the offline provider then runs in a background thread."""
    import openai

    if os.environ.get("OPENAI_API_KEY"):
        yield openai.OpenAI(), os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
        return
    with ThreadedProviderServer(OfflineProvider(chunk_delay=CHUNK_DELAY)) as server:
        yield openai.OpenAI(api_key="offline", base_url=server.openai_base_url), "offline"
