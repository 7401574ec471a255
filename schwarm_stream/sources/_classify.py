"""Moved to :mod:`schwarm_stream._classify` (the table next to the error tree); kept as a re-export."""

from __future__ import annotations

from .._classify import (
    ERROR_MAP,
    ERROR_TYPE_STATUS,
    NOT_RETRYABLE_TYPES,
    classify,
    http_status_error,
    in_band_error,
    parse_retry_after,
    redact,
    redact_value,
)
from .._classify import should_retry as _should_retry

__all__ = [
    "ERROR_MAP",
    "ERROR_TYPE_STATUS",
    "NOT_RETRYABLE_TYPES",
    "_should_retry",
    "classify",
    "http_status_error",
    "in_band_error",
    "parse_retry_after",
    "redact",
    "redact_value",
]
