"""The recorded LLM stream corpus the project's tests run over: the full one, or the subset shipped here.

Two copies of the same data exist, with the same layout and the same ``manifest.json`` rows:

* the **full corpus** (278 files), ``../shared/corpus`` beside the clone or ``$SCHWARM_STREAM_CORPUS``:
  real (and a few hand-made) provider streams collected from public SDK test fixtures;
* the **shipped subset** in ``tests/data/corpus/``: a few of those files per protocol, copied byte for
  byte, with their manifest rows and a ``PROVENANCE.md`` (:mod:`tests.support.corpus_subset` says which
  and why), so the equivalence claim is tested in every clone.

:func:`corpus_root` returns the full corpus where it is found, else the subset: the same tests run over
whichever is present.  ``SCHWARM_STREAM_CORPUS=subset`` forces the subset (what a plain clone runs).
Each file becomes complete raw SSE HTTP bodies (:func:`schwarm_stream.testing.corpus.to_sse_body`), so
tests can replay them through a server or a mock transport.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schwarm_stream.testing.corpus import PROTOCOLS, Protocol, to_sse_body

__all__ = [
    "CORPUS_ENV",
    "SUBSET",
    "SUBSET_ROOT",
    "CorpusStream",
    "corpus_root",
    "full_corpus_root",
    "is_subset",
    "load_corpus",
    "load_http_errors",
]

CORPUS_ENV = "SCHWARM_STREAM_CORPUS"
"""Environment variable naming the full corpus directory, or ``subset`` for the shipped subset only."""
SUBSET = "subset"
"""The :data:`CORPUS_ENV` value that hides the full corpus."""
SUBSET_ROOT = Path(__file__).resolve().parent.parent / "data" / "corpus"
"""The subset shipped in the repository."""

_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class CorpusStream:
    """One complete recorded response, as the raw SSE body a server would send."""

    file: str
    """Path relative to the corpus root (the manifest's ``file``)."""
    index: int
    """Which response within the file (0-based); >0 only for multi-response jsonl files."""
    protocol: Protocol
    body: bytes = field(repr=False)
    manifest: dict[str, Any] = field(repr=False, compare=False)
    """The manifest row of ``file`` (shared by all streams of that file)."""

    @property
    def id(self) -> str:
        """Stable test id, ``"<file>#<index>"`` (the same in the full corpus and the subset)."""
        return f"{self.file}#{self.index}"


def _is_corpus(path: Path) -> bool:
    return (path / _MANIFEST).is_file()


def _walk_up(start: Path) -> Iterator[Path]:
    start = start.resolve()
    for directory in (start, *start.parents):
        # "../shared/corpus" of every ancestor == "<ancestor's parent>/shared/corpus"; checking
        # "<dir>/shared/corpus" for every dir on the way up covers exactly those.
        yield directory / "shared" / "corpus"


def full_corpus_root(start: Path | None = None) -> Path | None:
    """Locate the full corpus (the directory holding its ``manifest.json``); never the subset.

    Order: ``$SCHWARM_STREAM_CORPUS`` if set (authoritative: ``subset``, or a directory that is not a
    corpus, gives ``None`` rather than silently another copy), else the first ``../shared/corpus`` found
    walking up from ``start`` (default: the current directory), else the same walk from this file.
    """
    env = os.environ.get(CORPUS_ENV)
    if env:
        path = Path(env).expanduser()
        return path.resolve() if env != SUBSET and _is_corpus(path) else None
    for origin in (start or Path.cwd(), Path(__file__).parent):
        for candidate in _walk_up(origin):
            if _is_corpus(candidate):
                return candidate.resolve()
    return None


def corpus_root(start: Path | None = None) -> Path | None:
    """The corpus to run over: the full one (:func:`full_corpus_root`) where found, else the subset.

    ``None`` only when ``$SCHWARM_STREAM_CORPUS`` names a directory that is not a corpus (a broken
    setting is not papered over with the subset), or the subset is missing from the checkout.
    """
    full = full_corpus_root(start)
    if full is not None:
        return full
    env = os.environ.get(CORPUS_ENV)
    if env and env != SUBSET:
        return None
    return SUBSET_ROOT if _is_corpus(SUBSET_ROOT) else None


def is_subset(root: Path | None) -> bool:
    """Whether ``root`` is the shipped subset (tests that count streams expect fewer there)."""
    return root is not None and root.resolve() == SUBSET_ROOT


def _read_manifest(root: Path) -> list[dict[str, Any]]:
    with (root / _MANIFEST).open(encoding="utf-8") as fh:
        rows: list[dict[str, Any]] = json.load(fh)
    return rows


def _require_root(root: Path | None) -> Path:
    found = root if root is not None else corpus_root()
    if found is None or not _is_corpus(found):
        raise FileNotFoundError(
            f"stream corpus not found (looked for {root or '../shared/corpus'}; ${CORPUS_ENV} overrides)"
        )
    return found


def load_corpus(root: Path | None = None, *, protocols: Iterable[str] | None = None) -> list[CorpusStream]:
    """Load every stream of the corpus, in manifest order.

    ``root`` defaults to :func:`corpus_root`; raises ``FileNotFoundError`` when there is no corpus.
    ``protocols`` restricts the result to those protocols.  ``http-error`` records are excluded (see
    :func:`load_http_errors`).
    """
    base = _require_root(root)
    wanted = set(protocols) if protocols is not None else None
    if wanted is not None and not wanted <= set(PROTOCOLS):
        raise ValueError(f"unknown protocol(s): {sorted(wanted - set(PROTOCOLS))}")
    streams: list[CorpusStream] = []
    for row in _read_manifest(base):
        if row["fmt"] == "http-error" or (wanted is not None and row["protocol"] not in wanted):
            continue
        bodies = to_sse_body(base / row["file"], row["protocol"])
        streams.extend(
            CorpusStream(file=row["file"], index=i, protocol=row["protocol"], body=body, manifest=row)
            for i, body in enumerate(bodies)
        )
    return streams


def load_http_errors(root: Path | None = None) -> list[dict[str, Any]]:
    """Load the recorded non-200 replies (``fmt == "http-error"``).

    Each item: ``{"file", "protocol", "status", "headers", "body", "manifest"}``.  ``headers`` is a
    ``dict[str, str]`` with lower-case names (VCR cassettes store list values; they are joined with
    ``", "``); ``body`` is the decoded JSON body as stored.  The manifest ``note`` says whether the
    request was ``stream=true``.
    """
    base = _require_root(root)
    out: list[dict[str, Any]] = []
    for row in _read_manifest(base):
        if row["fmt"] != "http-error":
            continue
        with (base / row["file"]).open(encoding="utf-8") as fh:
            record = json.load(fh)
        headers = {
            str(k).lower(): ", ".join(map(str, v)) if isinstance(v, list) else str(v)
            for k, v in record.get("headers", {}).items()
        }
        out.append(
            {
                "file": row["file"],
                "protocol": row["protocol"],
                "status": int(record["status"]),
                "headers": headers,
                "body": record.get("body"),
                "manifest": row,
            }
        )
    return out
