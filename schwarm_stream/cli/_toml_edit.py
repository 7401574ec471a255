"""Set keys of one table in a TOML file's text, keeping everything else (comments, order) as written.

No TOML writer is a dependency, and a round trip through one would drop the user's comments. So
only the lines of the keys set change: a ``key = value`` line of the table is replaced, or added
under the table's header, or the table is appended. The result is parsed again and must equal the
original data with exactly those keys changed; anything else (a multi-line value, the table
written as dotted keys or inline) raises :class:`ValueError` and nothing is written.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Mapping
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["set_table_keys", "toml_value"]

_HEADER = re.compile(r"^\s*\[\s*(?P<name>[A-Za-z0-9_-]+)\s*\]\s*(#.*)?$")
_ANY_HEADER = re.compile(r"^\s*\[")


def toml_value(value: list[str]) -> str:
    """A list of strings as a one-line TOML array (JSON string escapes are valid TOML basic strings)."""
    return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in value) + "]"


def _key_line(key: str) -> re.Pattern[str]:
    return re.compile(rf"^(?P<indent>\s*)(?:{key}|\"{key}\"|'{key}')\s*=")


def set_table_keys(text: str, table: str, values: Mapping[str, list[str]]) -> str:
    """``text`` with ``[table]``'s ``values`` set; ValueError when that cannot be done exactly."""
    data = tomllib.loads(text)  # TOMLDecodeError is a ValueError: a broken file is not edited
    lines = text.splitlines(keepends=True)
    start = next(
        (i for i, line in enumerate(lines) if (m := _HEADER.match(line)) and m["name"] == table), None
    )
    if start is None:
        if table in data:  # defined as dotted keys or an inline table: not a header this edit can extend
            raise ValueError(f"[{table}] is not written as a table header")
        tail = "" if not text or text.endswith("\n") else "\n"
        gap = "\n" if text.strip() else ""  # a blank line before the new table, unless it is the first
        body = "".join(f"{key} = {toml_value(v)}\n" for key, v in values.items())
        new_text = f"{text}{tail}{gap}[{table}]\n{body}"
    else:
        end = next((i for i in range(start + 1, len(lines)) if _ANY_HEADER.match(lines[i])), len(lines))
        added: list[str] = []
        for key, value in values.items():
            pattern = _key_line(re.escape(key))
            found = next((i for i in range(start + 1, end) if pattern.match(lines[i])), None)
            line = f"{key} = {toml_value(value)}\n"
            if found is None:
                added.append(line)
            else:
                match = pattern.match(lines[found])
                indent = match["indent"] if match else ""
                lines[found] = indent + line
        if lines and not lines[start].endswith("\n"):
            lines[start] += "\n"
        lines[start + 1 : start + 1] = added
        new_text = "".join(lines)
    expected: dict[str, Any] = copy.deepcopy(data)
    expected.setdefault(table, {}).update({k: list(v) for k, v in values.items()})
    try:
        parsed: Any = tomllib.loads(new_text)
    except ValueError:  # e.g. the rest of a multi-line array left behind
        parsed = None
    if parsed != expected:
        raise ValueError(f"the [{table}] keys {', '.join(values)} are not each on one line")
    return new_text
