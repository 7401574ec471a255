"""The documentation site: it builds in strict mode, its nav and docs/ agree, the README's links resolve."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"

# [text](target) and ![alt](target), with an optional "title"; and reference definitions `[x]: target`.
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def nav_pages(node: Any) -> Iterator[str]:
    """Every page path in an mkdocs ``nav`` (nested lists of ``{title: page-or-list}`` or bare paths)."""
    if isinstance(node, str):
        if not re.match(r"^[a-z][a-z0-9+.-]*://", node):  # external links in the nav are not pages
            yield node
    elif isinstance(node, list):
        for item in node:
            yield from nav_pages(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from nav_pages(value)


def local_links(markdown: str) -> list[str]:
    """Link targets that point into the repository (not URLs, not in-page anchors), code blocks excluded."""
    text = FENCE.sub("", markdown)
    targets = INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)
    return [t for t in targets if not re.match(r"^([a-z][a-z0-9+.-]*:|#)", t, re.IGNORECASE)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module's tests, in strict mode."""
    pytest.importorskip("mkdocs")  # CI installs the docs extra (.ci/steps.d/40-docs.sh) before the tests
    site = tmp_path_factory.mktemp("site")
    command = ["build", "--strict", "--config-file", str(MKDOCS_YML), "--site-dir", str(site)]
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", *command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return site


def test_docs_build_in_strict_mode(site: Path) -> None:
    nav = yaml.safe_load(MKDOCS_YML.read_text(encoding="utf-8"))["nav"]
    for page in nav_pages(nav):  # every nav page was rendered, the API reference with its docstrings
        built = site / ("index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html")
        assert built.is_file(), f"{page} was not built"
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    assert "schwarm_stream.open" in api and "doc-object" in api  # mkdocstrings rendered the objects
    assert not (site / "_ext").exists(), "the build's griffe extension was published as a file of the site"


# A Sphinx role left as text: ":class:`X`" renders as ":class:<code>X</code>".
RAW_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const):(?:<code>|`)")


def test_no_sphinx_role_is_shown_as_raw_text(site: Path) -> None:
    raw = {
        page.relative_to(site).as_posix(): RAW_ROLE.findall(page.read_text(encoding="utf-8"))
        for page in site.rglob("*.html")
    }
    assert {page: found for page, found in raw.items() if found} == {}


def test_roles_and_signature_types_are_links(site: Path) -> None:
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    entry = api[api.index('id="schwarm_stream.open"') :]
    entry = entry[: entry.index('<div class="doc doc-object')]
    # The docstring's :class:`Pipeline` and the signature's return type both link to their entries.
    assert re.search(r'<a class="autorefs autorefs-internal"[^>]*href="#schwarm_stream\.Pipeline"', entry)
    assert re.search(r'href="#schwarm_stream\.Stream"[^>]*>.*Stream', entry)
    text = re.sub(r"<[^>]+>", "", api)
    assert "tools: Mapping[str, ToolFunction]" in text  # agent_loop's signature, with its types
    assert "-&gt; AgentLoop" in text


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    config = yaml.safe_load(MKDOCS_YML.read_text(encoding="utf-8"))
    assert config.get("strict") is True and config.get("docs_dir", "docs") == "docs"
    in_nav = list(nav_pages(config["nav"]))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert sorted(p for p in set(in_nav) if not (DOCS / p).is_file()) == [], "nav entries without a page"
    assert sorted(pages - set(in_nav)) == [], "pages in docs/ missing from the nav of mkdocs.yml"
    assert len(in_nav) == len(set(in_nav)), "a page is listed twice in the nav"


def test_every_internal_link_in_the_readme_points_to_an_existing_file() -> None:
    readme = ROOT / "README.md"
    links = local_links(readme.read_text(encoding="utf-8"))
    assert links, "the README links to no local file: is the link pattern still right?"
    missing = [t for t in links if not (readme.parent / t.split("#", 1)[0]).exists()]
    assert missing == []


def test_the_link_finder_sees_what_the_readme_test_relies_on() -> None:
    sample = (
        'See [the quickstart](docs/quickstart.md#install), ![logo](img/logo.png "Logo"),\n'
        "[pluggy](https://pluggy.readthedocs.io/), [top](#top) and <https://example.com>.\n"
        "```python\nx = [a](not/a/link.md)\n```\n"
        '[ref]: CHANGELOG.md "Changes"\n'
    )
    assert local_links(sample) == ["docs/quickstart.md#install", "img/logo.png", "CHANGELOG.md"]


def test_the_corpus_size_in_readme_and_index_is_the_corpus_size() -> None:
    from tests.support.corpus import full_corpus_root as corpus_root
    from tests.support.corpus import load_corpus

    root = corpus_root()
    if root is None:  # only the full corpus has the documented size
        pytest.skip("stream corpus not found (../shared/corpus or $SCHWARM_STREAM_CORPUS)")
    count = len(load_corpus(root))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    assert re.search(rf"corpus \({count} streams\)", readme)
    assert re.search(rf"every one of the {count}\s+recorded provider streams", index)
