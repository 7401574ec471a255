"""Google Gemini ``generate_content_stream`` (async) as a source, through the official
``google-genai`` SDK (the Gemini API or Vertex AI, whichever the client is made for).

The SDK posts ``:streamGenerateContent?alt=sse`` and yields one ``GenerateContentResponse`` per SSE
event; each carries the *new* parts of each candidate (not the text so far). Normalization:

- the first response → :class:`~schwarm_stream.ResponseInfo` (``response_id``, ``model_version``);
- a text part → a text chunk; a text part with ``thought: true`` → a reasoning chunk. Consecutive
  parts of one kind are one part of the message (one index); a change of kind opens the next;
- ``thought_signature`` (on any part: a thought, a text, a function call, or an empty text part)
  → a ``signature`` :class:`~schwarm_stream.Extra` at the index of the part it came with, base64
  (as on the wire); :func:`to_gemini` puts it back on that part;
- ``function_call`` parts arrive **whole** (``name`` and ``args`` as an object; no argument
  deltas): each is one :class:`~schwarm_stream.ToolCallDelta` at an index of its own, with the
  arguments as compact JSON and the call's ``id`` where the API sends one (the Gemini API often
  sends none: the message then names it ``call_<index>``, and Gemini matches responses by name);
  with Vertex AI's ``stream_function_call_arguments`` a call comes in pieces instead: its name
  with ``will_continue``, then ``partial_args`` (a JSON path and a value, strings in pieces), until
  a part without ``will_continue`` (or the candidate's finish) ends it; a short call may come in
  one part, its name and all its ``partial_args`` without ``will_continue``, and an empty
  ``function_call`` part with no such call open ends nothing (it is no call). Each piece is a
  ``ToolCallDelta`` at the call's index whose text extends the arguments' JSON, so the fragments
  join to exactly their ``json.dumps``; a path back into arguments already written is a
  :class:`~schwarm_stream.ProtocolError`;
- other parts (``executable_code``, ``code_execution_result``, ``inline_data``, ``file_data``, ...)
  → a ``block`` extra carrying the part; ``grounding_metadata``, ``citation_metadata``,
  ``url_context_metadata`` → ``grounding`` / ``citation`` / ``url_context`` extras;
- ``usage_metadata`` (the running totals, on many responses) → :class:`~schwarm_stream.Usage`:
  ``prompt_token_count`` in; ``candidates_token_count + thoughts_token_count`` out (thoughts are
  billed as output; ``output_tokens_details.reasoning_tokens`` says how many); the cached part of
  the prompt as ``input_tokens_details.cached_tokens`` (inside the input, as OpenAI counts it);
  Gemini's own counters kept under their names;
- ``finish_reason`` on a candidate → :class:`~schwarm_stream.Finish` (``STOP``, ``MAX_TOKENS``,
  ``SAFETY``, ``RECITATION``, ``MALFORMED_FUNCTION_CALL``, ...), with the candidate's
  ``safety_ratings`` as a ``safety`` extra when it stopped for a safety reason;
- a blocked prompt (``prompt_feedback.block_reason``, no candidates) → a **refusal** chunk
  (``block_reason_message``, or the reason), :class:`~schwarm_stream.Finish` with the block reason
  and a ``safety`` extra with the feedback. It is a complete answer: the model refused.

**Completion.** The protocol has no ``[DONE]``, and the SDK ends its iterator silently on a clean
end of the body, also one cut between two events. The SDK itself decides "finished" by the last
candidate's ``finish_reason`` (its automatic continuation gives up on a hop whose
``finish_reason`` is ``None`` and which had no ``prompt_feedback``). So a stream is complete only
when every candidate seen got a ``finish_reason`` other than ``FINISH_REASON_UNSPECIFIED`` and
``CONTINUATION``, or the prompt was blocked. Anything else is
:class:`~schwarm_stream.StreamIncomplete`, also a body cut inside its last event (the SDK then
fails to parse it: ``UnknownApiResponseError``).

**Retries.** The SDK's own retries are switched off per request (``http_options.retry_options``
with one attempt, which also stops its implicit reconnect on aiohttp connection errors): retry
is ours. Its automatic continuation (resuming a long decode from a server checkpoint token) is
left as the caller configures it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._classify import classify
from .._errors import ProtocolError, StreamError, StreamIncomplete
from .._events import Chunk, ChunkKind, Event, Extra, Finish, ResponseInfo, ToolCallDelta, Usage
from ._base import Source
from ._protocol import CONTINUE_PROMPT
from ._surrogates import Surrogates

if TYPE_CHECKING:
    from typing_extensions import Self

    from .._message import Message
    from .._stream import Attempt, Stream

__all__ = ["GeminiNormalizer", "GeminiSource", "gemini_generate", "to_gemini"]

#: Finish reasons that do not end the answer (the SDK's continuation resumes after CONTINUATION).
_NOT_FINAL = frozenset({"FINISH_REASON_UNSPECIFIED", "CONTINUATION"})
#: Finish reasons that are a safety or policy stop: the candidate's ratings say why.
_SAFETY = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "MODEL_ARMOR"}
)
#: Part fields that are the part's content, checked in this order (thought/text and calls first).
_BLOCK_FIELDS = (
    "executable_code",
    "code_execution_result",
    "inline_data",
    "file_data",
    "function_response",
    "tool_call",
    "tool_response",
)


def _name(value: Any) -> str | None:
    """An SDK enum (or a plain string) as its wire name."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _dump(model: Any) -> Any:
    dump = getattr(model, "model_dump", None)
    return dump(mode="json", exclude_none=True) if dump is not None else model


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _usage(u: Any, raw: Any) -> Usage:
    extras: dict[str, Any] = _dump(u)
    cand, thoughts = u.candidates_token_count, u.thoughts_token_count
    out = None if cand is None and thoughts is None else (cand or 0) + (thoughts or 0)
    if thoughts is not None:
        extras["output_tokens_details"] = {"reasoning_tokens": thoughts}
    if u.cached_content_token_count is not None:
        extras["input_tokens_details"] = {"cached_tokens": u.cached_content_token_count}
    return Usage(u.prompt_token_count, out, extras, 0, raw)


