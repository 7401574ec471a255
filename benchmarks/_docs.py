"""Rendering the runner's results as Markdown (tables for the terminal and ``docs/performance.md``)."""

from __future__ import annotations

from typing import Any

GROUPS = [
    (
        "In process (microbenchmark, no I/O): the same prebuilt chunks through each contender",
        ("floor", "schwarm.", "openai.", "anthropic.", "langchain."),
    ),
    ("End to end over loopback HTTP, the dedicated pipeline (autoload off): client CPU per chunk", ("e2e.",)),
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


def _row_table(rows: dict[str, Any], base: str, second: str | None = None) -> list[str]:
    # Ratios of this table's medians; the ratios table below takes them per round (steadier).
    head = (
        f"| entry | median µs/chunk | min µs/chunk | x {base} |"
        + (f" x {second} |" if second else "")
        + " what |"
    )
    lines = [head, "|---|---:|---:|---:|" + ("---:|" if second else "") + "---|"]
    samples = {k: v.get("median_us") for k, v in rows.items()}
    for name, v in rows.items():
        b = samples.get(base)
        xs = f" {_f(v['median_us'] / b if b else None)} |"
        if second:
            b2 = samples.get(second)
            xs += f" {_f(v['median_us'] / b2 if b2 else None)} |"
        lines.append(f"| `{name}` | {_f(v['median_us'])} | {_f(v['min_us'])} |{xs} {v['note']} |")
    return lines


def user_tables(out: dict[str, Any]) -> str:
    u = out.get("user")
    if not u:
        return ""
    rows = u["rows"]
    oa = {k: v for k, v in rows.items() if k.startswith("user.")}
    an = {k: v for k, v in rows.items() if k.startswith("anthropic.")}
    lines = [
        "**OpenAI Chat Completions, over a loopback socket: client CPU per chunk**",
        "",
        *_row_table(oa, "user.floor", "user.sdk_bare"),
        "",
    ]
    if u.get("skipped"):
        lines += ["Optional rows not run: " + "; ".join(f"`{k}`: {v}" for k, v in u["skipped"].items()), ""]
    if an:
        lines += [
            "**Anthropic Messages (the same answer), over a loopback socket: client CPU per chunk**",
            "",
            *_row_table(an, "anthropic.sdk_bare", "anthropic.message_stream"),
            "",
        ]
    lines += [
        "**Ratios, each the median of per-round ratios (interleaved rounds of this run)**",
        "",
        "| ratio | value |",
        "|---|---:|",
        *(f"| {k} | {_f(v)} |" for k, v in u["ratios"].items()),
        "",
        "Plugins active in `open()` as installed: "
        + ", ".join(u["pipelines"]["open"])
        + ". With autoload off: "
        + ", ".join(u["pipelines"]["autoload_off"])
        + ". Every built-in on: "
        + ", ".join(u["pipelines"]["all_on"])
        + ".",
        "",
    ]
    return "\n".join(lines)


def targets_table(out: dict[str, Any]) -> str:
    t = out.get("targets")
    if not t:
        return "No target could be computed in this run (sections missing)."
    lines = ["| target | measured | goal | met |", "|---|---:|---:|:---:|"]
    for v in t.values():
        lines.append(
            f"| {v['what']} | {_f(v['value'], 3)} | {v['goal']} | {'met' if v['met'] else '**unmet**'} |"
        )
    return "\n".join(lines)


def ttfe_table(out: dict[str, Any]) -> str:
    t = out.get("ttfe")
    if not t:
        return ""
    lines = [
        f"**Time from request to first event** ({t['samples']} requests per client, interleaved, short stream; ms)",
        "",
        "| client | p50 ms | p99 ms | min ms |",
        "|---|---:|---:|---:|",
    ]
    for k, v in t["median_ms"].items():
        lines.append(
            f"| `{k}` | {_f(v, 3)} | {_f(t.get('p99_ms', {}).get(k), 3)} | {_f(t['min_ms'][k], 3)} |"
        )
    lines.append("")
    for k, v in t.get("open_over_sdk_bare_ms", {}).items():
        lines.append(f"- `{k}` (schwarm_stream.open() as installed) over `sdk_bare`: p50 **{_f(v['p50'], 3)} ms**, "
                     f"p99 {_f(v['p99'], 3)} ms (differences of percentiles; requests cannot be paired).")  # fmt: skip
    lines.append("")
    return "\n".join(lines)


def scale_tables(out: dict[str, Any]) -> str:
    s = out.get("scale")
    if not s:
        return ""
    lines = [
        "**Headroom: concurrent streams at 20 chunks/s each, real sockets, `open()` as installed**",
        "",
        "| streams, client | completed | added delay p50 ms | p99 ms | max ms | wall s (ideal) | client CPU % of a core "
        "| server CPU % | CPU µs/chunk (all) | steady CPU µs/chunk |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for point in s["headroom"]:
        for h in (point, point.get("floor")):
            if not h:
                continue
            st = h.get("steady") or {}
            lines.append(
                f"| {h['streams']:,} {'floor' if h is not point else '`open()`'} | {h['completed']:,} "
                f"| {_f(h['added_delay_ms_p50'], 1)} | {_f(h['added_delay_ms_p99'], 1)} "
                f"| {_f(h['added_delay_ms_max'], 1)} | {_f(h['wall_s'], 1)} ({_f(h['ideal_wall_s'], 1)}) "
                f"| {_f(h['cpu_percent_of_core'], 0)} | {_f(st.get('server_cpu_percent_of_core'), 0)} "
                f"| {_f(h['cpu_us_per_chunk'], 1)} | {_f(st.get('cpu_us_per_chunk'), 1)} |"
            )
    lines += [
        "",
        f"**Per-stream cost by concurrency: {s.get('aggregate_rate', 0):,.0f} chunks/s in all, split over the streams, "
        "real sockets, the default plugin set**",
        "",
        "| streams | chunks/s each | completed | added delay p50 ms | p99 ms | steady CPU µs/chunk "
        "| steady client CPU % | server CPU % | CPU ms per stream (setup incl.) | KiB per open stream (traced) "
        "| KiB RSS per open stream | floor: steady CPU µs/chunk | floor: p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in s["curve"]:
        st = c.get("steady") or {}
        m = c.get("memory", {})
        fl = c.get("floor") or {}
        fl_st = fl.get("steady") or {}
        lines.append(
            f"| {c['streams']:,} | {_f(c['rate_per_stream'], 1)} | {c['completed']:,} | {_f(c['added_delay_ms_p50'], 1)} "
            f"| {_f(c['added_delay_ms_p99'], 1)} | {_f(st.get('cpu_us_per_chunk'), 1)} | {_f(st.get('cpu_percent_of_core'), 0)} "
            f"| {_f(st.get('server_cpu_percent_of_core'), 0)} | {_f(c['cpu_ms_per_stream'], 2)} "
            f"| {_f(m.get('kib_traced_per_stream'), 1)} | {_f(m.get('kib_rss_per_stream'), 1)} "
            f"| {_f(fl_st.get('cpu_us_per_chunk'), 1)} | {_f(fl.get('added_delay_ms_p99'), 1)} |"
        )
    tuned = s.get("curve_gc_tuned") or []
    if tuned:
        default = {c["streams"]: c for c in s["curve"]}
        lines += [
            "",
            "**The same points with a server GC setting** (`gc.freeze()` after warm-up, thresholds "
            f"{', '.join(f'{t:,}' for t in s.get('gc_tuned_thresholds', []))}; `benchmarks/_scale_net.py` `tuned_gc`), "
            "beside CPython's default collector (the rows above). The setting removes most full collections "
            "and the delay spikes they cause; cyclic garbage (httpx's, about 45 objects per finished stream) "
            "waits longer for a full collection in exchange.",
            "",
            "| streams | completed | added delay p50 ms | p99 ms | steady CPU µs/chunk | full collections in window "
            "| default GC: steady CPU µs/chunk | default GC: p99 ms | default GC: full collections |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in tuned:
            st = c.get("steady") or {}
            d = default.get(c["streams"], {})
            d_st = d.get("steady") or {}
            lines.append(
                f"| {c['streams']:,} | {c['completed']:,} | {_f(c['added_delay_ms_p50'], 1)} "
                f"| {_f(c['added_delay_ms_p99'], 1)} | {_f(st.get('cpu_us_per_chunk'), 1)} "
                f"| {(st.get('gc') or {}).get('full_collections', '')} "
                f"| {_f(d_st.get('cpu_us_per_chunk'), 1)} | {_f(d.get('added_delay_ms_p99'), 1)} "
                f"| {(d_st.get('gc') or {}).get('full_collections', '')} |"
            )
    for k, why in s.get("not_run", {}).items():
        lines.append(f"\n{k} streams not run: {why}.")
    for c in [*s["headroom"], *s["curve"]]:
        if c["errors"]:
            errs = ", ".join(f"{n:,} {k}" for k, n in c["errors"].items())
            lines.append(
                f"\nAt {c['streams']:,} streams only {c['completed']:,} completed ({errs}): the machine could not keep "
                f"that many streams fed (the run cost {_f(c['cpu_ms_per_stream'], 2)} ms of client CPU per stream, "
                "opening included), so chunks arrived later than the default 30 s first-chunk timeout allows; the delay "
                "and CPU figures of that point describe a saturated process, not headroom."
            )
    for c in s["curve"]:
        m = c.get("memory") or {}
        if m.get("errors"):
            lines.append(
                f"\nMemory at {c['streams']:,} streams is over the {m['held']:,} streams that were open and holding "
                f"when measured ({', '.join(f'{n:,} {k}' for k, n in m['errors'].items())} before their first event)."
            )
    lines += [
        "",
        f"Descriptor limit in the benchmark process: {s['nofile']['soft']:,} (raised to the hard limit).",
        "",
    ]
    return "\n".join(lines)


def hedge_tables(extra: dict[str, Any]) -> str:
    lines: list[str] = []
    for key in ("bench_hedge.hedge.heavy_tail", "bench_hedge.hedge.correlated"):
        h = extra.get(key)
        if not h or "hedge.off" not in h:
            continue
        if not lines:
            lines += [f"**Hedged requests** (latency model: {h['latency_model']})", ""]
            lines += [
                "| backup latency | hedging | p50 ms | p95 ms | p99 ms | extra requests |",
                "|---|---|---:|---:|---:|---:|",
            ]
        for name, r in (("off", h["hedge.off"]), ("on", h["hedge.on"])):
            lines.append(f"| {h['backup_model']} | {name} | {_f(r['p50_ms'], 1)} | {_f(r['p95_ms'], 1)} "
                         f"| {_f(r['p99_ms'], 1)} | {_f(r['extra_requests_share'] * 100, 1)} % |")  # fmt: skip
    if lines:
        lines.append("")
    return "\n".join(lines)


def redis_tables(extra: dict[str, Any]) -> str:
    """The Redis log benchmark (``bench_redis``): its rows as one table, or why it did not run."""
    skipped = (extra.get("bench_redis") or {}).get("skipped")
    if skipped:
        return f"Not run: {skipped}.\n"
    got = extra.get("bench_redis.redis.batched_vs_per_event")
    if not got or "rows" not in got:
        return "Not run in this run.\n" if not got else f"Failed: {got}\n"
    rows = got["rows"]
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in ("case", "mode")]
    lines = ["| case | mode | " + " | ".join(keys) + " |", "|---|---|" + "---:|" * len(keys)]
    for r in rows:
        cells = " | ".join(
            _f(r[k], 2) if isinstance(r.get(k), float) else (f"{r[k]:,}" if k in r else "") for k in keys
        )
        lines.append(f"| `{r['case']}` | {r['mode']} | {cells} |")
    return "\n".join(lines) + "\n"


def other_tables(out: dict[str, Any]) -> str:
    lines: list[str] = []
    fe = out.get("first_event_inprocess")
    if fe:
        lines += [
            f"**In process: time from `open()` to the first event** (median of {fe['samples']}; µs): "
            f"the source alone {_f(fe['median_us']['bare'], 1)}, through the default pipeline "
            f"{_f(fe['median_us']['default'], 1)}: the middleware adds **{_f(fe['overhead_us'], 1)} µs** "
            "(stream object, start and attempt hooks, first delivery).",
            "",
        ]
    ip = out.get("installed_plugins_us_per_chunk")
    if ip:
        lines += [
            f"**In process: installed-but-unconfigured plugins** ({', '.join(ip['plugins'])}): "
            f"`schwarm.installed` minus `schwarm.autoload_off`, median of per-round differences: "
            f"**{_f(ip['median'], 3)} µs/chunk**.",
            "",
        ]
    s = out.get("scale_inprocess")
    if s:
        m = s["memory"]
        lines += [
            f"**In process (no sockets): {s['streams']:,} paced streams x {s['chunks_per_stream']} chunks at "
            f"{s['rate_per_stream']:.0f} chunks/s, one event loop, default pipeline**",
            "",
            "| measure | value |",
            "|---|---:|",
            f"| streams completed | {s['completed']:,} / {s['streams']:,} |",
            f"| added delay per chunk, p50 | {_f(s['added_delay_ms_p50'], 3)} ms |",
            f"| added delay per chunk, p99 | {_f(s['added_delay_ms_p99'], 3)} ms |",
            f"| wall time (ideal) | {_f(s['wall_s'])} s ({_f(s['ideal_wall_s'])} s) |",
            f"| CPU (one core = 100 %) | {_f(s['cpu_percent'], 1)} % |",
            f"| CPU per chunk, everything on the loop | {_f(s['cpu_us_per_chunk'])} µs |",
            f"| memory per active stream (beyond its content) | {_f(m['kib_per_active_stream'])} KiB |",
            "",
        ]
    b = out.get("budget")
    if b:
        lines += [
            "**Older goals (in-process and end-to-end rows) against this run**",
            "",
            "| goal | measured | target | met |",
            "|---|---:|---:|:---:|",
        ]
        for k, v in b.items():
            val = v["value"]
            shown = _f(val, 2) if isinstance(val, float) else str(val)
            lines.append(f"| {k} | {shown} | {v['goal']} | {'yes' if v['met'] else '**no**'} |")
        lines.append("")
    extra = {
        k: v for k, v in (out.get("extra") or {}).items() if not k.startswith(("bench_hedge.", "bench_redis"))
    }
    if extra:
        lines += [
            "**Other benchmark modules** (raw results)",
            "",
            "```",
            *(f"{k}: {v}" for k, v in extra.items()),
            "```",
            "",
        ]
    return "\n".join(lines)


def _unmet(out: dict[str, Any]) -> str:
    missed = [f"{v['what']}: {_f(v['value'], 3)} (goal {v['goal']})"
              for v in out.get("targets", {}).values() if not v["met"]]  # fmt: skip
    if not missed:
        return "None: every target above was met in this run."
    return "- " + "\n- ".join(missed)


def render(out: dict[str, Any]) -> str:
    m = out["machine"]
    vers = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    info = out.get("results", {}).get("schwarm.default", {}).get("pipeline", {})
    active = ", ".join(info.get("plugins", [])) or "?"
    w = out["workload"]
    return f"""# Performance

<!-- Generated by `python benchmarks/run.py --write-docs`; edit benchmarks/_docs.py, not this file. -->

What schwarm_stream costs per streamed chunk, as a user gets it, side by side with what you would use instead,
measured in one run on one machine. Every number on this page comes from that run. Regenerate it with one command
(after `pip install -e '.[all,test,bench]'`; a full run takes several minutes):

```bash
python benchmarks/run.py --write-docs
```

`--quick` makes a short run (the CI smoke test; rough numbers), `--json` prints machine-readable results,
`--only user,ttfe` runs some sections.

**This run**: {m["date"]} · {m["python"]} · {m["platform"]} · {m["cpu"]} ({m["cores"]} cores, shared) · {out["mode"]} mode.
Versions: {vers}.

## Targets

The targets of issue 20, as ratios taken in this run (rows interleaved: every row once per round, the ratio per
round, then the median).

{targets_table(out)}

## As a user gets it

Every row below sends a real HTTP request over 127.0.0.1 to the benchmark's fake provider (`benchmarks/_server.py`,
its own process, one chunked-encoding write per SSE event) and parses the raw bytes; the client's CPU time
(`time.process_time`) per chunk is reported, so the server's work is not counted. Clients are created once and
reused. `schwarm_stream.open()` rows use the process default pipeline as installed: plugin autoload on, with this
repository's first-party `plugins/*` installed. "Every built-in on" is the metrics plugin on an OpenTelemetry SDK
meter provider and tracer provider, `Buffer(max_events=8, max_delay=0.05)`, retry, recovery and timeouts. Every
accumulating row checks its result against the expected text and tool-call arguments.

{user_tables(out)}
{ttfe_table(out)}
## Scale in one process, over real sockets

Streams are `schwarm_stream.open(native_openai_chat(...))` as installed on `httpx.AsyncClient`s of 250 streams each
(opened at most 400 per second), against
the benchmark server's paced route (chunk `j` sent at `t0 + j * interval`, the server in its own process). Added
delay is when the consumer got a chunk minus when the server was due to send it (so it includes the server's own
lateness: an upper bound on what the client added). CPU % is of one core; the *steady* figures are taken while
every stream is open and none has finished, so they are the per-chunk cost at that concurrency without stream setup.
Memory per open stream: every stream holds after its first event (its socket open, waiting), traced Python memory
(`tracemalloc`, up to 1,000 streams: tracing 10,000 openings takes minutes here) and RSS growth divided by the
number of streams, measured apart from the timed run (RSS at 10 or 100 streams is within the allocator's noise,
hence figures near zero or below). The machine has
two cores shared with the server and with everything else on it: a point whose CPU reaches a core is saturated,
and its delay says so. The *floor* rows and columns read the same paced streams with the hand-written httpx +
orjson client: what any Python client pays on this machine at that load.

{scale_tables(out)}
## Hedging

{hedge_tables(out.get("extra") or {})}
The provider is simulated in process (no sockets), so the figures show what the hedging policy does to the tail
under each latency model, not a provider's real tail. With independent backup latency a slow primary says nothing
about the backup; with correlated latency it mostly means a slow backup too, and hedging helps less.

## The Redis log

`benchmarks/bench_redis.py` (its own `redis-server` on loopback, started by the benchmark; batched writes against one
XADD per event, side by side):

{redis_tables(out.get("extra") or {})}
## In-process microbenchmarks

These rows iterate prebuilt objects in process (no sockets, no HTTP, no SSE): each contender gets the objects its own
client would hand it, schwarm_stream rows its normalized events (`schwarm.default+normalize` the parsed chunk
dicts). They isolate the middleware's own per-chunk work; the headline rows above are what a user pays.
`schwarm.default` is `Pipeline()`'s built-ins without plugin autoload, the metrics plugin on an OpenTelemetry SDK
meter provider (active: {active}). `schwarm.installed` and `schwarm.autoload_off` use the API's default meter; their
difference is the per-chunk price of installed-but-unconfigured plugins. "x floor" is the median of per-round
ratios to `floor` (the bare async iteration). The workload: one tool-calling answer of {w["chunks"]:,} chunks
({w["text_chars"]:,} characters of text in 1-6 character deltas, then {w["tool_calls"]} parallel tool calls of 250
argument fragments each, a finish chunk and a usage chunk).

{results_table(out)}
{other_tables(out)}
## Targets not met in this run

{_unmet(out)}

## Reading the numbers

- Per chunk, schwarm_stream's own cost is Python-level work per event: splitting and parsing the SSE bytes,
  normalizing the payload into an event, one pass through the core loop, and the accumulator appending the
  fragment. Plugins without a per-chunk hook cost nothing per chunk.
- Over a socket, a paced stream (one chunk per read, as a provider sends tokens) costs more per chunk than a burst
  (many chunks per read): the scale tables measure the first, the headline rows mostly the second.
- Numbers on a shared VM drift between runs; compare rows within one run, not across runs.
"""
