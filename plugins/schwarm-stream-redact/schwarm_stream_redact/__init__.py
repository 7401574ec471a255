"""schwarm-stream-redact: redact secrets and personal data from streamed text.

The plugin ``redact`` is found through the ``schwarm_stream`` entry point and is
off until configured::

    [redact]
    enabled = true
    patterns = { ticket = "TICKET-[0-9]{6}" }

The accumulated message keeps the unredacted text (accumulation happens before
transformers); use :func:`redact_message` on it before you store or show it.
"""

from __future__ import annotations

from typing import Any

from .patterns import BUILTIN_PATTERNS, Pattern, Redactor, luhn_valid
from .plugin import RedactConfig

__all__ = [
    "BUILTIN_PATTERNS",
    "Pattern",
    "RedactConfig",
    "Redactor",
    "luhn_valid",
    "redact_message",
    "redact_text",
]

__version__ = "0.1.0"


def redact_text(text: str, config: RedactConfig | dict[str, Any] | None = None) -> str:
    """``text`` with every configured pattern replaced (all built-ins with the default config)."""
    cfg = config if isinstance(config, RedactConfig) else RedactConfig.model_validate(config or {})
    return cfg.redactor().redact(text)


def redact_message(message: Any, config: RedactConfig | dict[str, Any] | None = None) -> Any:
    """A copy of a :class:`schwarm_stream.Message` with text, reasoning, refusal and text blocks redacted."""
    changes: dict[str, Any] = {
        name: redact_text(value, config)
        for name in ("text", "reasoning", "refusal")
        if isinstance(value := getattr(message, name, None), str) and value
    }
    blocks = getattr(message, "content", None)
    if blocks:
        changes["content"] = [
            b.model_copy(update={"text": redact_text(b.text, config)}) if b.text else b for b in blocks
        ]
    return message.model_copy(update=changes)
