"""``schwarm-stream demo --faults``: what sets the library apart, shown offline in five short scenes.

1. A stream cut before its terminator: the official SDK iterates it to the end without an error; through
   schwarm_stream it is a :class:`~schwarm_stream.StreamIncomplete` carrying the partial message.
2. A connection reset mid-answer: the ``restart`` recovery strategy opens the stream again, and consumers
   first get a :class:`~schwarm_stream.Reset` so they can take back what they showed.
3. A tool call whose arguments stream: each fragment, and the arguments parsed so far (partial JSON).
4. The cut of scene 1 in the native protocols (Gemini, Ollama, Bedrock ConverseStream), none of which
   has a ``[DONE]``: each official SDK (google-genai, ollama, boto3) ends its iterator without an error
   on a body that stops between two events; schwarm_stream knows each protocol's end signal (a
   ``finish_reason``, the ``done`` line, ``messageStop``) and raises. A protocol whose SDK extra is not
   installed gets a row saying so.
5. Bedrock's ``modelStreamErrorException`` mid-answer (the model failed, the HTTP status was 200):
   boto3 raises it out of its iterator; schwarm_stream classifies it as retryable and, with the
   ``restart`` strategy, opens the stream again after a :class:`~schwarm_stream.Reset`.

Scenes 1-3 talk through the official OpenAI SDK client to the loopback provider server on 127.0.0.1.
"""

from __future__ import annotations

import json
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from .. import Chunk, Pipeline, Reset, StreamError, ToolCallDelta

__all__ = ["run_fault_scenes"]

ANSWER = ["The capital ", "of Australia ", "is Canberra, ", "not Sydney."]
CUT_AFTER = 2  # content chunks delivered before the fault


def _client(server: Any) -> Any:
    import openai

    return openai.AsyncOpenAI(api_key="offline", base_url=server.openai_base_url, max_retries=0)


def _messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": "What is the capital of Australia?"}]


async def _truncated(server: Any, out: TextIO) -> bool:
    from ..sources import openai_chat
    from ..testing.server import SSEReply, openai_chat_events

    cut = openai_chat_events(ANSWER, finish_reason=None, usage=None, done=False)[: 1 + CUT_AFTER]
    server.script("openai-chat", SSEReply(cut), SSEReply(cut))
    client = _client(server)
    out.write("1. A stream cut before its terminator (no finish_reason, no [DONE]).\n")
    sdk_text = ""
    async with await client.chat.completions.create(
        model="offline", messages=_messages(), stream=True
    ) as sdk_stream:
        async for chunk in sdk_stream:
            if chunk.choices and chunk.choices[0].delta.content:
                sdk_text += chunk.choices[0].delta.content
    out.write(f"   openai SDK alone:  ended without an error, text {sdk_text!r} (looks like success)\n")
    pipeline = Pipeline(config={"retry": {"attempts": 1}})
    try:
        async with pipeline.open(openai_chat(client, model="offline", messages=_messages())) as stream:
            await stream.collect()
    except StreamError as err:
        partial = err.partial.text if err.partial is not None else ""
        out.write(f"   schwarm_stream:    {type(err).__name__}, partial text {partial!r} kept\n")
        return partial == sdk_text
    out.write("   schwarm_stream:    reported complete (unexpected)\n")
    return False


async def _reset_restart(server: Any, out: TextIO) -> bool:
    from ..sources import openai_chat
    from ..testing.server import SSEReply, openai_chat_events

    whole = openai_chat_events(ANSWER)
    server.script("openai-chat", SSEReply(whole[: 1 + CUT_AFTER], end="rst"), SSEReply(whole))
    out.write("2. The connection is reset mid-answer; recovery strategy 'restart'.\n   ")
    pipeline = Pipeline(config={"recovery": {"mid_stream": "restart"}})
    resets = 0
    async with pipeline.open(openai_chat(_client(server), model="offline", messages=_messages())) as stream:
        async for ev in stream:
            if isinstance(ev, Reset):
                resets += 1
                out.write(f"\n   ⟲ Reset (attempt {ev.attempt}, {ev.strategy}): discard the above\n   ")
            elif isinstance(ev, Chunk):
                out.write(ev.text)
    message = stream.message
    out.write(f"\n   complete={message.complete} after {stream.stats().attempts} attempts, {resets} reset\n")
    return message.complete and message.text == "".join(ANSWER) and resets == 1


