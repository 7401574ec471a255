"""Per-stream state for plugins (the idea of pytest's ``Stash``).

One registered plugin instance serves many concurrent streams, so a plugin must
not keep per-stream state on ``self``. It creates a module-level ``StashKey``
once and keeps its state in ``stream.stash[key]``::

    COUNT = StashKey[int]()

    @hookimpl
    def stream_chunk(stream, chunk):
        stream.stash[COUNT] = stream.stash.get(COUNT, 0) + 1
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, cast, overload

__all__ = ["Stash", "StashKey"]

T = TypeVar("T")
D = TypeVar("D")


class StashKey(Generic[T]):
    """A typed key into a :class:`Stash`; compare by identity."""

    __slots__ = ()


class Stash:
    """A type-safe heterogeneous mapping from :class:`StashKey` to values."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: dict[StashKey[Any], object] = {}

    def __setitem__(self, key: StashKey[T], value: T) -> None:
        self._data[key] = value

    def __getitem__(self, key: StashKey[T]) -> T:
        try:
            return cast(T, self._data[key])
        except KeyError:
            raise KeyError(f"stash has no value for {key!r}; use stash.get(key, default)") from None

    @overload
    def get(self, key: StashKey[T]) -> T | None: ...
    @overload
    def get(self, key: StashKey[T], default: D) -> T | D: ...
    def get(self, key: StashKey[T], default: object = None) -> object:
        return self._data.get(key, default)

    def setdefault(self, key: StashKey[T], default: T) -> T:
        return cast(T, self._data.setdefault(key, default))

    def __delitem__(self, key: StashKey[T]) -> None:
        del self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)
