"""The Vercel UI message stream read by the real `ai` npm package (issue 21).

Every scenario runs a producer on a :class:`~schwarm_stream_starlette.StreamHub` served by uvicorn on
127.0.0.1; ``tests/js/read_ui_stream.mjs`` reads the channel over HTTP while it streams, parses it with
the package's ``parseJsonEventStream`` + ``uiMessageChunkSchema`` and feeds ``readUIMessageStream``.
Every chunk must pass the schema, and the final UIMessage must say what ``stream.message`` (and the
agent loop's tool results) say. ``tests/js/chat_session.mjs`` drives the package's chat core
(``AbstractChat`` + ``DefaultChatTransport``, what ``useChat`` runs) against a chat endpoint: status,
``onError`` and ``onFinish`` (finish reason) for an answer, an error, a stop, an agent loop and a resume.
The package is installed by ``npm ci`` in tests/js
(``.ci/steps.d/10-npm.sh``); these tests skip only when ``node`` itself is missing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from httpx_sse import aconnect_sse
from schwarm_stream_starlette import Channel, StreamHub, serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import schwarm_stream
from schwarm_stream import Chunk, Stream, StreamCancelled, StreamError, agent_loop
from schwarm_stream.sinks import SSESink, VercelFormatter
from schwarm_stream.sources import openai_chat
from schwarm_stream.testing import Fail, ScriptedSource, Stall, tool_call_deltas
from schwarm_stream.testing.server import OfflineProvider, ProviderServer

JS = Path(__file__).resolve().parent / "js"
NODE = shutil.which("node")
AI_VERSION = "6.0.333"  # tests/js/package.json pins it; docs/vercel-protocol.md names it

pytestmark = pytest.mark.skipif(
    NODE is None,
    reason="node is not installed: these tests run the `ai` npm package (CI has node; `npm ci` in tests/js)",
)

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


Producer = Callable[["Harness", Channel, "Run"], Awaitable[None]]


@dataclass
class Run:
    """What one producer did: its streams (one per step) and the tool results it relayed."""

    streams: list[Stream] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)


@dataclass
class Harness:
    hub: StreamHub
    url: str = ""
    #: the chat endpoint's producers, by the user's prompt, and what each chat's producer did
    prompts: dict[str, Producer] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)
    resumed_while_running: list[bool] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pipeline(self) -> schwarm_stream.Pipeline:
        return schwarm_stream.Pipeline([self.hub.sink])


def metadata(phase: str, stream: Any) -> Any:
    """The message metadata the scenarios send (merged by the reader into UIMessage.metadata)."""
    if phase == "start":
        return {"source": "schwarm_stream", "firstStream": stream.id}
    if phase == "finish-step":
        return {"lastFinish": stream.message.finish_reason}
    return {"outcome": stream.outcome}


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    assert (JS / "node_modules" / "ai" / "package.json").exists(), (
        "the `ai` package is not installed: run `npm ci` in tests/js (.ci/steps.d/10-npm.sh does)"
    )
    sink = SSESink(
        format=lambda: VercelFormatter(message_metadata=metadata),
        heartbeat=None,
        auto_channels=False,
    )
    h = Harness(StreamHub(sink=sink))

    async def events(request: Request) -> Response:
        response: Response = h.hub.sse(request, request.path_params["id"])
        return response

    async def chat(request: Request) -> Response:  # what DefaultChatTransport posts to
        body = await request.json()
        produce = h.prompts[body["messages"][-1]["parts"][0]["text"]]
        run = h.runs[body["id"]] = Run()
        ch = h.hub.start(lambda c: produce(h, c, run), channel_id=body["id"])
        response: Response = h.hub.sse(request, ch.id)
        return response

    async def resume(request: Request) -> Response:  # what reconnectToStream gets
        ch = h.hub.channels.get(request.path_params["id"])
        if ch is None or ch.done:
            return Response(status_code=204)
        h.resumed_while_running.append(True)
        response: Response = h.hub.sse(request, ch.id)
        h.gate.set()
        return response

    app = Starlette(
        routes=[
            Route("/c/{id}", events),
            Route("/api/chat", chat, methods=["POST"]),
            Route("/api/chat/{id}/stream", resume),
        ]
    )
    async with serve(app) as url:
        h.url = url
        yield h
        await h.hub.aclose()


async def read_with_ai(*urls: str) -> list[dict[str, Any]]:
    """Run the node reader on ``urls``; its JSON result per URL."""
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE,
        str(JS / "read_ui_stream.mjs"),
        *urls,
        cwd=JS,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    results: list[dict[str, Any]] = json.loads(out)
    return results


async def raw_parts(url: str) -> list[str]:
    """The data of every SSE event, as a plain SSE client reads it (names must not be used)."""
    async with httpx.AsyncClient(timeout=30) as client, aconnect_sse(client, "GET", url) as es:
        return [ev.data async for ev in es.aiter_sse() if ev.data or ev.event != "message"]


async def scenario(
    h: Harness, produce: Producer, fails: type[BaseException] | None = None
) -> tuple[dict[str, Any], Run, Channel]:
    """Start ``produce`` on a channel, read the channel live with the `ai` package, check the wire.

    ``fails``: the error the producer must end with (``None``: it must succeed).
    """
    run = Run()
    ch = h.hub.start(lambda c: produce(h, c, run))
    url = f"{h.url}/c/{ch.id}"
    (result,) = await read_with_ai(url)
    assert ch.task is not None
    await asyncio.gather(ch.task, return_exceptions=True)
    if fails is None:
        assert ch.error is None, repr(ch.error)
    else:
        assert isinstance(ch.error, fails), repr(ch.error)
    assert result["aiVersion"] == AI_VERSION
    assert result["status"] == 200
    assert result["headers"]["x-vercel-ai-ui-message-stream"] == "v1"
    assert result["invalid"] == [], result["invalid"]  # every chunk passed uiMessageChunkSchema
    raw = await raw_parts(url)  # the replay of the closed channel, byte for byte what node read
    assert raw[-1] == "[DONE]"
    assert len(result["chunks"]) == len(raw) - 1  # nothing skipped: all parts but [DONE] were parsed
    assert [json.loads(r) for r in raw[:-1]] == result["chunks"]
    return result, run, ch


def types(result: dict[str, Any]) -> list[str]:
    return [c["type"] for c in result["chunks"]]


def steps(message: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The UIMessage's parts split at its step-start parts."""
    out: list[list[dict[str, Any]]] = []
    for part in message["parts"]:
        if part["type"] == "step-start":
            out.append([])
        else:
            assert out, f"a part before the first step-start: {part}"
            out[-1].append(part)
    return out


