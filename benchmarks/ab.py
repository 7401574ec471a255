"""Before/after, side by side: ``run.py --quick`` on two revisions, interleaved in one session.

    python benchmarks/ab.py --before v0.1.0              # a git ref; the working tree is "after"
    python benchmarks/ab.py --before HEAD~3 --rounds 5

The "before" revision is checked out into a temporary git worktree and put first
on ``PYTHONPATH``, so both sides run in the same virtualenv with the same
installed dependencies and plugins; rounds alternate (before, after, before, ...)
so machine drift hits both alike. Each row is the median over rounds of each
side's median, and the ratio after/before (< 1 is faster). Nothing is asserted.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parent.parent


def _run(tree: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, str(tree / "benchmarks" / "run.py"), "--quick", "--json"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise click.ClickException(f"run.py failed in {tree}:\n{out.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def _rows(data: dict[str, Any]) -> dict[str, float]:
    rows = {name: r["median_us"] for name, r in data["results"].items() if r.get("median_us") is not None}
    for name, ms in (data.get("ttfe", {}).get("median_ms") or {}).items():
        rows[f"ttfe.{name} (ms)"] = ms
    return rows


@click.command()
@click.option("--before", "ref", required=True, help="git ref of the 'before' revision")
@click.option("--rounds", default=3, show_default=True, help="runs of each side, interleaved")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def main(ref: str, rounds: int, as_json: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        before_tree = Path(tmp) / "before"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(before_tree), ref],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            sides: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
            for i in range(rounds):
                for side, tree in (("before", before_tree), ("after", ROOT)):
                    click.echo(f"round {i + 1}/{rounds}: {side}", err=True)
                    sides[side].append(_rows(_run(tree)))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before_tree)], cwd=ROOT, check=False)
    table: dict[str, dict[str, float | None]] = {}
    for name in sides["after"][0]:  # a case only one side has is shown with "-" on the other
        b = statistics.median(r[name] for r in sides["before"]) if name in sides["before"][0] else None
        a = statistics.median(r[name] for r in sides["after"])
        table[name] = {"before": b, "after": a, "ratio": a / b if b else None}
    if as_json:
        click.echo(json.dumps({"before": ref, "rounds": rounds, "rows": table}, indent=2))
        return
    click.echo(f"{'case':40} {'before':>10} {'after':>10} {'after/before':>13}")
    for name, row in table.items():
        ratio = f"{row['ratio']:.2f}" if row["ratio"] is not None else "-"
        before = f"{row['before']:.2f}" if row["before"] is not None else "-"
        click.echo(f"{name:40} {before:>10} {row['after']:10.2f} {ratio:>13}")
    click.echo("µs per chunk unless marked; medians over interleaved rounds", err=True)


if __name__ == "__main__":
    main()
