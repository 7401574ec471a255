"""schwarm-stream-jsonl: record streams to JSON Lines and replay the recordings.

The recorder is the plugin ``jsonl`` (found through the ``schwarm_stream``
entry point; nothing to import). Turn it on with a path::

    [jsonl]
    path = "recordings/streams.jsonl"      # one shared file
    # path = "recordings/{stream_id}.jsonl"  # or one file per stream

Replay a recorded stream in a test::

    from schwarm_stream_jsonl import jsonl_replay

    message = await pipeline.open(jsonl_replay("streams.jsonl", stream_id="5f0c...")).collect()
"""

from __future__ import annotations

from .format import RECORD_VERSION, decode_event, encode_error, encode_event
from .plugin import JsonlConfig
from .replay import JsonlReplaySource, RecordedStream, jsonl_replay, read_recording

__all__ = [
    "RECORD_VERSION",
    "JsonlConfig",
    "JsonlReplaySource",
    "RecordedStream",
    "decode_event",
    "encode_error",
    "encode_event",
    "jsonl_replay",
    "read_recording",
]

__version__ = "0.1.0"
