"""Every example in ``examples/`` runs green, offline, in a subprocess, and says something meaningful."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))  # _provider.py is a helper

# A line each example must print: the proof it did its job (on the offline provider). An example not
# listed here may declare its own line in its header ("Expect: <regex>"); otherwise it must at least
# print a last line that is not blank.
EXPECTED: dict[str, str] = {
    "minimal.py": r"^complete=True finish_reason=stop output_tokens=\d+$",
    "tool_loop_openai.py": r"^\[turn 1\] get_weather\(\{\"city\":\"Rome\"\}\) -> .*'Rome'",
    "tool_loop_anthropic.py": r"^outcome=complete turns=2 transcript=4 messages$",
    "custom_transformer.py": r"^consumers saw: .*my PIN is ####\.$",
    "sink_plugin.py": r"^wrote \d+ events to [0-9a-f]+\.jsonl$",
    "retry_recovery.py": r"^answer: 'You said: Hello!' after 2 attempts$",
    "multi_stream.py": r"^\[[0-9a-f]{8}\] Name a mountain in Chile\. -> You said: Name a mountain in Chile\.$",
    "sync_loop.py": r"^finish_reason=stop chunks=\d+$",
    "otel_console.py": r"^exported 2 streams: spans and metrics above$",
    "otel_prometheus.py": r"^scraped http://127\.0\.0\.1:\d+/metrics: 3 streams in gen_ai_client_operation_duration_seconds$",
}


def header(script: Path) -> str:
    return script.read_text(encoding="utf-8").split('"""')[1]


def expectation(script: Path) -> str | None:
    declared = re.search(r"^Expect:\s*(.+)$", header(script), re.MULTILINE)
    return EXPECTED.get(script.name) or (declared.group(1).strip() if declared else None)


def offline_env() -> dict[str, str]:
    """The environment minus provider keys: examples must take the offline path here."""
    drop = {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"}
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.fixture(scope="module")
def runs() -> dict[str, subprocess.CompletedProcess[str]]:
    """Run every example at once (each spends ~2 s importing the SDKs), then collect them all."""
    procs = {
        p.name: subprocess.Popen(
            [sys.executable, str(p)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=offline_env(),
            cwd=EXAMPLES.parent,
        )
        for p in SCRIPTS
    }
    done = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += "\n(killed after 120 s)"
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


def test_expectations_name_existing_examples() -> None:
    assert set(EXPECTED) <= {p.name for p in SCRIPTS}
    assert {"minimal.py", "tool_loop_openai.py", "tool_loop_anthropic.py", "sync_loop.py"} <= set(EXPECTED)


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_example_runs(script: Path, runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    text = header(script)
    assert "Shows:" in text and f"python examples/{script.name}" in text  # says what and how
    proc = runs[script.name]
    assert proc.returncode == 0, proc.stderr
    pattern = expectation(script)
    if pattern is None:
        assert proc.stdout.strip(), f"{script.name} printed nothing"
    else:
        assert re.search(pattern, proc.stdout, re.MULTILINE), proc.stdout