async def _partial_json(server: Any, out: TextIO) -> bool:
    from ..sources import openai_chat
    from ..testing.server import SSEReply, openai_chat_events

    arguments = {"city": "Canberra", "unit": "celsius", "days": 3}
    text = json.dumps(arguments, separators=(",", ":"))
    pieces = [text[i : i + 9] for i in range(0, len(text), 9)]
    call = {"name": "get_forecast", "arguments": text, "chunks": pieces}
    server.script("openai-chat", SSEReply(openai_chat_events([], tool_calls=[call])))
    out.write("3. A tool call's arguments stream as JSON fragments; parsed so far, at each one:\n")
    source = openai_chat(_client(server), model="offline", messages=_messages())
    async with Pipeline().open(source) as stream:
        async for ev in stream:
            if isinstance(ev, ToolCallDelta) and ev.arguments:
                so_far = stream.tool_call(ev.index).parsed_so_far()
                out.write(f"   {ev.arguments!r:<14} -> {json.dumps(so_far)}\n")
    [done] = stream.message.tool_calls
    out.write(f"   final: {done.name}({json.dumps(done.parsed)})\n")
    return bool(done.parsed == arguments)


#: Scene 4: per protocol, the SDK module it needs and its end signal (what the cut body lacks).
NATIVE = {
    "gemini": ("google.genai", "google-genai", "finish_reason"),
    "ollama": ("ollama", "ollama", "done: true"),
    "bedrock": ("boto3", "boto3", "messageStop"),
}


def _native_cut(server: Any, protocol: str) -> None:
    """Script two bodies of ``protocol`` that end cleanly after ``CUT_AFTER`` pieces of ``ANSWER``."""
    from ..testing._bedrock_wire import EVENTSTREAM, converse_stream_events
    from ..testing._gemini_wire import gemini_stream_events
    from ..testing._ollama_wire import NDJSON, ollama_chat_lines
    from ..testing.server import SSEReply

    if protocol == "gemini":
        reply = SSEReply(gemini_stream_events(ANSWER, finish_reason=None)[:CUT_AFTER])
        route = "gemini-stream"
    elif protocol == "ollama":
        reply = SSEReply(ollama_chat_lines(ANSWER, done=False)[:CUT_AFTER], content_type=NDJSON)
        route = "ollama-chat"
    else:  # messageStart, then the text deltas
        reply = SSEReply(converse_stream_events(ANSWER)[: 1 + CUT_AFTER], content_type=EVENTSTREAM)
        route = "bedrock-converse-stream"
    server.script(route, reply, reply)


def _native(server: Any, protocol: str) -> tuple[Callable[[], Awaitable[str]], Any]:
    """The bare SDK's read of the answer (its text) and the schwarm_stream source, for ``protocol``."""
    question = _messages()[0]["content"]
    if protocol == "gemini":
        from google import genai

        from ..sources import gemini_generate

        gclient = genai.Client(api_key="offline", http_options={"base_url": server.url})
        once: Any = {"http_options": {"retry_options": {"attempts": 1}}}  # the SDK alone: no retries

        async def gemini_sdk() -> str:
            stream = await gclient.aio.models.generate_content_stream(
                model="gemini-2.5-flash", contents=question, config=once
            )
            return "".join([r.text or "" async for r in stream])

        return gemini_sdk, gemini_generate(gclient, model="gemini-2.5-flash", contents=question)
    if protocol == "ollama":
        import ollama

        from ..sources import ollama_chat

        oclient = ollama.AsyncClient(host=server.url)

        async def ollama_sdk() -> str:
            parts = await oclient.chat(model="llama3.2", messages=_messages(), stream=True)
            return "".join([p.message.content or "" async for p in parts])

        return ollama_sdk, ollama_chat(oclient, model="llama3.2", messages=_messages())
    import boto3

    from ..sources import bedrock_converse

    bclient = boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="offline",
        aws_secret_access_key="offline",
    )
    converse = {
        "modelId": "amazon.nova-micro-v1:0",
        "messages": [{"role": "user", "content": [{"text": question}]}],
    }

    def bedrock_read() -> str:
        events = bclient.converse_stream(**converse)["stream"]
        return "".join(
            e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e
        )

    async def bedrock_sdk() -> str:
        return await asyncio.to_thread(bedrock_read)

    return bedrock_sdk, bedrock_converse(bclient, **converse)


