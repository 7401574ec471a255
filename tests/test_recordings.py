"""The sample recordings shipped in ``examples/recordings/``: replayed through the CLI (official SDK client,
real socket), they give the official SDKs' own accumulated result, in every clone (no corpus needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.oracle import sdk_result

RECORDINGS = Path(__file__).resolve().parent.parent / "examples" / "recordings"
SAMPLES = {
    "openai-chat-tool-call.sse": "openai-chat",
    "openai-chat-tool-call.jsonl": "openai-chat",
    "anthropic-tool-use.sse": "anthropic-messages",
    "openai-responses-function-call.sse": "openai-responses",
}
SSE_OF = {"openai-chat-tool-call.jsonl": "openai-chat-tool-call.sse"}  # the same stream, SSE-framed


def _replay(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHWARM_STREAM")}
    return subprocess.run(
        [sys.executable, "-m", "schwarm_stream", "replay", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_every_sample_has_provenance() -> None:
    provenance = (RECORDINGS / "PROVENANCE.md").read_text(encoding="utf-8")
    shipped = {p.name for p in RECORDINGS.iterdir() if p.suffix in (".sse", ".jsonl")}
    assert shipped == set(SAMPLES)
    for name in shipped:
        assert f"`{name}`" in provenance, name


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_replayed_sample_equals_the_sdk_accumulator(name: str) -> None:
    proc = _replay("--json", str(RECORDINGS / name))
    assert proc.returncode == 0, proc.stderr
    [ours] = [json.loads(line) for line in proc.stdout.splitlines()]
    body = (RECORDINGS / SSE_OF.get(name, name)).read_bytes()
    expected = sdk_result(SAMPLES[name], body)
    assert ours["complete"] is True and ours["error"] is None
    assert ours["text"] == expected["text"]
    assert ours["finish_reason"] == expected["finish_reason"]
    assert ours["usage"] == expected["usage"]
    assert [t["name"] for t in ours["tool_calls"]] == [t["name"] for t in expected["tool_calls"]]
    assert ours["tool_calls"], "each sample holds a tool call"
    for t, e in zip(ours["tool_calls"], expected["tool_calls"], strict=True):
        assert json.loads(t["arguments"]) == e.get("input", json.loads(e.get("arguments") or "{}"))


def test_json_lines_are_recognised_by_content_and_broken_lines_named(tmp_path: Path) -> None:
    lines = (RECORDINGS / "openai-chat-tool-call.jsonl").read_text(encoding="utf-8").splitlines()
    good = tmp_path / "capture.txt"  # no *.chunks.txt name: recognised by its content
    good.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = _replay("--json", str(good))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["finish_reason"] == "tool_calls"

    broken = tmp_path / "broken.txt"
    broken.write_text("\n".join([*lines[:2], '{"id": "chatcmpl-x", "choices": [', *lines[2:]]) + "\n")
    proc = _replay("--json", str(broken))
    assert proc.returncode == 1
    assert "broken.txt: line 3 is not valid JSON" in proc.stdout + proc.stderr
