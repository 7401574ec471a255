"""A tiny deterministic "model" behind the provider server, for the demo, examples and tests.

``OfflineProvider`` is a responder for :class:`~schwarm_stream.testing.server.ProviderServer`. It
reads the request the SDK sent and answers in that provider's protocol, streamed or not:

- the last message is a tool result (OpenAI ``role: "tool"``, an Anthropic user message with
  ``tool_result`` blocks, a Responses ``function_call_output`` item): a text that quotes the result;
- the last message is a user message and tools are offered: a short text ("Let me check the
  weather.") plus a call to the first tool, its required arguments filled from the JSON schema (strings
  get a capitalized word from the user's text, such as a city, else ``"Paris"``);
- otherwise: an echo of the user's text.

Text is cut into 2-5 character pieces so streaming is visible; ``chunk_delay`` spaces the events out
so the demo looks live. Token counts are plausible (about 4 characters per token), not real.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._http import JSONReply, RecordedRequest, Reply, Sleep, SSEReply, error_body
from ._wire import _response, anthropic_events, chunk_text, openai_chat_events, responses_events

__all__ = ["OfflineProvider"]

_CREATED = 1_700_000_000
_VERBS = {"get", "fetch", "lookup", "look", "up", "find", "query", "read", "load", "search", "check"}


@dataclass
class _Answer:
    """What the model decided to say: text, optionally one tool call, and token counts."""

    text: str
    tool: tuple[str, str] | None  # (name, arguments as compact JSON)
    prompt_tokens: int
    turn: int

    def streamed_call(self, key: str) -> dict[str, Any]:
        """The tool call as the event builders take it, its JSON cut into small fragments."""
        assert self.tool is not None
        name, arguments = self.tool
        return {"name": name, key: arguments, "chunks": chunk_text(arguments)}

    @property
    def completion_tokens(self) -> int:
        return max(1, (len(self.text) + len(self.tool[1] if self.tool else "")) // 4)


def _text(content: Any) -> str:
    """Flatten message content (a string or a list of text parts) to plain text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(_text(p.get("text", p.get("content"))) for p in content if isinstance(p, Mapping))
    return json.dumps(content, separators=(",", ":"))


def _proper_noun(text: str) -> str | None:
    # The first capitalized word that does not start the text ("What's the weather in Paris?" -> Paris).
    words = re.findall(r"[^\W\d_][\w'-]*", text)
    return next((w for w in words[1:] if w[0].isupper() and w != "I"), None)


def _value(schema: Mapping[str, Any], word: str) -> Any:
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    return {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}.get(kind, word)


def _arguments(schema: Mapping[str, Any], user_text: str) -> str:
    props = schema.get("properties") or {}
    word = _proper_noun(user_text) or "Paris"
    args = {name: _value(props.get(name) or {}, word) for name in schema.get("required") or ()}
    return json.dumps(args, separators=(",", ":"), ensure_ascii=False)


def _intro(tool_name: str) -> str:
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", tool_name).replace("-", " ").replace("_", " ").lower().split()
    while words and words[0] in _VERBS:
        words.pop(0)
    return f"Let me check the {' '.join(words)}." if words else f"Let me call {tool_name}."