def ui_summary(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Per step: text, reasoning and tool parts as the reader built them."""
    summary = []
    for parts in steps(message):
        for p in parts:
            if p["type"] in ("text", "reasoning"):
                assert p["state"] == "done", p  # every part was closed
        tools = [
            {
                "id": p["toolCallId"],
                "name": p["type"].removeprefix("tool-"),
                "state": p["state"],
                "input": p.get("input"),
                "output": p.get("output"),
                "errorText": p.get("errorText"),
            }
            for p in parts
            if p["type"].startswith("tool-")
        ]
        summary.append(
            {
                "text": "".join(p["text"] for p in parts if p["type"] == "text"),
                "reasoning": "".join(p["text"] for p in parts if p["type"] == "reasoning"),
                "tools": tools,
            }
        )
    return summary


def check_message(result: dict[str, Any], run: Run) -> list[dict[str, Any]]:
    """The reader's UIMessage says what the streams and tool results say; returns its summary."""
    assert run.streams
    message = result["message"]
    assert message["id"] == run.streams[0].id
    summary = ui_summary(message)
    assert len(summary) == len(run.streams)
    assert summary == expected_summary(run)
    return summary


def expected_summary(run: Run) -> list[dict[str, Any]]:
    """The same, from the streams' accumulated messages and the loop's tool results."""
    results = {r.call.id: r for r in run.results}
    summary = []
    for stream in run.streams:
        msg = stream.message
        tools = []
        for call in msg.tool_calls:
            r = results.get(call.id)
            tool = {"id": call.id, "name": call.name, "input": call.parsed}
            if not call.valid:  # tool-input-error: the reader keeps the raw text aside, no input
                error = f"the arguments are not valid JSON: {call.error}"
                tool |= {"state": "output-error", "output": None, "errorText": error}
            elif r is None:
                tool |= {"state": "input-available", "output": None, "errorText": None}
            elif r.error is None:
                tool |= {"state": "output-available", "output": r.output, "errorText": None}
            else:
                tool |= {"state": "output-error", "output": None, "errorText": r.error}
            tools.append(tool)
        summary.append({"text": msg.text, "reasoning": msg.reasoning, "tools": tools})
    return summary


async def one_stream(h: Harness, ch: Channel, run: Run, source: Any, cancel_after: int | None = None) -> None:
    async with h.pipeline.open(source, metadata=ch.metadata) as stream:
        run.streams.append(stream)
        n = 0
        async for event in stream:
            n += isinstance(event, Chunk)
            if cancel_after is not None and n == cancel_after:
                stream.cancel("the user pressed stop")


# -- scenarios ------------------------------------------------------------------------------------


async def test_text(harness: Harness) -> None:
    async def produce(h: Harness, ch: Channel, run: Run) -> None:
        await one_stream(h, ch, run, ScriptedSource(["Hel", "lo, ", "world", Stall(0.01), "!"]))

    result, run, _ = await scenario(harness, produce)
    (stream,) = run.streams
    assert types(result) == [
        "start",
        "start-step",
        "text-start",
        *["text-delta"] * 4,
        "text-end",
        "finish-step",
        "message-metadata",
        "finish",
    ]
    assert result["errors"] == []
    check_message(result, run)
    assert result["message"]["metadata"] == {
        "source": "schwarm_stream",
        "firstStream": stream.id,
        "lastFinish": "stop",
        "outcome": "complete",
    }
    assert result["chunks"][-1]["finishReason"] == "stop"


async def test_tool_call_over_the_openai_sdk(harness: Harness) -> None:
    async def produce(h: Harness, ch: Channel, run: Run) -> None:
        async with ProviderServer(OfflineProvider()) as server:
            client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0)
            msgs: Any = [{"role": "user", "content": "Weather in Paris?"}]
            await one_stream(h, ch, run, openai_chat(client, model="m", messages=msgs, tools=[WEATHER]))
            await client.close()

    result, run, _ = await scenario(harness, produce)
    assert result["errors"] == []
    (stream,) = run.streams
    assert stream.message.tool_calls and stream.message.text
    summary = check_message(result, run)
    assert summary[0]["tools"][0]["input"] == {"city": "Paris"}
    t = types(result)
    assert t.index("text-end") < t.index("tool-input-start")  # the text part closed when the tool began
    assert result["chunks"][-1] == {
        "type": "finish",
        "finishReason": "tool-calls",
        "messageMetadata": {"outcome": "complete"},
    }


