"""Translate provider, SDK and transport exceptions into the typed error tree (:mod:`._errors`).

Done at the source boundary (``raise classify(exc) from exc``) so the original is
always ``__cause__``. The translation is one table, :data:`ERROR_MAP`: each
:class:`Rule` says which exceptions it matches and which error of the tree they
become; the first matching row wins, no row means a plain :class:`StreamError`.

SDK and transport exceptions are matched by the top-level module and the name
of their type, not with ``isinstance``, so nothing here imports an SDK or an
HTTP client. Standard-library exceptions are matched by type.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import ProtocolError, ProviderError, StreamError, StreamTimeout, TransportError
from ._scrub import keys_from_headers, remember, scrub, scrub_exception, scrub_value

__all__ = [
    "ERROR_MAP",
    "ERROR_TYPE_STATUS",
    "NOT_RETRYABLE_TYPES",
    "Rule",
    "classify",
    "http_status_error",
    "in_band_error",
    "parse_retry_after",
    "redact",
    "redact_value",
    "rule_for",
    "should_retry",
]

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

#: The official SDKs (their exceptions carry ``status_code``, ``response``, ``body``).
SDK_MODULES = frozenset({"openai", "anthropic"})
#: HTTP clients and the I/O libraries under them: every exception of theirs is a transport failure.
TRANSPORT_MODULES = frozenset({"httpx", "httpx2", "httpcore", "httpcore2", "h11", "aiohttp", "anyio"})
#: botocore raises the AWS SDKs' errors (aiobotocore's too); modeled ones live in ``botocore.errorfactory``.
AWS_MODULES = frozenset({"botocore", "aiobotocore"})
#: Where boto3's and aiobotocore's I/O failures come from (urllib3 under boto3).
AWS_IO_MODULES = frozenset({"botocore", "aiobotocore", "urllib3"})
#: botocore's and urllib3's connection-level failures (a reset or cut body mid-stream included).
AWS_TRANSPORT_NAMES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ResponseStreamingError",
        "ProxyConnectionError",
        "HTTPClientError",
        "SSLError",
        "ProtocolError",
        "IncompleteRead",
        "ReadTimeoutError",
        "ConnectionError",
        "NewConnectionError",
    }
)
#: botocore's event-stream decoder: a frame that fails its CRC or length checks.
AWS_FRAME_ERRORS = frozenset(
    {"ChecksumMismatch", "InvalidHeadersLength", "InvalidPayloadLength", "DuplicateHeader", "ParserError"}
)


# -- helpers the rows and the sources share ----------------------------------------


def redact(text: str) -> str:
    """Mask API keys and bearer tokens in ``text`` (error messages may echo requests):
    the keys sources were configured with, exactly, and the common formats (see :mod:`._scrub`)."""
    return scrub(text)


def redact_value(value: Any) -> Any:
    """``value`` (an error body: str, mapping, list, nested) with :func:`redact` applied to every string."""
    return scrub_value(value)


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


def should_retry(headers: Mapping[str, str] | None) -> bool | None:
    """The provider's own verdict from ``x-should-retry`` (``None`` when it gives none)."""
    value = (headers or {}).get("x-should-retry")
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def http_status_error(
    status: int,
    headers: Mapping[str, str] | None,
    *,
    message: str,
    error_type: str | None,
    body: Any,
    provider: str | None,
) -> ProviderError:
    """The :class:`ProviderError` for a non-2xx HTTP response, the same fields whether an SDK
    or the native path read it: ``retry_after`` and ``should_retry`` from the headers, and
    never retryable for an error type waiting cannot fix."""
    should = should_retry(headers)
    if error_type in NOT_RETRYABLE_TYPES:
        should = False
    return ProviderError(
        redact(f"{provider} returned HTTP {status}: {message}"),
        status_code=status,
        error_type=error_type,
        retry_after=parse_retry_after(headers),
        should_retry=should,
        provider=provider,
        body=body,
    )


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
    should = False if (etype in NOT_RETRYABLE_TYPES or code in NOT_RETRYABLE_TYPES) else None
    return ProviderError(
        redact(f"{provider or 'provider'} error in stream ({etype}): {message}"),
        status_code=status,
        error_type=str(etype) if etype is not None else None,
        in_band=True,
        should_retry=should,
        provider=provider,
        body=scrub_value(dict(err)),
    )