#: One step of a json_path: ``.name``, ``['name']``, ``["name"]`` or ``[0]``.
_PATH_STEP = re.compile(
    r"\.([A-Za-z_][A-Za-z0-9_-]*)|\['((?:[^'\\]|\\.)*)'\]|\[\"((?:[^\"\\]|\\.)*)\"\]|\[(\d+)\]"
)


def _json_path(path: str | None) -> tuple[str | int, ...]:
    """``$.a.b[0]['c d']`` (RFC 9535, the forms ``PartialArg.json_path`` uses) as its steps."""
    if not path or not path.startswith("$"):
        raise ProtocolError(f"gemini: a partial_args json_path {path!r} does not start with '$'")
    steps: list[str | int] = []
    pos = 1
    while pos < len(path):
        m = _PATH_STEP.match(path, pos)
        if m is None:
            raise ProtocolError(f"gemini: cannot read the partial_args json_path {path!r} at {pos}")
        name, single, double, number = m.groups()
        if number is not None:
            steps.append(int(number))
        else:
            key = name if name is not None else single if single is not None else double
            steps.append(re.sub(r"\\(.)", r"\1", key or ""))
        pos = m.end()
    if not steps or isinstance(steps[0], int):  # the arguments are an object: a name comes first
        raise ProtocolError(f"gemini: a partial_args json_path {path!r} names no argument")
    return tuple(steps)


