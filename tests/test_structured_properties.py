"""Property tests of the partial JSON parser (issue 16): any split of a valid JSON answer yields
partial values that only grow, values not marked incomplete are final, and the end equals
``json.loads``; through a whole typed stream too.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schwarm_stream
from schwarm_stream import Partial
from schwarm_stream.structured import PartialJSON
from schwarm_stream.testing import ScriptedSource

Path = tuple[Any, ...]


def grows_into(before: Any, after: Any, open_paths: tuple[Path, ...] = (), path: Path = ()) -> bool:
    """Whether the partial value ``before`` can grow into ``after``.

    A value at a path not listed in ``open_paths`` is final (equal); an open container keeps its
    members and may gain more; an open string may only be extended.
    """
    is_open = path in open_paths
    if isinstance(before, dict):
        if not isinstance(after, dict) or not set(before) <= set(after):
            return False
        if not is_open and set(before) != set(after):
            return False
        return all(grows_into(v, after[k], open_paths, (*path, k)) for k, v in before.items())
    if isinstance(before, list):
        if not isinstance(after, list) or len(before) > len(after):
            return False
        if not is_open and len(before) != len(after):
            return False
        return all(grows_into(v, after[i], open_paths, (*path, i)) for i, v in enumerate(before))
    if isinstance(before, str) and is_open:
        return isinstance(after, str) and after.startswith(before)
    return type(before) is type(after) and before == after


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=25,
)
containers = st.one_of(
    st.dictionaries(st.text(max_size=6), json_values, max_size=6), st.lists(json_values, max_size=6)
)


@st.composite
def split_answers(draw: st.DrawFn) -> tuple[Any, str, list[str]]:
    value = draw(containers)
    indent = draw(st.sampled_from([None, 0, 2]))
    text = json.dumps(value, indent=indent, ensure_ascii=draw(st.booleans()))
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=max(1, len(text) - 1)), max_size=40)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=False) if text[a:b]]
    return json.loads(text), text, pieces


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(split_answers(), st.sampled_from([(1, 10**9), (32, 0), (4, 16)]))
def test_any_split_grows_and_ends_in_json_loads(
    answer: tuple[Any, str, list[str]], schedule: tuple[int, int]
) -> None:
    expected, text, pieces = answer
    growth, eager = schedule
    parser = PartialJSON(growth=growth, eager_bytes=eager)
    seen: list[tuple[Any, tuple[Path, ...]]] = []
    for piece in pieces:
        if parser.feed(piece):
            seen.append((json.loads(json.dumps(parser.value)), parser.incomplete))
    parser.update()
    assert parser.value == expected and parser.incomplete == () and parser.complete
    assert parser.text == text
    for value, open_paths in seen:
        assert grows_into(value, expected, open_paths), (value, open_paths)
    for (a, open_a), (b, _) in itertools.pairwise(seen):
        assert grows_into(a, b, open_a), (a, b, open_a)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(split_answers())
async def test_any_split_through_a_typed_stream(answer: tuple[Any, str, list[str]]) -> None:
    expected, _, pieces = answer
    output = dict[str, Any] if isinstance(expected, dict) else list[Any]
    partials: list[Partial] = []
    source = ScriptedSource(pieces)
    async with schwarm_stream.open(source, output=output, config={"plugins": {"autoload": False}}) as stream:
        async for ev in stream:
            if isinstance(ev, Partial):
                partials.append(ev)
        assert await stream.get_final_output() == expected
    assert partials and partials[-1].data == expected and partials[-1].incomplete == ()
    for p in partials:
        assert grows_into(p.data, expected, p.incomplete)


def test_grows_into_itself_checks() -> None:
    assert grows_into({"a": "he"}, {"a": "hello"}, ((), ("a",)))
    assert not grows_into({"a": "he"}, {"a": "hello"}, ((),))  # a closed string is final
    assert not grows_into({"a": 12}, {"a": 123}, ((), ("a",)))  # numbers never grow
    assert not grows_into([1], [1, 2], ())  # a closed list is final
    assert grows_into([1], [1, 2], ((),))


def _parsed_bytes(monkeypatch: Any, size: int) -> tuple[int, int]:
    """Bytes PartialJSON hands to the partial parser for a ``size`` answer in 10-byte deltas."""
    from schwarm_stream.structured import _partial

    counted = [0]
    real = _partial.parse_partial

    def counting(text: str) -> Any:
        counted[0] += len(text)
        return real(text)

    monkeypatch.setattr(_partial, "parse_partial", counting)
    items = [{"id": i, "title": f"item {i}", "tags": ["a", "b"]} for i in range(size // 40)]
    text = json.dumps({"summary": "x" * (size // 4), "items": items})
    parser = PartialJSON()
    for i in range(0, len(text), 10):
        parser.feed(text[i : i + 10])
    parser.update()
    assert parser.value == json.loads(text)
    return counted[0], len(text)


def test_partial_parsing_is_linear_in_the_answer(monkeypatch: Any) -> None:
    # re-parsing after every delta would hand the parser about n^2 / 20 bytes (n/10 deltas of n/2 on
    # average): 2,000 times the answer at 40 KB. The schedule keeps it linear: a*n + b.
    ratios = []
    for size in (10_000, 40_000, 160_000):
        total, n = _parsed_bytes(monkeypatch, size)
        ratios.append(total / n)
        # linear: (growth + 1) bytes per answer byte, plus the eager start (every delta below 2 KB)
        assert total <= 33 * n + 2048 * 2048 // 10, (size, total / n)
    assert ratios[0] >= ratios[1] >= ratios[2]  # the short eager start weighs less as answers grow
