"""The redact plugin, loaded through its entry point: secrets split across chunks never reach a consumer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schwarm_stream_redact import BUILTIN_PATTERNS, luhn_valid, redact_message, redact_text

from schwarm_stream import (
    Chunk,
    ConfigError,
    Finish,
    Pipeline,
    Recovery,
    Reset,
    ToolCallDelta,
    TransportError,
    hookimpl,
)
from schwarm_stream.sources import anthropic_messages
from schwarm_stream.testing import (
    Fail,
    HookRecorder,
    ProviderServer,
    ScriptedSource,
    SSEReply,
    anthropic_events,
)
from schwarm_stream.testing.switches import no_waits


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retry and recovery decide as configured, without sleeping (schwarm_stream.testing.switches)."""
    with no_waits():
        yield


ANT_KEY = "sk-ant-api03-" + "Zx9_" * 20  # 93 characters
OPENAI_KEY = "sk-proj-" + "a1B2c3D4" * 6
GITHUB = "ghp_" + "A" * 36
CARD = "4111 1111 1111 1111"  # a Luhn-valid test number


def redact_pipeline(*plugins: Any, **section: Any) -> Pipeline:
    """Built-ins plus the redact plugin from its entry point, enabled."""
    config = {"redact": {"enabled": True, **section}, "plugins": {"autoload": False, "enable": ["redact"]}}
    return Pipeline(plugins, config=config)


SHARED = redact_pipeline()  # one pipeline for the property test: its build is not what is tested


async def delivered(pipeline: Pipeline, *scripts: Any) -> tuple[list[Any], Any]:
    events: list[Any] = []
    async with pipeline.open(ScriptedSource(*scripts)) as stream:
        async for event in stream:
            events.append(event)
    return events, stream


def text_of(events: list[Any], kind: str = "text") -> str:
    return "".join(e.text for e in events if isinstance(e, Chunk) and e.kind == kind)


def test_found_through_the_entry_point() -> None:
    (info,) = [i for i in redact_pipeline().plugins() if i.name == "redact"]
    assert info.distribution == "schwarm-stream-redact" and info.enabled
    assert info.hooks == ["stream_active", "stream_config_schema", "stream_flush", "stream_start", "stream_transform"]


async def test_off_unless_enabled() -> None:
    pipeline = Pipeline(config={"plugins": {"autoload": False, "enable": ["redact"]}})
    events, _ = await delivered(pipeline, ["key: sk-a", "nt-api03-" + "x" * 30])
    assert [e.text for e in events if isinstance(e, Chunk)] == ["key: sk-a", "nt-api03-" + "x" * 30]


async def test_a_key_split_across_chunks_is_redacted_and_the_message_keeps_it() -> None:
    pieces = ["my key is sk-a", "nt-api03-", ANT_KEY[13:40], ANT_KEY[40:], " — keep it safe."]
    events, stream = await delivered(redact_pipeline(), pieces)
    assert text_of(events) == "my key is [REDACTED:anthropic_key] — keep it safe."
    assert "sk-a" not in "".join(e.text for e in events if isinstance(e, Chunk))
    assert stream.message.text == "my key is " + ANT_KEY + " — keep it safe."  # documented: unredacted
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(
        st.sampled_from(
            [
                "Hello ",
                "the key ",
                ANT_KEY,
                OPENAI_KEY,
                GITHUB,
                " mail bob.smith@example.org",
                ", ",
                CARD,
                "\n",
                "sk-",
                "x",
            ]
        ),
        min_size=1,
        max_size=12,
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=30),
)
async def test_any_chunking_gives_the_same_redacted_text(parts: list[str], cuts: list[int]) -> None:
    text = "".join(parts)
    points = sorted({c for c in cuts if c < len(text)})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    events, stream = await delivered(SHARED, pieces)
    assert text_of(events) == redact_text(text)
    assert stream.message.text == text


async def test_held_text_is_released_before_other_events() -> None:
    script = [
        "Let me look",
        Chunk("thinking…", kind="reasoning"),
        "up.",
        ToolCallDelta(0, id="c", name="f", arguments="{}"),
        Finish("tool_calls"),
    ]
    events, _ = await delivered(redact_pipeline(), script)
    kinds = [(type(e).__name__, getattr(e, "kind", None)) for e in events]
    assert kinds == [
        ("Chunk", "text"),
        ("Chunk", "reasoning"),
        ("Chunk", "text"),
        ("ToolCallDelta", None),
        ("Finish", None),
    ]
    assert [e.text for e in events if isinstance(e, Chunk)] == ["Let me look", "thinking…", "up."]


async def test_failure_flushes_held_text_before_the_error() -> None:
    recorder = HookRecorder()
    with pytest.raises(TransportError) as info:
        await delivered(
            redact_pipeline(recorder), ["token " + GITHUB[:10], GITHUB[10:], Fail(TransportError("reset"))]
        )
    assert recorder.text() == "token [REDACTED:github_token]"
    names = recorder.names()
    assert names.index("stream_flush") < names.index("stream_error")
    assert info.value.partial is not None and GITHUB in info.value.partial.text


