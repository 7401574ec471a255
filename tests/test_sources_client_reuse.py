"""Sources share one retry-free copy of the caller's SDK client."""

from __future__ import annotations

import anthropic
import openai

from schwarm_stream.sources import anthropic_messages, openai_chat, openai_responses
from schwarm_stream.sources._base import without_retries

MSGS = [{"role": "user", "content": "hi"}]


def test_sources_of_one_client_share_a_single_copy_without_sdk_retries() -> None:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1")
    a = openai_chat(client, model="m", messages=MSGS)
    b = openai_chat(client, model="m", messages=MSGS)
    r = openai_responses(client, model="m", input="hi")
    assert a.client is b.client is r.client
    assert a.client.max_retries == 0 and client.max_retries == 2  # the caller's client is untouched


def test_a_client_without_retries_is_used_as_is() -> None:
    client = anthropic.AsyncAnthropic(api_key="x", base_url="http://127.0.0.1:9", max_retries=0)
    assert anthropic_messages(client, model="m", max_tokens=5, messages=MSGS).client is client
    assert without_retries(client) is client
