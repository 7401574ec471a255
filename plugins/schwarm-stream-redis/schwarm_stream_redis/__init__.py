"""schwarm_stream_redis: fan-out and resume of schwarm_stream streams through Redis Streams.

Producer side (a worker): the ``redis`` plugin writes every delivered event of
a stream to ``schwarm:<tenant>:stream:{<stream.id>}`` (a cluster hash tag), batched::

    [redis]
    url = "redis://127.0.0.1:6379/0"
    tenant = "acme"
    on_redis_error = "fail"     # or "degrade"

Reader side (any web process)::

    async for item in read_stream(redis, "acme", stream_id, after=last_event_id):
        ...   # schwarm_stream events with .seq, then one End

See ``docs/distributed.md`` for the guarantees and limits.
"""

from ._codec import End
from ._errors import (
    InvalidStreamRef,
    LogUnavailable,
    RedisLogError,
    RedisSinkError,
    StreamDegraded,
    StreamGone,
    StreamIdConflict,
    StreamStalled,
    StreamUnknown,
)
from ._keys import MAX_SEQ, entry_id, parse_cursor, stream_key, validate_stream_id, validate_tenant
from ._plugin import SECTION, RedisStreamPlugin, message_summary, redis_log
from ._reader import IDLE, StreamInfo, follow, prepare, read_stream, stream_info
from ._replay import LogMessage
from ._settings import RedisSettings
from ._sse import sse_frames
from ._writer import LogWriter

__version__ = "0.1.0"

#: The instance the ``redis`` entry point registers: reads ``[redis]``, inactive until ``url`` is set.
plugin = RedisStreamPlugin()

__all__ = [
    "IDLE",
    "MAX_SEQ",
    "SECTION",
    "End",
    "InvalidStreamRef",
    "LogMessage",
    "LogUnavailable",
    "LogWriter",
    "RedisLogError",
    "RedisSettings",
    "RedisSinkError",
    "RedisStreamPlugin",
    "StreamDegraded",
    "StreamGone",
    "StreamIdConflict",
    "StreamInfo",
    "StreamStalled",
    "StreamUnknown",
    "__version__",
    "entry_id",
    "follow",
    "message_summary",
    "parse_cursor",
    "plugin",
    "prepare",
    "read_stream",
    "redis_log",
    "sse_frames",
    "stream_info",
    "stream_key",
    "validate_stream_id",
    "validate_tenant",
]
