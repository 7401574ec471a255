"""``schwarm-stream replay`` of Gemini recordings that are not raw SSE: JSON lines of
``GenerateContentResponse`` (vercel/ai's ``*.chunks.txt``), a JSON array of them, and googleapis/js-genai's
replay JSON. The recorded Vertex AI streams in tests/data/corpus-gemini are replayed through a Vertex-mode
google-genai client over 127.0.0.1, and what the command prints is compared with the SDK's own parse of the
same stream (the reference of tests/test_native_protocols_gemini_recorded_partial_args.py); broken files
are named with their line or interaction."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.genai")  # the extra "gemini"

from click.testing import CliRunner

from schwarm_stream.cli import cli
from schwarm_stream.testing.corpus import gemini_recordings
from schwarm_stream.testing.server import ProviderServer
from tests.test_native_protocols_gemini_recorded_partial_args import (
    CORPUS,
    EXPECTED_CALLS,
    MANIFEST,
    _id,
    events,
    sdk_reference,
)

VERCEL = sorted((CORPUS / "vercel-ai").glob("*.chunks.txt"))
JS_GENAI = sorted((CORPUS / "js-genai").glob("*.json"))


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(autouse=True)
def _no_google_environment(monkeypatch: pytest.MonkeyPatch) -> None:
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
    monkeypatch.setenv("NO_COLOR", "1")


def replay(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(cli, ["replay", *args], catch_exceptions=False)


def results(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def rows_of(path: Path) -> list[dict[str, Any]]:
    """The manifest rows of one file, in the order its answers are in it."""
    rel = str(path.relative_to(CORPUS))
    return sorted((m for m in MANIFEST if m["file"] == rel), key=lambda m: m.get("interaction") or 0)


def test_every_recording_replays_complete_through_a_vertex_client(runner: CliRunner) -> None:
    files = [*VERCEL, *JS_GENAI]
    result = replay(runner, *map(str, files))
    assert result.exit_code == 0, result.output
    heads = [line for line in result.output.splitlines() if not line.startswith("  ")]
    expected = [
        f"{path}#{i}" if len(rows_of(path)) > 1 else str(path)
        for path in files
        for i in range(len(rows_of(path)))
    ]
    assert [h.split("  ")[0] for h in heads] == expected
    assert all("  vertex-stream  complete  finish=STOP  " in h for h in heads), heads


async def _references(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    async with ProviderServer() as server:
        return [await sdk_reference(server, events(_id(row)), "vertex-express") for row in rows]


@pytest.mark.parametrize("path", [*VERCEL, *JS_GENAI], ids=lambda p: p.name[:60])
def test_the_replay_equals_the_sdk_parse_of_the_same_stream(runner: CliRunner, path: Path) -> None:
    out = results(replay(runner, "--json", str(path)).output)
    rows = rows_of(path)
    refs = asyncio.run(_references(rows))
    assert len(out) == len(rows)
    for got, row, ref in zip(out, rows, refs, strict=True):
        name = _id(row)
        assert got["complete"] and got["error"] is None, got
        calls = [(t["name"], json.loads(t["arguments"])) for t in got["tool_calls"]]
        assert calls == [(c["name"], c["args"]) for c in ref["calls"]] == EXPECTED_CALLS.get(name, calls)
        assert got["text"] == ref["text"] and got["reasoning"] == ref["thoughts"]
        assert got["finish_reason"] == ref["finish"]
        u = ref["usage"]
        out_tokens = (u.candidates_token_count or 0) + (u.thoughts_token_count or 0)
        assert got["usage"] == {"input_tokens": u.prompt_token_count, "output_tokens": out_tokens}


def test_the_reader_frames_every_line_and_marks_vertex() -> None:
    for path in VERCEL:
        [recording] = gemini_recordings(path) or []
        lines = [line for line in path.read_bytes().split(b"\n") if line.strip()]
        assert recording.body == b"".join(b"data: " + line + b"\r\n\r\n" for line in lines)
        assert recording.vertex and recording.status == 200 and recording.where == "line 1"
    for path in JS_GENAI:
        recordings = gemini_recordings(path) or []
        interactions = json.loads(path.read_bytes())["interactions"]
        assert [r.where for r in recordings] == [f"interactions[{i}]" for i in range(len(interactions))]
        for r, i in zip(recordings, interactions, strict=True):
            segments = [json.loads(e[6:]) for e in r.body.split(b"\r\n\r\n") if e]
            assert segments == i["response"]["bodySegments"] and r.vertex
    # raw SSE and other protocols are not this reader's
    assert gemini_recordings(sorted((CORPUS / "pydantic-ai").glob("*.sse"))[0]) is None


def test_forced_gemini_api_protocol_reads_the_lines_with_a_gemini_api_client(runner: CliRunner) -> None:
    path = CORPUS / "vercel-ai" / "google-stream-tool-call-arguments.chunks.txt"
    result = replay(runner, "--protocol", "gemini-stream", str(path))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{path}  gemini-stream  complete  finish=STOP")


def test_gemini_api_json_lines_stay_on_the_gemini_api(runner: CliRunner, tmp_path: Path) -> None:
    """A Gemini API SSE recording turned into JSON lines: no ``createTime``, so not Vertex."""
    sse = CORPUS / "pydantic-ai" / "test_google_model_thinking_part_iter.response0.sse"
    lines = [e[6:] for e in sse.read_bytes().split(b"\r\n\r\n") if e.startswith(b"data: ")]
    path = tmp_path / "thinking.chunks.txt"
    path.write_bytes(b"\n".join(lines) + b"\n")
    text = replay(runner, str(path)).output
    assert text.startswith(f"{path}  gemini-stream  complete  finish=STOP"), text
    [whole] = results(replay(runner, "--json", str(sse)).output)
    [as_lines] = results(replay(runner, "--json", str(path)).output)
    assert as_lines == whole and whole["reasoning"] and whole["text"]


def test_a_json_array_of_responses_and_a_pretty_printed_response(runner: CliRunner, tmp_path: Path) -> None:
    src = CORPUS / "vercel-ai" / "google-stream-no-args-tool-call.chunks.txt"
    responses = [json.loads(line) for line in src.read_bytes().splitlines() if line.strip()]
    array = tmp_path / "array.json"
    array.write_text(json.dumps(responses, indent=2))
    [from_array] = results(replay(runner, "--json", str(array)).output)
    [from_lines] = results(replay(runner, "--json", str(src)).output)
    assert from_array == from_lines and from_array["complete"]
    one = tmp_path / "one.json"
    one.write_text(json.dumps(responses[-1], indent=2))  # the last response alone: the finish, no calls
    [alone] = results(replay(runner, "--json", str(one)).output)
    assert alone["complete"] and alone["finish_reason"] == "STOP" and alone["tool_calls"] == []


def test_several_answers_in_one_file_are_split_by_response_id(runner: CliRunner, tmp_path: Path) -> None:
    a = CORPUS / "vercel-ai" / "google-stream-tool-call-arguments.chunks.txt"
    b = (
        CORPUS
        / "vercel-ai"
        / "google-stream-tool-call-array-arguments-missing-terminal-function-call.chunks.txt"
    )
    path = tmp_path / "two.chunks.txt"
    path.write_bytes(a.read_bytes().rstrip(b"\n") + b"\n" + b.read_bytes())
    result = replay(runner, str(path))
    assert result.exit_code == 0, result.output
    heads = [line for line in result.output.splitlines() if not line.startswith("  ")]
    assert [h.split("  ")[0] for h in heads] == [f"{path}#0", f"{path}#1"]
    assert "getWeather" in result.output and "writeItems" in result.output


def test_a_cut_recording_is_incomplete(runner: CliRunner, tmp_path: Path) -> None:
    src = CORPUS / "vercel-ai" / "google-stream-tool-call-arguments.chunks.txt"
    lines = [line for line in src.read_bytes().split(b"\n") if line.strip()]
    path = tmp_path / "cut.chunks.txt"
    path.write_bytes(b"\n".join(lines[:-1]))  # without the last response, the one with finishReason
    result = replay(runner, "--json", str(path))
    assert result.exit_code == 1
    [got] = results(result.output)
    assert not got["complete"] and got["error"]["type"] == "StreamIncomplete"
    assert [t["name"] for t in got["tool_calls"]] == ["getWeather", "getWeather"]


@pytest.mark.parametrize(
    ("number", "line", "message"),
    [
        (2, b'{"candidates": [', "bad.chunks.txt: line 2 is not valid JSON"),
        (3, b'["not", "a", "response"]', "bad.chunks.txt: line 3 is not a Gemini GenerateContentResponse"),
        (
            3,
            b'{"choices": []}',
            "bad.chunks.txt: line 3 is not a Gemini GenerateContentResponse (found ['choices']",
        ),
    ],
)
def test_a_broken_line_is_named_and_nothing_of_the_file_is_replayed(
    runner: CliRunner, tmp_path: Path, number: int, line: bytes, message: str
) -> None:
    src = CORPUS / "vercel-ai" / "google-stream-tool-call-arguments.chunks.txt"
    lines = [ln for ln in src.read_bytes().split(b"\n") if ln.strip()]
    lines[number - 1] = line
    path = tmp_path / "bad.chunks.txt"
    path.write_bytes(b"\n".join(lines))
    result = replay(runner, str(path), str(src))
    assert result.exit_code == 1
    out = result.output.splitlines()
    assert out[0].startswith(f"{path}: not a stream: {message}"), out[0]
    # the good file after it is still replayed, and only it
    heads = [ln for ln in out if not ln.startswith("  ")]
    assert len(heads) == 2 and heads[1].startswith(f"{src}  vertex-stream  complete")


def _replay_file(tmp_path: Path, mutate: Any) -> Path:
    recording = json.loads(JS_GENAI[0].read_bytes())
    mutate(recording["interactions"])
    path = tmp_path / "recording.json"
    path.write_text(json.dumps(recording))
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda i: i[0]["response"].pop("bodySegments"),
            "interactions[0].response has no 'bodySegments' list",
        ),
        (
            lambda i: i[0]["request"].update(
                url="/v1beta1/projects/p/locations/l/publishers/google/models/m:countTokens"
            ),
            "interactions[0].request.url is '/v1beta1/projects/p/locations/l/publishers/google/models/m:countTokens', "
            "not a streamGenerateContent request",
        ),
        (
            lambda i: i[0]["response"]["bodySegments"].insert(1, {"choices": []}),
            "interactions[0].response.bodySegments[1] is not a GenerateContentResponse",
        ),
        (lambda i: i.clear(), "'interactions' is not a non-empty list"),
    ],
)
def test_a_broken_js_genai_recording_names_the_interaction(
    runner: CliRunner, tmp_path: Path, mutate: Any, message: str
) -> None:
    path = _replay_file(tmp_path, mutate)
    result = replay(runner, "--json", str(path))
    assert result.exit_code == 1
    [got] = results(result.output)
    assert got["error"]["message"] == f"recording.json: {message}" or got["error"]["message"].startswith(
        f"recording.json: {message}"
    ), got


def test_a_recorded_error_answer_is_served_with_its_status(runner: CliRunner, tmp_path: Path) -> None:
    error = {"error": {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED"}}

    def mutate(interactions: list[Any]) -> None:
        interactions[0]["response"].update(statusCode=429, bodySegments=[error])

    path = _replay_file(tmp_path, mutate)  # the chat recording: its first answer now a 429, the second kept
    result = replay(runner, "--json", str(path))
    assert result.exit_code == 1
    [got, second] = results(result.output)
    assert got["error"]["type"] == "ProviderError" and "429" in got["error"]["message"], got
    assert "Resource exhausted." in got["error"]["message"] and not got["complete"]
    assert second["complete"] and second["text"] == "The result of 100/2 is 51."


def test_replay_in_a_subprocess() -> None:
    """The installed command, as a user runs it, on every vercel-ai recording."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "GEMINI_"))}
    result = subprocess.run(
        [sys.executable, "-m", "schwarm_stream", "replay", "--json", *map(str, VERCEL)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**env, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    got = results(result.stdout)
    assert [[t["name"] for t in g["tool_calls"]] for g in got] == [
        [name for name, _ in EXPECTED_CALLS[p.name.removesuffix(".chunks.txt")]]
        if p.name.removesuffix(".chunks.txt") in EXPECTED_CALLS
        else ["cookRecipe"]
        for p in VERCEL
    ]
