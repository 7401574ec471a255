"""What a stream cost: the provider's reported usage priced with the ``genai-prices`` table.

``genai-prices`` (by Pydantic, MIT) is an optional dependency
(``pip install 'schwarm-stream[cost]'``), imported the first time a cost is
computed, never at ``import schwarm_stream``. Why that table and not another:
``docs/observability.md`` ("Cost").

The usage goes to the table's own per-provider usage extractor with the
provider's own field names, so cached input (OpenAI ``cached_tokens``,
Anthropic cache reads and writes, 5-minute and 1-hour writes) and reasoning
tokens are priced the way the table defines them: reasoning tokens are part of
the output tokens and billed as output; cached tokens are part of the input and
billed at the cache rates.

A cost is never 0 for want of data. An unknown model or provider, usage the
provider did not report, or the package not installed give a :class:`Cost`
whose ``total`` is ``None`` and whose ``reason`` says why::

    >>> cost_of(message)
    Cost(total=Decimal('0.00027'), currency='USD', model='gpt-4o', provider='openai', ...)
    >>> str(cost_of(offline_message))
    "unknown: not in the price table: Unable to find provider provider_id='offline'"
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ._message import Message, TokenUsage

__all__ = [
    "PRICES_PACKAGE",
    "Cost",
    "cost_of",
    "load_prices_in_background",
    "price_usage",
    "prices_available",
    "prices_loaded",
]

log = logging.getLogger("schwarm_stream")

#: The distribution that holds the price table.
PRICES_PACKAGE: Final = "genai-prices"

#: ``gen_ai.provider.name`` values (what sources report) -> the price table's provider ids.
_PROVIDER_IDS: Final[dict[str, str]] = {
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "aws.bedrock": "aws",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "x_ai": "x-ai",
    "mistral_ai": "mistral",
    "moonshot_ai": "moonshotai",
}

_MISSING: Final = object()
_lib: Any = None  # the imported genai_prices module, _MISSING when it is not installed
_loading: threading.Thread | None = None


def _prices() -> Any:
    """``genai_prices``, imported once (a large table: it loads on first use, not with us)."""
    global _lib
    if _lib is None:
        try:
            import genai_prices
        except ImportError:
            _lib = _MISSING
        else:
            _lib = genai_prices
    return None if _lib is _MISSING else _lib


def prices_available() -> bool:
    """Whether the price table (``genai-prices``) is installed (imports it on the first call)."""
    return _prices() is not None


def prices_loaded() -> bool:
    """Whether a cost can be computed now without importing the table (or knowing it is not installed)."""
    if _lib is None and _loading is None and "genai_prices" in sys.modules:
        _prices()  # someone imported it already: taking it costs nothing
    return _lib is not None


def load_prices_in_background() -> None:
    """Start importing the price table on a daemon thread (once), if it is installed.

    The table is a large module (seconds to import on a busy machine): the
    metrics built-in starts this when the first traced stream starts, so no
    stream end waits for it. Until it is loaded :func:`prices_loaded` is false.
    """
    global _loading, _lib
    if _lib is not None or _loading is not None:
        return
    if importlib.util.find_spec("genai_prices") is None:
        _lib = _MISSING
        return
    _loading = threading.Thread(target=_prices, name="schwarm_stream-prices", daemon=True)
    _loading.start()


@dataclass(frozen=True, slots=True)
class Cost:
    """A price in ``currency`` (US dollars), or unknown (``total is None``) with the ``reason``.

    ``input`` and ``output`` split ``total`` as the table does (cached input is
    part of ``input``, reasoning part of ``output``). ``model`` and ``provider``
    are the table's ids that matched; ``table`` names the table and its version.
    """

    total: Decimal | None
    input: Decimal | None = None
    output: Decimal | None = None
    currency: str = "USD"
    model: str | None = None
    provider: str | None = None
    reason: str | None = None
    table: str | None = None

    @property
    def known(self) -> bool:
        """Whether the price is known (``total`` is not ``None``)."""
        return self.total is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: amounts as strings (exact decimals), ``None`` where unknown."""
        return {
            "total": None if self.total is None else str(self.total),
            "input": None if self.input is None else str(self.input),
            "output": None if self.output is None else str(self.output),
            "currency": self.currency,
            "model": self.model,
            "provider": self.provider,
            "reason": self.reason,
            "table": self.table,
        }

    def __str__(self) -> str:
        if self.total is None:
            return f"unknown: {self.reason}"
        return f"${self.total:f}" if self.currency == "USD" else f"{self.total:f} {self.currency}"


