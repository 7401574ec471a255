"""The recorded-stream corpus loader and the SDK oracle, checked against ``manifest.json``.

Runs over the full corpus where it is found (``../shared/corpus``), else over the subset shipped in
``tests/data/corpus/`` (``SCHWARM_STREAM_CORPUS=subset`` forces that); the subset's own checks follow.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from schwarm_stream.testing.corpus import PROTOCOLS, detect_protocol, to_sse_body
from tests.support import corpus_subset
from tests.support.corpus import (
    CORPUS_ENV,
    SUBSET,
    SUBSET_ROOT,
    CorpusStream,
    corpus_root,
    full_corpus_root,
    is_subset,
    load_corpus,
    load_http_errors,
)
from tests.support.oracle import OracleRejected, sdk_result

LENGTH_PREFIX = "SDK accumulator raised LengthFinishReasonError"
IN_BAND_ERROR_PREFIX = "stream carries in-band error"
ACCUMULATOR_PREFIX = "SDK accumulator raised "
# The manifest analyzer fed decoded payload dicts straight to ResponseStreamState and recorded a stream
# that ends in `response.failed` as "ok (no response.completed)".  Through the real SDK this stream is NOT
# accepted, twice over: its `error` event carries an `error` key, so openai's Stream raises APIError before
# `response.failed` (sdk-streaming.md §1.3), and ResponseStream.get_final_response() raises without a
# `response.completed` anyway.  So that manifest status means "rejected (stream stage, APIError)".
NO_COMPLETED = "ok (no response.completed)"


@pytest.fixture(scope="module")
def root() -> Path:
    found = corpus_root()
    # None only for a $SCHWARM_STREAM_CORPUS that names no corpus: a broken setting, not a plain clone.
    assert found is not None, f"${CORPUS_ENV} does not name a corpus (nor {SUBSET!r})"
    return found


@pytest.fixture(scope="module")
def manifest(root: Path) -> list[dict[str, Any]]:
    with (root / "manifest.json").open(encoding="utf-8") as fh:
        rows: list[dict[str, Any]] = json.load(fh)
    return rows


@pytest.fixture(scope="module")
def stream_rows(manifest: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in manifest if row["fmt"] != "http-error"]


@pytest.fixture(scope="module")
def streams(root: Path) -> list[CorpusStream]:
    return load_corpus(root)


def test_every_manifest_stream_file_loads(root: Path, stream_rows: list[dict[str, Any]]) -> None:
    problems: list[str] = []
    for row in stream_rows:
        path = root / row["file"]
        bodies = to_sse_body(path, row["protocol"])
        if not bodies or not all(bodies):
            problems.append(f"{row['file']}: no/empty body")
        elif row["fmt"] == "sse" and bodies != [path.read_bytes()]:
            problems.append(f"{row['file']}: sse file not returned byte for byte")
        elif row["fmt"] == "jsonl":
            for body in bodies:
                if not body.endswith(b"\n\n"):
                    problems.append(f"{row['file']}: framed body does not end with a blank line")
                if (row["protocol"] == "openai-chat") != body.endswith(b"data: [DONE]\n\n"):
                    problems.append(f"{row['file']}: [DONE] terminator wrong for {row['protocol']}")
                if row["protocol"] != "openai-chat" and not body.startswith(b"event: "):
                    problems.append(f"{row['file']}: missing `event:` line")
    assert not problems, "\n".join(problems)


def test_stream_counts_match_manifest(stream_rows: list[dict[str, Any]], streams: list[CorpusStream]) -> None:
    loaded = Counter(s.file for s in streams)
    expected = {row["file"]: row["streams"] for row in stream_rows}
    mismatches = {f: (loaded.get(f, 0), n) for f, n in expected.items() if loaded.get(f, 0) != n}
    assert not mismatches, f"(loaded, manifest) stream counts differ: {mismatches}"
    assert set(loaded) == set(expected)
    assert len({s.id for s in streams}) == len(streams), "stream ids are not unique"
    assert sum(expected.values()) == len(streams)


def test_detect_protocol_agrees_with_manifest(streams: list[CorpusStream]) -> None:
    wrong: dict[str, tuple[str, str]] = {}
    for s in streams:
        found: str
        try:
            found = detect_protocol(s.body)
        except ValueError as exc:
            found = f"ValueError: {exc}"
        if found != s.protocol:
            wrong[s.id] = (found, s.protocol)
    assert not wrong, wrong


def test_detect_protocol_names_what_it_saw() -> None:
    with pytest.raises(ValueError, match="hello"):
        detect_protocol(b'event: hello\ndata: {"x": 1}\n\n')


def test_load_corpus_protocol_filter(root: Path, streams: list[CorpusStream]) -> None:
    for protocol in PROTOCOLS:
        subset = load_corpus(root, protocols=[protocol])
        assert subset and {s.protocol for s in subset} == {protocol}
        assert [s.id for s in subset] == [s.id for s in streams if s.protocol == protocol]


def test_http_errors_load(root: Path, manifest: list[dict[str, Any]]) -> None:
    errors = load_http_errors(root)
    assert [e["file"] for e in errors] == [r["file"] for r in manifest if r["fmt"] == "http-error"]
    for err in errors:
        assert 400 <= err["status"] < 600
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in err["headers"].items())
        assert isinstance(err["body"], dict) and "error" in err["body"]
        with pytest.raises(ValueError, match="not a stream"):
            to_sse_body(root / err["file"])


def _expected(row: dict[str, Any]) -> tuple[str, str | None]:
    """What the oracle should do with a stream of this manifest row, derived from its `sdk` field:
    ("accept", None), ("accept-length", None) or ("reject", expected SDK exception name)."""
    status: str = row["sdk"]
    if status == NO_COMPLETED:
        return "reject", "APIError"
    if status.startswith("ok"):
        return "accept", None
    if status.startswith(LENGTH_PREFIX):
        # The oracle reads current_completion_snapshot instead of rejecting (documented in sdk_result).
        return "accept-length", None
    if status.startswith(IN_BAND_ERROR_PREFIX):
        return "reject", "APIError"
    if status.startswith(ACCUMULATOR_PREFIX):
        if row.get("non_json_lines"):
            # The analyzer skipped lines that are not JSON and so reached the accumulator; the real SDK
            # Stream json-decodes every data line and raises first.  Still a rejection, another reason.
            return "reject", "JSONDecodeError"
        return "reject", status[len(ACCUMULATOR_PREFIX) :].split(":", 1)[0]
    raise AssertionError(f"unknown manifest sdk status {status!r} for {row['file']}")


def _manifest_finish(row: dict[str, Any]) -> str | None:
    if row["protocol"] == "openai-responses":
        terminal = row.get("terminal")
        return terminal.removeprefix("response.") if terminal else None
    return row.get("finish") if row["protocol"] == "openai-chat" else row.get("stop")


def test_sdk_oracle_over_corpus(streams: list[CorpusStream], capsys: pytest.CaptureFixture[str]) -> None:
    accepted: Counter[str] = Counter()
    rejected: dict[str, list[str]] = defaultdict(list)
    problems: list[str] = []
    for s in streams:
        verdict, error = _expected(s.manifest)
        try:
            result = sdk_result(s.protocol, s.body)
        except OracleRejected as exc:
            rejected[s.protocol].append(f"{s.id}: [{exc.stage}] {exc.reason[:110]}")
            if verdict != "reject":
                problems.append(f"{s.id}: rejected ({exc.reason}) but manifest says {s.manifest['sdk']!r}")
            elif exc.error != error:
                problems.append(f"{s.id}: rejected with {exc.error}, expected {error}")
            continue
        accepted[s.protocol] += 1
        if verdict == "reject":
            problems.append(f"{s.id}: accepted but manifest says {s.manifest['sdk']!r}")
            continue
        if set(result) - {"sdk_final_raised"} != {
            "text",
            "reasoning",
            "refusal",
            "tool_calls",
            "finish_reason",
            "usage",
            "choices",
        }:
            problems.append(f"{s.id}: unexpected keys {sorted(result)}")
        if (verdict == "accept-length") != (result.get("sdk_final_raised") == "LengthFinishReasonError"):
            problems.append(f"{s.id}: sdk_final_raised={result.get('sdk_final_raised')!r}, {verdict=}")
        # The manifest's finish/stop/terminal describe a file's last response, so compare single-stream files.
        if s.manifest["streams"] == 1 and result["finish_reason"] != _manifest_finish(s.manifest):
            problems.append(f"{s.id}: finish_reason {result['finish_reason']!r} vs manifest")
        if s.protocol == "anthropic-messages":
            assert all(json.loads(tc["arguments"]) == tc["input"] for tc in result["tool_calls"])

    with capsys.disabled():
        print("\nSDK oracle over the corpus:")
        for protocol in PROTOCOLS:
            print(f"  {protocol}: accepted {accepted[protocol]}, rejected {len(rejected[protocol])}")
            for line in rejected[protocol]:
                print(f"    - {line}")
    assert not problems, "\n".join(problems)
    assert sum(accepted.values()) + sum(map(len, rejected.values())) == len(streams)


def test_oracle_rejects_unknown_protocol() -> None:
    with pytest.raises(ValueError, match="unknown protocol"):
        sdk_result("bogus", b"")


def test_oracle_chat_length_and_reasoning(streams: list[CorpusStream]) -> None:
    """Spot checks of the documented chat mapping on recorded streams."""
    length = [
        sdk_result(s.protocol, s.body)
        for s in streams
        if s.protocol == "openai-chat" and s.manifest["sdk"].startswith(LENGTH_PREFIX)
    ]
    assert length, "corpus has no finish_reason=length chat stream any more"
    for result in length:
        # get_final_completion() raised; the oracle still returns the accumulated snapshot.
        assert result["finish_reason"] == "length"
        assert result["sdk_final_raised"] == "LengthFinishReasonError"
        assert result["usage"] is not None

    # xAI and Z.ai send `reasoning_content` deltas; the SDK snapshot keeps and concatenates the unknown
    # field.  (The subset holds the Z.ai stream, the full corpus both.)
    spot = {
        "xai-text.chunks.txt": ("First, the user said", "Grok"),
        "test_zai_thinking_stream.yaml.response0.sse": ("\n1.  **Analyze the User's Request:**", "4"),
    }
    checked = 0
    for s in streams:
        name = s.file.rsplit("/", 1)[-1]
        if name in spot:
            result = sdk_result(s.protocol, s.body)
            assert result["reasoning"].startswith(spot[name][0]) and result["text"] == spot[name][1], s.id
            checked += 1
    assert checked >= 1


def _raw_reasoning(body: bytes) -> str:
    """Concatenated `reasoning_content` (else `reasoning`) string deltas of choice 0, straight from the wire."""
    parts: dict[str, list[str]] = {"reasoning_content": [], "reasoning": []}
    for line in body.splitlines():
        if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
            continue
        for choice in json.loads(line[5:]).get("choices") or []:
            if choice.get("index") == 0:
                for name, acc in parts.items():
                    if isinstance((choice.get("delta") or {}).get(name), str):
                        acc.append(choice["delta"][name])
    return "".join(parts["reasoning_content"]) or "".join(parts["reasoning"])


def test_oracle_chat_reasoning_matches_raw_deltas(root: Path, streams: list[CorpusStream]) -> None:
    checked = 0
    for s in streams:
        if s.protocol != "openai-chat" or _expected(s.manifest)[0] == "reject":
            continue
        assert sdk_result(s.protocol, s.body)["reasoning"] == _raw_reasoning(s.body), s.id
        checked += bool(_raw_reasoning(s.body))
    # The full corpus has a dozen chat streams with reasoning deltas, the subset two (xAI, OpenRouter).
    assert checked >= (2 if is_subset(root) else 10)


# --------------------------------------------------------------------------- the shipped subset


def _subset_rows() -> list[dict[str, Any]]:
    with (SUBSET_ROOT / "manifest.json").open(encoding="utf-8") as fh:
        rows: list[dict[str, Any]] = json.load(fh)
    return rows


def test_the_subset_is_small_and_every_file_has_provenance() -> None:
    rows = _subset_rows()
    shipped = {str(p.relative_to(SUBSET_ROOT)) for p in SUBSET_ROOT.rglob("*") if p.is_file()}
    assert shipped == {row["file"] for row in rows} | {"manifest.json", "PROVENANCE.md"}
    assert {row["file"] for row in rows} == set(corpus_subset.FILES)
    assert sum((SUBSET_ROOT / row["file"]).stat().st_size for row in rows) < 300_000
    provenance = (SUBSET_ROOT / "PROVENANCE.md").read_text(encoding="utf-8")
    for row in rows:
        assert row["origin_repo"] in corpus_subset.LICENSES, row["file"]
        line = next(line for line in provenance.splitlines() if f"| `{row['file']}` |" in line)
        assert row["origin_repo"] in line and row["commit"] in line and row["origin_path"] in line


def test_the_subset_covers_each_protocol_with_tools_reasoning_and_truncation() -> None:
    features = defaultdict(set)
    for row in _subset_rows():
        features[row["protocol"]].update(row.get("features", ()))
    assert {"tool_calls", "parallel tool_calls x2", "reasoning", "refusal"} <= features["openai-chat"]
    assert {"function_call", "reasoning", "error"} <= features["openai-responses"]
    assert {"tool_use", "thinking", "redacted_thinking"} <= features["anthropic-messages"]
    streams = load_corpus(SUBSET_ROOT)
    # Truncated Anthropic streams: no whole message_stop arrives (the equivalence test's StreamIncomplete case).
    assert any(s.protocol == "anthropic-messages" and b"message_stop" not in s.body for s in streams)
    assert {s.protocol for s in streams} == set(PROTOCOLS)


def test_the_subset_is_an_exact_copy_of_the_full_corpus() -> None:
    full = full_corpus_root()
    if full is None:
        pytest.skip("needs the full corpus (../shared/corpus) to compare the shipped subset with")
    with (full / "manifest.json").open(encoding="utf-8") as fh:
        expected_rows = corpus_subset.subset_manifest(json.load(fh))
    assert _subset_rows() == expected_rows  # the full manifest's rows, unchanged, in its order
    for row in expected_rows:
        assert (SUBSET_ROOT / row["file"]).read_bytes() == (full / row["file"]).read_bytes(), row["file"]
    assert (SUBSET_ROOT / "PROVENANCE.md").read_text(encoding="utf-8") == corpus_subset.provenance(
        expected_rows
    )


def test_corpus_root_is_the_full_corpus_else_the_subset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CORPUS_ENV, SUBSET)
    assert full_corpus_root() is None
    assert corpus_root() == SUBSET_ROOT and is_subset(corpus_root())

    (tmp_path / "manifest.json").write_text("[]", encoding="utf-8")
    monkeypatch.setenv(CORPUS_ENV, str(tmp_path))
    assert full_corpus_root() == corpus_root() == tmp_path.resolve()
    assert not is_subset(corpus_root())

    # A setting naming no corpus is a mistake: no silent fallback to the subset.
    monkeypatch.setenv(CORPUS_ENV, str(tmp_path / "missing"))
    assert full_corpus_root() is None and corpus_root() is None

    monkeypatch.delenv(CORPUS_ENV)
    beside = tmp_path / "clone"
    beside.mkdir()
    (tmp_path / "shared" / "corpus").mkdir(parents=True)
    (tmp_path / "shared" / "corpus" / "manifest.json").write_text("[]", encoding="utf-8")
    assert full_corpus_root(beside) == (tmp_path / "shared" / "corpus").resolve()