# -- what each row builds ------------------------------------------------------------


def _sdk_status(exc: BaseException, provider: str | None) -> StreamError:
    status: int = getattr(exc, "status_code")  # noqa: B009 - the row matched on it
    body = getattr(exc, "body", None)
    if status == 200:  # Anthropic raises in-band errors as APIStatusError(200)
        return in_band_error(body if isinstance(body, Mapping) else {}, provider=provider)
    etype = None
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        etype = inner.get("type") if isinstance(inner, Mapping) else None
    headers = getattr(getattr(exc, "response", None), "headers", None)
    return http_status_error(
        status,
        headers,
        message=str(getattr(exc, "message", exc)),
        error_type=etype,
        body=body,
        provider=provider,
    )


def _sdk_timeout(exc: BaseException, provider: str | None) -> StreamError:
    return StreamTimeout(f"{provider}: request timed out (SDK read timeout)", kind="read", provider=provider)


def _sdk_connection(exc: BaseException, provider: str | None) -> StreamError:
    cause = exc.__cause__
    detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
    return TransportError(redact(f"{provider}: connection failed: {detail}"), provider=provider)


def _sdk_in_band(exc: BaseException, provider: str | None) -> StreamError:
    body = getattr(exc, "body", None)  # OpenAI: an {"error": ...} chunk inside the stream
    return in_band_error({"error": body} if body is not None else {}, provider=provider)


def _sdk_invalid(exc: BaseException, provider: str | None) -> StreamError:
    return ProtocolError(f"{provider}: response did not validate: {exc}", provider=provider)


def _transport_timeout(exc: BaseException, provider: str | None) -> StreamError:
    return StreamTimeout(f"{provider}: {type(exc).__name__}: {exc}", kind="read", provider=provider)


def _connection(exc: BaseException, provider: str | None) -> StreamError:
    return TransportError(
        redact(f"{provider}: connection failed: {type(exc).__name__}: {exc}"), provider=provider
    )


def _bad_json(exc: BaseException, provider: str | None) -> StreamError:
    pos: int = getattr(exc, "pos", 0)
    return ProtocolError(
        f"{provider}: invalid JSON in stream data at character {pos}: {getattr(exc, 'msg', exc)}",
        offset=pos,
        provider=provider,
    )


def _bad_utf8(exc: BaseException, provider: str | None) -> StreamError:
    start: int = getattr(exc, "start", 0)
    return ProtocolError(f"{provider}: invalid UTF-8 at byte {start}", offset=start, provider=provider)


def _timeout(exc: BaseException, provider: str | None) -> StreamError:
    return StreamTimeout(f"{provider}: timed out", kind="read", provider=provider)