async def test_restart_releases_before_the_reset() -> None:
    class RestartOnce:
        @hookimpl(tryfirst=True)
        def stream_error(self, stream: Any) -> Any:
            return Recovery("restart") if stream.attempt == 1 else None

    events, _ = await delivered(
        redact_pipeline(RestartOnce()), ["first try", Fail(TransportError("drop"))], ["second ", "try"]
    )
    reset_at = next(i for i, e in enumerate(events) if isinstance(e, Reset))
    assert text_of(events[:reset_at]) == "first try"
    assert text_of(events[reset_at:]) == "second try"


async def test_sinks_see_redacted_text() -> None:
    recorder = HookRecorder()
    await delivered(redact_pipeline(recorder), ["write to alice@exam", "ple.com please"])
    assert recorder.text() == "write to [REDACTED:email] please"
    received = "".join(
        c.event.text for c in recorder.getcalls("stream_receive") if isinstance(c.event, Chunk)
    )
    assert received == "write to alice@example.com please"  # stream_receive observers see the original


async def test_own_patterns_replacement_and_kinds() -> None:
    pipeline = redact_pipeline(
        builtin=[], patterns={"ticket": r"TICKET-[0-9]{6}"}, replacement="<{name}>", kinds=["text"]
    )
    events, _ = await delivered(
        pipeline, ["see TICK", "ET-123456 ", Chunk("TICKET-654321", kind="reasoning"), " bob@x.org"]
    )
    assert text_of(events) == "see <ticket>  bob@x.org"  # email is not selected
    assert text_of(events, "reasoning") == "TICKET-654321"  # reasoning is not redacted


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"patterns": {"bad": "("}},
            "redact.patterns: Value error, pattern 'bad' is not a valid regular expression",
        ),
        ({"patterns": {"empty": "x*"}}, "pattern 'empty' matches the empty string"),
        ({"builtin": ["ssn"]}, "unknown built-in pattern(s) ['ssn']"),
        ({"window": 2}, "redact.window: Input should be greater than or equal to 8"),
        ({"replacement": "{who}"}, "replacement may only use {name}"),
        ({"enabeld": True}, "redact.enabeld: unknown key"),
    ],
)
def test_config_errors_name_the_plugin_and_key(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Pipeline(config={"redact": section, "plugins": {"autoload": False, "enable": ["redact"]}}).plugins()
    assert "plugin 'redact': invalid configuration" in str(info.value)
    assert message in str(info.value)


def test_card_numbers_must_pass_luhn() -> None:
    assert luhn_valid(CARD) and not luhn_valid("4111 1111 1111 1112")
    assert (
        redact_text(f"card {CARD}, order 4111 1111 1111 1112")
        == "card [REDACTED:credit_card], order 4111 1111 1111 1112"
    )


@pytest.mark.parametrize("name", list(BUILTIN_PATTERNS))
def test_every_builtin_pattern_matches_its_example(name: str) -> None:
    examples = {
        "anthropic_key": ANT_KEY,
        "openai_key": OPENAI_KEY,
        "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "github_token": GITHUB,
        "slack_token": "xoxb-1234567890-abcdef",
        "google_api_key": "AIza" + "B" * 35,
        "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "email": "ada.lovelace+ai@example.co.uk",
        "credit_card": CARD,
    }
    assert redact_text(f"x {examples[name]} y", {"builtin": [name]}) == f"x [REDACTED:{name}] y"


def test_redact_message_covers_text_reasoning_and_blocks() -> None:
    from schwarm_stream import ContentBlock, Message

    message = Message(
        text=f"key {OPENAI_KEY}",
        reasoning="mail bob@example.org",
        content=[ContentBlock(type="text", text=f"key {OPENAI_KEY}")],
        complete=True,
    )
    safe = redact_message(message)
    assert safe.text == "key [REDACTED:openai_key]"
    assert safe.reasoning == "mail [REDACTED:email]"
    assert safe.content[0].text == "key [REDACTED:openai_key]"
    assert message.text.endswith(OPENAI_KEY)  # the original is untouched


async def test_real_anthropic_stream_with_a_key_in_tiny_chunks(provider_server: ProviderServer) -> None:
    said = f"Your key is {ANT_KEY}. Rotate it."
    pieces = [said[i : i + 3] for i in range(0, len(said), 3)]
    provider_server.script("anthropic-messages", SSEReply(anthropic_events(pieces)))
    client = anthropic.AsyncAnthropic(api_key="x", base_url=provider_server.anthropic_base_url, max_retries=0)
    try:
        source = anthropic_messages(
            client, model="claude-test", max_tokens=100, messages=[{"role": "user", "content": "key?"}]
        )
        async with redact_pipeline().open(source) as stream:
            shown = [e.text async for e in stream if isinstance(e, Chunk)]
    finally:
        await client.close()
    assert "".join(shown) == "Your key is [REDACTED:anthropic_key]. Rotate it."
    assert all(ANT_KEY[:8] not in s for s in shown)
    assert stream.message.text == said and stream.message.complete


async def test_a_runaway_match_is_released_redacted_after_max_hold() -> None:
    runaway = "sk-ant-" + "A" * 300
    events, _ = await delivered(
        redact_pipeline(max_hold=100, window=48), [runaway[i : i + 10] for i in range(0, 307, 10)]
    )
    shown = text_of(events)
    assert shown.startswith("[REDACTED:anthropic_key]")
    assert "sk-ant" not in shown
