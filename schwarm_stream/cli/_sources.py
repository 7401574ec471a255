"""Sources for ``run`` and ``compare``: one prompt through the official SDK client of a provider."""

from __future__ import annotations

from typing import Any

from .. import MissingDependency
from ._common import DEFAULT_URLS, NATIVE_ROUTES, fail


def provider_source(
    provider: str, api_key: str, base_url: str | None, model: str, max_tokens: int, prompt: str
) -> Any:
    """A source for ``prompt`` sent to ``model`` (Chat Completions for openai, Messages for anthropic)."""
    from ..sources import anthropic_messages, openai_chat

    messages = [{"role": "user", "content": prompt}]
    if provider == "bedrock":
        return bedrock_source(base_url, model, max_tokens, prompt)
    if provider in ("gemini", "ollama"):
        return native_source(provider, api_key, base_url, model, max_tokens, prompt)
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
    from botocore.exceptions import BotoCoreError

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    try:
        client = boto3.client("bedrock-runtime", region_name=region, endpoint_url=base_url)
    except BotoCoreError as exc:  # a missing profile, a bad region: said before anything is sent
        fail(
            f"the Bedrock client could not be created: {exc}",
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or AWS_BEARER_TOKEN_BEDROCK",
        )
    return bedrock_converse(
        client,
        modelId=model,
        messages=[{"role": "user", "content": [{"text": prompt}]}],
        inferenceConfig={"maxTokens": max_tokens},
    )


#: The replay protocol name of a recorded ``ConverseStream`` body (binary event-stream frames).
BEDROCK_PROTOCOL = NATIVE_ROUTES[2]


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


# -- Google Gemini (google-genai) and Ollama (/api/chat) ---------------------------------------------


def native_source(
    provider: str, api_key: str, base_url: str | None, model: str, max_tokens: int, prompt: str
) -> Any:
    """``prompt`` to ``model`` through google-genai (``gemini``) or the ollama client (``ollama``)."""
    from ..sources import gemini_generate, ollama_chat

    try:
        if provider == "gemini":
            from google import genai

            options: Any = {"base_url": base_url} if base_url else None
            client: Any = genai.Client(api_key=api_key, http_options=options)
            return gemini_generate(
                client, model=model, contents=prompt, config={"max_output_tokens": max_tokens}
            )
        import ollama

        headers = {"authorization": f"Bearer {api_key}"} if base_url and "ollama.com" in base_url else None
        client = ollama.AsyncClient(host=base_url or DEFAULT_URLS["ollama"], headers=headers)
        return ollama_chat(
            client,
            model=model,
            messages=[{"role": "user", "content": prompt}],
            options={"num_predict": max_tokens},
        )
    except ImportError:
        fail(f"the {provider} provider needs its SDK", f"pip install 'schwarm-stream[{provider}]'")


def sniff_native(body: bytes) -> str | None:
    """``gemini-stream``, ``ollama-chat`` or ``bedrock-converse-stream`` when ``body`` is one of those
    recorded streams, else ``None``."""
    import json

    if is_eventstream(body[:12]):
        return BEDROCK_PROTOCOL
    text = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    first = text.split(b"\n", 1)[0].strip()
    if first.startswith(b"data:"):
        first = first[5:].strip()
    try:
        head = json.loads(first)
    except ValueError:
        return None
    if not isinstance(head, dict):
        return None
    if text.startswith(b"data:") and {"candidates", "promptFeedback", "usageMetadata"} & head.keys():
        return "gemini-stream"
    if text.startswith(b"{") and "done" in head and ("message" in head or "error" in head):
        return "ollama-chat"
    return None


def native_replay_reply(protocol: str, body: bytes) -> Any:
    """The loopback server's reply serving a recorded Gemini, Ollama or Bedrock body."""
    from ..testing._ollama_wire import NDJSON
    from ..testing.server import SSEReply

    if protocol == BEDROCK_PROTOCOL:
        return replay_reply(body)
    return SSEReply([body], content_type=NDJSON if protocol == "ollama-chat" else "text/event-stream")


def native_replay_source(protocol: str, server: Any) -> Any:
    """A source reading a replayed Gemini, Ollama or Bedrock body from ``server`` through the provider's SDK."""
    if protocol == BEDROCK_PROTOCOL:
        return bedrock_replay_source(server)
    provider = "gemini" if protocol == "gemini-stream" else "ollama"
    return native_source(provider, "replay", server.url, "replay", 1024, "replay")