def _unknown(reason: str) -> Cost:
    return Cost(total=None, reason=reason)


def _raw_usage(usage: TokenUsage, flavor: str) -> dict[str, Any]:
    """The provider's usage object again: its main counters under the provider's names, plus the extras."""
    raw: dict[str, Any] = dict(usage.extras)
    if flavor == "chat":
        raw["prompt_tokens"] = usage.input_tokens
        raw["completion_tokens"] = usage.output_tokens
    else:
        raw["input_tokens"] = usage.input_tokens
        raw["output_tokens"] = usage.output_tokens
    return raw


def _flavor(provider_id: str, usage: TokenUsage) -> str:
    """The table's ``api_flavor`` for this usage's shape (Chat Completions, Responses, Anthropic)."""
    if provider_id == "anthropic":
        return "default"
    if not usage.cache_tokens_in_input:  # Anthropic's usage shape, at a host of Anthropic models
        return "anthropic"
    x = usage.extras
    if "input_tokens_details" in x or "output_tokens_details" in x:
        return "responses"
    return "chat"


def price_usage(usage: TokenUsage | None, model: str | None, provider: str | None) -> Cost:
    """The cost of ``usage`` for ``model`` at ``provider`` (a ``gen_ai.provider.name`` value).

    Never raises for missing data: returns an unknown :class:`Cost` with the reason.
    """
    if usage is None or usage.input_tokens is None or usage.output_tokens is None:
        return _unknown("the provider reported no token usage")
    if not model:
        return _unknown("the provider reported no model")
    if not provider:
        return _unknown("no provider")
    lib = _prices()
    if lib is None:
        return _unknown(f"the price table is not installed (pip install {PRICES_PACKAGE})")
    provider_id = _PROVIDER_IDS.get(provider, provider)
    flavor = _flavor(provider_id, usage)
    table = f"{PRICES_PACKAGE} {lib.__version__}"
    try:
        extracted = lib.extract_usage(
            {"model": model, "usage": _raw_usage(usage, flavor)}, provider_id=provider_id, api_flavor=flavor
        )
    except LookupError as exc:  # unknown provider or model: the table says which
        return _unknown(f"not in the price table: {exc}")
    except Exception as exc:  # the table could not read this usage: unknown, never a wrong number
        return _unknown(f"usage not understood by the price table ({type(exc).__name__}: {exc})")
    if extracted.model is None:
        return _unknown(f"not in the price table: model {model!r} at {provider}")
    try:
        calc = extracted.calc_price()
    except LookupError as exc:
        return _unknown(f"not in the price table: {exc}")
    except Exception as exc:
        return _unknown(f"the price table could not price {model} ({type(exc).__name__}: {exc})")
    return Cost(
        total=calc.total_price,
        input=calc.input_price,
        output=calc.output_price,
        model=calc.model.id,
        provider=calc.provider.id,
        table=table,
    )


def cost_of(message: Message | None) -> Cost:
    """What ``message`` (a stream's final or partial message) cost, from its ``usage``, ``model`` and ``provider``."""
    if message is None:
        return _unknown("no message")
    return price_usage(message.usage, message.model, message.provider)


def _as_float(cost: Cost) -> float | None:
    """``cost.total`` as a float for telemetry (``None`` when unknown)."""
    return None if cost.total is None else float(cost.total)
