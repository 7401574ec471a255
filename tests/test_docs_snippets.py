"""Every Python block in the documentation runs as written, or says it is a fragment and compiles.

The blocks are those fenced with ```` ```python ```` in ``docs/**/*.md`` and ``README.md`` (indented blocks
inside lists included). The HTML comment on the line just before a block's fence says what it is:

- no marker (or ``<!-- run -->``): a complete program. It is executed in a fresh process with an empty working directory and a
  timeout, and must exit with status 0. Programs that talk to a model use the offline provider
  (``schwarm_stream.testing.ProviderServer`` with ``OfflineProvider``), never the network.
- ``<!-- continues -->``: the continuation of the block before it on the same page (the page says "append
  this"). The blocks are joined and executed together, as above.
- ``<!-- fragment -->`` (optionally ``<!-- fragment: why -->``): an excerpt that cannot run alone, such as a
  call against a real provider or the inside of a function. It must compile (top-level ``await``,
  ``async with`` and ``async for`` allowed).
- ``<!-- tested-by: tests/test_x.py -->``: a block that is not a program, such as a pytest module, which
  the named test executes in its own way. That test must exist and read this page; the block must compile.

A ```` ```text ```` block after a program, marked ``<!-- output -->``, is what the program prints: its output must
end with those lines.

No block is left out: a block without a marker that does not run fails the test named after its page and line.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]

FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.S | re.M)
MARKER = re.compile(r"<!--\s*(?P<kind>[a-z-]+)\s*(?::(?P<arg>[^>]*))?-->\s*$")
OUTPUT = re.compile(r"<!--\s*output\s*-->[ \t]*\n[ \t]*```text\n(?P<text>.*?)^[ \t]*```", re.S | re.M)
KINDS = {"run", "continues", "fragment", "tested-by"}
TIMEOUT = 90  # seconds for one program; they take about a second each


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # line of the opening fence
    kind: str  # one of KINDS
    code: str
    arg: str = ""  # what follows the marker's colon
    output: str | None = None  # the <!-- output --> block after it, before the next Python block

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def blocks_of(path: Path) -> list[Block]:
    """The Python blocks of one page, each with the marker on the line before its fence."""
    return blocks_in(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())


def blocks_in(text: str, page: str) -> list[Block]:
    """The Python blocks of ``text`` (the page ``page``)."""
    found = []
    fences = list(FENCE.finditer(text))
    for i, m in enumerate(fences):
        nxt = fences[i + 1] if i + 1 < len(fences) else None
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        marker = MARKER.match(before)
        kind = marker.group("kind") if marker else "run"
        arg = (marker.group("arg") or "").strip() if marker else ""
        output = OUTPUT.search(text, m.end(), nxt.start() if nxt else len(text))
        found.append(
            Block(
                page=page,
                line=text[: m.start()].count("\n") + 1,
                kind=kind,
                code=textwrap.dedent(m.group("code")),
                arg=arg,
                output=textwrap.dedent(output.group("text")) if output else None,
            )
        )
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks_of(page)]


def program(block: Block) -> str:
    """The code to execute for a block: a ``continues`` block is joined to the blocks it continues."""
    page = [b for b in ALL_BLOCKS if b.page == block.page]
    parts = [block.code]
    i = page.index(block)
    while page[i].kind == "continues":
        assert i > 0 and page[i - 1].kind != "fragment", f"{block.name} continues no program"
        i -= 1
        parts.insert(0, page[i].code)
    return "\n\n".join(parts)


def test_the_collector_finds_the_blocks_and_markers() -> None:
    sample = (
        "Text.\n\n```python\nprint(1)\n```\n\n<!-- output -->\n```text\n1\n```\n\n"
        "<!-- fragment: needs a key -->\n```python\nawait x\n```\n"
        "1. a list item:\n\n   <!-- continues -->\n   ```python\n   print(2)\n   ```\n"
        "<!-- tested-by: tests/test_x.py -->\n```python\nimport x\n```\n"
        "```pycon\n>>> no\n```\n"
    )
    found = blocks_in(sample, "docs/sample.md")
    assert [(b.kind, b.code, b.line, b.output) for b in found] == [
        ("run", "print(1)\n", 3, "1\n"),
        ("fragment", "await x\n", 13, None),
        ("continues", "print(2)\n", 19, None),
        ("tested-by", "import x\n", 23, None),
    ]
    assert found[1].arg == "needs a key" and found[3].arg == "tests/test_x.py"
    assert len(ALL_BLOCKS) > 40 and {b.page for b in ALL_BLOCKS} >= {"README.md", "docs/quickstart.md"}


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.name)
def test_marker_is_known(block: Block) -> None:
    assert block.kind in KINDS, f"{block.name}: unknown marker <!-- {block.kind} -->, use one of {KINDS}"


@pytest.mark.parametrize(
    "block", [b for b in ALL_BLOCKS if b.kind in {"fragment", "tested-by"}], ids=lambda b: b.name
)
def test_fragment_compiles(block: Block) -> None:
    compile(block.code, block.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.kind == "tested-by"], ids=lambda b: b.name)
def test_tested_by_names_a_test_that_reads_the_page(block: Block) -> None:
    test = ROOT / block.arg
    assert block.arg.startswith("tests/") and test.is_file(), f"{block.name}: no test {block.arg!r}"
    assert Path(block.page).name in test.read_text(encoding="utf-8"), (
        f"{block.arg} does not read {block.page}"
    )


# The programs import the SDKs, which takes a second or more each. On Linux one runner process imports them
# once and forks a child per program: a fresh process as far as the program can tell (its own working
# directory, environment, modules state, stdout and stderr), without the import cost.
RUNNER = r"""
import json, os, runpy, signal, sys, traceback
for name in ("schwarm_stream", "schwarm_stream.testing", "openai", "anthropic", "httpx", "pydantic"):
    try:
        __import__(name)
    except ImportError:
        pass
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(job["cwd"])
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # the jobs pipe is not the program's stdin
            for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
            sys.argv = [job["script"]]
            sys.path[0] = os.path.dirname(job["script"])
            runpy.run_path(job["script"], run_name="__main__")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
    signal.alarm(job["timeout"])
    _, status = os.waitpid(pid, 0)
    signal.alarm(0)
    print(json.dumps(os.waitstatus_to_exitcode(status)), flush=True)
