"""Headline rows: what a user gets, from raw bytes over a loopback socket, client CPU per chunk.

Every row sends a real HTTP request to the benchmark server (``_server.py``, its
own process) and parses the raw SSE bytes; the client's ``time.process_time()``
per chunk is reported. Rows of one group run interleaved (every row once per
round); ratios are medians of per-round ratios.

OpenAI group (Chat Completions, 2,005 chunks):

- ``user.floor``: hand-written httpx + orjson + dict accumulator (text and tool-call
  arguments), the least any Python client can do;
- ``user.sdk_bare``: ``AsyncOpenAI.chat.completions.create(stream=True)``, chunks iterated;
- ``user.sdk_accumulator``: the SDK's own accumulator, ``client.chat.completions.stream()``
  (``ChatCompletionStream``) with ``get_final_completion()``;
- ``user.open_native`` / ``user.open_sdk``: ``schwarm_stream.open()`` as installed (the
  process default pipeline: plugin autoload on, whatever plugins are installed,
  here this repository's ``plugins/*``) on ``native_openai_chat`` / ``openai_chat``;
- ``user.open_native_autoload_off``: the same without plugin autoload (the price of
  installed-but-unconfigured plugins is the difference);
- ``user.all_on_native`` / ``user.all_on_sdk``: every built-in on: metrics and tracing
  on an OpenTelemetry SDK meter and tracer provider, ``Buffer(max_events=8,
  max_delay=0.05)``, retry, recovery, timeouts (autoload on);
- ``user.langchain``, ``user.litellm``, ``user.pydantic_ai``: optional rows, when
  installed (``langchain-openai`` ``ChatOpenAI.astream`` summing chunks,
  ``litellm.acompletion(stream=True)`` + ``stream_chunk_builder``, pydantic-ai's
  ``OpenAIChatModel.request_stream`` iterated to its final response).

Anthropic group (the same answer as Messages events): ``anthropic.sdk_bare``,
``anthropic.message_stream`` (the SDK's ``MessageStream``), ``anthropic.open_native``,
``anthropic.open_sdk``, ``anthropic.all_on_native``, ``anthropic.all_on_sdk``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from _harness import Case
from _workload import Workload, check_message

import schwarm_stream
from schwarm_stream import Pipeline
from schwarm_stream.builtins.buffer import Buffer
from schwarm_stream.builtins.metrics import MetricsPlugin
from schwarm_stream.sources import anthropic_messages, native_anthropic, native_openai_chat, openai_chat

MESSAGES: Any = [{"role": "user", "content": "weather?"}]
MODEL = "gpt-bench-1"
#: The optional contenders: (row, distribution that must be installed).
OPTIONAL = {
    "user.langchain": "langchain_openai",
    "user.litellm": "litellm",
    "user.pydantic_ai": "pydantic_ai",
}


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def all_on_pipeline() -> tuple[Pipeline, Any]:
    """Every built-in on: OTel SDK meter + tracer, Buffer(8 events / 50 ms), retry, recovery, timeouts."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    tp = TracerProvider()
    pipeline = Pipeline(
        [
            ("metrics", MetricsPlugin(meter_provider=mp, tracer_provider=tp)),
            ("buffer", Buffer(max_events=8, max_delay=0.05)),
        ]
    )
    pipeline.plugins()  # built now: the first stream must not pay for plugin discovery
    return pipeline, (mp, tp)


def pipeline_plugins(pipeline: Pipeline) -> list[str]:
    return [i.name for i in pipeline.plugins() if i.status == "enabled"]


class UserClients:
    """Clients created once and reused (connection pooling, as an application would)."""

    def __init__(self, url: str, *, short: bool = False) -> None:
        import anthropic
        import openai

        root = url + ("/short" if short else "")
        self.base = root + "/v1"
        self.anthropic_base = root
        self.httpx = httpx.AsyncClient()
        self.openai = openai.AsyncOpenAI(api_key="sk-bench", base_url=self.base, max_retries=0)
        self.anthropic = anthropic.AsyncAnthropic(api_key="sk-bench", base_url=root, max_retries=0)
        self.default = schwarm_stream.default_pipeline()
        self.default.plugins()
        self.autoload_off = Pipeline(config={"plugins": {"autoload": False}})
        self.autoload_off.plugins()
        self.all_on, self._providers = all_on_pipeline()
        self.info = {
            "open": pipeline_plugins(self.default),
            "autoload_off": pipeline_plugins(self.autoload_off),
            "all_on": pipeline_plugins(self.all_on),
        }
        self.skipped: dict[str, str] = {}

    async def aclose(self) -> None:
        await self.httpx.aclose()
        await self.openai.close()
        await self.anthropic.close()

    def native(self) -> Any:
        return native_openai_chat(self.base, "sk-bench", client=self.httpx, model=MODEL, messages=MESSAGES)

    def sdk(self) -> Any:
        return openai_chat(self.openai, model=MODEL, messages=MESSAGES)

    def native_anthropic(self) -> Any:
        return native_anthropic(
            self.anthropic_base,
            "sk-bench",
            client=self.httpx,
            model=MODEL,
            messages=MESSAGES,
            max_tokens=4096,
        )

    def sdk_anthropic(self) -> Any:
        return anthropic_messages(self.anthropic, model=MODEL, messages=MESSAGES, max_tokens=4096)


