"""A tool-calling agent loop for Anthropic Messages with the agent_loop() helper.

Shows: agent_loop() streams each turn, runs the tools (sync or async functions) from the final
message only, appends tool_result blocks and streams the next turn; loop.messages is the transcript.
Run:   python examples/tool_loop_anthropic.py   (offline; set ANTHROPIC_API_KEY for the real API)
"""

import asyncio

from _provider import anthropic_client

from schwarm_stream import Chunk
from schwarm_stream.compose.agent import ToolResult, TurnStart, agent_loop
from schwarm_stream.sources import anthropic_messages

TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


async def get_weather(city: str) -> dict:
    return {"city": city, "temperature_c": 12, "conditions": "windy"}


async def main() -> None:
    async with anthropic_client() as (client, model):
        messages = [{"role": "user", "content": "What's the weather in Hamburg?"}]
        source = anthropic_messages(client, model=model, max_tokens=1024, messages=messages, tools=TOOLS)
        loop = agent_loop(source, tools={"get_weather": get_weather})
        async for event in loop:
            if isinstance(event, TurnStart):
                print(f"--- turn {event.turn}")
            elif isinstance(event, Chunk):
                print(event.text, end="", flush=True)
            elif isinstance(event, ToolResult):
                print(f"\n[{event.call.name}({event.call.arguments}) -> {event.content}]")
        print()
    print(f"outcome={loop.outcome} turns={len(loop.turns)} transcript={len(loop.messages)} messages")


asyncio.run(main())
