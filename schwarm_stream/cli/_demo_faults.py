"""``schwarm-stream demo --faults``: what sets the library apart, shown offline in three short scenes.

1. A stream cut before its terminator: the official SDK iterates it to the end without an error; through
   schwarm_stream it is a :class:`~schwarm_stream.StreamIncomplete` carrying the partial message.
2. A connection reset mid-answer: the ``restart`` recovery strategy opens the stream again, and consumers
   first get a :class:`~schwarm_stream.Reset` so they can take back what they showed.
3. A tool call whose arguments stream: each fragment, and the arguments parsed so far (partial JSON).

Every scene talks through the official OpenAI SDK client to the loopback provider server on 127.0.0.1.
"""

from __future__ import annotations

import json
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


async def run_fault_scenes(out: TextIO) -> bool:
    """Run the three scenes on one loopback server; ``True`` when each showed what it should."""
    from ..testing.server import ProviderServer

    results = []
    async with ProviderServer() as server:
        for scene in (_truncated, _reset_restart, _partial_json):
            results.append(await scene(server, out))
            out.write("\n")
    return all(results)
