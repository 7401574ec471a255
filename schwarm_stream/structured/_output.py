"""What a typed stream expects: a pydantic model, any ``TypeAdapter``-able type, or a JSON schema.

:class:`OutputType` turns any of them into the three things a stream needs: the JSON schema to ask the
provider for, a lenient validator for partial values (every field optional, nested models too, so a
half-written object is still an object), and the exact validator for the end.
"""

from __future__ import annotations

import copy
import json
import re
import types
import typing
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

__all__ = ["OutputType", "error_list", "output_type", "partial_type"]

_NAME_OK = re.compile(r"[^a-zA-Z0-9_-]")


class OutputType:
    """A typed stream's expected shape.

    ``tp`` is a pydantic model, a type pydantic can validate (``list[Item]``, a ``TypedDict``, a
    dataclass, ...) or a JSON schema (a ``dict``). ``name`` is the schema's name in the request
    (providers require one; default: the type's name, or ``"output"``).
    """

    def __init__(self, tp: Any, *, name: str | None = None, description: str | None = None) -> None:
        self.type = tp
        self.is_schema = isinstance(tp, Mapping)
        if self.is_schema:
            self.schema: dict[str, Any] = dict(tp)
            self._adapter: TypeAdapter[Any] | None = None
            default = str(self.schema.get("title") or "output")
        else:
            self._adapter = TypeAdapter(tp)
            self.schema = self._adapter.json_schema()
            default = getattr(tp, "__name__", None) or "output"
        self.name = _NAME_OK.sub("_", name or default)[:64] or "output"
        self.description = description or (self.schema.get("description") if self.is_schema else None)
        self._partial: TypeAdapter[Any] | None = None

    def __repr__(self) -> str:
        return f"<OutputType {self.name}>"

    def validate_json(self, text: str) -> Any:
        """The final value: ``text`` validated exactly (raises ``ValueError``/``ValidationError``)."""
        if self._adapter is not None:
            return self._adapter.validate_json(text)
        value = json.loads(text)
        _check_schema(self.schema, value)
        return value

    def validate_partial(self, data: Any) -> Any:
        """The best typed value of partial ``data`` (every field optional); raises when it does not fit."""
        if self._adapter is None:
            return data
        if self._partial is None:
            self._partial = TypeAdapter(partial_type(self.type))
        try:
            return self._partial.validate_python(data)
        except ValidationError as exc:
            # Leave out what does not fit (yet) and keep the rest: once, on a copy.
            pruned = copy.deepcopy(data)
            for err in exc.errors(include_url=False, include_context=False, include_input=False):
                _drop(pruned, err["loc"])
            return self._partial.validate_python(pruned)


def output_type(tp: Any) -> OutputType:
    """``tp`` as an :class:`OutputType` (one already is one)."""
    return tp if isinstance(tp, OutputType) else OutputType(tp)


def _drop(data: Any, loc: tuple[int | str, ...]) -> None:
    """Remove the member at ``loc`` (a pydantic error location; union branch names are skipped)."""
    node = data
    for i, step in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and step in node:
            if last:
                del node[step]
                return
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            if last:
                del node[step:]  # later items would shift into the failing one's place
                return
            node = node[step]
        elif not last:
            continue  # e.g. a union member's name in the location
        else:
            return


def _check_schema(schema: Mapping[str, Any], value: Any) -> None:
    """Validate against a JSON schema with ``jsonschema`` when it is installed; else only JSON is checked."""
    try:
        import jsonschema
    except ImportError:
        return
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        raise ValueError(f"{exc.message} (at {'/'.join(map(str, exc.absolute_path)) or 'the root'})") from exc


# -- partial types: every field optional, recursively ---------------------------------------------


@lru_cache(maxsize=256)
def _partial_model(model: type[BaseModel]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        ann = partial_type(info.annotation)
        fields[name] = (ann | None, Field(None, alias=info.alias))
    partial: type[BaseModel] = create_model(
        f"Partial{model.__name__}",
        __config__=ConfigDict(extra="ignore", populate_by_name=True),
        **fields,
    )
    return partial


def partial_type(tp: Any) -> Any:
    """``tp`` with every model's fields optional (recursively through lists, dicts, unions)."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return _partial_model(tp)
    origin = get_origin(tp)
    if origin is None:
        return tp
    args = get_args(tp)
    if origin is typing.Annotated:
        return partial_type(args[0])  # constraints (min_length, ...) do not hold for half a value
    if origin is Union or origin is types.UnionType:
        parts = tuple(partial_type(a) for a in args)
        return Union[parts]  # noqa: UP007 - built from a tuple
    if origin is typing.Literal:
        return tp
    if origin in (list, set, frozenset, tuple) or origin in (typing.Sequence, typing.MutableSequence):
        if origin is tuple:
            return tuple[tuple(partial_type(a) if a is not Ellipsis else a for a in args)]  # type: ignore[misc]
        return list[partial_type(args[0])] if args else list  # type: ignore[misc]
    if origin in (dict, typing.Mapping, typing.MutableMapping) or str(origin).endswith("Mapping'>"):
        return dict[args[0], partial_type(args[1])] if len(args) == 2 else dict  # type: ignore[misc, valid-type]
    return tp


def error_list(exc: BaseException) -> list[dict[str, Any]]:
    """pydantic's errors of ``exc`` (JSON-safe), or one entry with the message for other errors."""
    if isinstance(exc, ValidationError):
        return [
            {"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
    return [{"type": type(exc).__name__, "loc": [], "msg": str(exc)}]
