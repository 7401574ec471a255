"""Sources for ``run`` and ``compare``: one prompt through the official SDK client of a provider."""

from __future__ import annotations

from typing import Any

from .. import MissingDependency
from ._common import fail


def provider_source(
    provider: str, api_key: str, base_url: str | None, model: str, max_tokens: int, prompt: str
) -> Any:
    """A source for ``prompt`` sent to ``model`` (Chat Completions for openai, Messages for anthropic)."""
    from ..sources import anthropic_messages, openai_chat

    messages = [{"role": "user", "content": prompt}]
    if provider == "bedrock":
        return bedrock_source(base_url, model, max_tokens, prompt)
    try:
        if provider == "anthropic":
            import anthropic

            client: Any = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url)
            return anthropic_messages(client, model=model, max_tokens=max_tokens, messages=messages)
        import openai

        client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url)
        return openai_chat(client, model=model, messages=messages, max_completion_tokens=max_tokens)
    except (ImportError, MissingDependency) as exc:
        fail(str(exc), f"pip install 'schwarm-stream[{provider}]'")


# -- AWS Bedrock (ConverseStream through boto3) ------------------------------------------------------


def bedrock_source(base_url: str | None, model: str, max_tokens: int, prompt: str) -> Any:
    """``ConverseStream`` of ``model`` (a Bedrock ``modelId``) through a boto3 client.

    Credentials, profile and region come from boto3's own chain (``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``AWS_BEARER_TOKEN_BEDROCK``, ``AWS_REGION``; region
    ``us-east-1`` when none is set); ``base_url`` is the client's ``endpoint_url``.
    """
    import os

    from ..sources import bedrock_converse

    try:
        import boto3
    except ImportError:
        fail("the bedrock provider needs boto3", "pip install 'schwarm-stream[bedrock]'")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    client = boto3.client("bedrock-runtime", region_name=region, endpoint_url=base_url)
    return bedrock_converse(
        client,
        modelId=model,
        messages=[{"role": "user", "content": [{"text": prompt}]}],
        inferenceConfig={"maxTokens": max_tokens},
    )


#: The replay protocol name of a recorded ``ConverseStream`` body (binary event-stream frames).
BEDROCK_PROTOCOL = "bedrock-converse-stream"


def is_eventstream(head: bytes) -> bool:
    """Whether ``head`` (a body's first bytes) starts with an event-stream frame: a prelude whose CRC holds."""
    import struct
    import zlib

    if len(head) < 12:
        return False
    total, headers, crc = struct.unpack(">III", head[:12])
    return bool(total >= 16 + headers and zlib.crc32(head[:8]) == crc)


def replay_reply(body: bytes) -> Any:
    """The loopback server's reply serving a recorded ``ConverseStream`` body."""
    from ..testing._bedrock_wire import EVENTSTREAM
    from ..testing.server import SSEReply

    return SSEReply([body], content_type=EVENTSTREAM)


def bedrock_replay_source(server: Any) -> Any:
    """A source reading a replayed ``ConverseStream`` body from ``server`` through boto3 (dummy credentials)."""
    from ..sources import bedrock_converse

    try:
        import boto3
    except ImportError:
        fail("replaying Bedrock streams needs boto3", "pip install 'schwarm-stream[bedrock]'")
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=server.url,
        aws_access_key_id="replay",
        aws_secret_access_key="replay",
    )
    return bedrock_converse(
        client, modelId="replay", messages=[{"role": "user", "content": [{"text": "replay"}]}]
    )
