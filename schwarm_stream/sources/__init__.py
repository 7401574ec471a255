"""Sources: factories that open a provider stream and emit normalized events.

A source is not an iterator: retry and recovery need to open it again (and,
for continuation, with the partial answer). Every source is a :class:`Source`
with an ``open(stream, attempt)`` method returning an async iterator of events
that ends normally only after the protocol's terminator, and raises a
:class:`~schwarm_stream.StreamError` otherwise.

One source class per protocol (``OpenAIChatSource``, ``OpenAIResponsesSource``,
``AnthropicMessagesSource``) owns normalization, completion and recovery; how
its request travels is the transport it is given (``_transport.py``): the
official SDK client (``openai_chat(client, ...)``) or native httpx
(``native_openai_chat(base_url, key, ...)``, a subclass with a URL-and-key
constructor). Both read the body with the same SSE framing (``_sse.py``).

The SDK-backed sources import their SDK lazily: ``import schwarm_stream``
imports neither ``openai`` nor ``anthropic``.
"""

from __future__ import annotations

from ._anthropic import AnthropicMessagesSource, anthropic_messages
from ._base import Source, as_source
from ._bedrock import BedrockConverseSource, bedrock_converse, to_converse
from ._gemini import GeminiSource, gemini_generate, to_gemini
from ._ollama import NativeOllamaSource, OllamaChatSource, native_ollama, ollama_chat, to_ollama
from ._openai_chat import OpenAIChatSource, openai_chat
from ._openai_responses import OpenAIResponsesSource, openai_responses
from .iterators import IteratorSource, from_iterator
from .native import (
    NativeAnthropicSource,
    NativeOpenAIChatSource,
    NativeOpenAIResponsesSource,
    NativeSource,
    native_anthropic,
    native_openai_chat,
    native_openai_responses,
)

__all__ = [
    "AnthropicMessagesSource",
    "BedrockConverseSource",
    "GeminiSource",
    "IteratorSource",
    "NativeAnthropicSource",
    "NativeOllamaSource",
    "NativeOpenAIChatSource",
    "NativeOpenAIResponsesSource",
    "NativeSource",
    "OllamaChatSource",
    "OpenAIChatSource",
    "OpenAIResponsesSource",
    "Source",
    "anthropic_messages",
    "as_source",
    "bedrock_converse",
    "from_iterator",
    "gemini_generate",
    "native_anthropic",
    "native_ollama",
    "native_openai_chat",
    "native_openai_responses",
    "ollama_chat",
    "openai_chat",
    "openai_responses",
    "to_converse",
    "to_gemini",
    "to_ollama",
]
