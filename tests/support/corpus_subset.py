"""Which recordings of the full corpus ship in ``tests/data/corpus/``, and the script that copies them.

Run from the repository root, with the full corpus beside the clone::

    python -m tests.support.corpus_subset            # or: ... --full PATH

It copies every file of :data:`FILES` byte for byte (same relative path), writes the subset's
``manifest.json`` (the full manifest's rows for those files, in the same order) and ``PROVENANCE.md``.
``tests/test_corpus_loader.py`` checks that the shipped copy is still exactly that.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from .corpus import SUBSET_ROOT, full_corpus_root

__all__ = ["FILES", "LICENSES", "build", "provenance", "subset_manifest"]

_OAI = "openai-python/.inline-snapshot/external/"
_PAI = "pydantic-ai/tests/models/cassettes/"
_ANT = "anthropic-sdk-python/tests/lib/streaming/fixtures/"
_VERCEL = "vercel-ai/packages/"

FILES: dict[str, str] = {
    # --- OpenAI Chat Completions
    f"{_OAI}e2aad469b71d1d4894ff833ea147020a9d875eb7ce644a0ff355581690a4cbfd.bin": "text + usage chunk",
    f"{_OAI}2018feb66ae13fcf5333d61b95849decc68d3f63bd38172889367e1afb1e04f7.bin": "one tool call",
    f"{_OAI}f82268f2fefd5cfbc7eeb59c297688be2f6ca0849a6e4f17851b517310841d9b.bin": "two parallel tool calls",
    f"{_OAI}173417d553406f034f643e5db3f8d591fb691ebac56f5ae39a22cc7d455c5353.bin": "refusal",
    f"{_OAI}4cc50a6135d254573a502310e6af1246f55edb6ad95fa24059f160996b68866d.bin": (
        "finish_reason=length (the SDK's get_final_completion() raises)"
    ),
    f"{_VERCEL}openai/src/chat/__fixtures__/azure-model-router.1.chunks.txt": (
        "Azure's empty prompt-filter first chunk (JSON lines)"
    ),
    f"{_PAI}test_zai/test_zai_thinking_stream.yaml.response0.sse": "Z.ai `reasoning_content` deltas",
    f"{_PAI}test_openrouter/test_openrouter_streaming_reasoning.yaml.response0.sse": (
        "OpenRouter `reasoning` deltas, SSE comment lines"
    ),
    f"{_PAI}test_openrouter/test_openrouter_stream_error.yaml.response0.sse": (
        "in-band error chunk (the SDK raises APIError)"
    ),
    f"{_PAI}test_openrouter/test_openrouter_web_search_annotations_stream.yaml.response0.sse": (
        "list delta without index (the SDK's accumulator raises)"
    ),
    f"{_PAI}test_mistral/test_mistral_model_thinking_part_iter.yaml.response0.sse": (
        "Mistral: `content` as a list of text and thinking parts"
    ),
    f"{_PAI}test_openai/test_openai_moderation_stream.yaml.response0.sse": (
        "a trailing `usage: null` after the usage chunk"
    ),
    # --- OpenAI Responses
    f"{_PAI}test_openai_responses/test_openai_responses_stream.yaml.response0.sse": "function call",
    f"{_PAI}test_openai_responses/test_openai_responses_stream.yaml.response1.sse": "text",
    f"{_VERCEL}openai/src/responses/__fixtures__/openai-reasoning-encrypted-content.1.chunks.txt": (
        "reasoning summary + function calls, 4 responses in one file (JSON lines)"
    ),
    f"{_VERCEL}openai/src/responses/__fixtures__/openai-error.1.chunks.txt": (
        "in-stream `error` + `response.failed`"
    ),
    f"{_VERCEL}openai/src/responses/__fixtures__/parallel-tool-call-wrapper.1.chunks.txt": (
        "lines that are not JSON (the SDK raises JSONDecodeError)"
    ),
    f"{_VERCEL}openai/src/responses/__fixtures__/openai-phase.1.chunks.txt": (
        "hand-trimmed: sequence numbers jump, deltas do not add up to `.done`"
    ),
    # --- Anthropic Messages
    "anthropic-sdk-python/tests/lib/_parse/__inline_snapshot__/test_messages/TestAsyncStream/"
    "a8b7dbb8-2321-4624-abdb-7ba2136b5c38.json.response0.http-error.json": "HTTP 429 with x-should-retry",
    f"{_ANT}basic_response.txt": "text; last event without its blank line",
    f"{_ANT}tool_use_response.txt": "text + tool_use; last event without its blank line",
    f"{_ANT}incomplete_partial_json_response.txt": "max_tokens inside the tool input",
    "anthropic-sdk-python/.inline-snapshot/external/"
    "3a494e1680ee379c50e7ecae59148dadcd4f01870e9abedd2917b87c7d76e88c.json.response0.sse": (
        "two parallel tool_use blocks"
    ),
    "anthropic-sdk-python/tests/lib/tools/__inline_snapshot__/test_runners/"
    "test_streaming_call_sync/e2140c0f-07db-47ee-b86b-c2ec476866d5.json.response0.sse": "text + tool_use",
    f"{_PAI}test_anthropic/test_anthropic_model_thinking_part_stream.yaml.response0.sse": (
        "thinking + signature"
    ),
    f"{_PAI}test_anthropic/test_anthropic_model_thinking_part_redacted_stream.yaml.response0.sse": (
        "redacted_thinking"
    ),
    f"{_VERCEL}anthropic/src/__fixtures__/anthropic-text.chunks.txt": "text (JSON lines)",
    f"{_VERCEL}anthropic/src/__fixtures__/spliced-message-start.chunks.txt": (
        "thinking + tool_use, truncated: no message_stop (2 responses)"
    ),
    f"{_VERCEL}anthropic/src/__fixtures__/duplicate-message-start.chunks.txt": (
        "truncated: a second message_start, no message_stop (2 responses)"
    ),
    # --- OpenAI Responses error reply
    f"{_PAI}test_openai_responses/test_openai_responses_model_http_error.yaml.response0.http-error.json": (
        "HTTP 400"
    ),
}
"""Subset file (path relative to the corpus root) → why it is in the subset."""

LICENSES = {
    "openai/openai-python": "Apache-2.0",
    "anthropics/anthropic-sdk-python": "MIT",
    "vercel/ai": "Apache-2.0",
    "pydantic/pydantic-ai": "MIT",
}
"""License of every origin repository."""


def subset_manifest(full_manifest: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The full manifest's rows for :data:`FILES`, in the full manifest's order; raises on a missing file."""
    rows = [row for row in full_manifest if row["file"] in FILES]
    missing = sorted(set(FILES) - {row["file"] for row in rows})
    if missing:
        raise LookupError(f"not in the full corpus manifest: {missing}")
    return rows


