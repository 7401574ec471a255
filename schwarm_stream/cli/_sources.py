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
