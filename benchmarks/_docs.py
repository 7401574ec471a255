"""Rendering the runner's results as Markdown (tables for the terminal and ``docs/performance.md``)."""

from __future__ import annotations

from typing import Any

GROUPS = [
    (
        "In process: the same prebuilt chunks through each contender",
        ("floor", "schwarm.", "openai.", "anthropic.", "langchain."),
    ),
    ("End to end over loopback HTTP: client CPU per chunk", ("e2e.",)),
]


def _f(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def results_table(out: dict[str, Any]) -> str:
    r = out.get("results", {})
    lines: list[str] = []
    for title, prefixes in GROUPS:
        rows = [(k, v) for k, v in r.items() if k.startswith(prefixes)]
        if not rows:
            continue
        floor = "e2e.transport_floor" if prefixes == ("e2e.",) else "floor"
        lines += [
            f"**{title}**",
            "",
            f"| entry | median µs/chunk | min µs/chunk | x {floor} | what |",
            "|---|---:|---:|---:|---|",
        ]
        for name, v in rows:
            lines.append(
                f"| `{name}` | {_f(v['median_us'])} | {_f(v['min_us'])} | {_f(v['x_floor'], 1)} | {v['note']} |"
            )
        lines.append("")
    return "\n".join(lines)


def other_tables(out: dict[str, Any]) -> str:
    lines: list[str] = []
    t = out.get("ttfe")
    if t:
        lines += [
            f"**Time from request to first event** (median of {t['samples']} requests each, interleaved; ms)",
            "",
            "| client | median ms | min ms |",
            "|---|---:|---:|",
        ]
        for k, v in t["median_ms"].items():
            lines.append(f"| `{k}` | {_f(v, 3)} | {_f(t['min_ms'][k], 3)} |")
        lines += [
            "",
            f"Middleware overhead on the SDK path (`sdk_schwarm` - `sdk_bare`): **{_f(t['overhead_ms_sdk'], 3)} ms**; "
            f"native path over the first raw bytes: {_f(t['overhead_ms_native_vs_transport'], 3)} ms.",
            "",
        ]
    fe = out.get("first_event_inprocess")
    if fe:
        lines += [
            f"**Time from `open()` to the first event, in process** (median of {fe['samples']}; µs): "
            f"the source alone {_f(fe['median_us']['bare'], 1)}, through the default pipeline "
            f"{_f(fe['median_us']['default'], 1)}: the middleware adds **{_f(fe['overhead_us'], 1)} µs** "
            "(stream object, start and attempt hooks, first delivery).",
            "",
        ]
    s = out.get("scale")
    if s:
        m = s["memory"]
        lines += [
            f"**Scale: {s['streams']:,} concurrent streams x {s['chunks_per_stream']} chunks at "
            f"{s['rate_per_stream']:.0f} chunks/s, one event loop, default pipeline**",
            "",
            "| measure | value |",
            "|---|---:|",
            f"| streams completed | {s['completed']:,} / {s['streams']:,} |",
            f"| added delay per chunk, p50 | {_f(s['added_delay_ms_p50'], 3)} ms |",
            f"| added delay per chunk, p99 | {_f(s['added_delay_ms_p99'], 3)} ms |",
            f"| added delay per chunk, max | {_f(s['added_delay_ms_max'], 3)} ms |",
            f"| wall time (ideal) | {_f(s['wall_s'])} s ({_f(s['ideal_wall_s'])} s) |",
            f"| CPU (one core = 100 %) | {_f(s['cpu_percent'], 1)} % |",
            f"| CPU per chunk, everything on the loop | {_f(s['cpu_us_per_chunk'])} µs |",
            f"| memory per active stream (beyond its content) | {_f(m['kib_per_active_stream'])} KiB |",
            "",
        ]
    b = out.get("budget")
    if b:
        lines += [
            "**Goals (from the issue) against this run**",
            "",
            "| goal | measured | target | met |",
            "|---|---:|---:|:---:|",
        ]
        for k, v in b.items():
            val = v["value"]
            shown = _f(val, 2) if isinstance(val, float) else str(val)
            lines.append(f"| {k} | {shown} | {v['goal']} | {'yes' if v['met'] else '**no**'} |")
        lines.append("")
    extra = out.get("extra")
    if extra:
        lines += [
            "**Other benchmark modules**",
            "",
            "```",
            *(f"{k}: {v}" for k, v in extra.items()),
            "```",
            "",
        ]
    return "\n".join(lines)


def _unmet(out: dict[str, Any]) -> str:
    missed = [f"`{k}` = {_f(v['value']) if isinstance(v['value'], float) else v['value']} (goal {v['goal']})"
              for k, v in out.get("budget", {}).items() if not v["met"]]  # fmt: skip
    if not missed:
        return "None: every goal above was met."
    return (
        "- "
        + "\n- ".join(missed)
        + "\n\nPer-chunk and first-event figures move with the machine's load (a shared "
        "VM: compare the min column and the in-process first-event figure, which excludes the network). "
        "`ttfe_overhead_ms` compares two different SDK request paths (`create(stream=True)` against "
        "`with_streaming_response.create`) over sockets; the middleware's own share is `ttfe_overhead_ms_inprocess`."
    )


def render(out: dict[str, Any]) -> str:
    m = out["machine"]
    vers = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    info = out.get("results", {}).get("schwarm.default", {}).get("pipeline", {})
    active = ", ".join(info.get("plugins", [])) or "?"
    missing = ", ".join(info.get("missing", []))
    w = out["workload"]
    return f"""# Performance

<!-- Generated by `python benchmarks/run.py --write-docs`; edit benchmarks/_docs.py, not this file. -->

What schwarm_stream costs per streamed chunk, side by side with what you would use instead, measured in one
run on one machine. Regenerate with `python benchmarks/run.py --write-docs` (`--quick` for a short run,
`--json` for machine-readable output).

**This run**: {m["date"]} · {m["python"]} · {m["platform"]} · {m["cpu"]} ({m["cores"]} cores) · {out["mode"]} mode.
Versions: {vers}.

## Method

- **Workload**: one tool-calling Chat Completions answer of {w["chunks"]:,} chunks ({w["text_chars"]:,} characters of
  text in 1-6 character deltas, then {w["tool_calls"]} parallel tool calls of 250 argument fragments each, a finish
  chunk and a usage chunk), every chunk with the fields OpenAI sends. The Anthropic row uses the same answer as
  Messages events. Every accumulating row checks its result against the expected text and arguments.
- **In process**: each row iterates an async generator over prebuilt items, so every row includes the
  `floor` (that bare iteration). Each contender gets the objects its own client would hand it: the OpenAI SDK
  accumulator `ChatCompletionChunk` models (built as the SDK builds them), Anthropic's `accumulate_event` its event
  models, LangChain `AIMessageChunk`s, schwarm_stream rows its normalized events (prebuilt, as the others'
  objects are); `schwarm.default+normalize` starts from the parsed chunk dicts instead and so also pays for
  the real Chat Completions normalizer, which the others' prebuilt objects do not. Rows run in
  interleaved rounds (every row once per round); "x floor" is the median of the per-round ratios.
- **`schwarm.default`** is `Pipeline()`'s built-ins with the metrics plugin given an OpenTelemetry **SDK**
  `MeterProvider`. Active in this run: {active}.{f" Not present in this checkout: {missing}." if missing else ""}
  `schwarm.default+transformer+sse` adds a pass-through transformer and a sink encoding every event as an SSE frame.
  `schwarm.default-chunk_histogram` is `schwarm.default` with `MetricsPlugin(time_per_output_chunk=False)`: one
  SDK record per stream instead of one per chunk gap (what `schwarm.default` did before that histogram was
  recorded per chunk, as the GenAI conventions define it).
- **End to end**: a minimal HTTP/1.1 server in a separate process writes one chunked frame per SSE event; the
  client's CPU time (`time.process_time`) per chunk is reported, so the server's work is not counted. Clients are
  created once and reused. `e2e.sdk_schwarm` uses the official client to send the request and reads the raw
  body (no SDK models); `e2e.native_schwarm` is the native fast path (`native_openai_chat`, httpx + orjson).
- **Time to first event**: wall time from the request to the first event on a short stream,
  per client, interleaved.
- **Scale**: paced in-process sources (no sockets) through the default pipeline on one event loop; added delay is
  the time between when a chunk was due and when its consumer got it. Memory is measured separately with
  `tracemalloc`, streams held half-way; chunk payloads are prebuilt and shared, so the retained text (the content)
  is not counted, everything else per stream is.
- Numbers on a shared VM drift between runs; compare rows within one run, not across runs.

## Results

{results_table(out)}
{other_tables(out)}
## Goals not met in this run

{_unmet(out)}

## Reading the numbers

- Per chunk, schwarm_stream's cost is set by Python-level work per event: normalizing the payload into an event,
  one pass through the core loop (sequence number, counters, delivery lists) and the accumulator appending the
  fragment. Plugins with no per-chunk hook cost nothing per chunk.
- With an OpenTelemetry SDK, the metrics built-in records the time-per-output-chunk histogram once per chunk gap,
  as the GenAI conventions define it (the values are recorded after the last chunk, so a consumer does not wait
  for them). Each OpenTelemetry SDK `record` costs ~20 µs here (its attribute checks and hashing), which is most
  of `schwarm.default` and of the goals it misses; `schwarm.default-chunk_histogram` is the same pipeline
  without that histogram, and `MetricsPlugin(time_per_output_chunk=False)` is the switch
  ([observability](observability.md)). Without an SDK the plugin registers no per-chunk hook.
- The OpenAI SDK accumulator rebuilds its snapshot from every chunk; LangChain merges message objects or awaits a
  callback manager per token. Those are the numbers to compare with `schwarm.default`.
- End to end, most of the official client's cost is building SDK models per chunk. The SDK path of schwarm_stream
  lets the client send the request and reads the raw SSE body itself, so `e2e.sdk_schwarm` costs less than
  `e2e.sdk_bare`; the native path drops the SDK altogether.
"""