class _ArgsWriter:
    """The JSON text of a function call whose arguments stream as ``partial_args`` (Vertex AI's
    ``stream_function_call_arguments``), written as the values arrive.

    Each ``PartialArg`` is a JSON path and a value; a string may come in pieces (``will_continue``).
    The text is written in arrival order: containers open on the way to a path and close when a
    later path leaves them, so the concatenated fragments are exactly ``json.dumps`` of the
    arguments. A path that goes back into a container already closed (or skips an array slot)
    cannot be written as one JSON text: a :class:`~schwarm_stream.ProtocolError`, not a wrong call.
    """

    __slots__ = ("closed", "closers", "counts", "open_string", "stack", "started")

    def __init__(self) -> None:
        self.started = False
        self.stack: list[str | int] = []  # the steps to the container open now (root: [])
        self.closers: list[str] = []  # "]" or "}" for each open container but the root
        self.counts: list[int] = [0]  # members written in each open container, root first
        self.closed: set[tuple[str | int, ...]] = set()  # paths written in full
        self.open_string: tuple[str | int, ...] | None = None  # a string value awaiting its next piece

    def feed(self, arg: Any) -> str:
        """The JSON text one ``PartialArg`` adds."""
        out: list[str] = []
        if not self.started:
            self.started = True
            out.append("{")
        steps = _json_path(arg.json_path)
        more = bool(arg.will_continue)
        if self.open_string is not None:
            if steps == self.open_string:
                out.append(_dumps(arg.string_value or "")[1:-1])
                if not more:
                    out.append('"')
                    self.open_string = None
                return "".join(out)
            out.append('"')  # its last piece never came: the string ends where the next path begins
            self.open_string = None
        parents = steps[:-1]
        shared = 0
        while shared < min(len(parents), len(self.stack)) and parents[shared] == self.stack[shared]:
            shared += 1
        self._close(shared, out)
        for depth in range(shared, len(steps)):
            step = steps[depth]
            if steps[: depth + 1] in self.closed:
                raise ProtocolError(
                    f"gemini: partial_args for {arg.json_path!r} go back into arguments already written"
                )
            count = self.counts[-1]
            if isinstance(step, int):
                if step != count:
                    raise ProtocolError(
                        f"gemini: partial_args for {arg.json_path!r} skip or repeat array element {count}"
                    )
                out.append("," if count else "")
            else:
                out.append(("," if count else "") + _dumps(step) + ":")
            self.counts[-1] = count + 1
            if depth < len(steps) - 1:  # a container on the way: an array when the next step is an index
                array = isinstance(steps[depth + 1], int)
                out.append("[" if array else "{")
                self.closers.append("]" if array else "}")
                self.stack.append(step)
                self.counts.append(0)
        if arg.string_value is not None:
            text = _dumps(arg.string_value)
            out.append(text[:-1] if more else text)
            if more:
                self.open_string = steps
        elif arg.bool_value is not None:
            out.append("true" if arg.bool_value else "false")
        elif arg.number_value is not None:
            number = float(arg.number_value)  # a double on the wire; integral ones as JSON integers
            out.append(_dumps(int(number)) if number.is_integer() else _dumps(number))
        else:  # null_value
            out.append("null")
        self.closed.add(steps)
        return "".join(out)

    def _close(self, depth: int, out: list[str]) -> None:
        """Close the open containers deeper than ``depth`` steps."""
        while len(self.stack) > depth:
            step = self.stack.pop()
            self.counts.pop()
            self.closed.add((*self.stack, step))
            out.append(self.closers.pop())

    def end(self) -> str:
        """The text that closes the arguments (``{}`` when no argument came)."""
        out = [] if self.started else ["{"]
        self.started = True
        if self.open_string is not None:
            out.append('"')
            self.open_string = None
        self._close(0, out)
        out.append("}")
        return "".join(out)


class _Candidate:
    __slots__ = ("call", "call_index", "finish", "kind", "open")

    def __init__(self) -> None:
        self.kind: str | None = None  # the kind of the part open now ("text", "reasoning")
        self.open = -1  # its index
        self.finish: str | None = None
        self.call: _ArgsWriter | None = None  # a function call whose arguments stream (will_continue)
        self.call_index = -1