#: AWS error codes (HTTP ``x-amzn-ErrorType`` and the ``ConverseStream`` union's exception
#: members, which botocore spells with a lower-case first letter) -> status, from the service model.
AWS_ERROR_STATUS: dict[str, int] = {
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ModelStreamErrorException": 424,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "ServiceQuotaExceededException": 400,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}
#: AWS errors retried whatever their status says: the model's own stream broke (Bedrock's docs
#: say to retry the request), or the model is loading.
AWS_RETRYABLE = frozenset({"ModelStreamErrorException", "ModelErrorException", "ModelNotReadyException"})
#: AWS errors waiting cannot fix, though their status looks retryable.
AWS_NOT_RETRYABLE = frozenset(
    {"ServiceQuotaExceededException", "ValidationException", "AccessDeniedException"}
)


def _aws_error(exc: BaseException, provider: str | None) -> StreamError:
    # botocore's ClientError and its modeled subclasses; EventStreamError is an exception frame in a 200 stream.
    response = getattr(exc, "response", None) or {}
    err = response.get("Error") or {}
    code = str(err.get("Code") or type(exc).__name__)
    name = code[:1].upper() + code[1:]
    meta = response.get("ResponseMetadata") or {}
    in_band = type(exc).__name__ == "EventStreamError"
    status = AWS_ERROR_STATUS.get(name) or (None if in_band else meta.get("HTTPStatusCode"))
    should = True if name in AWS_RETRYABLE else False if name in AWS_NOT_RETRYABLE else None
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    headers = meta.get("HTTPHeaders") or {}
    where = "error in stream" if in_band else f"returned HTTP {status}"
    return ProviderError(
        redact(f"{provider} {where} ({code}): {err.get('Message') or exc}"),
        status_code=status,
        error_type=code,
        in_band=in_band,
        retry_after=parse_retry_after(headers),
        should_retry=should,
        provider=provider,
        body=scrub_value(body),
    )


def _aws_frame(exc: BaseException, provider: str | None) -> StreamError:
    return ProtocolError(
        f"{provider}: corrupt event-stream frame: {type(exc).__name__}: {exc}", provider=provider
    )


#: google-genai (``google.genai.errors``) and the ``ollama`` client: their modules, for the rows below.
GOOGLE_MODULES = frozenset({"google"})
OLLAMA_MODULES = frozenset({"ollama"})


def _google_retry_delay(details: Any) -> float | None:
    """The ``google.rpc.RetryInfo`` ``retryDelay`` ("37s") of a Google API error body, in seconds."""
    err = details.get("error", details) if isinstance(details, Mapping) else None
    for d in (err.get("details") if isinstance(err, Mapping) else None) or ():
        delay = d.get("retryDelay") if isinstance(d, Mapping) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
    return None


def _genai_error(exc: BaseException, provider: str | None) -> StreamError:
    # APIError / ClientError / ServerError: ``code`` is the HTTP status, or the code of an
    # ``{"error": ...}`` event inside a 200 stream (the response then says 200).
    code = getattr(exc, "code", None)
    response = getattr(exc, "response", None)
    http = getattr(response, "status_code", None) or getattr(response, "status", None)
    in_band = http == 200
    headers = getattr(response, "headers", None)
    details = getattr(exc, "details", None)
    status = code if isinstance(code, int) else None
    etype = getattr(exc, "status", None)
    where = "error in stream" if in_band else f"returned HTTP {status}"
    return ProviderError(
        redact(f"{provider} {where} ({etype}): {getattr(exc, 'message', None) or exc}"),
        status_code=status,
        error_type=str(etype) if etype else None,
        in_band=in_band,
        retry_after=_google_retry_delay(details) or parse_retry_after(headers),
        should_retry=should_retry(headers),
        provider=provider,
        body=scrub_value(details),
    )


def _genai_bad_response(exc: BaseException, provider: str | None) -> StreamError:
    return ProtocolError(f"{provider}: response did not parse: {redact(str(exc))[:200]}", provider=provider)


def _ollama_error(exc: BaseException, provider: str | None) -> StreamError:
    # ResponseError: status_code is the HTTP status, or -1 for an {"error": ...} line in the stream.
    status = getattr(exc, "status_code", -1)
    message = getattr(exc, "error", None) or str(exc)
    if not isinstance(status, int) or status < 0:
        return ProviderError(
            redact(f"{provider} error in stream: {message}"),
            error_type="ollama_error",
            in_band=True,
            provider=provider,
            body=scrub_value({"error": message}),
        )
    return http_status_error(
        status,
        None,
        message=str(message),
        error_type=None,
        body=scrub_value({"error": message}),
        provider=provider,
    )


def _other(exc: BaseException, provider: str | None) -> StreamError:
    return StreamError(redact(f"{provider}: {type(exc).__name__}: {exc}"), provider=provider)


# -- the table -----------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One row of :data:`ERROR_MAP`: which exceptions it matches and the error it makes.

    Every given condition must hold: the exception type's top-level module is one of
    ``modules``; its name is one of ``names`` (or contains ``name_contains``); it is an
    instance of one of ``types``; with ``has_status`` it carries a ``status_code``.
    ``error`` is the class ``build`` returns (documentation, and checked by the tests).
    """

    name: str
    error: type[StreamError]
    build: Callable[[BaseException, str | None], StreamError]
    modules: frozenset[str] | None = None
    names: frozenset[str] | None = None
    name_contains: str | None = None
    types: tuple[type[BaseException], ...] = ()
    has_status: bool = False

    def matches(self, exc: BaseException) -> bool:
        """Whether ``exc`` is one this row translates."""
        cls = type(exc)
        if self.modules is not None and cls.__module__.split(".", 1)[0] not in self.modules:
            return False
        if self.names is not None and cls.__name__ not in self.names:
            return False
        if self.name_contains is not None and self.name_contains not in cls.__name__:
            return False
        if self.types and not isinstance(exc, self.types):
            return False
        return not self.has_status or getattr(exc, "status_code", None) is not None


#: Exception -> typed error, first match wins (so the specific rows come before the general).
ERROR_MAP: tuple[Rule, ...] = (
    # The SDKs' status errors (APIStatusError and subclasses), in-band ones included (status 200).
    Rule("sdk_status", ProviderError, _sdk_status, modules=SDK_MODULES, has_status=True),
    Rule(
        "sdk_timeout", StreamTimeout, _sdk_timeout, modules=SDK_MODULES, names=frozenset({"APITimeoutError"})
    ),
    Rule(
        "sdk_connection",
        TransportError,
        _sdk_connection,
        modules=SDK_MODULES,
        names=frozenset({"APIConnectionError"}),
    ),
    Rule("sdk_in_band", ProviderError, _sdk_in_band, modules=SDK_MODULES, names=frozenset({"APIError"})),
    Rule(
        "sdk_invalid_response",
        ProtocolError,
        _sdk_invalid,
        modules=SDK_MODULES,
        names=frozenset({"APIResponseValidationError"}),
    ),
    Rule(
        "transport_timeout",
        StreamTimeout,
        _transport_timeout,
        modules=TRANSPORT_MODULES,
        name_contains="Timeout",
    ),
    Rule("transport", TransportError, _connection, modules=TRANSPORT_MODULES),
    # botocore (boto3, aiobotocore): modeled errors by their response, I/O failures by name.
    Rule(
        "aws_client_error",
        ProviderError,
        _aws_error,
        modules=AWS_MODULES,
        names=frozenset({"ClientError", "EventStreamError"}),
    ),
    Rule("aws_modeled_error", ProviderError, _aws_error, modules=AWS_MODULES, name_contains="Exception"),
    Rule("aws_frame", ProtocolError, _aws_frame, modules=AWS_MODULES, names=AWS_FRAME_ERRORS),
    Rule("aws_timeout", StreamTimeout, _transport_timeout, modules=AWS_IO_MODULES, name_contains="Timeout"),
    Rule("aws_transport", TransportError, _connection, modules=AWS_IO_MODULES, names=AWS_TRANSPORT_NAMES),
    # google-genai: the API's errors by their code; a response that is not JSON.
    Rule(
        "genai_error",
        ProviderError,
        _genai_error,
        modules=GOOGLE_MODULES,
        names=frozenset({"APIError", "ClientError", "ServerError"}),
    ),
    Rule(
        "genai_bad_response",
        ProtocolError,
        _genai_bad_response,
        modules=GOOGLE_MODULES,
        names=frozenset({"UnknownApiResponseError"}),
    ),
    # the ollama client: HTTP statuses and in-band error lines are both ResponseError.
    Rule(
        "ollama_error",
        ProviderError,
        _ollama_error,
        modules=OLLAMA_MODULES,
        names=frozenset({"ResponseError"}),
    ),
    Rule("json", ProtocolError, _bad_json, types=(json.JSONDecodeError,)),
    Rule("utf8", ProtocolError, _bad_utf8, types=(UnicodeDecodeError,)),
    Rule("timeout", StreamTimeout, _timeout, types=(TimeoutError,)),  # before OSError: it is one
    Rule("connection", TransportError, _connection, types=(ConnectionError, OSError)),
)

#: What an exception no row matches becomes.
FALLBACK = Rule("other", StreamError, _other)


def rule_for(exc: BaseException) -> Rule:
    """The row of :data:`ERROR_MAP` that translates ``exc`` (:data:`FALLBACK` if none does)."""
    for rule in ERROR_MAP:
        if rule.matches(exc):
            return rule
    return FALLBACK


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
    result = rule_for(exc).build(exc, provider)
    scrub_exception(exc, keys)
    scrub_exception(result, keys)
    if isinstance(result, ProviderError) and result.body is not None:
        result.body = scrub_value(result.body, keys)
    return result
