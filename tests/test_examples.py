"""Every example in ``examples/`` runs green, offline, in a subprocess, and says something meaningful."""

from __future__ import annotations

import ast
import json
import os
import re
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))  # _provider.py is a helper
WEB_CHAT = EXAMPLES / "web_chat" / "app.py"  # a server (runs until interrupted): tested on its own below

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


# Arguments the suite passes: no test binds a fixed port (a second run of the suite, or anything else on the
# machine, may hold it), so servers bind port 0 and report the port they got.
ARGS: dict[str, list[str]] = {"otel_prometheus.py": ["--port", "0"]}


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
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory the examples run in: it must stay empty (no example writes into its caller's folder)."""
    return tmp_path_factory.mktemp("examples-cwd")


@pytest.fixture(scope="module")
def runs(workdir: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run every example at once (each spends ~2 s importing the SDKs), then collect them all."""
    procs = {
        p.name: subprocess.Popen(
            [sys.executable, str(p), *ARGS.get(p.name, [])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=offline_env(),
            cwd=workdir,
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


def test_examples_write_nothing_into_the_callers_directory(
    runs: dict[str, subprocess.CompletedProcess[str]], workdir: Path
) -> None:
    assert all(proc.returncode == 0 for proc in runs.values())
    assert sorted(p.name for p in workdir.iterdir()) == []


def test_examples_with_a_port_option_are_run_on_port_zero() -> None:
    for script in SCRIPTS:
        if "--port" in script.read_text(encoding="utf-8"):
            assert ARGS.get(script.name, [])[:2] == ["--port", "0"], script.name


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


@pytest.mark.parametrize("source", sorted(EXAMPLES.rglob("*.py")), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_example_file_starts_with_a_header_comment(source: Path) -> None:
    docstring = ast.get_docstring(ast.parse(source.read_text(encoding="utf-8")))
    assert docstring and len(docstring.split()) >= 10, (
        f"{source.name} needs a header docstring saying what it shows"
    )
    if not source.name.startswith("_"):  # runnable: the header says how to run it
        assert f"python examples/{source.relative_to(EXAMPLES).as_posix()}" in docstring


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line of ``proc``, or ``""`` when none came within ``timeout`` seconds."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        return proc.stdout.readline() if sel.select(timeout) else ""


def test_web_chat_serves_a_tool_calling_answer_over_sse_without_a_browser(ctrl_c: None) -> None:
    """Its real entry point, driven by an HTTP client the way the page's JavaScript drives it."""
    proc = subprocess.Popen(
        [sys.executable, str(WEB_CHAT), "--delay", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=offline_env(),
        cwd=EXAMPLES.parent,
    )
    try:
        line = _first_line(proc, timeout=60)
        assert line, f"web_chat printed no URL (exit {proc.poll()})"
        url = json.loads(line)["url"]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        with httpx.Client(base_url=url, timeout=30) as http:
            page = http.get("/")
            assert page.status_code == 200 and "EventSource" in page.text
            channel = http.post("/chat", json={"prompt": "What's the weather in Rome?"}).json()["id"]
            with connect_sse(http, "GET", f"/chat/{channel}/events") as sse:
                assert sse.response.headers["content-type"].startswith("text/event-stream")
                events = [(e.event, json.loads(e.data)) for e in sse.iter_sse() if e.data]
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does: the app shuts down its servers and exits
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    names = [name for name, _ in events]
    assert names[-1] == "done" and names.count("done") == 1
    ends = [data for name, data in events if name == "end"]
    assert [e["outcome"] for e in ends] == ["complete", "complete"]  # turn 1 calls the tool, turn 2 answers
    assert ends[0]["tool_calls"][0]["name"] == "get_weather"
    assert ends[0]["tool_calls"][0]["arguments"] == {"city": "Rome"}
    text = "".join(data["text"] for name, data in events if name == "chunk" and data["kind"] == "text")
    assert text.endswith("The tool returned: Sunny and 21 degrees in Rome")
    assert proc.returncode == 0, err


def test_fastapi_sse_client_got_every_event_once_in_order(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    """What docs/web.md says the client receives: each event type, each with the next ``id:``."""
    proc = runs["fastapi_sse.py"]
    assert proc.returncode == 0, proc.stderr
    lines = [line.split(maxsplit=2) for line in proc.stdout.splitlines() if line.startswith("id=")]
    ids = [int(line[0].removeprefix("id=")) for line in lines]
    names = [line[1] for line in lines]
    assert ids == list(range(1, len(ids) + 1))
    assert names[0] == "response" and names[-2:] == ["end", "done"]
    assert set(names) == {"response", "chunk", "finish", "usage", "end", "done"}
    assert json.loads(lines[-2][2])["outcome"] == "complete"
