"""Minimal: stream one answer, print the text as it arrives, then read the final message.

Shows: schwarm_stream.open() around an SDK source, iterating normalized events, stream.message.
Run:   python examples/minimal.py   (offline; set OPENAI_API_KEY to use the real API)
"""

import asyncio

from _provider import openai_client

import schwarm_stream
from schwarm_stream import Chunk
from schwarm_stream.sources import openai_chat


async def main() -> None:
    async with openai_client() as (client, model):
        messages = [{"role": "user", "content": "Say hello in five words."}]
        async with schwarm_stream.open(openai_chat(client, model=model, messages=messages)) as stream:
            async for event in stream:
                if isinstance(event, Chunk) and event.kind == "text":
                    print(event.text, end="", flush=True)
        print()
    message = stream.message
    tokens = message.usage.output_tokens if message.usage else "n/a"
    print(f"complete={message.complete} finish_reason={message.finish_reason} output_tokens={tokens}")


asyncio.run(main())