async def test_reasoning_closes_when_the_answer_starts(harness: Harness) -> None:
    script = [
        Chunk("Let me think", kind="reasoning"),
        Chunk(" about it.", kind="reasoning"),
        Chunk("The answer", index=1),
        Chunk(" is 42.", index=1),
    ]

    async def produce(h: Harness, ch: Channel, run: Run) -> None:
        await one_stream(h, ch, run, ScriptedSource(script))

    result, run, _ = await scenario(harness, produce)
    assert result["errors"] == []
    t = types(result)
    # the reasoning part ends before the first text delta, not at the end of the stream
    assert t.index("reasoning-end") < t.index("text-start") < t.index("text-delta")
    summary = check_message(result, run)
    assert summary[0]["reasoning"] == "Let me think about it." and summary[0]["text"] == "The answer is 42."


async def test_tool_arguments_that_are_not_json_are_a_tool_input_error(harness: Harness) -> None:
    calls = [
        *tool_call_deltas('{"city": "Paris"}', id="call_ok", name="get_weather"),
        *tool_call_deltas('{"city": "Par', index=1, id="call_cut", name="get_weather"),
    ]

    async def produce(h: Harness, ch: Channel, run: Run) -> None:
        # cut by max_tokens: the stream completes (finish reason "length") with the second call unparsable
        await one_stream(h, ch, run, ScriptedSource(["Checking.", *calls], finish="length"))

    result, run, _ = await scenario(harness, produce)
    assert result["errors"] == []
    (stream,) = run.streams
    assert [c.valid for c in stream.message.tool_calls] == [True, False]
    summary = check_message(result, run)
    assert [t["state"] for t in summary[0]["tools"]] == ["input-available", "output-error"]
    (cut,) = [p for p in result["message"]["parts"] if p.get("toolCallId") == "call_cut"]
    assert cut["rawInput"] == '{"city": "Par'  # what the model sent, kept for display
    assert "tool-input-error" in types(result)
    assert result["chunks"][-1]["finishReason"] == "length"


