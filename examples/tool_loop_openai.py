"""A tool-calling agent loop for OpenAI Chat Completions, written out by hand.

Shows: stream a turn, run the tool calls of the final message, append the results
(Message.to_openai() + "tool" messages), open the next turn with source.with_messages().
(schwarm_stream.agent.agent_loop does exactly this for you: see tool_loop_anthropic.py.)
Run:   python examples/tool_loop_openai.py   (offline; set OPENAI_API_KEY to use the real API)
"""

import asyncio
import json

from _provider import openai_client

import schwarm_stream
from schwarm_stream import Chunk
from schwarm_stream.sources import openai_chat

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def get_weather(city: str) -> dict:
    return {"city": city, "temperature_c": 19, "conditions": "sunny"}


async def main() -> None:
    async with openai_client() as (client, model):
        messages = [{"role": "user", "content": "What's the weather in Rome?"}]
        source = openai_chat(client, model=model, messages=messages, tools=TOOLS)
        for turn in range(1, 6):
            async with schwarm_stream.open(source) as stream:
                async for event in stream:
                    if isinstance(event, Chunk):
                        print(event.text, end="", flush=True)
            message = stream.message  # final and complete: safe to act on its tool calls
            print()
            messages.append(message.to_openai())
            if not message.tool_calls:
                break
            for call in message.tool_calls:
                result = get_weather(**call.parsed)
                print(f"[turn {turn}] {call.name}({call.arguments}) -> {result}")
                messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
            source = source.with_messages(messages)
    print(f"final answer after {turn} turns: {message.text}")


asyncio.run(main())
