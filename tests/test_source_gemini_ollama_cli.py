"""The CLI for Gemini and Ollama: ``schwarm-stream run --provider gemini|ollama`` against the offline
provider in a real subprocess, and ``replay`` of the recorded corpora (protocol detected or given)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("google.genai")  # the extras "gemini" and "ollama"
pytest.importorskip("ollama")
pytest.importorskip("click")

from schwarm_stream.cli._sources import sniff_native
from schwarm_stream.testing.server import OfflineProvider, ThreadedProviderServer

DATA = Path(__file__).parent / "data"
GEMINI = sorted((DATA / "corpus-gemini").glob("*/*.sse"))
OLLAMA = sorted((DATA / "corpus-ollama").glob("*/*.ndjson"))


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "schwarm_stream", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )


@pytest.mark.parametrize(("provider", "env"), [("gemini", "GEMINI_API_KEY"), ("ollama", "OLLAMA_API_KEY")])
def test_run_streams_from_the_offline_provider(provider: str, env: str) -> None:
    with ThreadedProviderServer(OfflineProvider()) as server:
        result = cli(
            "run",
            "--provider",
            provider,
            "--base-url",
            server.url,
            "--model",
            "m",
            "--json",
            "Hello there",
            env={env: "loopback-key"},
        )
        route = server.requests[0].route
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["complete"] and out["text"] == "You said: Hello there"
    assert route == ("gemini-stream" if provider == "gemini" else "ollama-chat")


def test_run_without_the_key_names_the_variable() -> None:
    result = cli("run", "--provider", "gemini", "--model", "m", "Hi", env={"GEMINI_API_KEY": ""})
    assert result.returncode == 2 and "GEMINI_API_KEY" in result.stderr


def test_replay_detects_and_completes_every_recording() -> None:
    result = cli("replay", "--json", *map(str, GEMINI + OLLAMA))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(GEMINI) + len(OLLAMA)
    assert all(line["complete"] for line in lines)


def test_replay_of_a_cut_ollama_body_is_incomplete(tmp_path: Path) -> None:
    body = OLLAMA[0].read_bytes()
    cut = tmp_path / "cut.ndjson"
    cut.write_bytes(body[: len(body) // 2])
    result = cli("replay", "--protocol", "ollama-chat", str(cut))
    assert result.returncode == 1 and "incomplete" in result.stdout


def test_sniffing_tells_the_protocols_apart() -> None:
    assert all(sniff_native(p.read_bytes()) == "gemini-stream" for p in GEMINI)
    assert all(sniff_native(p.read_bytes()) == "ollama-chat" for p in OLLAMA)
    assert sniff_native(b'data: {"id":"chatcmpl","choices":[]}\n\n') is None
    assert sniff_native(b'{"type":"message_start"}\n') is None
