"""The layering, enforced: the core imports no built-in, no built-in imports another.

Read statically (``ast``), so an import inside a function counts as much as one
at the top of a module. The layout this guards is drawn in docs/concepts.md
("Architecture").
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "schwarm_stream"

#: Layers above the core. The core may import none of them; they import the core.
OUTER = ("builtins", "sources", "sinks", "compose", "cli", "testing", "transformers")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute, including imports inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            found.add(stem)
            # ``from . import retry`` imports a module named by the alias
            found.update(f"{stem}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("schwarm_stream")}


def _core_modules() -> list[Path]:
    """Top-level modules of the package, except the public facade ``__init__``."""
    return sorted(
        p for p in PACKAGE.glob("*.py") if p.name not in {"__init__.py", "__main__.py", "transformers.py"}
    )


def _builtins() -> list[Path]:
    return sorted(p for p in (PACKAGE / "builtins").glob("*.py") if p.name != "__init__.py")


#: What the core may take from the sources layer: the source contract, nothing that speaks a protocol.
SOURCE_CONTRACT = frozenset(
    {
        "schwarm_stream.sources",
        "schwarm_stream.sources.Source",
        "schwarm_stream.sources.as_source",
        "schwarm_stream.sources._base",
        "schwarm_stream.sources._base.Source",
        "schwarm_stream.sources._base.as_source",
    }
)


def _layer(name: str) -> str | None:
    if name in SOURCE_CONTRACT:
        return None
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in OUTER else None


def test_the_layout_exists() -> None:
    # guards the two tests below against passing on an empty glob
    assert len(_core_modules()) >= 8
    assert {p.stem for p in _builtins()} >= {
        "accumulate",
        "buffer",
        "metrics",
        "recovery",
        "retry",
        "timeouts",
    }


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: p.name)
def test_the_core_imports_no_outer_layer(path: Path) -> None:
    leaks = sorted(name for name in _imports(path) if _layer(name))
    assert not leaks, f"{path.name} (core) imports {leaks}: the core asks plugins, it never names them"


@pytest.mark.parametrize("path", _builtins(), ids=lambda p: p.name)
def test_no_builtin_imports_another_builtin(path: Path) -> None:
    own = f"schwarm_stream.builtins.{path.stem}"
    others = sorted(
        name
        for name in _imports(path)
        if name.startswith("schwarm_stream.builtins.") and not name.startswith(own)
    )
    assert not others, f"built-in {path.stem} imports {others}: built-ins talk through hooks and the stash"


@pytest.mark.parametrize("path", _builtins(), ids=lambda p: p.name)
def test_builtins_import_only_the_core(path: Path) -> None:
    outer = sorted(name for name in _imports(path) if _layer(name) not in (None, "builtins"))
    assert not outer, f"built-in {path.stem} imports {outer}"


def test_the_import_reader_sees_relative_and_nested_imports(tmp_path: Path) -> None:
    # the checker itself: a nested relative import is found and resolved
    probe = PACKAGE / "builtins" / "retry.py"
    names = _imports(probe)
    assert "schwarm_stream.hookspecs" in names or "schwarm_stream._hooks" in names, names
