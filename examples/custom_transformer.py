"""A transformer plugin: change events on their way to consumers (here: mask digits).

Shows: a plugin object with a stream_transform hook returning a replaced event. Consumers see the
masked text; stream.message is accumulated before transformers, so it keeps the original.
Run:   python examples/custom_transformer.py   (offline; set OPENAI_API_KEY to use the real API)
"""

import asyncio
import re

from _provider import openai_client

import schwarm_stream
from schwarm_stream import Chunk, hookimpl
from schwarm_stream.sources import openai_chat

DIGIT = re.compile(r"\d")


class MaskDigits:
    @hookimpl
    def stream_transform(self, event):
        if isinstance(event, Chunk) and DIGIT.search(event.text):
            return event.replace(text=DIGIT.sub("#", event.text))
        return None  # None: pass the event through unchanged


async def main() -> None:
    async with openai_client() as (client, model):
        messages = [{"role": "user", "content": "Repeat after me: my PIN is 4711."}]
        source = openai_chat(client, model=model, messages=messages)
        shown = []
        async with schwarm_stream.open(source, plugins=[MaskDigits()]) as stream:
            async for event in stream:
                if isinstance(event, Chunk):
                    shown.append(event.text)
    print("consumers saw:  ", "".join(shown))
    print("stream.message: ", stream.message.text)


asyncio.run(main())
