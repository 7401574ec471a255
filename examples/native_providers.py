"""Native providers: Gemini, Ollama and Bedrock through the same open(), and a cut body caught as such.

Shows: gemini_generate (google-genai), native_ollama (httpx) and bedrock_converse (boto3) streaming one
answer each from the loopback provider server; then, per protocol, a body that ends cleanly after a
few events, mid-answer (each SDK ends its iterator silently there), reported as StreamIncomplete with
the partial text kept on stream.message (complete=False).
Run:   python examples/native_providers.py   (offline only: loopback server, dummy keys;
       needs pip install 'schwarm-stream[gemini,bedrock]')
Expect: ^3 answers complete, 3 cut bodies incomplete with their partial text$
"""

import asyncio
import dataclasses
import sys
from typing import Any

try:
    import boto3
    from google import genai
except ImportError as exc:  # the extras are not part of the core install
    sys.exit(f"{exc.name} is missing: pip install 'schwarm-stream[gemini,bedrock]'")

import schwarm_stream
from schwarm_stream import Chunk, StreamIncomplete
from schwarm_stream.sources import bedrock_converse, gemini_generate, native_ollama
from schwarm_stream.testing.server import OfflineProvider, ProviderServer, RecordedRequest, Reply, SSEReply

PROMPT = "Hello from three protocols!"
#: The faults are shown as they are: one attempt, no mid-stream recovery (see retry_recovery.py for those).
NO_RETRY = {"retry": {"attempts": 1}, "recovery": {"mid_stream": "raise"}}
#: How many events of the offline answer a cut body keeps (Bedrock's first frame is messageStart).
KEEP = {"gemini-stream": 2, "ollama-chat": 2, "bedrock-converse-stream": 3}


class Cutter:
    """The offline provider, whose streamed bodies end cleanly after ``KEEP`` events while ``cut`` is set."""

    def __init__(self) -> None:
        self.offline = OfflineProvider()
        self.cut = False

    def __call__(self, request: RecordedRequest) -> Reply:
        reply = self.offline(request)
        if self.cut and isinstance(reply, SSEReply) and request.route in KEEP:
            reply = dataclasses.replace(reply, parts=reply.parts[: KEEP[request.route]], end="eof")
        return reply


def sources(url: str) -> dict[str, Any]:
    """One source factory per protocol, each SDK client pointed at the loopback server."""
    gemini = genai.Client(api_key="offline", http_options={"base_url": url})
    bedrock = boto3.client(
        "bedrock-runtime",
        endpoint_url=url,  # the real service: leave it out, credentials from boto3's usual chain
        region_name="us-east-1",
        aws_access_key_id="offline",
        aws_secret_access_key="offline",
    )
    return {
        "gemini": gemini_generate(gemini, model="gemini-2.5-flash", contents=PROMPT),
        "ollama": native_ollama(url, model="llama3.2", messages=[{"role": "user", "content": PROMPT}]),
        "bedrock": bedrock_converse(
            bedrock,
            modelId="amazon.nova-micro-v1:0",
            messages=[{"role": "user", "content": [{"text": PROMPT}]}],
        ),
    }


async def main() -> None:
    cutter = Cutter()
    complete, incomplete = 0, 0
    async with ProviderServer(cutter) as server:
        for name, source in sources(server.url).items():
            print(f"{name}: ", end="")
            async with schwarm_stream.open(source) as stream:
                async for event in stream:
                    if isinstance(event, Chunk) and event.kind == "text":
                        print(event.text, end="", flush=True)
            message = stream.message
            complete += message.complete
            print(f"  [{message.provider} complete={message.complete} finish_reason={message.finish_reason}]")

        cutter.cut = True
        for name, source in sources(server.url).items():
            stream = schwarm_stream.open(source, config=NO_RETRY)
            try:
                async with stream:
                    await stream.collect()
                outcome = "no error"
            except StreamIncomplete as exc:  # a typed error; the partial answer stays on stream.message
                outcome = f"{type(exc).__name__} ({exc})"
            message = stream.message
            incomplete += not message.complete and bool(message.text) and outcome != "no error"
            print(f"cut {name}: {outcome} complete={message.complete} partial={message.text!r}")
    print(f"{complete} answers complete, {incomplete} cut bodies incomplete with their partial text")


asyncio.run(main())