def floor_accumulate(lines: list[bytes], acc: dict[str, Any]) -> None:
    """The hand-written accumulator: text and per-index tool-call arguments from parsed chunks."""
    loads = orjson.loads
    for line in lines:
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        d = loads(line[6:])
        for ch in d["choices"]:
            delta = ch["delta"]
            text = delta.get("content")
            if text:
                acc["text"].append(text)
            for tc in delta.get("tool_calls") or ():
                args = acc["tools"].setdefault(tc["index"], [])
                fn = tc.get("function")
                if fn and fn.get("arguments"):
                    args.append(fn["arguments"])


async def floor_stream(client: httpx.AsyncClient, url: str, body: bytes) -> dict[str, Any]:
    acc: dict[str, Any] = {"text": [], "tools": {}}
    buf = b""
    async with client.stream("POST", url, content=body) as r:
        async for piece in r.aiter_bytes():
            buf += piece
            if b"\n\n" in buf:
                *events, buf = buf.split(b"\n\n")
                floor_accumulate(events, acc)
    return acc


def check_floor(acc: dict[str, Any], w: Workload) -> None:
    if "".join(acc["text"]) != w.text:
        raise AssertionError("floor: accumulated text differs")
    if ["".join(acc["tools"][i]) for i in sorted(acc["tools"])] != w.tool_arguments:
        raise AssertionError("floor: tool-call arguments differ")


def check_text_args(text: str, args: list[str], w: Workload, who: str) -> None:
    if text != w.text:
        raise AssertionError(f"{who}: accumulated text differs ({len(text)} vs {len(w.text)})")
    if args != w.tool_arguments:
        raise AssertionError(f"{who}: tool-call arguments differ")


def openai_cases(c: UserClients, w: Workload) -> list[Case]:
    url = c.base + "/chat/completions"
    body = b'{"model":"gpt-bench-1","messages":[],"stream":true}'
    n = w.chunks

    async def floor(reps: int) -> None:
        for _ in range(reps):
            acc = await floor_stream(c.httpx, url, body)
        check_floor(acc, w)

    async def sdk_bare(reps: int) -> None:
        for _ in range(reps):
            stream = await c.openai.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
            async for _chunk in stream:
                pass

    async def sdk_accumulator(reps: int) -> None:
        for _ in range(reps):
            async with c.openai.chat.completions.stream(model=MODEL, messages=MESSAGES) as stream:
                async for _ev in stream:
                    pass
                final = await stream.get_final_completion()
        msg = final.choices[0].message
        args = [t.function.arguments for t in msg.tool_calls or []]
        check_text_args(msg.content or "", args, w, "sdk_accumulator")

    def through(pipeline: Pipeline | None, make: Callable[[], Any]) -> Callable[[int], Any]:
        async def run(reps: int) -> None:
            for _ in range(reps):
                s = schwarm_stream.open(make()) if pipeline is None else pipeline.open(make())
                async with s:
                    async for _ev in s:
                        pass
            check_message(s.message, w)

        return run

    cases = [
        Case("user.floor", floor, n, "hand-written httpx + orjson + dict accumulator", clock="cpu"),
        Case("user.sdk_bare", sdk_bare, n, "AsyncOpenAI create(stream=True), chunks iterated", clock="cpu"),
        Case(
            "user.sdk_accumulator",
            sdk_accumulator,
            n,
            "the SDK's own accumulator: chat.completions.stream() + get_final_completion()",
            clock="cpu",
        ),
        Case(
            "user.open_native",
            through(None, c.native),
            n,
            "schwarm_stream.open(native_openai_chat(...)) as installed (autoload on)",
            clock="cpu",
        ),
        Case(
            "user.open_native_autoload_off",
            through(c.autoload_off, c.native),
            n,
            "the same with plugin autoload off (installed plugins not loaded)",
            clock="cpu",
        ),
        Case(
            "user.open_sdk",
            through(None, c.sdk),
            n,
            "schwarm_stream.open(openai_chat(AsyncOpenAI)) as installed",
            clock="cpu",
        ),
        Case(
            "user.all_on_native",
            through(c.all_on, c.native),
            n,
            "every built-in on (OTel SDK meter+tracer, Buffer(8, 50 ms), retry, recovery, timeouts), native",
            clock="cpu",
        ),
        Case(
            "user.all_on_sdk",
            through(c.all_on, c.sdk),
            n,
            "every built-in on, over the OpenAI SDK",
            clock="cpu",
        ),
    ]
    for name, module in OPTIONAL.items():
        if not installed(module):
            c.skipped[name] = f"{module} not installed (pip install -e '.[bench]')"
            continue
        try:
            cases.append(Case(name, *_optional(name, c, w), clock="cpu"))
        except Exception as exc:  # an optional contender that cannot be built is reported, not fatal
            c.skipped[name] = f"{type(exc).__name__}: {exc}"
    return cases


