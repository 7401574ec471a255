"""Scale over real sockets: many concurrent streams in one process, offline provider over loopback.

Every stream is ``schwarm_stream.open(native_openai_chat(...))`` as installed (the
process default pipeline: autoload on, the installed plugins) on shared
``httpx.AsyncClient``s (250 streams each), against the benchmark server (``_server.py``, its own
process) whose ``/paced/`` route sends chunk ``j`` at ``t0 + j * interval``
(``t0`` chosen by the client; ``time.monotonic()`` is one clock for every
process on Linux). Starts are staggered so connections are not opened in one
burst.

- **Added delay** of a chunk: when the consumer got it minus when the server was
  due to send it. It includes the server's own lateness and the kernel's
  loopback, so it is an upper bound on what the client added.
- **CPU**: this process's CPU time over the wall time of the run ("% of one
  core"; the machine's other core runs the server and everything else), and CPU
  per chunk (all of it: sockets, HTTP, SSE, JSON, the pipeline, the consumer), over
  the whole run (stream setup included) and over the *steady window* (every
  stream open, none finished: the per-chunk cost at that concurrency). The
  server's CPU share is reported beside it (from ``/proc``).
- **Memory per open stream**: the streams are opened and each holds after its
  first event (the response has begun: a real open stream on its socket); traced Python
  memory (``tracemalloc``) and RSS growth over the baseline, divided by the
  number of streams. Measured in a separate phase, since tracing slows
  everything down.

Traced memory is measured up to 1,000 streams; at 10,000 RSS only (tracing
10,000 openings takes minutes here).

Two tests use it: ``headroom`` (100 and 1,000 streams at 20 chunks/s each: is
there headroom at that load?) and ``curve`` (10 to 10,000 streams at a constant
*aggregate* rate, so CPU per chunk is comparable across points: does per-stream
cost stay flat?). ``curve_gc_tuned`` repeats the curve's paced runs with a server GC setting
(``tuned_gc``: ``gc.freeze()`` after warm-up, thresholds :data:`GC_TUNED_THRESHOLDS`); the
``curve`` rows run with CPython's defaults.
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import orjson
from _harness import percentile

import schwarm_stream
from schwarm_stream import Chunk
from schwarm_stream.sources import native_openai_chat

MESSAGES: Any = [{"role": "user", "content": "weather?"}]
#: New streams per second at most: opening one (connection, request, stream) costs milliseconds of CPU here, and
#: a burst of 10,000 would starve the open streams (their first-chunk timeouts fire) and overflow the accept queue.
CONNECT_RATE = 400.0
#: The curve opens at this rate instead: what two shared cores sustain while the streams already open are fed
#: (at 400/s the opening of 10,000 streams alone took more CPU than the process had).
CURVE_CONNECT_RATE = 100.0
#: The curve's streams run with ``timeouts.first_chunk`` and ``timeouts.idle`` raised to this (default 30 s and
#: 15 s): the memory phase holds 10,000 streams open for minutes, and a chunk that is merely late during the
#: opening ramp must show as added delay rather than end its stream.
CURVE_TIMEOUT = 600.0


def curve_pipeline() -> schwarm_stream.Pipeline:
    """The default plugin set (autoload on, as installed) with the curve's raised first-chunk and idle timeouts."""
    return schwarm_stream.Pipeline(config={"timeouts": {"first_chunk": CURVE_TIMEOUT, "idle": CURVE_TIMEOUT}})


