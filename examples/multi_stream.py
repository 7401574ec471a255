"""Several streams at once: two questions answered concurrently with asyncio.gather.

Shows: one Pipeline (plugins and config built once) opening many independent streams; each
stream has its own id, events and final message.
Run:   python examples/multi_stream.py   (offline; set OPENAI_API_KEY to use the real API)
"""

import asyncio

from _provider import openai_client

import schwarm_stream
from schwarm_stream.sources import openai_chat


async def ask(pipeline, client, model, question: str) -> str:
    source = openai_chat(client, model=model, messages=[{"role": "user", "content": question}])
    async with pipeline.open(source, metadata={"question": question}) as stream:
        message = await stream.collect()
    return f"[{stream.id[:8]}] {question} -> {message.text}"


async def main() -> None:
    pipeline = schwarm_stream.Pipeline()
    async with openai_client() as (client, model):
        answers = await asyncio.gather(
            ask(pipeline, client, model, "Name a river in Spain."),
            ask(pipeline, client, model, "Name a mountain in Chile."),
        )
    for line in answers:
        print(line)


asyncio.run(main())