class GeminiNormalizer:
    """Turns ``GenerateContentResponse`` objects (the SDK's) into normalized events."""

    __slots__ = ("blocked", "candidates", "model", "next_index", "started")

    def __init__(self, *, model: str | None = None) -> None:
        self.model = model
        self.started = False
        self.blocked = False  # the prompt was blocked: a complete (refused) answer
        self.candidates: dict[int, _Candidate] = {}
        self.next_index = 0

    @property
    def done(self) -> bool:
        """Whether the answer is complete (see the module docstring)."""
        if self.blocked:
            return True
        return bool(self.candidates) and all(
            c.finish is not None and c.finish not in _NOT_FINAL for c in self.candidates.values()
        )

    def _index(self, cand: _Candidate, kind: str | None) -> int:
        """The index for a part of ``kind``: the open one if the kind continues, else a new one."""
        if kind is None or kind != cand.kind:
            cand.kind = kind
            cand.open = self.next_index
            self.next_index += 1
        return cand.open

    def feed(self, r: Any) -> list[Event]:
        """The normalized events for one streamed response."""
        out: list[Event] = []
        if not self.started:
            self.started = True
            extras = {"create_time": str(r.create_time)} if r.create_time else {}
            out.append(ResponseInfo(r.response_id, r.model_version or self.model, extras, 0, r))
        for c in r.candidates or ():
            choice = c.index or 0
            cand = self.candidates.get(choice)
            if cand is None:
                cand = self.candidates[choice] = _Candidate()
            content = c.content
            for part in (content.parts if content is not None else None) or ():
                out.extend(self._part(part, cand, choice, r))
            if c.citation_metadata is not None:
                for cite in c.citation_metadata.citations or ():
                    out.append(Extra("citation", max(cand.open, 0), _dump(cite), 0, r))
            if c.grounding_metadata is not None:
                out.append(Extra("grounding", max(cand.open, 0), _dump(c.grounding_metadata), 0, r))
            if c.url_context_metadata is not None:
                out.append(Extra("url_context", max(cand.open, 0), _dump(c.url_context_metadata), 0, r))
            reason = _name(c.finish_reason)
            if reason is not None:
                cand.finish = reason
                if reason not in _NOT_FINAL:
                    if cand.call is not None:  # the candidate ended inside a streamed call: it ends too
                        closing = cand.call.end()
                        cand.call = None
                        out.append(ToolCallDelta(cand.call_index, None, None, closing, choice, 0, r))
                    out.append(Finish(reason, choice, 0, r))
                    if c.finish_message:
                        out.append(Extra("finish_message", max(cand.open, 0), c.finish_message, 0, r))
                    if reason in _SAFETY and c.safety_ratings:
                        ratings = [_dump(s) for s in c.safety_ratings]
                        out.append(Extra("safety", max(cand.open, 0), {"safety_ratings": ratings}, 0, r))
        feedback = r.prompt_feedback
        if feedback is not None and feedback.block_reason is not None and not r.candidates:
            reason = _name(feedback.block_reason) or "BLOCKED"
            self.blocked = True
            index = self._index(self.candidates.setdefault(0, _Candidate()), "refusal")
            self.candidates[0].finish = reason
            text = feedback.block_reason_message or f"The prompt was blocked ({reason})."
            out.append(Chunk(text, "refusal", index, 0, 0, r))
            out.append(Finish(reason, 0, 0, r))
            out.append(Extra("safety", index, {"prompt_feedback": _dump(feedback)}, 0, r))
        if r.usage_metadata is not None:
            out.append(_usage(r.usage_metadata, r))
        return out

    def _part(self, part: Any, cand: _Candidate, choice: int, r: Any) -> list[Event]:
        out: list[Event] = []
        fc = part.function_call
        empty = fc is not None and not (fc.name or fc.id or fc.args is not None or fc.partial_args)
        if fc is not None and empty and not fc.will_continue and cand.call is None:
            # ``functionCall: {}`` ends a call whose arguments stream; with none open (its last
            # partial_args, without will_continue, already ended it) it ends nothing and is no call
            index = cand.open if cand.open >= 0 else self._index(cand, None)
        elif fc is not None:
            writer = cand.call
            if writer is not None and fc.name is not None:  # the next call begins: the open one ends
                out.append(ToolCallDelta(cand.call_index, None, None, writer.end(), choice, 0, r))
                writer = cand.call = None
            if writer is not None and fc.name is None:  # the next part of a call whose arguments stream
                index = cand.call_index
                text = "".join(writer.feed(a) for a in fc.partial_args or ())
            elif fc.will_continue or fc.partial_args:
                # Vertex AI's stream_function_call_arguments: the name first, then partial_args,
                # until a part without will_continue ends the call. A short call may come whole
                # in one part as its name and partial_args, without will_continue (recorded).
                index = self._index(cand, None)
                writer = cand.call = _ArgsWriter()
                cand.call_index = index
                text = "".join(writer.feed(a) for a in fc.partial_args or ())
            else:
                index = self._index(cand, None)
                text = _dumps(fc.args if fc.args is not None else {})
            cand.kind = "function_call"
            if writer is not None and not fc.will_continue:
                text += writer.end()
                cand.call = None
            if text or fc.name is not None or fc.id is not None:
                out.append(ToolCallDelta(index, fc.id, fc.name, text, choice, 0, r))
        elif part.text is not None:
            kind: ChunkKind = "reasoning" if part.thought else "text"
            if part.text or part.thought_signature is None:
                index = self._index(cand, kind)
                if part.text:
                    out.append(Chunk(part.text, kind, index, choice, 0, r))
            else:  # an empty text part carrying only a signature: it belongs to the part open now
                index = cand.open if cand.open >= 0 else self._index(cand, kind)
        else:
            field = next((f for f in _BLOCK_FIELDS if getattr(part, f, None) is not None), None)
            index = self._index(cand, None)
            cand.kind = "block"
            data = _dump(getattr(part, field)) if field is not None else _dump(part)
            out.append(Extra("block", index, {"type": field or "part", field or "part": data}, 0, r))
        if part.thought_signature:
            sig = base64.b64encode(part.thought_signature).decode("ascii")
            out.append(Extra("signature", index, sig, 0, r))
        return out


