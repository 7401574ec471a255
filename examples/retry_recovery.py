"""Reliability configuration: [retry], [recovery] and [timeouts] for every stream of a pipeline.

Shows: a TOML config loaded into a Pipeline (keys are validated: a typo is a ConfigError naming the
key). Offline, the provider first answers 429 Too Many Requests; the built-in retry plugin waits
and opens the stream again before any content was delivered.
Run:   python examples/retry_recovery.py   (offline only: it scripts the 429)
"""

import asyncio
import sys

import openai

import schwarm_stream
from schwarm_stream import ProviderError
from schwarm_stream.sources import openai_chat
from schwarm_stream.testing.server import JSONReply, OfflineProvider, ProviderServer

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

CONFIG = """
[retry]
attempts = 3          # opening a stream, before any content arrived
initial_wait = 0.1    # seconds; exponential backoff with jitter, Retry-After honoured
max_wait = 1.0

[recovery]
mid_stream = "restart"   # after content was delivered: start over (consumers get a Reset event)
max_recoveries = 1

[timeouts]
first_chunk = 10.0   # seconds until the first content event
idle = 5.0           # seconds allowed between provider events
total = 60.0
"""


async def main() -> None:
    pipeline = schwarm_stream.Pipeline(config=schwarm_stream.Config.from_dict(tomllib.loads(CONFIG)))
    print("config:", pipeline.config.retry.attempts, "attempts,", pipeline.config.recovery.mid_stream)
    async with ProviderServer(OfflineProvider()) as server:
        busy = {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}
        server.script("openai-chat", JSONReply(429, busy, headers={"retry-after": "0.1"}))
        client = openai.AsyncOpenAI(api_key="offline", base_url=server.openai_base_url)
        source = openai_chat(client, model="offline", messages=[{"role": "user", "content": "Hello!"}])
        stream = pipeline.open(source)
        try:
            async with stream:
                message = await stream.collect()
        except ProviderError as exc:  # only without a retry plugin
            print(f"not retried (no retry plugin installed): {exc}")
            return
    print(f"answer: {message.text!r} after {stream.stats().attempts} attempts")


asyncio.run(main())