async def test_error_mid_stream_is_one_error_part(harness: Harness) -> None:
    async def produce(h: Harness, ch: Channel, run: Run) -> None:
        source = ScriptedSource(["Hel", "lo", Fail(StreamError("upstream broke", retryable=False))])
        await one_stream(h, ch, run, source)  # raises: the hub closes the channel with the error

    result, run, _ = await scenario(harness, produce, fails=StreamError)
    t = types(result)
    assert t.count("error") == 1  # the stream's end and the producer's failure: reported once
    assert t[-1] == "error" and "finish" not in t
    assert t.index("text-end") < t.index("error")  # the text part is closed, not left streaming
    assert result["errors"] == ["StreamError"]  # expose_errors=False: the type, not the text
    check_message(result, run)
    assert run.streams[0].message.text == "Hello"


async def test_cancel_is_abort_not_error(harness: Harness) -> None:
    async def produce(h: Harness, ch: Channel, run: Run) -> None:
        await one_stream(h, ch, run, ScriptedSource(["Hel", "lo", Stall()]), cancel_after=2)

    result, run, _ = await scenario(harness, produce, fails=StreamCancelled)
    t = types(result)
    assert t.count("abort") == 1 and "error" not in t and "finish" not in t
    assert t[-1] == "abort"
    assert result["errors"] == []  # a stop is not a failure
    check_message(result, run)
    assert run.streams[0].outcome == "cancelled"


async def test_producer_task_cancelled_mid_stream_is_abort(harness: Harness) -> None:
    started = asyncio.Event()

    async def produce(h: Harness, ch: Channel, run: Run) -> None:
        async with h.pipeline.open(ScriptedSource(["partial", Stall()]), metadata=ch.metadata) as stream:
            run.streams.append(stream)
            async for _ in stream:
                started.set()

    run = Run()
    ch = harness.hub.start(lambda c: produce(harness, c, run))
    reader = asyncio.create_task(read_with_ai(f"{harness.url}/c/{ch.id}"))
    await asyncio.wait_for(started.wait(), 30)
    assert ch.task is not None
    ch.task.cancel()  # what on_disconnect="cancel" and hub.aclose() do
    (result,) = await reader
    assert result["invalid"] == []
    t = types(result)
    assert t.count("abort") == 1 and "error" not in t, t
    assert result["errors"] == []
    check_message(result, run)


async def test_producer_failing_before_any_stream_is_one_error_part(harness: Harness) -> None:
    async def produce(h: Harness, ch: Channel, run: Run) -> None:
        raise RuntimeError("no model configured")

    result, _, _ = await scenario(harness, produce, fails=RuntimeError)
    assert types(result) == ["error"]
    assert result["errors"] == ["RuntimeError"]


