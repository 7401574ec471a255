"""Shared fixtures: a loopback provider server and real SDK clients pointed at it.

Test modules that define fixtures of the same name (``server``, ``oai``, ``ant``) override these.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest

from schwarm_stream import Pipeline
from schwarm_stream._manager import BUILTIN_PLUGINS, ESSENTIAL_PLUGINS
from schwarm_stream.testing import switches
from schwarm_stream.testing.server import ProviderServer
from tests.support.corpus import corpus_root, is_subset
from tests.support.faults import sdk_source


def pytest_report_header() -> str:
    """Say which recorded-stream corpus the corpus tests run over (full, or the shipped subset)."""
    root = corpus_root()
    if root is None:
        return "stream corpus: none ($SCHWARM_STREAM_CORPUS names no corpus)"
    kind = "shipped subset; the full corpus ../shared/corpus was not found" if is_subset(root) else "full"
    return f"stream corpus: {root} ({kind})"


@pytest.fixture
async def server() -> AsyncIterator[ProviderServer]:
    """A :class:`ProviderServer` on 127.0.0.1, closed (with every connection) after the test."""
    async with ProviderServer() as srv:
        yield srv


@pytest.fixture
async def oai(server: ProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official async OpenAI client, talking to ``server``."""
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def ant(server: ProviderServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """The official async Anthropic client, talking to ``server``."""
    client = anthropic.AsyncAnthropic(api_key="x", base_url=server.anthropic_base_url, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
def core_pipeline() -> Callable[..., Pipeline]:
    """Build a pipeline with only the core: no entry points, no optional built-ins (retry, timeouts, ...).

    ``core_pipeline(*plugins, strict=False, **sections)``; ``sections`` are extra config sections.
    """

    def make(*plugins: Any, strict: bool = False, **sections: Any) -> Pipeline:
        optional = sorted(set(BUILTIN_PLUGINS) - ESSENTIAL_PLUGINS)
        policy = "strict" if strict else "isolate"
        cfg = {"plugins": {"autoload": False, "disable": optional, "policy": policy}, **sections}
        return Pipeline(plugins, config=cfg)

    return make


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """SIGINT raises ``KeyboardInterrupt`` here and in child processes, as in a terminal.

    A shell starts background jobs (``cmd &``, ``nohup``) with SIGINT ignored, and that disposition is
    inherited by this process and by every subprocess it starts: a Ctrl-C test run that way would see
    its signal silently dropped. The handler is set for the test and restored after it.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def no_waits() -> Iterator[None]:
    """Every retry backoff and Retry-After wait is skipped (``schwarm_stream.testing.switches``)."""
    with switches.no_waits():
        yield


@pytest.fixture
def sdk_sources(oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic) -> Callable[..., Any]:
    """``make(protocol, **kw)``: a source for ``protocol`` through the real SDK client talking to ``server``."""

    def make(protocol: str, **kw: Any) -> Any:
        return sdk_source(protocol, ant if protocol == "anthropic-messages" else oai, **kw)

    return make
