"""Things built on the core: they open streams through a :class:`~schwarm_stream.Pipeline` or plug in
as ordinary plugins, and the core knows none of them.

- :mod:`~schwarm_stream.compose.agent`: the agent loop (stream a turn, run its tool calls, repeat);
- :mod:`~schwarm_stream.compose.multi`: many streams at once (``merge``, ``race``, ``hedge``, ``compare``);
- :mod:`~schwarm_stream.compose.fanout`: one stream to several in-process consumers, bounded queues;
- :mod:`~schwarm_stream.compose.ratelimit`: a rate-limit plugin, per stream or per provider;
- :mod:`~schwarm_stream.compose.callbacks`: callback-style handlers (``on_token``, ``on_complete``, ...).

Each module is also importable under its older name, ``schwarm_stream.agent``, ``schwarm_stream.multi``,
... (the same module object).
"""

from __future__ import annotations

from .agent import (
    AgentEvent,
    AgentLoop,
    Outcome,
    ToolFunction,
    ToolResult,
    Turn,
    TurnEnd,
    TurnStart,
    agent_loop,
)
from .callbacks import CALLBACKS, CallbackHandler
from .fanout import DROP_FLAG, Fanout, OverflowPolicy, Subscriber
from .multi import (
    ComparisonReport,
    HedgePolicy,
    LatencyTracker,
    Merged,
    NoWinner,
    Raced,
    SourceResult,
    Tagged,
    compare,
    hedge,
    merge,
    race,
)
from .ratelimit import RateLimit, TokenBucket

__all__ = [
    "CALLBACKS",
    "DROP_FLAG",
    "AgentEvent",
    "AgentLoop",
    "CallbackHandler",
    "ComparisonReport",
    "Fanout",
    "HedgePolicy",
    "LatencyTracker",
    "Merged",
    "NoWinner",
    "Outcome",
    "OverflowPolicy",
    "Raced",
    "RateLimit",
    "SourceResult",
    "Subscriber",
    "Tagged",
    "TokenBucket",
    "ToolFunction",
    "ToolResult",
    "Turn",
    "TurnEnd",
    "TurnStart",
    "agent_loop",
    "compare",
    "hedge",
    "merge",
    "race",
]
