"""A reader process for the multi-process tests (run as a script, not collected by pytest).

It follows a stream's Redis log and appends every entry it reads to ``--journal`` (one JSON line,
flushed, before it counts as shown). Started again with the same journal — after being killed — it
rebuilds what it had shown from the journal and resumes after the journal's last seq, exactly as a
browser resumes with ``Last-Event-ID``. The result (text shown, the end entry, or the typed error) goes
to ``--result`` as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any, TextIO

import redis.asyncio
from schwarm_stream_redis import End, LogMessage, RedisLogError, read_stream
from schwarm_stream_redis._codec import decode_entry, encode_end, encode_event


def encode(value: Any) -> dict[str, str]:
    if isinstance(value, End):
        return encode_end(value.seq, value.status, message=value.message, error=value.error)
    return encode_event(value)


def replay(journal: Path) -> LogMessage:
    """What this reader had shown before it was killed (empty on a first start)."""
    shown = LogMessage()
    if journal.exists():
        for line in journal.read_text().splitlines():
            shown.feed(decode_entry(json.loads(line))[2])  # type: ignore[arg-type]
    return shown


async def main(a: argparse.Namespace, shown: LogMessage, f: TextIO) -> None:
    result: dict[str, Any] = {"resumed_from": shown.last_seq}
    client = redis.asyncio.Redis.from_url(a.url)
    try:
        async for value in read_stream(
            client, a.tenant, a.stream_id, after=shown.last_seq, block_ms=200, idle_timeout=a.idle_timeout
        ):
            f.write(json.dumps(encode(value)) + "\n")  # journaled (and flushed) before it counts as shown
            f.flush()
            shown.feed(value)
    except RedisLogError as exc:
        result["error_type"] = type(exc).__name__
        result["error"] = str(exc)
        result["status"] = exc.status
    finally:
        await client.aclose()
    end = shown.end
    result.update(
        text=shown.text,
        last_seq=shown.last_seq,
        end_status=end.status if end else None,
        end_text=(end.message or {}).get("text") if end else None,
    )
    write_result(Path(a.result), result)


def write_result(out: Path, result: dict[str, Any]) -> None:
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, out)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--tenant", required=True)
    p.add_argument("--stream-id", required=True)
    p.add_argument("--journal", required=True)
    p.add_argument("--result", required=True)
    p.add_argument("--idle-timeout", type=float, default=60.0)
    args = p.parse_args()
    journal = Path(args.journal)
    shown = replay(journal)
    with journal.open("a") as f:
        asyncio.run(main(args, shown, f))