async def agent(h: Harness, ch: Channel, run: Run, tools: dict[str, Any]) -> None:
    """The agent loop over the offline model (it calls get_weather, then quotes the result)."""
    async with ProviderServer(OfflineProvider()) as server:
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0)
        msgs: Any = [{"role": "user", "content": "What's the weather in Paris?"}]
        loop = agent_loop(
            openai_chat(client, model="m", messages=msgs, tools=[WEATHER]), tools, pipeline=h.pipeline
        )
        try:
            async for event in h.hub.sink.relay(loop, ch.id):
                if hasattr(event, "call") and hasattr(event, "error"):  # ToolResult
                    run.results.append(event)
                elif hasattr(event, "results") and hasattr(event, "message"):  # TurnEnd
                    assert loop.stream is not None
                    run.streams.append(loop.stream)
        finally:
            await client.close()


async def test_agent_loop_sends_tool_results_across_steps(harness: Harness) -> None:
    async def produce(h: Harness, ch: Channel, run: Run) -> None:
        await agent(h, ch, run, {"get_weather": lambda city: f"Sunny and 21 degrees in {city}"})

    result, run, _ = await scenario(harness, produce)
    assert result["errors"] == []
    assert len(run.streams) == 2 and len(run.results) == 1
    summary = check_message(result, run)
    (tool,) = summary[0]["tools"]
    assert tool["state"] == "output-available" and tool["output"] == "Sunny and 21 degrees in Paris"
    assert "Sunny and 21 degrees in Paris" in summary[1]["text"]
    t = types(result)
    assert t.count("start") == 1 and t.count("start-step") == 2 and t.count("finish-step") == 2
    # the tool result belongs to the step that called the tool: before its finish-step, as in `ai`'s own
    # streams, and before the next step starts
    assert (
        t.index("tool-output-available") < t.index("finish-step") < len(t) - 1 - t[::-1].index("start-step")
    )
    assert result["chunks"][-1]["finishReason"] == "stop"


async def test_failing_tool_is_a_tool_output_error(harness: Harness) -> None:
    def broken(city: str) -> str:
        raise ConnectionError(f"weather service down for {city}")

    async def produce(h: Harness, ch: Channel, run: Run) -> None:
        await agent(h, ch, run, {"get_weather": broken})

    result, run, _ = await scenario(harness, produce)
    (failed,) = run.results
    assert failed.error and "weather service down" in failed.error
    summary = check_message(result, run)
    (tool,) = summary[0]["tools"]
    assert tool["state"] == "output-error" and tool["errorText"] == failed.error
    # the tool's failure is the tool part's state (the model saw it and answered), not a stream error
    assert "error" not in types(result) and result["errors"] == []
    assert len(run.streams) == 2


# -- the chat core of `useChat` (AbstractChat + DefaultChatTransport) ------------------------------


async def chat_with_ai(h: Harness, *args: str) -> dict[str, Any]:
    """Run tests/js/chat_session.mjs against the harness's chat endpoint."""
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE,
        str(JS / "chat_session.mjs"),
        f"{h.url}/api/chat",
        *args,
        cwd=JS,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


def assistant_text(chat: dict[str, Any]) -> str:
    (message,) = [m for m in chat["messages"] if m["role"] == "assistant"]
    return "".join(p["text"] for p in message["parts"] if p["type"] == "text")


async def text_answer(h: Harness, ch: Channel, run: Run) -> None:
    await one_stream(h, ch, run, ScriptedSource(["Hel", "lo", "!"]))


async def failing_answer(h: Harness, ch: Channel, run: Run) -> None:
    await one_stream(
        h, ch, run, ScriptedSource(["Hel", Fail(StreamError("upstream broke", retryable=False))])
    )


async def stopped_answer(h: Harness, ch: Channel, run: Run) -> None:
    await one_stream(h, ch, run, ScriptedSource(["Hel", "lo", Stall()]), cancel_after=2)