def raise_nofile(need: int) -> dict[str, int]:
    """Raise RLIMIT_NOFILE to the hard limit (one descriptor per socket); report what we have."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {"soft": soft, "hard": hard, "needed": need}


def rss_bytes() -> int:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


class GcClock:
    """Seconds this process spent in the cyclic garbage collector, by generation (``gc.callbacks``).

    At 10,000 open streams a full (generation 2) collection walks every object of every stream and took
    1-3 s on the development machine: it is what makes the busiest points' CPU per chunk and idle CPU per
    stream grow, so the steady and idle windows report it.
    """

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.counts = [0, 0, 0]
        self._t = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            g = info["generation"]
            self.seconds[g] += time.perf_counter() - self._t
            self.counts[g] += 1

    def snapshot(self) -> tuple[float, int]:
        """(seconds in full collections, number of full collections) so far."""
        return self.seconds[2], self.counts[2]


GC = GcClock()
gc.callbacks.append(GC)


#: The server setting the ``curve_gc_tuned`` rows measure: after warm-up, ``gc.freeze()`` (everything alive then,
#: imports and the pipeline, leaves the collector's generations) and these thresholds. Young collections then
#: run every 50,000 net allocations instead of 700, and a full collection needs 100 generation-1 collections
#: (not 10) besides CPython's own rule (the long-lived objects grew by a quarter). At 10,000 open streams a full
#: collection walks some 1.6 million objects (about 160 per open stream, two thirds of them httpx's and
#: httpcore's); with fewer full collections the delay spikes go, but CPU per chunk still grows with the number
#: of open streams (measured: most of that growth is not the collector). The cost: cyclic garbage (about 45 objects
#: of httpx's per finished stream; schwarm_stream's own objects are freed by reference counting) waits longer
#: for a full collection.
GC_TUNED_THRESHOLDS = (50_000, 20, 100)


class tuned_gc:
    """``with tuned_gc():`` the server setting of :data:`GC_TUNED_THRESHOLDS` (restored on exit)."""

    def __enter__(self) -> tuned_gc:
        self._saved = gc.get_threshold()
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_TUNED_THRESHOLDS)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.set_threshold(*self._saved)
        gc.unfreeze()


def gc_since(before: tuple[float, int]) -> dict[str, float]:
    """Full collections since ``before`` (a :meth:`GcClock.snapshot`): how many, seconds in them."""
    s, n = GC.snapshot()
    return {"full_collections": n - before[1], "full_collection_s": round(s - before[0], 3)}


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far, from /proc (0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: Streams per httpx client. httpcore's pool does work over all of its connections on every request added or
#: removed (``AsyncConnectionPool._assign_requests_to_connections``), and for each idle connection it counts all
#: of them again (``len([... for connection in self._connections])``), so a client's cost per stream grows with
#: its connections: all 10,000 streams on one client did not finish in 3 minutes. A fixed number per client keeps
#: that cost the same at every point of the curve; a server holding that many streams would spread them too.
STREAMS_PER_CLIENT = 100


class Clients:
    """``httpx.AsyncClient``s for ``streams`` concurrent streams, ``STREAMS_PER_CLIENT`` each."""

    def __init__(self, streams: int) -> None:
        per = min(streams, STREAMS_PER_CLIENT)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=per)
        self.all = [
            httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(120.0))
            for _ in range(max(1, -(-streams // per)))
        ]

    def __getitem__(self, k: int) -> httpx.AsyncClient:
        return self.all[k % len(self.all)]

    async def aclose(self) -> None:
        for c in self.all:
            await c.aclose()


def _client(streams: int) -> Clients:
    return Clients(streams)


def _source(base: str, client: httpx.AsyncClient, t0: float, n: int, interval: float) -> Any:
    return native_openai_chat(
        base,
        "sk-bench",
        client=client,
        model="gpt-bench-1",
        messages=MESSAGES,
        extra_body={"t0": t0, "n": n, "interval": interval},
    )


async def _floor_stream(client: httpx.AsyncClient, url: str, spec: dict[str, Any], on_chunk: Any) -> str:
    """The hand-written floor over the paced route: httpx + orjson, text counted as it arrives."""
    body = orjson.dumps({"model": "gpt-bench-1", "messages": MESSAGES, "stream": True, **spec})
    buf = b""
    async with client.stream("POST", url, content=body) as r:
        async for piece in r.aiter_bytes():
            buf += piece
            if b"\n\n" not in buf:
                continue
            *events, buf = buf.split(b"\n\n")
            for ev in events:
                if ev.startswith(b"data: {"):
                    for ch in orjson.loads(ev[6:])["choices"]:
                        if ch["delta"].get("content"):
                            on_chunk()
    return "complete"


async def paced(
    url: str,
    server_pid: int,
    *,
    streams: int,
    n: int,
    interval: float,
    floor: bool = False,
    pipeline: schwarm_stream.Pipeline | None = None,
    connect_rate: float = CONNECT_RATE,
) -> dict[str, Any]:
    """``streams`` concurrent streams of ``n`` text chunks, one every ``interval`` seconds each.

    ``floor=True`` reads them with the hand-written httpx + orjson client instead of schwarm_stream;
    ``pipeline`` opens them there (default: the process default pipeline, ``schwarm_stream.open``);
    at most ``connect_rate`` new streams per second.
    """
    opener = pipeline.open if pipeline is not None else schwarm_stream.open
    base = url + "/paced/v1"
    client = _client(streams)
    delays: list[float] = []
    outcomes: list[str | None] = []
    errors: dict[str, int] = {}
    mono = time.monotonic
    live = [0, 0]  # streams opened (their response began), streams ended
    try:
        # Warm up: connections, lazy imports, the pipeline's plugin table.
        async with opener(_source(base, client[0], mono(), 2, 0.001)) as s:
            async for _ev in s:
                pass
        stagger = max(interval, streams / connect_rate)
        start = mono() + 0.2

        async def one(k: int) -> None:
            t0 = start + stagger * k / streams
            await asyncio.sleep(max(0.0, t0 - 0.05 - mono()))
            j = 0
            try:
                if floor:

                    def got() -> None:
                        nonlocal j
                        j += 1
                        delays.append(mono() - (t0 + j * interval))

                    spec = {"t0": t0, "n": n, "interval": interval}
                    live[0] += 1
                    outcomes.append(await _floor_stream(client[k], base + "/chat/completions", spec, got))
                    return
                async with opener(_source(base, client[k], t0, n, interval)) as s:
                    live[0] += 1
                    async for ev in s:
                        if type(ev) is Chunk:
                            j += 1
                            delays.append(mono() - (t0 + j * interval))
                outcomes.append(s.outcome)
            except Exception as exc:  # counted and reported: a scale test must say what failed
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            finally:
                live[1] += 1

        # The steady window: every stream open (and its first chunk in), none finished yet.
        w0, w1 = start + stagger + interval, start + n * interval
        window: dict[str, float] = {}
        gc_window: dict[str, float] = {}

        async def sample() -> None:
            await asyncio.sleep(max(0.0, w0 - mono()))
            window.update(t0=mono(), cpu0=time.process_time(), n0=len(delays), s0=proc_cpu(server_pid))
            window.update(opened0=live[0], ended0=live[1])
            gc0 = GC.snapshot()
            await asyncio.sleep(max(0.0, w1 - mono()))
            gc_window.update(gc_since(gc0))
            window.update(t1=mono(), cpu1=time.process_time(), n1=len(delays), s1=proc_cpu(server_pid))
            window.update(opened1=live[0], ended1=live[1])

        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sampler = asyncio.create_task(sample()) if w1 - w0 >= 0.5 else None
        await asyncio.gather(*(one(k) for k in range(streams)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        if sampler is not None:
            await sampler
    finally:
        await client.aclose()
    chunks = len(delays)
    steady: dict[str, Any] = {}
    if "t1" in window and window["n1"] > window["n0"]:
        span = window["t1"] - window["t0"]
        steady = {
            "seconds": span,
            "chunks": window["n1"] - window["n0"],
            "cpu_us_per_chunk": (window["cpu1"] - window["cpu0"]) / (window["n1"] - window["n0"]) * 1e6,
            "cpu_percent_of_core": 100.0 * (window["cpu1"] - window["cpu0"]) / span,
            "server_cpu_percent_of_core": 100.0 * (window["s1"] - window["s0"]) / span,
            # Open streams (response begun, not ended) when the window opened and when it closed.
            "open_at_start": int(window["opened0"] - window["ended0"]),
            "open_at_end": int(window["opened1"] - window["ended1"]),
            "gc": gc_window,  # full collections inside the window (their CPU is in cpu_us_per_chunk)
        }
    return {
        "client": "floor (httpx + orjson)" if floor else "schwarm_stream.open() as installed",
        "streams": streams,
        "chunks_per_stream": n,
        "rate_per_stream": 1.0 / interval,
        "aggregate_rate": streams / interval,
        "completed": outcomes.count("complete"),
        "all_complete": outcomes.count("complete") == streams,
        "errors": errors,
        "chunks": chunks,
        "added_delay_ms_p50": percentile(delays, 50) * 1e3 if delays else None,
        "added_delay_ms_p99": percentile(delays, 99) * 1e3 if delays else None,
        "added_delay_ms_max": max(delays) * 1e3 if delays else None,
        "wall_s": wall,
        "ideal_wall_s": 0.2 + stagger + n * interval,
        "connect_rate": connect_rate,
        "cpu_percent_of_core": 100.0 * cpu / wall,
        "cpu_us_per_chunk": cpu / max(1, chunks) * 1e6,
        "cpu_ms_per_stream": cpu / streams * 1e3,
        "steady": steady,
    }


#: Seconds the memory phase keeps every stream held (after measuring memory) to take the CPU of open, idle
#: streams: the per-stream timers (the timeouts plugin's watchdog ticks every ``min(timeouts) / TICKS`` s).
IDLE_WINDOW = 3.0


def _top_stats(snapshot: tracemalloc.Snapshot, base: tracemalloc.Snapshot, per: int, top: int) -> list[Any]:
    """The ``top`` largest growths of traced memory by source line, in bytes per held stream."""
    stats = snapshot.compare_to(base, "lineno")
    return [
        {
            "where": f"{Path(st.traceback[0].filename).name}:{st.traceback[0].lineno}",
            "file": st.traceback[0].filename,
            "bytes_per_stream": st.size_diff / per,
            "blocks_per_stream": st.count_diff / per,
        }
        for st in stats[:top]
    ]


async def memory(
    url: str,
    *,
    streams: int,
    trace: bool = True,
    pipeline: schwarm_stream.Pipeline | None = None,
    connect_rate: float = CONNECT_RATE,
    top: int = 0,
) -> dict[str, Any]:
    """Traced Python memory and RSS per open stream, each stream holding after its first event.

    ``trace=False`` measures RSS only (tracing 10,000 openings takes minutes on a small machine);
    ``top`` > 0 adds the largest traced growths by source line (bytes per stream). Then, every stream
    still held and idle, this process's CPU over ``IDLE_WINDOW`` seconds per open stream.
    """
    opener = pipeline.open if pipeline is not None else schwarm_stream.open
    base = url + "/paced/v1"
    client = _client(streams)
    mono = time.monotonic
    reached = 0
    all_there = asyncio.Event()
    release = asyncio.Event()
    top_stats: list[Any] = []
    idle: dict[str, float] = {}
    try:
        async with opener(_source(base, client[0], mono(), 2, 0.001)) as s:
            async for _ev in s:
                pass
        stagger = streams / connect_rate
        # The one text chunk is due long after every stream opened (tracing slows the openings down) and the
        # idle window ended: the streams are cancelled once measured, so it is never sent.
        start = mono() + 0.2
        hold_until = start + 3 * stagger + IDLE_WINDOW + 30.0

        failed: dict[str, int] = {}

        def arrived() -> None:
            if reached + sum(failed.values()) == streams:
                all_there.set()

        async def one(k: int) -> None:
            nonlocal reached
            t0 = start + stagger * k / streams
            await asyncio.sleep(max(0.0, t0 - 0.05 - mono()))
            held = False
            try:
                async with opener(_source(base, client[k], t0, 1, hold_until - t0)) as s:
                    async for _ev in s:
                        if not held:
                            held = True
                            reached += 1
                            arrived()
                            await release.wait()
            except Exception as exc:  # counted: a stream that fails before holding must not hang the test
                if not held:
                    failed[type(exc).__name__] = failed.get(type(exc).__name__, 0) + 1
                    arrived()

        gc.collect()
        rss0 = rss_bytes()
        if trace:
            tracemalloc.start()
        traced0 = tracemalloc.get_traced_memory()[0]
        snap0 = tracemalloc.take_snapshot() if trace and top else None
        tasks = [asyncio.create_task(one(k)) for k in range(streams)]
        opened_at, ramp_cpu0 = mono(), time.process_time()
        # Each stream holds on its first event (the response began; its one text chunk is due later).
        try:
            await asyncio.wait_for(all_there.wait(), timeout=60 + 3 * stagger)
        except TimeoutError:
            pass  # reported below: fewer streams held than opened
        ramp_s, ramp_cpu = mono() - opened_at, time.process_time() - ramp_cpu0
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] - traced0
        rss = rss_bytes() - rss0
        if snap0 is not None:
            top_stats = _top_stats(tracemalloc.take_snapshot(), snap0, max(1, reached), top)
        tracemalloc.stop()
        if reached and mono() + IDLE_WINDOW < hold_until:
            cpu0, t0, gc0 = time.process_time(), mono(), GC.snapshot()
            await asyncio.sleep(IDLE_WINDOW)
            cpu, span = time.process_time() - cpu0, mono() - t0
            idle = {
                **gc_since(gc0),
                "seconds": span,
                "cpu_percent_of_core": 100 * cpu / span,
                "us_per_stream_second": cpu / span / reached * 1e6,
            }
        release.set()
        for t in tasks:  # measured: close them now rather than wait for their last chunk
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await client.aclose()
    held_n = max(1, reached)
    return {
        "streams": streams,
        "held": reached,
        "errors": failed,
        "connect_rate": connect_rate,
        "ramp_s": ramp_s,
        # This process's CPU from the first opening until every stream held, per stream (traced: slower).
        "open_cpu_ms_per_stream": ramp_cpu / held_n * 1e3,
        "traced": trace,
        "kib_traced_per_stream": traced / held_n / 1024 if trace else None,
        "kib_rss_per_stream": rss / held_n / 1024,
        "idle_cpu": idle,
        "top": top_stats,
        "includes": "the Stream, its plugins' state, the consumer task, httpx's connection and response, buffers",
    }


#: Chunks per second in all, split over the curve's streams: the same total load at every point, so CPU per
#: chunk is comparable across them.
CURVE_AGGREGATE = 1000.0


async def curve_point(
    url: str, server_pid: int, streams: int, *, duration: float, floor: bool, top: int = 0, log: Any = print
) -> dict[str, Any]:
    """One point of the per-stream cost curve: the paced run (its steady window), then the memory phase."""
    pipeline = curve_pipeline()
    interval = streams / CURVE_AGGREGATE
    # Enough chunks for a steady window of about ``duration`` (at least one interval) after the last stream opened.
    n = max(6, round((duration + streams / CURVE_CONNECT_RATE) / interval) + 2)
    log(f"scale curve (sockets): {streams} streams x {n} chunks, {CURVE_AGGREGATE:.0f} chunks/s in all")
    point = await paced(
        url,
        server_pid,
        streams=streams,
        n=n,
        interval=interval,
        pipeline=pipeline,
        connect_rate=CURVE_CONNECT_RATE,
    )
    if floor:
        log("  the same with the hand-written floor client")
        point["floor"] = await paced(
            url,
            server_pid,
            streams=streams,
            n=n,
            interval=interval,
            floor=True,
            connect_rate=CURVE_CONNECT_RATE,
        )
    log(f"  memory with {streams} open streams")
    point["memory"] = await memory(
        url, streams=streams, trace=True, pipeline=pipeline, connect_rate=CURVE_CONNECT_RATE, top=top
    )
    point["pipeline_plugins"] = sorted(name for name, _ in pipeline.plugin_manager.list_name_plugin())
    return point


async def run(
    url: str, server_pid: int, *, quick: bool, log: Any = print, curve_points: list[int] | None = None
) -> dict[str, Any]:
    """The headroom points, then the curve (``curve_points`` overrides its stream counts)."""
    limits = raise_nofile(10_000 + 200)
    headroom_points = [100] if quick else [100, 1000]
    if curve_points is None:
        curve_points = [10, 100] if quick else [10, 100, 1000, 10_000]
    # No more streams than descriptors (client sockets + a margin for everything else).
    usable = max(0, limits["soft"] - 200)
    out: dict[str, Any] = {"nofile": limits, "headroom": [], "curve": [], "not_run": {}}
    n_head = 20 if quick else 50
    for streams in headroom_points:
        log(f"scale (sockets): {streams} streams x {n_head} chunks at 20/s")
        point = await paced(url, server_pid, streams=streams, n=n_head, interval=0.05)
        log("  the same with the hand-written floor client")
        point["floor"] = await paced(url, server_pid, streams=streams, n=n_head, interval=0.05, floor=True)
        out["headroom"].append(point)
    duration = 1.5 if quick else 6.0
    for streams in curve_points:
        if streams > usable:
            out["not_run"][str(streams)] = f"RLIMIT_NOFILE soft limit {limits['soft']} < {streams} sockets"
            continue
        out["curve"].append(
            await curve_point(
                url,
                server_pid,
                streams,
                duration=duration,
                floor=streams <= 100,
                top=10 if streams >= 1000 else 0,
                log=log,
            )
        )
    # The same points' paced runs again with the server's GC setting (``tuned_gc``): before/after side by side.
    out["curve_gc_tuned"] = []
    for streams in curve_points:
        if streams > usable:
            continue
        log(f"scale curve (sockets), gc.freeze() + thresholds {GC_TUNED_THRESHOLDS}: {streams} streams")
        interval = streams / CURVE_AGGREGATE
        n = max(6, round((duration + streams / CURVE_CONNECT_RATE) / interval) + 2)
        with tuned_gc():
            point = await paced(
                url,
                server_pid,
                streams=streams,
                n=n,
                interval=interval,
                pipeline=curve_pipeline(),
                connect_rate=CURVE_CONNECT_RATE,
            )
        point["gc_setting"] = {"freeze": True, "thresholds": list(GC_TUNED_THRESHOLDS)}
        out["curve_gc_tuned"].append(point)
    out["gc_tuned_thresholds"] = list(GC_TUNED_THRESHOLDS)
    out["aggregate_rate"] = CURVE_AGGREGATE
    out["curve_connect_rate"] = CURVE_CONNECT_RATE
    out["curve_timeouts"] = {"first_chunk": CURVE_TIMEOUT, "idle": CURVE_TIMEOUT}
    out["streams_per_client"] = STREAMS_PER_CLIENT
    return out
