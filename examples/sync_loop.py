"""A sync agent loop: the same stream for code without asyncio.

Shows: open_sync() with the sync openai.OpenAI client; iterate events with a plain for loop,
then read the final message. (The async stream runs in a background thread.)
Run:   python examples/sync_loop.py   (offline; set OPENAI_API_KEY to use the real API)
"""

from _provider import openai_sync_client

from schwarm_stream import Chunk, open_sync
from schwarm_stream.sources import openai_chat

with openai_sync_client() as (client, model):
    source = openai_chat(client, model=model, messages=[{"role": "user", "content": "Count to three."}])
    with open_sync(source) as stream:
        for event in stream:
            if isinstance(event, Chunk):
                print(event.text, end="", flush=True)
    print()
    print(f"finish_reason={stream.message.finish_reason} chunks={stream.stats().chunks}")