async def _native_truncated(server: Any, out: TextIO) -> bool:
    import importlib.util

    out.write("4. The same cut in the native protocols (no [DONE] in any of them):\n")
    ok = True
    for protocol, (module, sdk, signal) in NATIVE.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # a parent package missing (google)
            found = False
        if not found:
            out.write(f"   {protocol:<8} skipped: {sdk} is not installed (schwarm-stream[{protocol}])\n")
            continue
        _native_cut(server, protocol)
        sdk_read, source = _native(server, protocol)
        sdk_text = await sdk_read()
        out.write(f"   {protocol:<8} {sdk} alone: ended without an error, text {sdk_text!r}\n")
        pipeline = Pipeline(config={"retry": {"attempts": 1}, "recovery": {"mid_stream": "raise"}})
        try:
            async with pipeline.open(source) as stream:
                await stream.collect()
        except StreamError as err:
            partial = err.partial.text if err.partial is not None else ""
            name = type(err).__name__
            out.write(f"   {'':<8} schwarm_stream: {name} (no {signal}), partial {partial!r} kept\n")
            ok = ok and partial == sdk_text
            continue
        out.write(f"   {'':<8} schwarm_stream: reported complete (unexpected)\n")
        ok = False
    return ok


async def _bedrock_model_error(server: Any, out: TextIO) -> bool:
    import importlib.util

    out.write("5. Bedrock: modelStreamErrorException mid-answer; recovery strategy 'restart'.\n")
    if importlib.util.find_spec("boto3") is None:
        out.write("   skipped: boto3 is not installed (schwarm-stream[bedrock])\n")
        return True
    from ..testing._bedrock_wire import EVENTSTREAM, converse_stream_events, exception_frame
    from ..testing.server import SSEReply

    whole = converse_stream_events(ANSWER)
    failed = exception_frame("modelStreamErrorException", "The model failed.", originalStatusCode=500)
    broken = SSEReply([*whole[: 1 + CUT_AFTER], failed], content_type=EVENTSTREAM)
    server.script("bedrock-converse-stream", broken, broken, SSEReply(whole, content_type=EVENTSTREAM))
    sdk_read, _ = _native(server, "bedrock")
    try:
        await sdk_read()
        out.write("   boto3 alone:    no error (unexpected)\n")
    except Exception as exc:  # botocore's EventStreamError; the text read before it is the caller's to keep
        out.write(f"   boto3 alone:    {type(exc).__name__} out of the iterator\n")
    _, source = _native(server, "bedrock")
    pipeline = Pipeline(config={"recovery": {"mid_stream": "restart"}})
    resets = 0
    out.write("   schwarm_stream: ")
    async with pipeline.open(source) as stream:
        async for ev in stream:
            if isinstance(ev, Reset):
                resets += 1
                out.write(f"\n   ⟲ Reset (attempt {ev.attempt}, {ev.strategy}): discard the above\n   ")
            elif isinstance(ev, Chunk):
                out.write(ev.text)
    message = stream.message
    out.write(f"\n   complete={message.complete} after {stream.stats().attempts} attempts, {resets} reset\n")
    return message.complete and message.text == "".join(ANSWER) and resets == 1


async def run_fault_scenes(out: TextIO) -> bool:
    """Run the five scenes on one loopback server; ``True`` when each showed what it should."""
    from ..testing.server import ProviderServer

    results = []
    async with ProviderServer() as server:
        for scene in (_truncated, _reset_restart, _partial_json, _native_truncated, _bedrock_model_error):
            results.append(await scene(server, out))
            out.write("\n")
    return all(results)
