"""Translate provider, SDK and transport exceptions into the typed error tree.

Done at the source boundary (``raise classify(exc) from exc``) so the original
is always ``__cause__``. Matching is by module and attribute, not ``isinstance``,
so the core never imports an SDK.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

from .._errors import ProtocolError, ProviderError, StreamError, StreamTimeout, TransportError
from .._scrub import keys_from_headers, remember, scrub, scrub_exception, scrub_value

__all__ = ["classify", "in_band_error", "parse_retry_after", "redact", "redact_value"]

#: In-band error types and the HTTP status they stand for (Anthropic's
#: documented mapping; OpenAI's in-band types where they differ).
ERROR_TYPE_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "api_error": 500,
    "server_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
#: Error types that look retryable by status but are not (no amount of waiting helps).
NOT_RETRYABLE_TYPES = frozenset({"insufficient_quota", "billing_error"})

_TRANSPORT_MODULES = ("httpx", "httpx2", "httpcore", "httpcore2", "h11", "aiohttp", "anyio")


def redact(text: str) -> str:
    """Mask API keys and bearer tokens in ``text`` (error messages may echo requests):
    the keys sources were configured with, exactly, and the common formats (see :mod:`.._scrub`)."""
    return scrub(text)


def redact_value(value: Any) -> Any:
    """``value`` (an error body: str, mapping, list, nested) with :func:`redact` applied to every string."""
    return scrub_value(value)


def _request_keys(exc: BaseException) -> list[str]:
    """The credentials the failed request carried (SDK and httpx exceptions keep the request)."""
    keys: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for holder in (current, getattr(current, "response", None)):
            try:
                request = getattr(holder, "request", None)  # httpx raises RuntimeError when unset
            except Exception:
                request = None
            keys.extend(keys_from_headers(getattr(request, "headers", None)))
        current = current.__cause__ or current.__context__
    return keys


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms``, else ``retry-after`` (seconds or HTTP date); ``None`` if absent."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if ra:
        try:
            return max(0.0, float(ra))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(ra)
            except (TypeError, ValueError):  # neither seconds nor an HTTP date: ignore the header
                return None
            return max(0.0, parsed.timestamp() - time.time())
    return None


def _should_retry(headers: Mapping[str, str] | None) -> bool | None:
    value = (headers or {}).get("x-should-retry")
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def in_band_error(
    body: Any, *, provider: str | None, default_message: str = "provider error in stream"
) -> ProviderError:
    """A :class:`ProviderError` for an error event inside a 200 stream (Anthropic ``event: error``,
    OpenAI ``{"error": ...}`` chunks, Responses ``error`` / ``response.failed``)."""
    err = body.get("error", body) if isinstance(body, Mapping) else {}
    if not isinstance(err, Mapping):
        err = {"message": str(err)}
    etype = err.get("type")
    if etype in (None, "", "error"):  # flat Responses shape: "type" is the envelope's, "code" the error's
        etype = err.get("code") or etype
    code = err.get("code")
    message = err.get("message") or default_message
    status = ERROR_TYPE_STATUS.get(str(etype)) or ERROR_TYPE_STATUS.get(str(code))
    if status is None and isinstance(code, int):
        status = code
    should_retry = False if (etype in NOT_RETRYABLE_TYPES or code in NOT_RETRYABLE_TYPES) else None
    return ProviderError(
        redact(f"{provider or 'provider'} error in stream ({etype}): {message}"),
        status_code=status,
        error_type=str(etype) if etype is not None else None,
        in_band=True,
        should_retry=should_retry,
        provider=provider,
        body=scrub_value(dict(err)),
    )


def classify(exc: BaseException, *, provider: str | None) -> StreamError:
    """The typed error for any exception raised while opening or reading a provider stream.

    Secrets are scrubbed from the result and, in place, from ``exc`` and everything chained to
    it (the key the request carried exactly, plus the common formats), so the ``__cause__`` the
    caller's traceback shows carries no key either.
    """
    if isinstance(exc, StreamError):
        return exc
    keys = _request_keys(exc)
    for key in keys:
        remember(key)
    result = _classify(exc, provider=provider)
    scrub_exception(exc, keys)
    scrub_exception(result, keys)
    body = getattr(result, "body", None)
    if body is not None:
        result.body = scrub_value(body, keys)  # type: ignore[attr-defined]
    return result


def _classify(exc: BaseException, *, provider: str | None) -> StreamError:
    module = type(exc).__module__.split(".", 1)[0]
    name = type(exc).__name__
    if module in ("openai", "anthropic"):
        status = getattr(exc, "status_code", None)
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        body = getattr(exc, "body", None)
        if status is not None:
            if status == 200:  # Anthropic raises in-band errors as APIStatusError(200)
                return in_band_error(body if isinstance(body, Mapping) else {}, provider=provider)
            etype = None
            if isinstance(body, Mapping):
                inner = body.get("error", body)
                etype = inner.get("type") if isinstance(inner, Mapping) else None
            should = _should_retry(headers)
            if etype in NOT_RETRYABLE_TYPES:
                should = False
            return ProviderError(
                redact(f"{provider} returned HTTP {status}: {getattr(exc, 'message', exc)}"),
                status_code=status,
                error_type=etype,
                retry_after=parse_retry_after(headers),
                should_retry=should,
                provider=provider,
                body=body,
            )
        if name == "APITimeoutError":
            return StreamTimeout(
                f"{provider}: request timed out (SDK read timeout)", kind="read", provider=provider
            )
        if name == "APIConnectionError":
            cause = exc.__cause__
            detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
            return TransportError(redact(f"{provider}: connection failed: {detail}"), provider=provider)
        if name == "APIError":  # OpenAI: an {"error": ...} chunk inside the stream
            return in_band_error({"error": body} if body is not None else {}, provider=provider)
        if name == "APIResponseValidationError":
            return ProtocolError(f"{provider}: response did not validate: {exc}", provider=provider)
    if module in _TRANSPORT_MODULES:
        if "Timeout" in name:
            return StreamTimeout(f"{provider}: {name}: {exc}", kind="read", provider=provider)
        return TransportError(redact(f"{provider}: connection failed: {name}: {exc}"), provider=provider)
    if isinstance(exc, json.JSONDecodeError):
        return ProtocolError(
            f"{provider}: invalid JSON in stream data at character {exc.pos}: {exc.msg}",
            offset=exc.pos,
            provider=provider,
        )
    if isinstance(exc, UnicodeDecodeError):
        return ProtocolError(
            f"{provider}: invalid UTF-8 at byte {exc.start}", offset=exc.start, provider=provider
        )
    if isinstance(exc, TimeoutError):
        return StreamTimeout(f"{provider}: timed out", kind="read", provider=provider)
    if isinstance(exc, (ConnectionError, OSError)):
        return TransportError(redact(f"{provider}: connection failed: {name}: {exc}"), provider=provider)
    return StreamError(redact(f"{provider}: {name}: {exc}"), provider=provider)
