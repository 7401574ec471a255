"""Typed streams: structured output while it streams, validated at the end.

``schwarm_stream.open(source, output=Model)`` asks the provider for ``Model``'s JSON schema the
native way, yields :class:`~schwarm_stream.Partial` events with the best partial value while the
answer streams, and validates exactly at the end (``await stream.get_final_output()``); an answer
that does not validate is an :class:`~schwarm_stream.InvalidOutput` error. ``tools={"name": Model}``
does the same for tool-call arguments. See docs/structured.md.
"""

from __future__ import annotations

from ._output import OutputType, output_type, partial_type
from ._partial import PartialJSON, parse_partial
from ._request import Shape, repair_source, shape_request, shape_source
from ._schema import example_for_schema
from ._typed import TypedOutput, tool_types

__all__ = [
    "OutputType",
    "PartialJSON",
    "Shape",
    "TypedOutput",
    "example_for_schema",
    "output_type",
    "parse_partial",
    "partial_type",
    "repair_source",
    "shape_request",
    "shape_source",
    "tool_types",
]
