"""A sink plugin: write every delivered event somewhere (here: a JSON Lines file per stream).

Shows: stream_start / stream_event / stream_end, and per-stream state in stream.stash (one plugin
instance serves many concurrent streams, so nothing per-stream lives on the plugin object).
Run:   python examples/sink_plugin.py   (offline; set OPENAI_API_KEY to use the real API)
"""

import asyncio
import json
import tempfile
from pathlib import Path

from _provider import openai_client

import schwarm_stream
from schwarm_stream import StashKey, hookimpl
from schwarm_stream.sources import openai_chat

FILE = StashKey()


class JsonlSink:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @hookimpl
    def stream_start(self, stream):
        stream.stash[FILE] = (self.directory / f"{stream.id}.jsonl").open("w")

    @hookimpl
    def stream_event(self, stream, event):
        record = {"seq": event.seq, "type": type(event).__name__}
        record.update({k: getattr(event, k) for k in ("text", "kind", "reason") if hasattr(event, k)})
        stream.stash[FILE].write(json.dumps(record) + "\n")

    @hookimpl
    def stream_end(self, stream):
        stream.stash[FILE].close()  # always called once, also after errors and cancellation


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with openai_client() as (client, model):
            source = openai_chat(client, model=model, messages=[{"role": "user", "content": "Hi there!"}])
            async with schwarm_stream.open(source, plugins=[JsonlSink(Path(tmp))]) as stream:
                await stream.collect()
        lines = (Path(tmp) / f"{stream.id}.jsonl").read_text().splitlines()
    print(f"wrote {len(lines)} events to {stream.id}.jsonl")
    for line in [*lines[:3], "...", *lines[-2:]]:
        print("  " + line)


asyncio.run(main())
