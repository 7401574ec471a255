"""A small valid instance of a JSON schema: what the offline provider answers a typed request with.

Covers what pydantic's ``model_json_schema()`` emits: ``$ref``/``$defs``, ``anyOf``/``oneOf``/
``allOf``, ``enum``, ``const``, ``type`` (also a list), ``properties`` (every property is filled, so
the answer exercises the whole shape), ``items``/``prefixItems``, ``minItems``, string ``minLength``,
number bounds and ``default``. Deterministic: the same schema and word give the same instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["example_for_schema"]


def example_for_schema(schema: Mapping[str, Any], word: str = "Paris") -> Any:
    """A value valid for ``schema``; strings are ``word`` (padded to ``minLength``)."""
    return _example(schema, schema, word, 0)


def _resolve(root: Mapping[str, Any], ref: str) -> Mapping[str, Any]:
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        if part:
            node = (
                node.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(node, Mapping) else {}
            )
    return node if isinstance(node, Mapping) else {}


def _example(schema: Mapping[str, Any], root: Mapping[str, Any], word: str, depth: int) -> Any:
    if depth > 12:
        return None
    if "$ref" in schema:
        return _example(_resolve(root, str(schema["$ref"])), root, word, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key) or () if isinstance(o, Mapping)]
        if options:
            chosen = next((o for o in options if o.get("type") != "null"), options[0])
            return _example(chosen, root, word, depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            if isinstance(part, Mapping):
                merged.update(_resolve(root, str(part["$ref"])) if "$ref" in part else part)
        return _example(merged, root, word, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else ("array" if "items" in schema else "string")
    if kind == "object":
        props = schema.get("properties") or {}
        out = {
            name: _example(sub, root, word, depth + 1)
            for name, sub in props.items()
            if isinstance(sub, Mapping)
        }
        extra = schema.get("additionalProperties")
        if not out and isinstance(extra, Mapping):
            out = {"key": _example(extra, root, word, depth + 1)}
        return out
    if kind == "array":
        prefix = [p for p in schema.get("prefixItems") or () if isinstance(p, Mapping)]
        if prefix:
            return [_example(p, root, word, depth + 1) for p in prefix]
        items = schema.get("items")
        count = max(int(schema.get("minItems") or 0), 2)
        if schema.get("maxItems") is not None:
            count = min(count, int(schema["maxItems"]))
        return (
            [_example(items, root, word, depth + 1) for _ in range(count)]
            if isinstance(items, Mapping)
            else []
        )
    if kind == "integer" or kind == "number":
        if "default" in schema:
            return schema["default"]
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        value = 1 if low is None else int(low) + 1
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if high is not None and value >= high:
            value = int(high) - 1 if "exclusiveMaximum" in schema else int(high)
        return value if kind == "integer" else float(value) + 0.5 if high is None else value
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = word
    min_len = int(schema.get("minLength") or 0)
    if len(text) < min_len:
        text = text + "x" * (min_len - len(text))
    max_len = schema.get("maxLength")
    if max_len is not None:
        text = text[: int(max_len)]
    return text
