"""The API reference covers the public surface: every name in the ``__all__`` of every public module.

``docs/api.md`` is a list of mkdocstrings directives (``::: schwarm_stream.compose.agent.ToolResult``); the
config sections of the built-in plugins are rendered on their own pages (``docs/builtins/*.md``). A name
counts as covered when a directive names it, or names the same object under another public path (an
object exported by two modules is documented once). The Sphinx roles of the docstrings are turned into
links by ``docs/_ext/sphinx_roles.py``, tested here on its own; the built site is checked in
``tests/test_docs_site.py``.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import types
from pathlib import Path
from typing import Any

import griffe
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REFERENCE_PAGES = [DOCS / "api.md", *sorted((DOCS / "builtins").glob("*.md"))]
DIRECTIVE = re.compile(r"^::: (\S+)\s*$", re.MULTILINE)

PUBLIC_MODULES = [
    "schwarm_stream",
    "schwarm_stream.sources",
    "schwarm_stream.sinks",
    "schwarm_stream.testing",
    "schwarm_stream.transformers",
    "schwarm_stream.compose",
    "schwarm_stream.compose.agent",
    "schwarm_stream.compose.callbacks",
    "schwarm_stream.compose.fanout",
    "schwarm_stream.compose.multi",
    "schwarm_stream.compose.ratelimit",
    "schwarm_stream.config",
    "schwarm_stream.hookspecs",
    "schwarm_stream.cost",
]


def directives(page: Path) -> list[str]:
    return DIRECTIVE.findall(page.read_text(encoding="utf-8"))


def resolve(path: str) -> Any:
    """The object a directive names: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            value = getattr(value, name)
        return value
    raise ImportError(path)


def documented() -> tuple[set[str], set[int]]:
    """The paths named by a directive, and the identities of the objects they name."""
    paths = {path for page in REFERENCE_PAGES for path in directives(page)}
    return paths, {id(resolve(path)) for path in paths}


def _by_identity(value: Any) -> bool:
    # Classes, functions and other singletons are the same object under every path; a string or a number
    # may be an unrelated constant that happens to be equal, so those also need the same name.
    return not isinstance(value, str | int | float | bool | tuple | frozenset | type(None))


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_name_in_all_is_in_the_reference(module: str) -> None:
    mod = importlib.import_module(module)
    paths, objects = documented()
    missing = []
    for name in mod.__all__:
        value = getattr(mod, name)
        if f"{module}.{name}" in paths:
            continue
        if _by_identity(value) and id(value) in objects:
            continue
        if any(path.rsplit(".", 1)[-1] == name and resolve(path) is value for path in paths):
            continue  # a constant re-exported under the same name
        missing.append(name)
    assert missing == [], (
        f"names of {module}.__all__ missing from docs/api.md: {missing} (python docs/_ext/gen_api.py writes it)"
    )


def test_the_reference_names_only_public_objects() -> None:
    """No private module in a path, and every object directive is exported by its module."""
    for page in REFERENCE_PAGES:
        for path in directives(page):
            assert not any(part.startswith("_") and part != "__version__" for part in path.split(".")), path
            value = resolve(path)
            if isinstance(value, types.ModuleType):
                continue
            module, name = path.rsplit(".", 1)
            mod = importlib.import_module(module)
            exported = [
                *getattr(mod, "__all__", ()),
                *getattr(mod, "HOOK_NAMES", ()),
            ]  # the hooks are the API
            assert name in exported or page.parent.name == "builtins", f"{path} is not in {module}.__all__"


def test_each_object_is_documented_once_on_the_api_page() -> None:
    paths = directives(DOCS / "api.md")
    assert len(paths) == len(set(paths))
    seen: dict[int, str] = {}
    for path in paths:
        value = resolve(path)
        if isinstance(value, types.ModuleType) or not _by_identity(value):
            continue
        assert id(value) not in seen, f"{path} is {seen[id(value)]} again"
        seen[id(value)] = path


def test_the_things_the_quickstart_uses_are_in_the_reference() -> None:
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    for path in (
        "schwarm_stream.agent_loop",
        "schwarm_stream.compose.agent.ToolResult",
        "schwarm_stream.testing.OfflineProvider",
        "schwarm_stream.testing.ProviderServer",
    ):
        assert f"::: {path}\n" in api


def docs_module(name: str) -> types.ModuleType:
    """A helper module of the docs build, from ``docs/_ext/``."""
    spec = importlib.util.spec_from_file_location(name, DOCS / "_ext" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_page_is_what_gen_api_writes() -> None:
    expected = docs_module("gen_api").render()
    assert (DOCS / "api.md").read_text(encoding="utf-8") == expected, "run python docs/_ext/gen_api.py"


# -- the Sphinx-role conversion -----------------------------------------------------------------------


def sphinx_roles() -> types.ModuleType:
    return docs_module("sphinx_roles")


@pytest.fixture(scope="module")
def package() -> tuple[types.ModuleType, griffe.GriffeLoader]:
    loader = griffe.GriffeLoader()
    loader.load("schwarm_stream")
    loader.resolve_aliases(external=False)
    return sphinx_roles(), loader


def test_roles_become_optional_autorefs(package: tuple[types.ModuleType, griffe.GriffeLoader]) -> None:
    roles, loader = package
    collection = loader.modules_collection
    stream_open = collection.get_member("schwarm_stream._pipeline.open")
    text = (
        "Build a :class:`Pipeline` once; see :func:`schwarm_stream.open_sync` and "
        ":class:`~schwarm_stream.StreamError`, :meth:`Config.from_dict`, :class:`the docs <Stream>`."
    )
    assert roles.convert(text, stream_open, collection) == (
        'Build a <autoref optional identifier="schwarm_stream._pipeline.Pipeline"><code>Pipeline</code>'
        "</autoref> once; see "
        '<autoref optional identifier="schwarm_stream._sync.open_sync"><code>schwarm_stream.open_sync()</code>'
        "</autoref> and "
        '<autoref optional identifier="schwarm_stream._errors.StreamError"><code>StreamError</code></autoref>, '
        '<autoref optional identifier="schwarm_stream.config.Config.from_dict"><code>Config.from_dict()</code>'
        "</autoref>, "
        '<autoref optional identifier="schwarm_stream._stream.Stream"><code>the docs</code></autoref>.'
    )


def test_a_member_is_found_from_its_class_and_an_unknown_name_stays_code(
    package: tuple[types.ModuleType, griffe.GriffeLoader],
) -> None:
    roles, loader = package
    collection = loader.modules_collection
    tool_call = collection.get_member("schwarm_stream._message.ToolCall")
    assert roles.resolve(tool_call, "parsed", collection) == "schwarm_stream._message.ToolCall.parsed"
    assert roles.convert(":data:`nowhere_at_all`", tool_call, collection) == "<code>nowhere_at_all</code>"


def test_literal_block_markers_become_colons(package: tuple[types.ModuleType, griffe.GriffeLoader]) -> None:
    roles, loader = package
    module = loader.modules_collection.get_member("schwarm_stream")
    text = "Example::\n\n    x = 1\n\nor\n\n::\n\n    y = 2\n"
    assert roles.convert(text, module, loader.modules_collection) == (
        "Example:\n\n    x = 1\n\nor\n\n\n    y = 2\n"
    )