def provenance(rows: list[dict[str, Any]]) -> str:
    """The ``PROVENANCE.md`` text for the subset ``rows``."""
    lines = [
        "# Shipped corpus subset: provenance",
        "",
        f"{len(rows)} files of the project's recorded LLM stream corpus (`../shared/corpus`, built from public",
        "repositories' test fixtures), copied byte for byte under the same relative paths, so the claim",
        '"our final message equals the official SDK\'s own accumulation" is tested in every clone.',
        "`manifest.json` holds the full corpus manifest's rows for these files, unchanged. Where the full",
        "corpus is present the tests run over it instead (`tests/support/corpus.py`); regenerate this folder",
        "with `python -m tests.support.corpus_subset`.",
        "",
        "Extracted files (name ending `.responseN.sse` / `.responseN.http-error.json`) are one response body",
        "taken out of a recorded cassette (the origin path is the cassette); the others are the origin file.",
        "",
        "Licenses of the origin repositories: "
        + ", ".join(f"{repo} {lic}" for repo, lic in sorted(LICENSES.items()))
        + ".",
        "",
        "| file | protocol | why | origin repository | origin path | commit | license |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        origin = f"`{row['origin_path']}`" + (f" ({row['note']})" if row.get("note") else "")
        lines.append(
            f"| `{row['file']}` | {row['protocol']} | {FILES[row['file']]} | {row['origin_repo']} | {origin}"
            f" | `{row['commit']}` | {LICENSES.get(row['origin_repo'], 'see origin')} |"
        )
    return "\n".join(lines) + "\n"


def build(full: Path, dest: Path = SUBSET_ROOT) -> list[dict[str, Any]]:
    """Copy the subset from the full corpus ``full`` into ``dest`` (emptied first); return its rows."""
    with (full / "manifest.json").open(encoding="utf-8") as fh:
        rows = subset_manifest(json.load(fh))
    if dest.exists():
        shutil.rmtree(dest)
    for row in rows:
        target = dest / row["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(full / row["file"], target)
    (dest / "manifest.json").write_text(
        json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (dest / "PROVENANCE.md").write_text(provenance(rows), encoding="utf-8")
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line: copy the subset from ``--full`` (default: the full corpus found) into the repository."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--full", type=Path, default=None, help="the full corpus directory")
    args = parser.parse_args(argv)
    full = args.full or full_corpus_root()
    if full is None:
        print("the full corpus was not found; pass --full PATH", file=sys.stderr)
        return 2
    rows = build(full)
    size = sum((SUBSET_ROOT / row["file"]).stat().st_size for row in rows)
    print(f"{len(rows)} files, {size} bytes -> {SUBSET_ROOT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
