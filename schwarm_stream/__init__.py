"""schwarm_stream: the streaming layer between LLM provider streams and agent loops.

::

    import schwarm_stream
    from schwarm_stream.sources import openai_chat

    async with schwarm_stream.open(openai_chat(client, model="gpt-4o-mini", messages=msgs)) as stream:
        async for event in stream:
            ...
    message = stream.message
"""

import sys as _sys

from ._admission import Admission, AdmissionConfig, AdmissionStats, Permit
from ._errors import (
    AdmissionRefused,
    ConfigError,
    InvalidOutput,
    InvalidToolArguments,
    LimitExceeded,
    MissingDependency,
    PluginError,
    PluginLoadError,
    ProtocolError,
    ProviderError,
    SchwarmStreamError,
    StreamCancelled,
    StreamError,
    StreamIncomplete,
    StreamTimeout,
    TransportError,
)
from ._events import (
    Chunk,
    ChunkKind,
    Event,
    Extra,
    Finish,
    Heartbeat,
    Partial,
    Reset,
    ResponseInfo,
    ToolCallDelta,
    Usage,
)
from ._message import ContentBlock, Message, TokenUsage, ToolCall
from ._pipeline import Pipeline, default_pipeline, open
from ._registry import RegistryStats, StatSummary, StreamInfo, StreamRegistry, stream_registry
from ._stash import Stash, StashKey
from ._stream import Attempt, Stream, StreamStats
from ._sync import SyncStream, open_sync
from ._version import __version__
from .builtins.recovery import with_fallbacks
from .compose import AgentLoop, CallbackHandler, SyncAgentLoop, agent_loop, agent_loop_sync
from .config import Config
from .decisions import Recovery
from .hookspecs import hookimpl, hookspec
from .sources import Source

# agent, multi, fanout, ratelimit and callbacks moved into compose/ (things built on the core). Their old
# names are public: register the same module objects under them, so ``import schwarm_stream.multi`` and
# ``from schwarm_stream.agent import ...`` keep working (and monkeypatching either name patches both).
# The stub files schwarm_stream/<name>.pyi say the same to type checkers.
for _name in ("agent", "callbacks", "fanout", "multi", "ratelimit"):
    _module = _sys.modules[f"{__name__}.compose.{_name}"]
    _sys.modules[f"{__name__}.{_name}"] = _module
    globals()[_name] = _module
del _name, _module

__all__ = [
    "Admission",
    "AdmissionConfig",
    "AdmissionRefused",
    "AdmissionStats",
    "AgentLoop",
    "Attempt",
    "CallbackHandler",
    "Chunk",
    "ChunkKind",
    "Config",
    "ConfigError",
    "ContentBlock",
    "Event",
    "Extra",
    "Finish",
    "Heartbeat",
    "InvalidOutput",
    "InvalidToolArguments",
    "LimitExceeded",
    "Message",
    "MissingDependency",
    "Partial",
    "Permit",
    "Pipeline",
    "PluginError",
    "PluginLoadError",
    "ProtocolError",
    "ProviderError",
    "Recovery",
    "RegistryStats",
    "Reset",
    "ResponseInfo",
    "SchwarmStreamError",
    "Source",
    "Stash",
    "StashKey",
    "StatSummary",
    "Stream",
    "StreamCancelled",
    "StreamError",
    "StreamIncomplete",
    "StreamInfo",
    "StreamRegistry",
    "StreamStats",
    "StreamTimeout",
    "SyncAgentLoop",
    "SyncStream",
    "TokenUsage",
    "ToolCall",
    "ToolCallDelta",
    "TransportError",
    "Usage",
    "__version__",
    "agent_loop",
    "agent_loop_sync",
    "default_pipeline",
    "hookimpl",
    "hookspec",
    "open",
    "open_sync",
    "stream_registry",
    "with_fallbacks",
]