def _optional(name: str, c: UserClients, w: Workload) -> tuple[Callable[[int], Any], int, str]:
    n = w.chunks
    if name == "user.langchain":
        from langchain_openai import ChatOpenAI

        model = ChatOpenAI(model=MODEL, base_url=c.base, api_key="sk-bench", max_retries=0, streaming=True)  # type: ignore[arg-type]

        async def langchain(reps: int) -> None:
            for _ in range(reps):
                acc: Any = None
                async for chunk in model.astream("weather?"):
                    acc = chunk if acc is None else acc + chunk
            args = [tc["args"] for tc in acc.tool_call_chunks]
            check_text_args(acc.content, args, w, "langchain")

        return langchain, n, "langchain-openai ChatOpenAI.astream, chunks summed (acc + chunk)"
    if name == "user.litellm":
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import
        import litellm

        litellm.suppress_debug_info = True

        async def run_litellm(reps: int) -> None:
            for _ in range(reps):
                chunks = []
                resp = await litellm.acompletion(
                    model=f"openai/{MODEL}",
                    messages=MESSAGES,
                    api_base=c.base,
                    api_key="sk-bench",
                    stream=True,
                    max_retries=0,
                )
                async for chunk in resp:
                    chunks.append(chunk)
                final: Any = litellm.stream_chunk_builder(chunks)
            msg = final.choices[0].message
            check_text_args(msg.content or "", [t.function.arguments for t in msg.tool_calls], w, "litellm")

        return run_litellm, n, "litellm.acompletion(stream=True) + stream_chunk_builder"
    from pydantic_ai.messages import ModelRequest
    from pydantic_ai.models import ModelRequestParameters
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    pm = OpenAIChatModel(MODEL, provider=OpenAIProvider(openai_client=c.openai))
    msgs: list[Any] = [ModelRequest.user_text_prompt("weather?")]

    async def pydantic_ai(reps: int) -> None:
        for _ in range(reps):
            async with pm.request_stream(msgs, None, ModelRequestParameters()) as resp:
                async for _ev in resp:
                    pass
            final = resp.get()
        text = "".join(getattr(p, "content", "") for p in final.parts if p.part_kind == "text")
        args = [p.args for p in final.parts if p.part_kind == "tool-call"]
        check_text_args(
            text, [a if isinstance(a, str) else orjson.dumps(a).decode() for a in args], w, "pydantic_ai"
        )

    return pydantic_ai, n, "pydantic-ai OpenAIChatModel.request_stream, iterated to the final response"


def anthropic_cases(c: UserClients, w: Workload) -> list[Case]:
    n = len(w.anthropic_dicts)

    async def sdk_bare(reps: int) -> None:
        for _ in range(reps):
            stream = await c.anthropic.messages.create(
                model=MODEL, messages=MESSAGES, max_tokens=4096, stream=True
            )
            async for _ev in stream:
                pass

    async def message_stream(reps: int) -> None:
        for _ in range(reps):
            async with c.anthropic.messages.stream(model=MODEL, messages=MESSAGES, max_tokens=4096) as stream:
                async for _ev in stream:
                    pass
                final = await stream.get_final_message()
        text = "".join(b.text for b in final.content if b.type == "text")
        args = [orjson.dumps(b.input).decode() for b in final.content if b.type == "tool_use"]
        if text != w.text or len(args) != len(w.tool_arguments):
            raise AssertionError("MessageStream: accumulated answer differs")

    def through(pipeline: Pipeline | None, make: Callable[[], Any]) -> Callable[[int], Any]:
        async def run(reps: int) -> None:
            for _ in range(reps):
                s = schwarm_stream.open(make()) if pipeline is None else pipeline.open(make())
                async with s:
                    async for _ev in s:
                        pass
            check_message(s.message, w)

        return run

    return [
        Case(
            "anthropic.sdk_bare",
            sdk_bare,
            n,
            "AsyncAnthropic messages.create(stream=True), iterated",
            clock="cpu",
        ),
        Case(
            "anthropic.message_stream",
            message_stream,
            n,
            "the SDK's MessageStream: messages.stream() + get_final_message()",
            clock="cpu",
        ),
        Case(
            "anthropic.open_native",
            through(None, c.native_anthropic),
            n,
            "schwarm_stream.open(native_anthropic(...)) as installed",
            clock="cpu",
        ),
        Case(
            "anthropic.open_sdk",
            through(None, c.sdk_anthropic),
            n,
            "schwarm_stream.open(anthropic_messages(AsyncAnthropic)) as installed",
            clock="cpu",
        ),
        Case(
            "anthropic.all_on_native",
            through(c.all_on, c.native_anthropic),
            n,
            "every built-in on, native_anthropic",
            clock="cpu",
        ),
        Case(
            "anthropic.all_on_sdk",
            through(c.all_on, c.sdk_anthropic),
            n,
            "every built-in on, over AsyncAnthropic",
            clock="cpu",
        ),
    ]
