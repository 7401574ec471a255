"""In-process cases: the same prebuilt chunks through each contender, one ``async for`` each.

Every case iterates an async generator over prebuilt items, so each includes
the floor (the bare iteration). The contenders get what they would get from
their own client: the OpenAI SDK accumulator gets ``ChatCompletionChunk``
objects built the way the SDK builds them, Anthropic's gets its event models,
LangChain gets ``AIMessageChunk`` objects, schwarm_stream gets its normalized
events. ``schwarm.default+normalize`` starts from the parsed chunk dicts and
runs the real normalizer too (building the others' objects is not counted).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import _pipelines
from _harness import Case
from _workload import Workload, check_message

from schwarm_stream import Pipeline


async def agen(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def floor(w: Workload) -> Case:
    items = w.chat_dicts

    async def run(reps: int) -> None:
        for _ in range(reps):
            async for _item in agen(items):
                pass

    return Case("floor", run, w.chunks, "async for over an async generator of prebuilt chunks, no work")


def schwarm(
    name: str,
    pipeline: Pipeline,
    w: Workload,
    note: str,
    info: dict[str, Any] | None = None,
    *,
    from_dicts: bool = False,
) -> Case:
    source: Any = (
        _pipelines.DictSource(w.chat_dicts)
        if from_dicts
        else _pipelines.EventSource(_pipelines.normalized(w.chat_dicts))
    )

    async def run(reps: int) -> None:
        for _ in range(reps):
            async with pipeline.open(source) as s:
                async for _ev in s:
                    pass

    async def first(reps: int) -> None:  # the first call checks the result, then measures
        async with pipeline.open(source) as s:
            async for _ev in s:
                pass
        if name != "schwarm.no_plugins":
            check_message(s.message, w)
        case.fn = run
        if reps > 1:
            await run(reps - 1)

    case = Case(name, first, w.chunks, note, extra={"pipeline": info} if info else {})
    return case


def openai_stream_state(w: Workload) -> Case:
    from openai._models import construct_type
    from openai.lib.streaming.chat._completions import ChatCompletionStreamState
    from openai.types.chat import ChatCompletionChunk

    chunks = [construct_type(type_=ChatCompletionChunk, value=d) for d in w.chat_dicts]

    async def run(reps: int) -> None:
        for _ in range(reps):
            state = ChatCompletionStreamState()
            async for c in agen(chunks):
                state.handle_chunk(c)
            final = state.get_final_completion()
        msg = final.choices[0].message
        if msg.content != w.text or [t.function.arguments for t in msg.tool_calls or ()] != w.tool_arguments:
            raise AssertionError("openai.stream_state accumulated a different answer")

    return Case(
        "openai.stream_state",
        run,
        w.chunks,
        "OpenAI SDK ChatCompletionStreamState.handle_chunk per chunk + get_final_completion",
    )


def anthropic_accumulate(w: Workload) -> Case:
    from anthropic._models import construct_type
    from anthropic.lib.streaming._messages import accumulate_event
    from anthropic.types import RawMessageStreamEvent

    events = [construct_type(type_=RawMessageStreamEvent, value=d) for d in w.anthropic_dicts]

    async def run(reps: int) -> None:
        for _ in range(reps):
            snap = None
            bufs: dict[int, bytes] = {}
            async for e in agen(events):
                snap = accumulate_event(event=e, current_snapshot=snap, json_bufs=bufs)
        assert snap is not None
        if snap.content[0].text != w.text:  # type: ignore[union-attr]
            raise AssertionError("anthropic.accumulate accumulated a different answer")

    return Case(
        "anthropic.accumulate",
        run,
        len(events),
        "Anthropic SDK accumulate_event per event (the same answer as Messages events)",
    )


def _lc_chunks(w: Workload) -> list[Any]:
    from langchain_core.messages import AIMessageChunk

    out = []
    for d in w.chat_dicts:
        choices = d["choices"]
        delta = choices[0]["delta"] if choices else {}
        calls = [
            {
                "name": tc.get("function", {}).get("name"),
                "args": tc.get("function", {}).get("arguments"),
                "id": tc.get("id"),
                "index": tc["index"],
            }
            for tc in delta.get("tool_calls") or ()
        ]
        out.append(AIMessageChunk(content=delta.get("content") or "", tool_call_chunks=calls))  # type: ignore[arg-type]
    return out


def langchain_merge(w: Workload) -> Case:
    chunks = _lc_chunks(w)

    async def run(reps: int) -> None:
        for _ in range(reps):
            acc = None
            async for c in agen(chunks):
                acc = c if acc is None else acc + c
        assert acc is not None
        if acc.content != w.text or [t["args"] for t in acc.tool_call_chunks] != w.tool_arguments:
            raise AssertionError("langchain.merge accumulated a different answer")

    return Case("langchain.merge", run, w.chunks, "langchain-core: acc = acc + AIMessageChunk per chunk")


def langchain_callback_1(w: Workload) -> Case:
    from langchain_core.callbacks import AsyncCallbackHandler, AsyncCallbackManager

    class NoOp(AsyncCallbackHandler):
        async def on_llm_new_token(self, token: str, **kwargs: Any) -> None:  # type: ignore[override]
            return None

    tokens = [(d["choices"][0]["delta"].get("content") or "") if d["choices"] else "" for d in w.chat_dicts]
    state: dict[str, Any] = {}

    async def run(reps: int) -> None:
        rm = state.get("rm")
        if rm is None:
            rms = await AsyncCallbackManager(handlers=[NoOp()]).on_chat_model_start({}, [[]])
            rm = state["rm"] = rms[0]
        for _ in range(reps):
            async for t in agen(tokens):
                await rm.on_llm_new_token(t)

    return Case(
        "langchain.callback_1",
        run,
        w.chunks,
        "langchain-core: await run_manager.on_llm_new_token with one no-op AsyncCallbackHandler",
    )


def cases(w: Workload) -> list[Case]:
    out = [
        floor(w),
        schwarm("schwarm.no_plugins", _pipelines.no_plugins(), w, "core loop only, every plugin off"),
    ]
    p, info = _pipelines.default()
    out.append(
        schwarm("schwarm.default", p, w, "Pipeline() built-ins; metrics on an OTel SDK MeterProvider", info)
    )
    p, info = _pipelines.default_no_chunk_histogram()
    out.append(
        schwarm(
            "schwarm.default-chunk_histogram",
            p,
            w,
            "schwarm.default without the per-chunk time-per-output-chunk histogram",
            info,
        )
    )
    p, info = _pipelines.default_transformer_sse()
    out.append(
        schwarm(
            "schwarm.default+transformer+sse",
            p,
            w,
            "schwarm.default + a pass-through transformer + an SSE sink",
            info,
        )
    )
    p, info = _pipelines.default()
    out.append(
        schwarm(
            "schwarm.default+normalize",
            p,
            w,
            "schwarm.default fed parsed chunk dicts: includes the Chat Completions normalizer",
            info,
            from_dicts=True,
        )
    )
    # As installed vs. autoload off, both with the API's default (no-op) meter: the difference is what the
    # installed-but-unconfigured plugins (this repository's plugins/*) cost per chunk.
    p = Pipeline()
    p.plugins()
    out.append(
        schwarm(
            "schwarm.installed",
            p,
            w,
            "Pipeline() as installed: autoload on, every installed plugin, none configured",
            {"plugins": [i.name for i in p.plugins() if i.status == "enabled"]},
        )
    )
    p = Pipeline(config={"plugins": {"autoload": False}})
    p.plugins()
    out.append(
        schwarm(
            "schwarm.autoload_off",
            p,
            w,
            "Pipeline() with plugin autoload off (the built-ins only)",
            {"plugins": [i.name for i in p.plugins() if i.status == "enabled"]},
        )
    )
    out += [openai_stream_state(w), anthropic_accumulate(w), langchain_merge(w), langchain_callback_1(w)]
    return out


async def first_event(w: Workload, samples: int) -> dict[str, Any]:
    """Time from ``open()`` to the first event, in process: the middleware's own share of time to first event.

    ``bare`` takes the first event from the same source directly; ``default`` opens a stream on the default
    pipeline (stream object, ``stream_start`` / ``stream_attempt`` hooks, the first delivery) and takes its first
    event. Each sample then consumes the rest, so per-stream end work is not in the number.
    """
    import statistics
    import time

    pipeline, _info = _pipelines.default()
    source = _pipelines.EventSource(_pipelines.normalized(w.chat_dicts[:10]))

    async def bare() -> float:
        t0 = time.perf_counter()
        it = source._events()
        await it.__anext__()
        dt = time.perf_counter() - t0
        async for _ in it:
            pass
        return dt

    async def schwarm() -> float:
        t0 = time.perf_counter()
        async with pipeline.open(source) as s:
            first = None
            async for _ in s:
                if first is None:
                    first = time.perf_counter() - t0
        assert first is not None
        return first

    got: dict[str, list[float]] = {"bare": [], "default": []}
    for _ in range(20):  # warm up
        await bare()
        await schwarm()
    for _ in range(samples):
        got["bare"].append(await bare() * 1e6)
        got["default"].append(await schwarm() * 1e6)
    med = {k: statistics.median(v) for k, v in got.items()}
    return {"samples": samples, "median_us": med, "overhead_us": med["default"] - med["bare"]}
