"""Secret scrubbing for everything the library shows: error messages, chained exceptions, logs, spans.

Two layers:

- the **exact keys** a source was configured with (:func:`remember`: a native source's ``api_key``,
  the key an SDK client sent in ``Authorization`` / ``x-api-key``), replaced wherever they appear;
- the **common formats**: OpenAI ``sk-…`` / ``sk-proj-…``, Anthropic ``sk-ant-…``, Google ``AIza…``,
  AWS ``AKIA…`` / ``ASIA…``, GitHub ``ghp_`` / ``gho_`` / ``ghu_`` / ``ghs_`` / ``ghr_`` /
  ``github_pat_…``, Slack ``xox?-…``, JWTs (``eyJ….eyJ….…``), and ``Bearer`` / ``Basic`` credentials (base64 included).

Every match becomes ``[redacted]``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["REDACTED", "keys_from_headers", "remember", "scrub", "scrub_exception", "scrub_value"]

REDACTED = "[redacted]"
#: Keys shorter than this are not remembered (they would mask ordinary words).
MIN_KEY_LENGTH = 8

_FORMATS = re.compile(
    r"(?:"
    r"sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{6,}"
    r"|AIza[0-9A-Za-z_\-]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{16,}"
    r"|github_pat_[A-Za-z0-9_]{16,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"
    r"|(?:Bearer|Basic)\s+[A-Za-z0-9._~+/\-]{6,}=*"
    r")"
)

_lock = threading.Lock()
_keys: set[str] = set()
_exact: re.Pattern[str] | None = None


def remember(key: Any) -> None:
    """Scrub ``key`` exactly, from now on, wherever it appears (ignored if not a long enough str)."""
    global _exact
    if not isinstance(key, str):
        return
    key = key.strip()
    if key.lower().startswith(("bearer ", "basic ")):
        key = key.split(None, 1)[1].strip()
    if len(key) < MIN_KEY_LENGTH or key in _keys:
        return
    with _lock:
        _keys.add(key)
        _exact = re.compile("|".join(re.escape(k) for k in sorted(_keys, key=len, reverse=True)))


def keys_from_headers(headers: Any) -> list[str]:
    """The credentials in request ``headers`` (``Authorization``, ``x-api-key``, ``api-key``, ...)."""
    found: list[str] = []
    if headers is None:
        return found
    for name in ("authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization"):
        try:
            value = headers.get(name)
        except Exception:
            value = None
        if isinstance(value, bytes):
            value = value.decode("latin-1", "replace")
        if isinstance(value, str) and value:
            found.append(value.split(None, 1)[1] if " " in value.strip() else value.strip())
    return found


def scrub(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with remembered keys, ``extra`` keys and the common secret formats replaced."""
    if not isinstance(text, str) or not text:
        return text
    for key in extra:
        if isinstance(key, str) and len(key) >= MIN_KEY_LENGTH:
            text = text.replace(key, REDACTED)
    exact = _exact
    if exact is not None:
        text = exact.sub(REDACTED, text)
    return _FORMATS.sub(REDACTED, text)


def scrub_value(value: Any, extra: Iterable[str] = (), _depth: int = 0) -> Any:
    """``value`` (str, mapping, list or tuple, nested) with every string scrubbed; others unchanged."""
    if isinstance(value, str):
        return scrub(value, extra)
    if _depth > 20:
        return value
    if isinstance(value, Mapping):
        return {k: scrub_value(v, extra, _depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_value(v, extra, _depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(scrub_value(v, extra, _depth + 1) for v in value)
    return value


def _scrub_one(exc: BaseException, extra: list[str]) -> None:
    try:
        exc.args = tuple(scrub_value(a, extra) for a in exc.args)
    except Exception:  # an exception type with a read-only args: leave it
        pass
    for attr in ("message", "body", "msg", "strerror", "reason"):
        value = getattr(exc, attr, None)
        if isinstance(value, (str, Mapping, list, tuple)):
            try:
                setattr(exc, attr, scrub_value(value, extra))
            except Exception:
                pass
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list):
        notes[:] = [scrub(n, extra) if isinstance(n, str) else n for n in notes]


def scrub_exception(exc: BaseException | None, extra: Iterable[str] = ()) -> None:
    """Scrub ``exc`` and every exception chained to it (``__cause__``, ``__context__``) in place,
    so that ``str()``, ``repr()`` and ``traceback.format_exception`` show no secret."""
    keys = [k for k in extra if isinstance(k, str)]
    seen: set[int] = set()
    todo: list[BaseException] = [exc] if exc is not None else []
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        _scrub_one(current, keys)
        for nxt in (current.__cause__, current.__context__):
            if nxt is not None:
                todo.append(nxt)
        for inner in getattr(current, "exceptions", None) or ():  # exception groups
            if isinstance(inner, BaseException):
                todo.append(inner)
