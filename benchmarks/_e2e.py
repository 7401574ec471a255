"""End to end over 127.0.0.1: client CPU per chunk, and time from request to first event.

The server (``_server.py``) runs in its own process, so ``time.process_time()``
in this process is the client's CPU alone. Every client is created once and
reused (connection pooling), as an application would.

- ``e2e.transport_floor``: ``httpx.AsyncClient.stream`` reading the raw bytes;
- ``e2e.sdk_bare``: the official ``AsyncOpenAI`` client, ``create(stream=True)``, iterated;
- ``e2e.sdk_schwarm``: the same client through ``schwarm_stream`` (``openai_chat``, default pipeline);
- ``e2e.native_schwarm``: the native fast path (``native_openai_chat`` on a shared httpx client, default pipeline).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _pipelines
import httpx
from _harness import Case, percentile
from _workload import Workload, check_message

import schwarm_stream
from schwarm_stream.sources import native_openai_chat, openai_chat

MESSAGES: Any = [{"role": "user", "content": "weather?"}]
HERE = Path(__file__).parent


class Server:
    """The loopback SSE server subprocess (started and stopped by this process only)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> Server:
        with tempfile.TemporaryDirectory() as tmp:
            port_file = Path(tmp) / "port"
            self.proc = subprocess.Popen([sys.executable, str(HERE / "_server.py"), str(port_file)])
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the benchmark server did not start")
                time.sleep(0.02)
            self.url = f"http://127.0.0.1:{port_file.read_text()}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


class Clients:
    """One of each client, shared by the cases (connection reuse, as in an application)."""

    def __init__(self, url: str, *, short: bool = False) -> None:
        import openai

        self.base = url + ("/short" if short else "") + "/v1"
        self.httpx = httpx.AsyncClient()
        self.openai = openai.AsyncOpenAI(api_key="sk-bench", base_url=self.base, max_retries=0)
        self.pipeline, self.info = _pipelines.default()

    async def aclose(self) -> None:
        await self.httpx.aclose()
        await self.openai.close()

    def sdk_source(self) -> Any:
        return openai_chat(self.openai, model="gpt-bench-1", messages=MESSAGES)

    def native_source(self) -> Any:
        return native_openai_chat(
            self.base, "sk-bench", client=self.httpx, model="gpt-bench-1", messages=MESSAGES
        )


def cases(c: Clients, w: Workload) -> list[Case]:
    url = c.base + "/chat/completions"
    body = b'{"model":"gpt-bench-1","messages":[],"stream":true}'
    reads = {"n": 0}

    async def transport(reps: int) -> None:
        for _ in range(reps):
            n = 0
            async with c.httpx.stream("POST", url, content=body) as r:
                async for _piece in r.aiter_bytes():
                    n += 1
            reads["n"] = n

    async def sdk_bare(reps: int) -> None:
        for _ in range(reps):
            stream = await c.openai.chat.completions.create(
                model="gpt-bench-1", messages=MESSAGES, stream=True
            )
            async for _chunk in stream:
                pass

    def schwarm(make: Any) -> Any:
        async def run(reps: int) -> None:
            for _ in range(reps):
                async with c.pipeline.open(make()) as s:
                    async for _ev in s:
                        pass
            check_message(s.message, w)

        return run

    n = w.chunks
    return [
        Case(
            "e2e.transport_floor",
            transport,
            n,
            "httpx: POST, read the raw body bytes",
            clock="cpu",
            extra={"reads_per_stream": reads},
        ),
        Case("e2e.sdk_bare", sdk_bare, n, "AsyncOpenAI create(stream=True), iterate the chunks", clock="cpu"),
        Case(
            "e2e.sdk_schwarm",
            schwarm(c.sdk_source),
            n,
            "AsyncOpenAI via openai_chat(), default pipeline",
            clock="cpu",
        ),
        Case(
            "e2e.native_schwarm",
            schwarm(c.native_source),
            n,
            "native_openai_chat() on httpx, default pipeline",
            clock="cpu",
        ),
    ]


async def ttfe(c: Clients, samples: int) -> dict[str, Any]:
    """Milliseconds from the request to the first event, per client, interleaved; medians and overheads."""
    url = c.base + "/chat/completions"
    body = b'{"model":"gpt-bench-1","messages":[],"stream":true}'

    async def transport() -> float:
        t0 = time.perf_counter()
        first = None
        async with c.httpx.stream("POST", url, content=body) as r:
            async for _piece in r.aiter_bytes():
                if first is None:
                    first = time.perf_counter() - t0
        assert first is not None
        return first

    async def sdk_bare() -> float:
        t0 = time.perf_counter()
        first = None
        stream = await c.openai.chat.completions.create(model="gpt-bench-1", messages=MESSAGES, stream=True)
        async for _chunk in stream:
            if first is None:
                first = time.perf_counter() - t0
        assert first is not None
        return first

    def schwarm(make: Any, installed: bool = False) -> Any:
        async def run() -> float:
            t0 = time.perf_counter()
            first = None
            s = schwarm_stream.open(make()) if installed else c.pipeline.open(make())
            async with s:
                async for _ev in s:
                    if first is None:
                        first = time.perf_counter() - t0
            assert first is not None
            return first

        return run

    runs = {
        "transport_first_bytes": transport,
        "sdk_bare": sdk_bare,
        "sdk_schwarm": schwarm(c.sdk_source),
        "native_schwarm": schwarm(c.native_source),
        "open_sdk": schwarm(c.sdk_source, installed=True),
        "open_native": schwarm(c.native_source, installed=True),
    }
    got: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():  # warm up: connections, lazy imports
        await fn()
        await fn()
    for _ in range(samples):
        for k, fn in runs.items():
            got[k].append(await fn() * 1e3)
    med = {k: statistics.median(v) for k, v in got.items()}
    p99 = {k: percentile(v, 99) for k, v in got.items()}
    # Per-sample pairing is impossible (separate requests); the overhead is the difference of percentiles.
    return {
        "samples": samples,
        "median_ms": med,
        "p99_ms": p99,
        "min_ms": {k: min(v) for k, v in got.items()},
        "open_over_sdk_bare_ms": {
            k: {"p50": med[k] - med["sdk_bare"], "p99": p99[k] - p99["sdk_bare"]}
            for k in ("open_sdk", "open_native")
        },
        "overhead_ms_sdk": med["sdk_schwarm"] - med["sdk_bare"],
        "overhead_ms_native_vs_transport": med["native_schwarm"] - med["transport_first_bytes"],
        "note": "first event: the SDK's first chunk object vs schwarm_stream's first event (ResponseInfo of that chunk)",
    }


async def measure_ttfe(url: str, samples: int) -> dict[str, Any]:
    c = Clients(url, short=True)
    try:
        return await ttfe(c, samples)
    finally:
        await c.aclose()
