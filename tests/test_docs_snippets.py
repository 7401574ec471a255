"""The quickstart's main example runs as written and prints what the page says it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def python_blocks(page: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (DOCS / page).read_text(encoding="utf-8"), re.S | re.M)


def test_quickstart_example_streams_a_tool_calling_answer_offline(tmp_path: Path) -> None:
    script = tmp_path / "quickstart.py"
    script.write_text(python_blocks("quickstart.md")[0], encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Let me check the weather."
    assert "get_weather {'city': 'Paris'}" in lines
    assert re.match(r"tool_calls input_tokens=\d+ output_tokens=\d+", lines[-1])
