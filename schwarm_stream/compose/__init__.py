"""Things built on the core: they open streams through a :class:`~schwarm_stream.Pipeline` or plug in
as ordinary plugins, and the core knows none of them.

- :mod:`~schwarm_stream.compose.agent`: the agent loop (stream a turn, run its tool calls, repeat);
- :mod:`~schwarm_stream.compose.multi`: many streams at once (``merge``, ``race``, ``hedge``, ``compare``);
- :mod:`~schwarm_stream.compose.fanout`: one stream to several in-process consumers, bounded queues;
- :mod:`~schwarm_stream.compose.ratelimit`: a rate-limit plugin, per stream or per provider;
- :mod:`~schwarm_stream.compose.callbacks`: callback-style handlers (``on_token``, ``on_complete``, ...).

Each module is also importable under its older name, ``schwarm_stream.agent``, ``schwarm_stream.multi``,
... (the same module object).

Each async form has a sync twin for code without an event loop (a script, Flask): ``agent_loop_sync``,
``merge_sync``, ``race_sync``, ``hedge_sync``, ``compare_sync`` and ``SyncFanout``, as
:func:`~schwarm_stream.open_sync` is :func:`~schwarm_stream.open`'s.
"""

from __future__ import annotations

from .agent import (
    AgentEvent,
    AgentLoop,
    Outcome,
    SyncAgentLoop,
    ToolFunction,
    ToolResult,
    Turn,
    TurnEnd,
    TurnStart,
    agent_loop,
    agent_loop_sync,
)
from .callbacks import CALLBACKS, CallbackHandler
from .fanout import DROP_FLAG, Fanout, OverflowPolicy, Subscriber, SyncFanout, SyncSubscriber
from .multi import (
    ComparisonReport,
    HedgePolicy,
    LatencyTracker,
    Merged,
    NoWinner,
    Raced,
    SourceResult,
    SyncMerged,
    SyncRaced,
    Tagged,
    compare,
    compare_sync,
    hedge,
    hedge_sync,
    merge,
    merge_sync,
    race,
    race_sync,
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
    "SyncAgentLoop",
    "SyncFanout",
    "SyncMerged",
    "SyncRaced",
    "SyncSubscriber",
    "Tagged",
    "TokenBucket",
    "ToolFunction",
    "ToolResult",
    "Turn",
    "TurnEnd",
    "TurnStart",
    "agent_loop",
    "agent_loop_sync",
    "compare",
    "compare_sync",
    "hedge",
    "hedge_sync",
    "merge",
    "merge_sync",
    "race",
    "race_sync",
]
