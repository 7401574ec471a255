"""A griffe extension for the API reference: Sphinx roles in docstrings become cross-references.

The docstrings are written with Sphinx roles (``:class:`~schwarm_stream.Stream```, ``:func:`open```,
``:meth:`from_dict```); mkdocstrings renders Markdown, where they would show as raw text. Once the package
is loaded, every role is resolved the way Sphinx resolves it (the object's own members, then the
enclosing class and module scopes, then the package) and replaced by an optional autorefs reference: a
link when the target is on the site, its name in code otherwise (a private helper, a name of another
project). ``~`` shows the last component only, ``Title <target>`` shows the title.

A reST literal-block marker (a paragraph ending in ``::`` before an indented block) becomes a colon; the
indented block is already a Markdown code block.

Loaded by mkdocstrings (``mkdocs.yml``: ``extensions: [docs/_ext/sphinx_roles.py]``).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

__all__ = ["ROLE", "SphinxRoles", "convert", "resolve"]

ROLE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|attr|mod|data|exc|obj|const):`(?P<body>[^`]+)`",
)
_TITLED = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^<>]+)>$")
# "text::" at the end of a paragraph (reST: a colon and a literal block follows); "::" alone on a line.
_LITERAL_MARKER = re.compile(r"(?<=\S)::[ \t]*$|^[ \t]*::[ \t]*\n", re.MULTILINE)


def _lookup(collection: griffe.ModulesCollection, path: str) -> griffe.Object | griffe.Alias | None:
    """The object at a dotted ``path``, or ``None`` (aliases that cannot be resolved count as missing)."""
    try:
        found = collection.get_member(path)
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    return found  # type: ignore[no-any-return]


def resolve(
    obj: griffe.Object | griffe.Alias, target: str, collection: griffe.ModulesCollection
) -> str | None:
    """The path ``target`` names, seen from ``obj``'s docstring: its members, enclosing scopes, then absolute."""
    target = target.lstrip(".")
    package = obj.path.split(".", 1)[0]
    candidates = []
    scope: griffe.Object | griffe.Alias | None = obj
    while scope is not None:
        candidates.append(f"{scope.path}.{target}")
        scope = scope.parent
    candidates += [target, f"{package}.{target}"]
    for path in candidates:
        found = _lookup(collection, path)
        if found is not None:
            # A name imported into a module is an alias: link to where it is defined (its canonical path),
            # which the rendered entry registers whatever public path its directive used.
            return found.canonical_path if found.is_alias else path
    return None


def convert(text: str, obj: griffe.Object | griffe.Alias, collection: griffe.ModulesCollection) -> str:
    """``text`` with its roles as autorefs references and its ``::`` literal markers as colons."""

    def replace(match: re.Match[str]) -> str:
        body = match["body"].strip()
        titled = _TITLED.match(body)
        if titled:
            title, target = titled["title"], titled["target"].strip()
        else:
            target = body.lstrip("~")
            title = target.rsplit(".", 1)[-1] if body.startswith("~") else target
        if match["role"] in {"func", "meth"} and not title.endswith(")"):
            title += "()"
        code = f"<code>{html.escape(title)}</code>"
        path = resolve(obj, target.rstrip("()"), collection)
        if path is None:
            return code
        return f'<autoref optional identifier="{html.escape(path)}">{code}</autoref>'

    text = ROLE.sub(replace, text)
    return _LITERAL_MARKER.sub(lambda m: "" if m.group(0).endswith("\n") else ":", text)


class SphinxRoles(griffe.Extension):
    """Rewrite every docstring of the package once it is loaded (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Walk the whole package: modules, classes, functions and attributes."""
        seen: set[int] = set()

        def walk(obj: griffe.Object) -> None:
            if id(obj) in seen:
                return
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value, obj, loader.modules_collection)
            for member in obj.members.values():
                if not member.is_alias:
                    walk(member)  # type: ignore[arg-type]

        walk(pkg)