def _decide(
    user: str | None, result: str | None, tools: list[tuple[str, Mapping[str, Any]]], prompt: Any, turn: int
) -> _Answer:
    prompt_tokens = max(1, len(json.dumps(prompt, ensure_ascii=False)) // 4)
    if result is not None:
        quoted = result if len(result) <= 200 else result[:197] + "..."
        return _Answer(f"The tool returned: {quoted}", None, prompt_tokens, turn)
    if user is not None and tools:
        name, schema = tools[0]
        return _Answer(_intro(name), (name, _arguments(schema, user)), prompt_tokens, turn)
    return _Answer(
        f"You said: {user}" if user else "Hello from the offline provider.", None, prompt_tokens, turn
    )


def _typed(answer: _Answer, body: Mapping[str, Any], user: str | None) -> _Answer:
    """The answer in the shape the request asks for (issue 16): JSON valid for the schema, as text
    (Chat ``response_format``, Responses ``text.format``, Anthropic ``output_format``) or as the
    input of the tool an Anthropic ``tool_choice`` forces."""
    from ..structured import example_for_schema

    word = _proper_noun(user or "") or "Paris"
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") == "tool":
        forced = [
            t
            for t in body.get("tools") or ()
            if isinstance(t, Mapping) and t.get("name") == choice.get("name")
        ]
        if forced:
            args = json.dumps(
                example_for_schema(forced[0].get("input_schema") or {}, word), ensure_ascii=False
            )
            return _Answer("", (str(forced[0]["name"]), args), answer.prompt_tokens, answer.turn)
    fmt = body.get("response_format") or (body.get("text") or {}).get("format") or body.get("output_format")
    if answer.tool is None and isinstance(fmt, Mapping) and fmt.get("type") in ("json_schema", "json_object"):
        schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
        text = json.dumps(example_for_schema(schema, word), ensure_ascii=False)
        return _Answer(text, None, answer.prompt_tokens, answer.turn)
    return answer


class OfflineProvider:
    """A deterministic responder for all three provider protocols (see the module docstring).

    Usable directly as ``ProviderServer(responder=OfflineProvider())``. ``chunk_delay`` is the pause in
    seconds between streamed events (0 by default).
    """

    def __init__(self, *, chunk_delay: float = 0.0) -> None:
        self.chunk_delay = chunk_delay

    def __call__(self, request: RecordedRequest) -> Reply:
        """Answer one request."""
        body = request.json if isinstance(request.json, Mapping) else {}
        if request.route == "openai-chat":
            return self._chat(body)
        if request.route == "anthropic-messages":
            return self._anthropic(body)
        if request.route == "openai-responses":
            return self._responses(body)
        if request.route in ("bedrock-converse-stream", "bedrock-converse"):
            return self._bedrock(body, stream=request.route == "bedrock-converse-stream")
        if request.route in ("gemini-stream", "gemini-generate", "vertex-stream", "vertex-generate"):
            stream = request.route.endswith("-stream")
            return self._gemini(body, stream=stream, vertex=request.route.startswith("vertex-"))
        if request.route == "ollama-chat":
            return self._ollama(body)
        return JSONReply(404, error_body("the offline provider keeps no stored responses", "not_found_error"))

    def _stream(self, events: list[bytes]) -> SSEReply:
        if not self.chunk_delay:
            return SSEReply(events)
        parts: list[Any] = []
        for event in events:
            if parts:
                parts.append(Sleep(self.chunk_delay))
            parts.append(event)
        return SSEReply(parts)

    # -- OpenAI Chat Completions ----------------------------------------------------------------------

    def _chat(self, body: Mapping[str, Any]) -> Reply:
        messages = body.get("messages") or []
        last = messages[-1] if messages and isinstance(messages[-1], Mapping) else {}
        tools = [
            (t["function"]["name"], t["function"].get("parameters") or {})
            for t in body.get("tools") or ()
            if isinstance(t, Mapping) and isinstance(t.get("function"), Mapping) and "name" in t["function"]
        ]
        role = last.get("role")
        answer = _decide(
            _text(last.get("content")) if role == "user" else None,
            _text(last.get("content")) if role == "tool" else None,
            tools,
            messages,
            len(messages),
        )
        answer = _typed(answer, body, _text(last.get("content")) if role == "user" else None)
        model = str(body.get("model") or "offline")
        ident, call_id = f"chatcmpl-offline-{answer.turn}", f"call_offline_{answer.turn}"
        usage = {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        }
        finish = "tool_calls" if answer.tool else "stop"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            calls = [{"id": call_id, **answer.streamed_call("arguments")}] if answer.tool else []
            return self._stream(
                openai_chat_events(
                    chunk_text(answer.text),
                    tool_calls=calls,
                    finish_reason=finish,
                    usage=usage if include_usage else None,
                    model=model,
                    id=ident,
                )
            )
        message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
        if answer.tool:
            name, args = answer.tool
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            ]
        completion = {
            "id": ident,
            "object": "chat.completion",
            "created": _CREATED,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
        }
        return JSONReply(200, completion)

    # -- Anthropic Messages ---------------------------------------------------------------------------

    def _anthropic(self, body: Mapping[str, Any]) -> Reply:
        messages = body.get("messages") or []
        last = messages[-1] if messages and isinstance(messages[-1], Mapping) else {}
        content = last.get("content")
        user = result = None
        if last.get("role") == "user":
            blocks = content if isinstance(content, list) else []
            results = [b for b in blocks if isinstance(b, Mapping) and b.get("type") == "tool_result"]
            if results:
                result = " ".join(_text(b.get("content")) for b in results)
            else:
                user = _text(content)
        tools = [
            (t["name"], t.get("input_schema") or {})
            for t in body.get("tools") or ()
            if isinstance(t, Mapping) and "name" in t
        ]
        answer = _decide(user, result, tools, [body.get("system"), messages], len(messages))
        answer = _typed(answer, body, user)
        model = str(body.get("model") or "offline")
        ident, tool_id = f"msg_offline_{answer.turn}", f"toolu_offline_{answer.turn}"
        usage = {"input_tokens": answer.prompt_tokens, "output_tokens": answer.completion_tokens}
        if body.get("stream"):
            uses = [{"id": tool_id, **answer.streamed_call("input")}] if answer.tool else []
            return self._stream(
                anthropic_events(chunk_text(answer.text), tool_uses=uses, usage=usage, model=model, id=ident)
            )
        blocks_out: list[dict[str, Any]] = [{"type": "text", "text": answer.text}]
        if answer.tool:
            blocks_out.append(
                {
                    "type": "tool_use",
                    "id": tool_id,
                    "name": answer.tool[0],
                    "input": json.loads(answer.tool[1]),
                }
            )
        message = {
            "id": ident,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks_out,
            "stop_reason": "tool_use" if answer.tool else "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        return JSONReply(200, message)

    # -- OpenAI Responses -----------------------------------------------------------------------------

    def _responses(self, body: Mapping[str, Any]) -> Reply:
        items = body.get("input")
        user = result = None
        turn = 1
        if isinstance(items, str):
            user = items
        elif isinstance(items, list) and items:
            turn = len(items)
            last = items[-1] if isinstance(items[-1], Mapping) else {}
            if last.get("type") == "function_call_output":
                result = _text(last.get("output"))
            elif last.get("role") == "user":
                user = _text(last.get("content"))
        tools = [
            (t["name"], t.get("parameters") or {})
            for t in body.get("tools") or ()
            if isinstance(t, Mapping) and t.get("type") == "function" and "name" in t
        ]
        answer = _decide(user, result, tools, [body.get("instructions"), items], turn)
        answer = _typed(answer, body, user)
        model = str(body.get("model") or "offline")
        ident = f"resp_offline_{turn}"
        usage = {"input_tokens": answer.prompt_tokens, "output_tokens": answer.completion_tokens}
        calls = []
        if answer.tool:
            name, args = answer.tool
            calls = [
                {
                    "id": f"fc_offline_{turn}",
                    "call_id": f"call_offline_{turn}",
                    "name": name,
                    "arguments": args,
                }
            ]
        if body.get("stream"):
            streamed = [{**c, "chunks": chunk_text(c["arguments"])} for c in calls]
            return self._stream(
                responses_events(
                    chunk_text(answer.text), function_calls=streamed, usage=usage, model=model, id=ident
                )
            )
        part = {"type": "output_text", "text": answer.text, "annotations": [], "logprobs": []}
        output: list[dict[str, Any]] = [
            {
                "type": "message",
                "id": f"msg_{ident}",
                "status": "completed",
                "role": "assistant",
                "content": [part],
            }
        ]
        output += [{"type": "function_call", "status": "completed", **c} for c in calls]
        total = usage["input_tokens"] + usage["output_tokens"]
        full_usage = {
            **usage,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": total,
        }
        return JSONReply(200, _response(ident, model, "completed", output, full_usage))

    # -- AWS Bedrock Converse / ConverseStream --------------------------------------------------------

    def _bedrock(self, body: Mapping[str, Any], *, stream: bool) -> Reply:
        from ._bedrock_wire import EVENTSTREAM, converse_response, converse_stream_events

        messages = body.get("messages") or []
        last = messages[-1] if messages and isinstance(messages[-1], Mapping) else {}
        blocks = [b for b in last.get("content") or () if isinstance(b, Mapping)]
        results = [b["toolResult"] for b in blocks if isinstance(b.get("toolResult"), Mapping)]
        user = result = None
        if results:  # tool results come back as json or text blocks
            result = " ".join(_result_blocks(r.get("content") or ()) for r in results)
        elif last.get("role") == "user":
            user = _text(blocks)
        specs = [t.get("toolSpec") for t in (body.get("toolConfig") or {}).get("tools") or ()]
        tools = [
            (t["name"], (t.get("inputSchema") or {}).get("json") or {})
            for t in specs
            if isinstance(t, Mapping) and "name" in t
        ]
        answer = _decide(user, result, tools, [body.get("system"), messages], len(messages))
        usage = {"inputTokens": answer.prompt_tokens, "outputTokens": answer.completion_tokens}
        tool_id = f"tooluse_offline_{answer.turn}"
        if not stream:
            uses = [{"id": tool_id, "name": answer.tool[0], "input": answer.tool[1]}] if answer.tool else []
            return JSONReply(200, converse_response(answer.text, tool_uses=uses, usage=usage))
        uses = [{"id": tool_id, **answer.streamed_call("input")}] if answer.tool else []
        frames = converse_stream_events(chunk_text(answer.text), tool_uses=uses, usage=usage)
        reply = self._stream(frames)
        reply.content_type = EVENTSTREAM
        reply.headers = {"x-amzn-requestid": f"offline-{answer.turn}"}  # botocore's RequestId
        return reply

    # -- Google Gemini generateContent / streamGenerateContent ----------------------------------------

    def _gemini(self, body: Mapping[str, Any], *, stream: bool, vertex: bool = False) -> Reply:
        from ._gemini_wire import gemini_response, gemini_stream_events

        contents = [c for c in body.get("contents") or () if isinstance(c, Mapping)]
        last = contents[-1] if contents else {}
        parts = [p for p in last.get("parts") or () if isinstance(p, Mapping)]
        results = [p["functionResponse"] for p in parts if isinstance(p.get("functionResponse"), Mapping)]
        user = result = None
        if results:
            result = " ".join(_function_response(r.get("response")) for r in results)
        elif last.get("role", "user") == "user":
            user = _text(parts)
        declared = [
            d
            for t in body.get("tools") or ()
            if isinstance(t, Mapping)
            for d in t.get("functionDeclarations") or ()
            if isinstance(d, Mapping) and "name" in d
        ]
        tools = [(d["name"], _lower_types(_declared_schema(d))) for d in declared]
        answer = _decide(user, result, tools, [body.get("systemInstruction"), contents], len(contents))
        calls = [{"name": answer.tool[0], "args": json.loads(answer.tool[1])}] if answer.tool else []
        model, ident = "gemini-offline", f"resp-offline-{answer.turn}"
        if not stream:
            return JSONReply(
                200,
                gemini_response(
                    answer.text,
                    function_calls=calls,
                    prompt_tokens=answer.prompt_tokens,
                    output_tokens=answer.completion_tokens,
                    model=model,
                    response_id=ident,
                    vertex=vertex,
                ),
            )
        events = gemini_stream_events(
            chunk_text(answer.text),
            function_calls=calls,
            prompt_tokens=answer.prompt_tokens,
            output_tokens=answer.completion_tokens,
            model=model,
            response_id=ident,
            vertex=vertex,
        )
        return self._stream(events)

    # -- Ollama /api/chat -------------------------------------------------------------------------------

    def _ollama(self, body: Mapping[str, Any]) -> Reply:
        from ._ollama_wire import NDJSON, ollama_chat_lines, ollama_chat_response

        messages = body.get("messages") or []
        last = messages[-1] if messages and isinstance(messages[-1], Mapping) else {}
        role = last.get("role")
        tools = [
            (t["function"]["name"], t["function"].get("parameters") or {})
            for t in body.get("tools") or ()
            if isinstance(t, Mapping) and isinstance(t.get("function"), Mapping) and "name" in t["function"]
        ]
        answer = _decide(
            _text(last.get("content")) if role == "user" else None,
            _text(last.get("content")) if role == "tool" else None,
            tools,
            messages,
            len(messages),
        )
        model = str(body.get("model") or "offline")
        calls = [{"name": answer.tool[0], "arguments": json.loads(answer.tool[1])}] if answer.tool else []
        if body.get("stream") is False:
            return JSONReply(
                200,
                ollama_chat_response(
                    answer.text,
                    tool_calls=calls,
                    prompt_tokens=answer.prompt_tokens,
                    output_tokens=answer.completion_tokens,
                    model=model,
                ),
            )
        for n, call in enumerate(calls):
            call["id"] = f"call_offline_{answer.turn}_{n}"
        lines = ollama_chat_lines(
            chunk_text(answer.text),
            tool_calls=calls,
            prompt_tokens=answer.prompt_tokens,
            output_tokens=answer.completion_tokens,
            model=model,
        )
        reply = self._stream(lines)
        reply.content_type = NDJSON
        return reply


def _result_blocks(blocks: Any) -> str:
    """A Bedrock ``toolResult``'s content as text: ``text`` blocks as they are, ``json`` blocks as JSON."""
    return "".join(
        _text(b["text"]) if "text" in b else json.dumps(b.get("json"), ensure_ascii=False)
        for b in blocks
        if isinstance(b, Mapping)
    )


def _function_response(response: Any) -> str:
    """A Gemini ``functionResponse.response`` as text; ``{"output": x}`` (the documented key) is ``x``."""
    if isinstance(response, Mapping) and set(response) == {"output"}:
        output = response["output"]
        return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
    return json.dumps(response, ensure_ascii=False)


def _declared_schema(declaration: Mapping[str, Any]) -> Any:
    # google-genai passes a dict's snake_case keys through; the API reads either spelling (proto JSON).
    for key in ("parametersJsonSchema", "parameters_json_schema", "parameters"):
        if declaration.get(key):
            return declaration[key]
    return {}


def _lower_types(schema: Any) -> Any:
    """A JSON schema with Gemini's upper-case type names (``"STRING"``) in lower case."""
    if isinstance(schema, Mapping):
        return {
            k: (v.lower() if k == "type" and isinstance(v, str) else _lower_types(v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_lower_types(v) for v in schema]
    return schema