async def weather_answer(h: Harness, ch: Channel, run: Run) -> None:
    await agent(h, ch, run, {"get_weather": lambda city: f"Sunny and 21 degrees in {city}"})


def finished(**flags: Any) -> list[dict[str, Any]]:
    return [{"isAbort": False, "isError": False, "isDisconnect": False, **flags}]


async def test_chat_core_shows_a_text_answer(harness: Harness) -> None:
    harness.prompts["hi"] = text_answer
    chat = await chat_with_ai(harness, "hi")
    (stream,) = harness.runs[chat["id"]].streams
    assert chat["status"] == "ready" and chat["error"] is None and chat["onError"] == []
    assert chat["onFinish"] == finished(finishReason="stop")
    assert assistant_text(chat) == stream.message.text == "Hello!"


async def test_chat_core_reports_the_real_error_once(harness: Harness) -> None:
    harness.prompts["hi"] = failing_answer
    chat = await chat_with_ai(harness, "hi")
    # the cause, once; not the schema's "Type validation failed" of a rejected chunk
    assert chat["status"] == "error" and chat["error"] == "StreamError"
    assert chat["onError"] == ["StreamError"]
    assert chat["onFinish"] == finished(isError=True, finishReason=None)
    assert assistant_text(chat) == "Hel"


async def test_chat_core_treats_a_stop_as_a_stop(harness: Harness) -> None:
    harness.prompts["hi"] = stopped_answer
    chat = await chat_with_ai(harness, "hi")
    assert chat["status"] == "ready" and chat["error"] is None and chat["onError"] == []
    assert chat["onFinish"] == finished(finishReason=None)
    assert assistant_text(chat) == "Hello"


async def test_chat_core_runs_an_agent_loop_with_its_tool_result(harness: Harness) -> None:
    harness.prompts["weather?"] = weather_answer
    chat = await chat_with_ai(harness, "weather?")
    run = harness.runs[chat["id"]]
    assert chat["status"] == "ready" and chat["onError"] == []
    assert chat["onFinish"] == finished(finishReason="stop")
    (message,) = [m for m in chat["messages"] if m["role"] == "assistant"]
    assert ui_summary(message) == expected_summary(run)
    (tool,) = [p for p in message["parts"] if p["type"] == "tool-get_weather"]
    assert tool["state"] == "output-available" and tool["output"] == "Sunny and 21 degrees in Paris"


async def test_chat_core_resumes_a_running_answer(harness: Harness) -> None:
    async def two_steps(h: Harness, ch: Channel, run: Run) -> None:
        await one_stream(h, ch, run, ScriptedSource(["Step one. "]))
        await asyncio.wait_for(h.gate.wait(), 60)  # the second step streams once the client resumed
        await one_stream(h, ch, run, ScriptedSource(["Step ", "two."]))

    run = Run()
    ch = harness.hub.start(lambda c: two_steps(harness, c, run), channel_id="chat-resume")
    chat = await chat_with_ai(harness, "--resume", ch.id)
    assert harness.resumed_while_running == [True]
    assert chat["status"] == "ready" and chat["onError"] == []
    assert chat["onFinish"] == finished(finishReason="stop")
    assert assistant_text(chat) == "Step one. Step two."
    assert ui_summary(chat["messages"][-1]) == expected_summary(run)


async def test_chat_core_reports_a_producer_failure_between_steps(harness: Harness) -> None:
    async def fails_after_a_step(h: Harness, ch: Channel, run: Run) -> None:
        await one_stream(h, ch, run, ScriptedSource(["Looking it up."]))
        raise LookupError("the tool backend is gone")  # the application's own code, between two steps

    harness.prompts["hi"] = fails_after_a_step
    chat = await chat_with_ai(harness, "hi")
    assert chat["status"] == "error" and chat["error"] == "LookupError"
    assert chat["onError"] == ["LookupError"]
    assert assistant_text(chat) == "Looking it up."
