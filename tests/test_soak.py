"""Soak: hundreds of streams, random faults at random points, every one ends honestly.

Each stream ends either complete and exactly equal to the SDK accumulator's view of its unfaulted
stream, or partial / with a typed error whose partial message is exactly what its consumer was shown.
Afterwards no task and no provider connection is left behind. Deterministic (seeded), real SDK
clients, real sockets, bounded runtime (no sleeps: waits are off, timeouts are short).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from schwarm_stream import StreamError
from schwarm_stream.testing import switches
from schwarm_stream.testing.server import (
    JSONReply,
    ProviderServer,
    RecordedRequest,
    Reply,
    SSEReply,
    Stall,
    anthropic_error_event,
    openai_error_chunk,
    responses_error_events,
)
from tests.support.faults import (
    PROTOCOLS,
    consume,
    fault_pipeline,
    golden,
    golden_events,
    sdk_source,
    view,
)

STREAMS = 300
CONCURRENCY = 30
FAULTS = ("truncate", "rst", "eof", "in_band", "stall", "bad_json", "503", "429")
WORDS = "stream break nothing lost über 東京 🎉 tool reset commit retry".split()


@pytest.fixture(autouse=True)
def _no_waits() -> Iterator[None]:
    with switches.no_waits():
        yield


def _fault(kind: str, protocol: str, events: list[bytes], at: int) -> Reply:
    head = events[:at]
    if kind in ("truncate", "rst", "eof"):
        return SSEReply(head, end=kind)  # type: ignore[arg-type]
    if kind == "in_band":
        err = {
            "anthropic-messages": [anthropic_error_event()],
            "openai-chat": [openai_error_chunk()],
            "openai-responses": responses_error_events(sequence_number=10_000),
        }[protocol]
        return SSEReply(head + err)
    if kind == "stall":
        return SSEReply([*head, Stall()])
    if kind == "bad_json":
        return SSEReply([*head, b"data: {bad json\n\n"])
    if kind == "503":
        return JSONReply(503, {"type": "error", "error": {"type": "api_error", "message": "busy"}})
    return JSONReply(
        429,
        {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}},
        headers={"retry-after-ms": "5"},
    )


class Plan:
    """Per stream: its golden events and the replies (faults) its requests get before the golden one."""

    def __init__(self, rng: random.Random, index: int) -> None:
        self.protocol = rng.choice(PROTOCOLS)
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        tool = {"name": "f", "arguments": {"q": rng.choice(WORDS)}} if rng.random() < 0.4 else None
        self.events = golden_events(self.protocol, text, tool=tool)
        self.faults = [
            _fault(rng.choice(FAULTS), self.protocol, self.events, rng.randrange(len(self.events)))
            for _ in range(rng.choice((0, 1, 1, 2, 3)))
        ]
        self.mode = rng.choice(("restart", "raise", "partial", ["resume", "restart"]))
        self.key = f"soak-{index}"

    def reply(self) -> Reply:
        return self.faults.pop(0) if self.faults else SSEReply(self.events)


async def test_soak_random_faults_every_stream_ends_exactly() -> None:
    rng = random.Random(20240611)
    plans = {p.key: p for p in (Plan(rng, i) for i in range(STREAMS))}

    def responder(request: RecordedRequest) -> Reply:
        body = request.json or {}
        key = json.dumps(body.get("messages") or body.get("input"))
        plan = next(p for k, p in plans.items() if f'"{k}"' in key)
        return plan.reply()

    baseline = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
    outcomes: dict[str, int] = {}
    async with ProviderServer(responder) as server:
        oai = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url)
        ant = anthropic.AsyncAnthropic(api_key="x", base_url=server.anthropic_base_url)
        pipes = {
            str(mode): fault_pipeline(
                retry={"attempts": 4},
                recovery={"mid_stream": mode, "max_recoveries": 3},
                timeouts={"idle": 0.1, "first_chunk": 1.0, "total": 20.0},
            )
            for mode in ("restart", "raise", "partial", ["resume", "restart"])
        }
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(plan: Plan) -> None:
            client: Any = ant if plan.protocol == "anthropic-messages" else oai
            hi = [{"role": "user", "content": plan.key}]
            kw: dict[str, Any] = (
                {"input": plan.key} if plan.protocol == "openai-responses" else {"messages": hi}
            )
            src = sdk_source(plan.protocol, client, **kw)
            async with gate:
                stream = pipes[str(plan.mode)].open(src)
                seen, error = await consume(stream)
            assert seen.seqs_contiguous(), plan.key
            if stream.outcome == "complete":
                assert error is None
                got, want = view(stream.message, plan.protocol), golden(plan.protocol, plan.events)
                if plan.protocol == "openai-chat" and got["usage"] is None:
                    # Row 21: Chat Completions is complete on its finish_reason; a cut after it loses
                    # only the usage chunk, which is then None (never a wrong count).
                    want["usage"] = None
                assert got == want, plan.key
            elif stream.outcome == "partial":
                assert error is None and seen.mismatch(stream.message) is None, plan.key
            else:
                assert isinstance(error, StreamError), (plan.key, error)
                assert seen.mismatch(error.partial) is None, (plan.key, seen.mismatch(error.partial))
            outcomes[str(stream.outcome)] = outcomes.get(str(stream.outcome), 0) + 1

        await asyncio.gather(*(one(p) for p in plans.values()))
        # keep-alive connections may stay pooled, but never more than were in use at once
        assert server.connections_open() <= 2 * CONCURRENCY
        await oai.close()
        await ant.close()
        await server.wait_connections(0, timeout=10)
    assert {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} <= baseline
    assert sum(outcomes.values()) == STREAMS
    assert outcomes.get("complete", 0) > STREAMS // 3 and outcomes.get("error", 0) > 0  # both paths ran
