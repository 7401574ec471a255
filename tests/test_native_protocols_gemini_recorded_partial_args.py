"""Real recorded Vertex AI streams with streamed function-call arguments (``streamFunctionCallArguments``:
``partialArgs`` / ``willContinue``), read by the official google-genai SDK over loopback sockets.

The recordings (tests/data/corpus-gemini/vercel-ai and .../js-genai; provenance in
``manifest-partial-args.json`` and PROVENANCE.md) are kept byte for byte as their repositories store them:
vercel/ai's ``*.chunks.txt`` fixtures (one ``GenerateContentResponse`` JSON a line), served as the origin
test serves them, each line as an SSE event ``data: <line>`` and a blank line; and googleapis/js-genai's
system-test replay recordings (each response's SSE events as parsed JSON segments), each segment served
as one ``data:`` event with a CRLF blank line. Each stream runs whole, re-chunked (one event a write,
3-byte pieces, the other line end) and cut at event boundaries and inside events (never complete).

They are Vertex AI answers, so they are read by a Vertex AI client too (``genai.Client(vertexai=True)``
in express mode, an API key, and in project mode, ``project=``/``location=`` with static credentials),
served from the loopback server's Vertex routes (``/v1beta1/[projects/P/locations/L/]publishers/google/
models/M:streamGenerateContent``), where the SDK's Vertex parser reads them (it keeps ``createTime``,
which the Gemini API parser drops); and by a Gemini API client, as a Gemini API answer of the same shape
would be read.

google-genai has no aggregation of ``partial_args`` of its own (it hands each part's ``FunctionCall``
through: ``name``/``will_continue`` first, then ``partial_args`` pieces). The reference here is built from
the SDK's parsed objects by setting each ``PartialArg`` value at its JSON path in a dict (strings in
pieces joined), independent of the source's incremental JSON writer; text, thoughts, signatures,
finish reason, usage, id and model are the SDK's, joined as in tests/test_source_gemini.py.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

genai = pytest.importorskip("google.genai")  # the extra "gemini"

from schwarm_stream import (  # noqa: E402
    Config,
    Pipeline,
    StreamError,
    StreamIncomplete,
    ToolCallDelta,
    TransportError,
)
from schwarm_stream.sources import gemini_generate, to_gemini  # noqa: E402
from schwarm_stream.testing.server import ProviderServer, Split, SSEReply  # noqa: E402

CORPUS = Path(__file__).parent / "data" / "corpus-gemini"
MANIFEST = json.loads((CORPUS / "manifest-partial-args.json").read_text())


def _id(m: dict[str, Any]) -> str:
    name = Path(m["file"]).name.removesuffix(".chunks.txt").removesuffix(".json")
    return f"{name}.response{m['interaction']}" if m["fmt"] == "replay-json" else name


ROWS = {_id(m): m for m in MANIFEST}
EXACT = {"retry": {"attempts": 1}, "recovery": {"mid_stream": "raise"}}
MODEL = "gemini-3.1-pro-preview"

_CHATS = "Chats_Tests_chats_function_calling_Vertex_AI_with_streaming_function_calling_arguments_stream"
_CLIENT = "Client_Tests_generateContentStream_partial_function_calling_Vertex_AI_should_stream"

#: What each recording's calls are, read off the recording (and, for two of them, what the origin
#: test asserts too). The nested one is checked against the reference and by its shape below.
EXPECTED_CALLS: dict[str, list[tuple[str, Any]]] = {
    "google-stream-tool-call-arguments": [
        ("getWeather", {"location": "Boston"}),
        ("getWeather", {"location": "San Francisco"}),
    ],
    "google-stream-tool-call-array-arguments-missing-terminal-function-call": [
        (
            "writeItems",
            {
                "operations": [
                    {"action": "add", "description": "Fresh red apple", "itemid": "apple_001", "price": 0.5},
                    {
                        "action": "add",
                        "description": "Ripe yellow banana",
                        "itemid": "banana_001",
                        "price": 0.3,
                    },
                ]
            },
        )
    ],
    "google-stream-no-args-tool-call": [
        ("read_theme", {}),
        ("read_screen", {"id": "A"}),
        ("read_screen", {"id": "B"}),
        ("read_screen", {"id": "C"}),
    ],
    _CHATS + ".response0": [("customDivide", {"denominator": 2, "numerator": 100})],
    _CHATS + ".response1": [],
    **{
        f"{_CLIENT}_{test}.response0": [
            (
                "getCurrentWeather",
                {
                    "country": "USA",
                    "location": "NewYorkCity",
                    "purpose": "to know what to wear today",
                    "unit": "C",
                },
            )
        ]
        for test in (
            "generate_content_enabled_streamFunctionCallArguments",
            "generate_content_with_particial_function_calling_in_the_content",
        )
    },
    "MCP_related_client_Tests_generateContentStream_with_streamFunctionCallingArguments_enabled_Vertex_AI_"
    "should_stream_arguments_when_afc_is_disabled_explicitly.response0": [
        ("greet", {"greeting": "Hello", "name": "jone smith"}),
    ],
}


def lines(name: str) -> list[bytes]:
    """The stream's events' JSON, as stored (a line of a ``.chunks.txt``, or a replay's segment)."""
    m = ROWS[name]
    raw = (CORPUS / m["file"]).read_bytes()
    if m["fmt"] == "replay-json":
        segments = json.loads(raw)["interactions"][m["interaction"]]["response"]["bodySegments"]
        return [json.dumps(s, separators=(",", ":"), ensure_ascii=False).encode() for s in segments]
    return [line for line in raw.split(b"\n") if line.strip()]


def events(name: str, eol: bytes | None = None) -> list[bytes]:
    """The stream as SSE events: ``data: <json>`` and a blank line, LF as vercel/ai's test frames its
    fixtures, CRLF (as Vertex AI frames them) for the replay recordings, unless ``eol`` says."""
    if eol is None:
        eol = b"\r\n" if ROWS[name]["fmt"] == "replay-json" else b"\n"
    return [b"data: " + line + eol + eol for line in lines(name)]


#: How the SDK client reaches the server: the Gemini API, Vertex AI express mode (an API key) and
#: Vertex AI with a project and location (static OAuth credentials: no token refresh, no call to Google).
MODES = ("gemini-api", "vertex-express", "vertex-project")
ROUTE = {"gemini-api": "gemini-stream", "vertex-express": "vertex-stream", "vertex-project": "vertex-stream"}
PROVIDER = {"gemini-api": "gcp.gemini", "vertex-express": "gcp.vertex_ai", "vertex-project": "gcp.vertex_ai"}
#: The path each mode's request goes to (after the base URL), the model being MODEL.
PATH = {
    "gemini-api": f"/v1/models/{MODEL}:streamGenerateContent",
    "vertex-express": f"/v1beta1/publishers/google/models/{MODEL}:streamGenerateContent",
    "vertex-project": f"/v1beta1/projects/loop-proj/locations/us-central1/publishers/google/models/{MODEL}"
    ":streamGenerateContent",
}

_CLIENTS: dict[tuple[str, str], Any] = {}


def make_client(url: str, mode: str, project: str = "loop-proj", location: str = "us-central1") -> Any:
    from google.oauth2.credentials import Credentials

    if mode == "gemini-api":
        return genai.Client(api_key="g-loopback-key", http_options={"base_url": url})
    if mode == "vertex-express":
        return genai.Client(vertexai=True, api_key="vx-loopback-key", http_options={"base_url": url})
    assert mode == "vertex-project", mode
    return genai.Client(
        vertexai=True,
        project=project,
        location=location,
        credentials=Credentials(token="ya29.loopback"),
        http_options={"base_url": url},
    )


def client(url: str, mode: str = "gemini-api") -> Any:
    """One SDK client per loopback server and mode (making one costs more than a request to it)."""
    if (url, mode) not in _CLIENTS:
        _CLIENTS[url, mode] = make_client(url, mode)
    return _CLIENTS[url, mode]


def source(url: str, mode: str = "gemini-api") -> Any:
    return gemini_generate(client(url, mode), model=MODEL, contents="Hi")


@pytest.fixture(autouse=True)
def _no_google_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK takes project, location, keys and Vertex mode from the environment too: none here."""
    for var in (
        "GOOGLE_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_GENAI_USE_ENTERPRISE",
        "GOOGLE_GENAI_API_VERSION",
    ):
        monkeypatch.delenv(var, raising=False)


# -- the reference: the SDK's parsed responses, calls assembled by JSON path ---------------------------

_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def _steps(path: str) -> list[str | int]:
    assert path.startswith("$"), path
    out: list[str | int] = []
    pos = 1
    while pos < len(path):
        m = _STEP.match(path, pos)
        assert m is not None, path
        out.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    return out


def _put(args: dict[str, Any], arg: Any) -> None:
    """Set one ``PartialArg`` in ``args`` (a string piece extends the string already there)."""
    steps = _steps(arg.json_path)
    node: Any = args
    for step, nxt in itertools.pairwise(steps):
        empty: Any = [] if isinstance(nxt, int) else {}
        if isinstance(step, int):
            if step == len(node):
                node.append(empty)
            node = node[step]
        else:
            node = node.setdefault(step, empty)
    leaf = steps[-1]
    if arg.string_value is not None:
        value: Any = arg.string_value
    elif arg.bool_value is not None:
        value = arg.bool_value
    elif arg.number_value is not None:
        n = float(arg.number_value)
        value = int(n) if n.is_integer() else n
    else:
        value = None
    if isinstance(leaf, int):
        if leaf == len(node):
            node.append(value)
        elif isinstance(value, str):
            node[leaf] += value
        else:
            node[leaf] = value
    elif isinstance(value, str) and isinstance(node.get(leaf), str):
        node[leaf] += value
    else:
        node[leaf] = value


def _calls(responses: list[Any]) -> list[dict[str, Any]]:
    """Function calls as the SDK hands them, joined: a part with a ``name`` opens a call; parts
    without one continue the open call; a part without ``will_continue`` (or the finish) closes it."""
    calls: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for r in responses:
        for c in r.candidates or ():
            for p in (c.content.parts if c.content else None) or ():
                fc = p.function_call
                if fc is None:
                    continue
                if fc.name is not None:
                    current = {"name": fc.name, "args": dict(fc.args or {}), "closed": False, "pieces": 0}
                    current["signature"] = p.thought_signature
                    calls.append(current)
                if current is None:  # a closing part with no call open: it closes nothing
                    assert not (fc.partial_args or fc.will_continue), "a continuation part with no call open"
                    continue
                for a in fc.partial_args or ():
                    _put(current["args"], a)
                current["pieces"] += bool(fc.partial_args)
                if not fc.will_continue:
                    current["closed"] = True
                    current = None
            if c.finish_reason is not None and current is not None:
                current["closed"] = True
                current = None
    return calls


async def sdk_reference(
    server: ProviderServer, body: list[bytes], mode: str = "gemini-api"
) -> dict[str, Any]:
    server.script(ROUTE[mode], SSEReply(body))
    cfg = {"http_options": {"retry_options": {"attempts": 1}}}
    responses = [
        r
        async for r in await client(server.url, mode).aio.models.generate_content_stream(
            model=MODEL, contents="Hi", config=cfg
        )
    ]
    request = server.requests[-1]
    assert (request.route, request.path) == (ROUTE[mode], PATH[mode])
    parts = [
        p
        for r in responses
        for c in r.candidates or ()
        for p in (c.content.parts if c.content else None) or ()
    ]
    finish = [c.finish_reason for r in responses for c in r.candidates or () if c.finish_reason]
    counted = [r.usage_metadata for r in responses if r.usage_metadata]
    counted = [u for u in counted if u.prompt_token_count]  # not the bare {"trafficType": ...} ones
    usage = counted[-1] if counted else None
    return {
        "text": "".join(p.text for p in parts if p.text and not p.thought),
        "thoughts": "".join(p.text for p in parts if p.text and p.thought),
        "calls": _calls(responses),
        "signatures": sorted(p.thought_signature for p in parts if p.thought_signature),
        "finish": finish[-1].value if finish else None,
        "usage": usage,
        "id": responses[0].response_id if responses else None,
        "model": responses[0].model_version if responses else None,
        "created": [r.create_time for r in responses],
        "provider": PROVIDER[mode],
    }


async def run(
    server: ProviderServer, parts: list[Any], end: str = "eof", mode: str = "gemini-api"
) -> tuple[Any, list[ToolCallDelta]]:
    server.script(ROUTE[mode], SSEReply(parts, end=end))  # type: ignore[arg-type]
    stream = Pipeline(config=Config.from_dict(EXACT)).open(source(server.url, mode))
    deltas: list[ToolCallDelta] = []
    async with stream:
        async for e in stream:
            if isinstance(e, ToolCallDelta):
                deltas.append(e)
    request = server.requests[-1]
    assert (request.route, request.path) == (ROUTE[mode], PATH[mode])
    return stream.message, deltas


def assert_same(message: Any, deltas: list[ToolCallDelta], ref: dict[str, Any]) -> None:
    assert message.complete
    assert message.text == ref["text"]
    assert message.reasoning == ref["thoughts"]
    assert all(c["closed"] for c in ref["calls"])
    assert [(t.name, t.parsed) for t in message.tool_calls] == [(c["name"], c["args"]) for c in ref["calls"]]
    for t in message.tool_calls:
        # the fragments at the call's index join to exactly its arguments, in arrival order
        assert "".join(d.arguments for d in deltas if d.index == t.index) == t.arguments
        assert t.valid and t.id == f"call_{t.index}"  # Vertex sends no call ids here
    by_args = [json.dumps(c["args"], separators=(",", ":"), ensure_ascii=False) for c in ref["calls"]]
    assert [t.arguments for t in message.tool_calls] == by_args
    sigs = sorted(base64.b64decode(b.signature) for b in message.content if b.signature)
    assert sigs == ref["signatures"]
    assert message.finish_reason == ref["finish"]
    assert (message.id, message.model, message.provider) == (ref["id"], ref["model"], ref["provider"])
    u = ref["usage"]
    assert message.usage.input_tokens == u.prompt_token_count
    assert message.usage.output_tokens == (u.candidates_token_count or 0) + (u.thoughts_token_count or 0)
    assert message.usage.reasoning_tokens == u.thoughts_token_count


def test_manifest_names_every_recording_with_its_origin() -> None:
    stored = [*(CORPUS / "vercel-ai").glob("*.chunks.txt"), *(CORPUS / "js-genai").glob("*.json")]
    assert sorted(p.name for p in stored) == sorted({Path(m["file"]).name for m in MANIFEST})
    for m in MANIFEST:
        assert m["origin_repo"] in {"vercel/ai", "googleapis/js-genai"} and m["license"] == "Apache-2.0"
        assert len(m["commit"]) == 40 and len(m["snapshot"]) == 40 and len(m["blob"]) == 40
        data = (CORPUS / m["file"]).read_bytes()
        assert len(data) == m["bytes"]
        # the git blob id of the file as stored: the bytes are the origin's, unchanged
        assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == m["blob"]
        assert len(lines(_id(m))) == m["events"]
    for file in {m["file"] for m in MANIFEST}:  # every file has a stream with streamed arguments
        assert any("partialArgs" in m["features"] for m in MANIFEST if m["file"] == file)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how", ["whole", "per-event", "3-byte pieces", "other line end"])
@pytest.mark.parametrize("name", sorted(ROWS), ids=str)
async def test_recording_equals_the_sdk_reference(name: str, how: str, mode: str) -> None:
    evs = events(name)
    if how == "other line end":
        evs = events(name, b"\n" if evs[0].endswith(b"\r\n\r\n") else b"\r\n")
    body = b"".join(evs)
    variants: dict[str, list[Any]] = {
        "whole": [body],
        "per-event": evs,
        "3-byte pieces": [Split(body, tuple(range(3, len(body), 3)))],
        "other line end": [body],
    }
    parts = variants[how]
    async with ProviderServer() as server:
        ref = await sdk_reference(server, [body], mode)
        message, deltas = await run(server, parts, mode=mode)
    assert_same(message, deltas, ref)
    # every recorded response carries Vertex's createTime: the Vertex parser keeps it, the other drops it
    assert all(ref["created"]) if mode.startswith("vertex") else not any(ref["created"])
    if name in EXPECTED_CALLS:
        assert [(t.name, t.parsed) for t in message.tool_calls] == EXPECTED_CALLS[name]
    # the arguments are deltas as they came: at least one for every part that carried partial_args
    for t, c in zip(message.tool_calls, ref["calls"], strict=True):
        assert len([d for d in deltas if d.index == t.index and d.arguments]) >= c["pieces"]


@pytest.mark.parametrize("mode", MODES)
async def test_the_nested_recording_streams_arrays_of_objects_and_strings_in_pieces(mode: str) -> None:
    name = "google-vertex-stream-tool-call-arguments-nested.1"
    async with ProviderServer() as server:
        message, deltas = await run(server, events(name), mode=mode)
    [call] = message.tool_calls
    recipe = call.parsed["recipe"]
    assert call.name == "cookRecipe" and list(recipe) == ["ingredients", "name", "steps"]
    assert recipe["name"] == "Lasagna" and len(recipe["ingredients"]) == 10 and len(recipe["steps"]) == 10
    assert recipe["ingredients"][0] == {"amount": "16 oz", "name": "Lasagna noodles"}
    # a string in two pieces of the recording, and non-ASCII text
    assert recipe["steps"][1].endswith("drain and set aside.")
    assert recipe["steps"][4] == "In a 9x13 baking dish, spread a thin layer of meat sauce."
    assert recipe["steps"][0] == "Preheat oven to 375°F (190°C)."
    assert len([d for d in deltas if d.arguments]) > 40


@pytest.mark.parametrize("mode", MODES)
async def test_the_signatures_go_back_on_the_parts_they_came_with(mode: str) -> None:
    for name in sorted(ROWS):
        async with ProviderServer() as server:
            ref = await sdk_reference(server, events(name), mode)
            message, _ = await run(server, events(name), mode=mode)
        turn = to_gemini(message)
        calls = [p for p in turn["parts"] if "function_call" in p]
        assert [(p["function_call"]["name"], p["function_call"]["args"]) for p in calls] == [
            (c["name"], c["args"]) for c in ref["calls"]
        ], name
        assert [p.get("thought_signature") for p in calls] == [c["signature"] for c in ref["calls"]], name
        assert all("id" not in p["function_call"] for p in calls)


def cut_points(body: bytes, evs: list[bytes], sample: int) -> list[int]:
    """Every event boundary before the end and the middle of every event (a sample of ``sample`` for
    long recordings), and the bytes around the final blank line."""
    ends = [0, *itertools.accumulate(len(e) for e in evs)]
    cuts = set(ends[1:-1]) | {(a + b) // 2 for a, b in itertools.pairwise(ends)}
    points = sorted(c for c in cuts if 0 < c < len(body))
    step = max(1, len(points) // sample)
    blank = 4 if body.endswith(b"\r\n\r\n") else 2
    tail = {len(body) - k for k in range(1, blank + 2)}  # the blank line, and the last byte of the JSON
    return sorted({*points[::step], *(t for t in tail if 0 < t < len(body))})


@pytest.mark.parametrize("mode", ["gemini-api", "vertex-project"])
@pytest.mark.parametrize("end", ["eof", "truncate"])
@pytest.mark.parametrize("name", sorted(ROWS), ids=str)
async def test_truncations_are_never_complete(name: str, end: str, mode: str) -> None:
    evs = events(name)
    body = b"".join(evs)
    async with ProviderServer() as server:
        full = await sdk_reference(server, [body], mode)
        for cut in cut_points(body, evs, 60):
            whole = [e for e in itertools.accumulate(evs) if len(e) <= cut]
            ref = await sdk_reference(server, [whole[-1]], mode) if whole else None
            if end == "eof" and cut >= len(body) - (4 if body.endswith(b"\r\n\r\n") else 2):
                # only the final blank line is cut: the last event's JSON is whole, and the SDK (like
                # every SSE reader here) takes an unterminated last event: complete
                message, deltas = await run(server, [body[:cut]], end, mode)
                assert_same(message, deltas, full)
                continue
            server.script(ROUTE[mode], SSEReply([body[:cut]], end=end))  # type: ignore[arg-type]
            stream = Pipeline(config=Config.from_dict(EXACT)).open(source(server.url, mode))
            with pytest.raises(StreamError) as info:
                async with stream:
                    await stream.collect()
            assert isinstance(info.value, StreamIncomplete | TransportError), (cut, info.value)
            partial = stream.message
            assert not partial.complete, cut
            assert partial.text == (ref["text"] if ref else ""), cut
            assert partial.reasoning == (ref["thoughts"] if ref else ""), cut
            # the calls begun before the cut, in order; those the stream closed have their arguments
            started = ref["calls"] if ref else []
            assert [t.name for t in partial.tool_calls] == [c["name"] for c in started], cut
            for t, c in zip(partial.tool_calls, started, strict=True):
                if c["closed"]:
                    assert t.parsed == c["args"], cut


@pytest.mark.parametrize("mode", ["gemini-api", "vertex-express"])
async def test_a_closing_part_after_a_call_that_ended_itself_adds_no_call(mode: str) -> None:
    """The recording whose call ends with a ``partialArgs`` part without ``willContinue`` (no
    ``functionCall: {}`` follows), with that closing part added after it anyway: still one call."""
    name = "google-stream-tool-call-array-arguments-missing-terminal-function-call"
    stray = b'{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{}}]}}]}'
    ls = lines(name)
    variant = [b"data: " + line + b"\n\n" for line in [*ls[:-1], stray, ls[-1]]]
    async with ProviderServer() as server:
        message, _ = await run(server, variant, mode=mode)
    assert message.complete
    assert [(t.name, t.parsed) for t in message.tool_calls] == EXPECTED_CALLS[name]


def replay_interactions() -> list[tuple[str, int]]:
    return sorted((m["file"], m["interaction"]) for m in MANIFEST if m["fmt"] == "replay-json")


@pytest.mark.parametrize(("file", "interaction"), replay_interactions(), ids=lambda v: str(v))
async def test_a_project_mode_client_asks_the_url_the_recording_was_made_at(
    file: str, interaction: int
) -> None:
    """js-genai recorded its streams in project mode against aiplatform.googleapis.com, the request's URL
    kept (project and location ``REDACTED``): the SDK in project mode with the same project, location and
    model sends exactly that path and query to the loopback server's Vertex route, and reads the recorded
    answer there."""
    recorded = json.loads((CORPUS / file).read_bytes())["interactions"][interaction]
    url = recorded["request"]["url"]
    model = re.search(r"/models/([^/:]+):", url)
    assert model is not None, url
    segments = recorded["response"]["bodySegments"]
    body = b"".join(
        b"data: " + json.dumps(seg, separators=(",", ":")).encode() + b"\r\n\r\n" for seg in segments
    )
    async with ProviderServer(api_key="ya29.loopback") as server:
        sdk = make_client(server.vertex_base_url, "vertex-project", project="REDACTED", location="REDACTED")
        server.script("vertex-stream", SSEReply([body]))
        async with Pipeline(config=Config.from_dict(EXACT)).open(
            gemini_generate(sdk, model=model.group(1), contents="Hi")
        ) as stream:
            message = await stream.collect()
        [request] = server.requests
    assert request.route == "vertex-stream"
    assert request.path + "?" + "&".join(f"{k}={v}" for k, v in request.query.items()) == url
    assert request.headers["authorization"] == "Bearer ya29.loopback"
    assert message.complete and message.provider == "gcp.vertex_ai"
    assert message.model == segments[0]["modelVersion"] == model.group(1)