"""


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


class Runner:
    """Runs programs in fresh processes: forked from a runner that imported the SDKs, or spawned."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen[str] | None = None
        if sys.platform == "linux":
            self.process = subprocess.Popen(
                [sys.executable, "-c", RUNNER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )

    def run(self, script: Path, cwd: Path) -> Done:
        out, err = script.with_suffix(".out"), script.with_suffix(".err")
        if self.process is None:
            done = subprocess.run(
                [sys.executable, str(script)],
                capture_output=True,
                text=True,
                cwd=cwd,
                env=self.env,
                timeout=TIMEOUT,
            )
            return Done(done.returncode, done.stdout, done.stderr)
        assert self.process.stdin is not None and self.process.stdout is not None
        job = {
            "script": str(script),
            "cwd": str(cwd),
            "stdout": str(out),
            "stderr": str(err),
            "timeout": TIMEOUT,
        }
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        returncode = json.loads(self.process.stdout.readline())
        return Done(returncode, out.read_text(encoding="utf-8"), err.read_text(encoding="utf-8"))

    def close(self) -> None:
        if self.process is not None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHWARM_STREAM")}
    # A program that tried a real provider would fail on the missing key rather than wait on the network.
    env.update({"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": "", "PYTHONDONTWRITEBYTECODE": "1"})
    started = Runner(env)
    yield started
    started.close()


@pytest.mark.parametrize(
    "block", [b for b in ALL_BLOCKS if b.kind in {"run", "continues"}], ids=lambda b: b.name
)
def test_program_runs_offline(block: Block, runner: Runner, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(program(block), encoding="utf-8")
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    done = runner.run(script, workdir)
    assert done.returncode == 0, f"{block.name} failed:\n{done.stdout}\n{done.stderr}"
    assert list(workdir.iterdir()) == [], f"{block.name} left files in the working directory"
    if block.output is not None:
        documented = block.output.splitlines()
        assert done.stdout.splitlines()[-len(documented) :] == documented, f"{block.name} printed otherwise"


def python_blocks(page: str) -> list[str]:
    return [b.code for b in blocks_of(DOCS / page)]


def test_quickstart_example_streams_a_tool_calling_answer_offline(tmp_path: Path) -> None:
    script = tmp_path / "quickstart.py"
    script.write_text(python_blocks("quickstart.md")[0], encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Let me check the weather."
    assert "get_weather {'city': 'Paris'}" in lines
    assert re.match(r"tool_calls input_tokens=\d+ output_tokens=\d+", lines[-1])