def _no_sdk_retries(config: Any) -> Any:
    """``config`` with ``http_options.retry_options`` of one attempt (retry is ours)."""
    retry = {"attempts": 1}
    if config is None:
        return {"http_options": {"retry_options": retry}}
    if isinstance(config, Mapping):
        http = dict(config.get("http_options") or {})
        if isinstance(config.get("http_options"), Mapping) or not config.get("http_options"):
            http.setdefault("retry_options", retry)
            return {**config, "http_options": http}
        return dict(config)
    opts = getattr(config, "http_options", None)
    if opts is None:
        return config.model_copy(update={"http_options": {"retry_options": retry}})
    if getattr(opts, "retry_options", None) is None:
        return config.model_copy(update={"http_options": opts.model_copy(update={"retry_options": retry})})
    return config


class GeminiSource(Source):
    """``client.aio.models.generate_content_stream(model=..., contents=..., config=...)`` of a
    ``google.genai.Client`` (or its ``.aio``). ``provider`` is ``gcp.gemini`` for the Gemini API
    and ``gcp.vertex_ai`` for a Vertex AI client (the OTel GenAI names)."""

    provider = "gcp.gemini"

    def __init__(
        self, client: Any, *, model: str, contents: Any, config: Any = None, provider: str | None = None
    ) -> None:
        aio = getattr(client, "aio", client)
        if not hasattr(getattr(aio, "models", None), "generate_content_stream"):
            raise TypeError("gemini_generate() needs a google.genai.Client (or its .aio)")
        api = getattr(aio, "_api_client", None)
        self.client = client
        self.api_key = getattr(api, "api_key", None)  # remembered: scrubbed from errors from now on
        self.models = aio.models
        self.model = model
        self.contents = contents
        self.config = _no_sdk_retries(config)
        self.provider = provider or ("gcp.vertex_ai" if getattr(api, "vertexai", False) else "gcp.gemini")

    def open(self, stream: Stream, attempt: Attempt) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        provider = self.provider
        norm = GeminiNormalizer(model=self.model)
        sur = Surrogates()
        try:
            responses = await self.models.generate_content_stream(
                model=self.model, contents=self.contents, config=self.config
            )
        except Exception as exc:
            raise classify(exc, provider=provider) from exc
        it: Any = responses.__aiter__()
        try:
            while True:
                try:
                    if norm.done:  # the answer is complete: read the rest briefly (a late usage)
                        r = await asyncio.wait_for(it.__anext__(), 0.5)
                    else:
                        r = await it.__anext__()
                except StopAsyncIteration:
                    break
                except StreamError:
                    raise
                except Exception as exc:
                    if norm.done:  # a slow or broken tail after the answer: the answer stands
                        break
                    if type(exc).__name__ == "UnknownApiResponseError":  # cut inside the last event
                        raise StreamIncomplete(
                            f"{provider}: the stream ended inside an event (its JSON did not parse)",
                            provider=provider,
                        ) from exc
                    raise classify(exc, provider=provider) from exc
                for out in sur.fix(norm.feed(r)):
                    yield out
            if norm.done:
                for out in sur.end():
                    yield out
                return
        finally:  # close the body now, not when the garbage collector finds it
            try:
                await it.aclose()
            except Exception:  # closing a generator broken mid-read: the SDK releases the body
                pass
        missing = "a finish_reason" if norm.candidates else "any candidate"
        raise StreamIncomplete(
            f"{provider}: the stream ended without {missing} (truncated)", provider=provider
        )

    def with_contents(self, contents: Any) -> Self:
        """The same request with other ``contents``."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.contents = contents
        return clone

    def continuation(self, partial: Message) -> Self | None:
        # Only plain text is recoverable: a function call or a thought cannot be resumed.
        if partial.tool_calls or partial.reasoning or not partial.text:
            return None
        contents = self.contents
        if isinstance(contents, str):
            contents = [{"role": "user", "parts": [{"text": contents}]}]
        elif not isinstance(contents, Sequence):
            contents = [contents]
        return self.with_contents(
            [
                *contents,
                {"role": "model", "parts": [{"text": partial.text}]},
                {"role": "user", "parts": [{"text": CONTINUE_PROMPT}]},
            ]
        )


def gemini_generate(client: Any, *, model: str, contents: Any, config: Any = None) -> GeminiSource:
    """A source for ``client.aio.models.generate_content_stream(model=, contents=, config=)``
    (``config``: a dict or ``types.GenerateContentConfig``: ``tools``, ``thinking_config``,
    ``safety_settings``, ``system_instruction``, ...)."""
    return GeminiSource(client, model=model, contents=contents, config=config)


def to_gemini(message: Message) -> dict[str, Any]:
    """``message`` as Gemini ``Content`` (``role: model``) to send back in the next turn: its parts
    in order, thoughts marked ``thought``, each ``thought_signature`` (bytes) on the part it came
    with, function calls with their ``args`` as objects."""
    signatures: dict[int, str] = {}
    for b in message.content:
        if b.type == "reasoning" and b.signature and not b.text:
            signatures[b.index] = b.signature  # a signature that came with a non-thought part
    parts: list[dict[str, Any]] = []
    for b in message.content:
        part: dict[str, Any]
        if b.type == "reasoning":
            if not b.text:
                if not any(o.index == b.index and o is not b for o in message.content):
                    parts.append({"text": "", "thought_signature": base64.b64decode(b.signature or "")})
                continue
            part = {"text": b.text, "thought": True}
            if b.signature:
                part["thought_signature"] = base64.b64decode(b.signature)
        elif b.type == "text":
            part = {"text": b.text}
        elif b.type == "tool_call" and b.tool_call is not None:
            t = b.tool_call
            call: dict[str, Any] = {"name": t.name, "args": t.parsed if t.valid else {}}
            if t.id != f"call_{t.index}":  # not the name the message made up for an id-less call
                call["id"] = t.id
            part = {"function_call": call}
        else:
            continue
        if b.index in signatures and "thought_signature" not in part:
            part["thought_signature"] = base64.b64decode(signatures[b.index])
        parts.append(part)
    return {"role": "model", "parts": parts}
