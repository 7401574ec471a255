"""Asking the provider for the shape, the native way; and asking again with the validation errors.

Applied to a protocol source's request (``source.kwargs``) before it is sent, on a copy
(``with_body``): the caller's source is never changed. A request the caller already shaped is left
as it is (``response_format``, ``text.format``, ``tool_choice`` / ``output_format``). Sources are
recognised by their protocol (``factory``) and the request dict, so this module names no source
class:

- OpenAI Chat Completions: ``response_format = {"type": "json_schema", "json_schema": {...}}``;
- OpenAI Responses: ``text.format = {"type": "json_schema", "name", "schema", ...}``;
- Anthropic Messages: a tool with the schema as ``input_schema``, forced with ``tool_choice``; the
  answer is that tool call's input (every model and SDK version supports it).

Typed tools (``tools={"name": Model}``) are added as function tools unless the request has a tool
of that name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._output import OutputType

if TYPE_CHECKING:
    from .._errors import InvalidOutput
    from ..sources import Source

__all__ = ["Shape", "repair_source", "shape_source"]

CHAT, RESPONSES, ANTHROPIC = "openai_chat", "openai_responses", "anthropic_messages"

REPAIR_PROMPT = (
    "Your previous answer did not match the required JSON schema. Errors: {errors}. "
    "Answer again with only the corrected JSON."
)


@dataclass(frozen=True, slots=True)
class Shape:
    """Where the answer arrives: ``"text"``, or ``"tool"`` (the forced tool named ``tool_name``)."""

    mode: str = "text"
    tool_name: str | None = None


def _protocol(source: Any) -> str | None:
    """The protocol a source speaks: the ``factory`` of its protocol class (native subclasses too)."""
    if not isinstance(getattr(source, "kwargs", None), dict):
        return None
    for cls in type(source).__mro__:
        factory = cls.__dict__.get("factory")
        if factory in (CHAT, RESPONSES, ANTHROPIC):
            return str(factory)
    return None


def _has_tool(tools: Any, name: str) -> bool:
    for t in tools or ():
        if isinstance(t, Mapping) and name in (t.get("name"), (t.get("function") or {}).get("name")):
            return True
    return False


def _tool_def(protocol: str, name: str, out: OutputType) -> dict[str, Any]:
    desc = {"description": out.description} if out.description else {}
    if protocol == CHAT:
        return {"type": "function", "function": {"name": name, **desc, "parameters": out.schema}}
    if protocol == RESPONSES:
        return {"type": "function", "name": name, **desc, "parameters": out.schema}
    return {"name": name, **desc, "input_schema": out.schema}


def shape_request(
    protocol: str, request: Mapping[str, Any], output: OutputType | None, tools: Mapping[str, OutputType]
) -> tuple[dict[str, Any], Shape]:
    """``request`` with the output shape and typed tools added (a new dict), and where the answer arrives."""
    req = dict(request)
    shape = Shape()
    added = [_tool_def(protocol, n, t) for n, t in tools.items() if not _has_tool(req.get("tools"), n)]
    if added:
        req["tools"] = [*(req.get("tools") or ()), *added]
    if output is None:
        return req, shape
    if protocol == CHAT:
        if "response_format" not in req:
            req["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": output.name, "schema": output.schema, "strict": False},
            }
    elif protocol == RESPONSES:
        text = dict(req.get("text") or {})
        if "format" not in text:
            text["format"] = {
                "type": "json_schema",
                "name": output.name,
                "schema": output.schema,
                "strict": False,
            }
            req["text"] = text
    else:
        choice = req.get("tool_choice")
        if isinstance(choice, Mapping) and choice.get("type") == "tool":
            return req, Shape("tool", str(choice.get("name")))  # the caller forced a tool: that is the answer
        if choice is not None or "output_format" in req or "output_config" in req:
            return req, shape  # the caller shaped it (native structured output answers in text)
        if not _has_tool(req.get("tools"), output.name):
            req["tools"] = [*(req.get("tools") or ()), _tool_def(protocol, output.name, output)]
        req["tool_choice"] = {"type": "tool", "name": output.name}
        shape = Shape("tool", output.name)
    return req, shape


def shape_source(
    source: Source, output: OutputType | None, tools: Mapping[str, OutputType]
) -> tuple[Source, Shape]:
    """``source`` asking for the shape (a copy), and where the answer arrives.

    A source that speaks no known protocol (an iterator, a scripted or custom source) is used as it
    is, its answer read from the text. With :func:`~schwarm_stream.with_fallbacks`, every source of
    the chain is shaped.
    """
    primary = getattr(source, "primary", None)
    fallbacks = getattr(source, "fallbacks", None)
    if primary is not None and isinstance(fallbacks, tuple):
        shaped, shape = shape_source(primary, output, tools)
        rest = tuple(shape_source(f, output, tools)[0] for f in fallbacks)
        clone: Source = type(source)(shaped, rest)  # type: ignore[call-arg]  # FallbackSource(primary, fallbacks)
        return clone, shape
    protocol = _protocol(source)
    if protocol is None:
        return source, Shape()
    request, shape = shape_request(protocol, source.kwargs, output, tools)  # type: ignore[attr-defined]
    if request == source.kwargs:  # type: ignore[attr-defined]
        return source, shape
    clone = source.clone()  # type: ignore[attr-defined]
    clone.kwargs = request
    return clone, shape


def repair_source(source: Source, error: InvalidOutput) -> Source | None:
    """``source`` asking again, with the invalid answer and its validation errors; ``None`` if unsupported."""
    protocol = _protocol(source)
    if protocol is None:
        return None
    req: dict[str, Any] = source.kwargs  # type: ignore[attr-defined]
    errors = json.dumps(error.errors, ensure_ascii=False)[:4000]
    prompt = REPAIR_PROMPT.format(errors=errors)
    if protocol == RESPONSES:
        given = req.get("input")
        items = [{"role": "user", "content": given}] if isinstance(given, str) else list(given or ())
        items += [{"role": "assistant", "content": error.raw_text}, {"role": "user", "content": prompt}]
        return source.with_body(input=items)  # type: ignore[attr-defined, no-any-return]
    messages = list(req.get("messages") or ())
    if protocol == ANTHROPIC and error.tool_call_id is not None:
        # the answer was a (forced) tool call: it must be answered by a tool result
        try:
            given_input = json.loads(error.raw_text)
        except ValueError:
            given_input = None
        if isinstance(given_input, dict):
            use = {
                "type": "tool_use",
                "id": error.tool_call_id,
                "name": error.tool_call,
                "input": given_input,
            }
            result = {
                "type": "tool_result",
                "tool_use_id": error.tool_call_id,
                "is_error": True,
                "content": prompt,
            }
            messages += [{"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}]
            return source.with_body(messages=messages)  # type: ignore[attr-defined, no-any-return]
    messages += [
        {"role": "assistant", "content": error.raw_text or "(no answer)"},
        {"role": "user", "content": prompt},
    ]
    return source.with_body(messages=messages)  # type: ignore[attr-defined, no-any-return]
