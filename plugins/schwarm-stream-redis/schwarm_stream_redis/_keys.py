"""Keys, entry ids and cursors: everything that comes from outside is validated here.

A log lives at ``{prefix}:{tenant}:stream:{<stream_id>}`` — the stream id in
literal braces, a Redis Cluster hash tag: every key of one stream hashes to the
same slot, so multi-key pipelines of one stream work on a cluster. The stream id is a
uuid4 in 32 lowercase hex digits (128 random bits, so ids cannot be guessed);
the tenant is a short name of ``[A-Za-z0-9_.-]``. Neither is ever interpolated
into a key before it matched its pattern, so a client cannot reach another
key (``*``, ``:``, spaces, control characters are all rejected).

Entry ids are derived from the event's ``seq``: entry ``seq`` has the Redis id
``{seq}-1`` (the stream start entry is seq 0, id ``0-1``; ``0-0`` is not a
valid id). Reading "after seq N" is then ``XREAD`` from the id ``{N}-1``,
without any lookup, and it is correct even when entry N has not reached Redis
yet: XREAD only ever returns ids greater than the cursor.
"""

from __future__ import annotations

import re

from ._errors import InvalidStreamRef

__all__ = [
    "MAX_SEQ",
    "entry_id",
    "parse_cursor",
    "seq_of",
    "stream_key",
    "validate_stream_id",
    "validate_tenant",
]

_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_STREAM_ID = re.compile(r"[0-9a-f]{32}")
_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_CURSOR = re.compile(r"[0-9]{1,16}")

#: The largest sequence number accepted in a cursor (2**53: exact in JSON numbers and JavaScript).
MAX_SEQ = 2**53


def validate_tenant(tenant: object) -> str:
    """Return ``tenant`` if it is 1-64 characters of ``[A-Za-z0-9_.-]`` starting alphanumeric."""
    if not isinstance(tenant, str) or _TENANT.fullmatch(tenant) is None:
        raise InvalidStreamRef(
            f"invalid tenant {_show(tenant)}: expected 1-64 characters of A-Z a-z 0-9 _ . - "
            "starting with a letter or digit"
        )
    return tenant


def validate_stream_id(stream_id: object) -> str:
    """Return ``stream_id`` if it is a uuid4 in 32 lowercase hex digits (``uuid.uuid4().hex``)."""
    if not isinstance(stream_id, str) or _STREAM_ID.fullmatch(stream_id) is None:
        raise InvalidStreamRef(
            f"invalid stream id {_show(stream_id)}: expected 32 lowercase hex digits (uuid.uuid4().hex)"
        )
    return stream_id


def validate_prefix(prefix: str) -> str:
    """Return the key prefix if it is 1-32 characters of ``[A-Za-z0-9_.-]``."""
    if _PREFIX.fullmatch(prefix) is None:
        raise InvalidStreamRef(
            f"invalid key prefix {_show(prefix)}: expected 1-32 characters of A-Z a-z 0-9 _ . -"
        )
    return prefix


def stream_key(tenant: str, stream_id: str, *, prefix: str = "schwarm") -> str:
    """The Redis key of one stream's log; every part is validated first.

    The stream id is wrapped in ``{…}``, a hash tag: on Redis Cluster all keys of a stream share a slot.
    """
    return f"{validate_prefix(prefix)}:{validate_tenant(tenant)}:stream:{{{validate_stream_id(stream_id)}}}"


def parse_cursor(value: object) -> int:
    """A resume cursor (``after``) from an int or a ``Last-Event-ID`` header value.

    Accepts a non-negative integer up to :data:`MAX_SEQ`, or its decimal string
    (``None`` and ``""`` mean "from the start", 0). Anything else — signs,
    spaces, hex, floats, overlong strings — is an :class:`InvalidStreamRef`.
    """
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise InvalidStreamRef(f"invalid cursor {value!r}: expected a sequence number")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and _CURSOR.fullmatch(value) is not None:
        n = int(value)
    else:
        raise InvalidStreamRef(f"invalid cursor {_show(value)}: expected a decimal sequence number")
    if not 0 <= n <= MAX_SEQ:
        raise InvalidStreamRef(f"invalid cursor {n}: expected 0 <= cursor <= {MAX_SEQ}")
    return n


def entry_id(seq: int) -> str:
    """The Redis entry id of sequence number ``seq`` (also the XREAD cursor for "after ``seq``")."""
    return f"{seq}-1"


def seq_of(entry_id: str | bytes) -> int:
    """The sequence number encoded in an entry id written by this package."""
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode("ascii")
    return int(entry_id.partition("-")[0])


def _show(value: object) -> str:
    """A short, safe rendering of untrusted input for an error message (no raw control characters)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
