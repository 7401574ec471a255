"""Many SSE clients in one process for the fan-out test (run as a script, not collected by pytest).

Each of ``--clients`` readers connects to one of ``--ports`` (client i to port i mod n), keeps every
frame with an ``id:``, and when the connection breaks before the ``: done`` comment, reconnects — to
the next port — with ``Last-Event-ID`` set to the last id it got, as a browser's EventSource does.
Plain HTTP/1.0 over asyncio streams keeps a thousand clients cheap. Writes, per client, the SHA-256 of
the frames it kept, their count and how many times it reconnected, to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any


def kept_frames(body: str) -> list[str]:
    """The frames that carry an id (events), in order; retry lines and comments dropped."""
    return [f + "\n\n" for f in body.split("\n\n") if any(line.startswith("id: ") for line in f.split("\n"))]


async def one(sid: str, ports: list[int], start: int, deadline: float) -> dict[str, Any]:
    frames: list[str] = []
    last = ""
    reconnects = 0
    refused = 0
    statuses: list[str] = []
    turn = start
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        port = ports[turn % len(ports)]
        turn += 1
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:  # the web process is being restarted
            refused += 1
            await asyncio.sleep(0.05)
            continue
        try:
            head = f"GET /streams/{sid} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            if last:
                head += f"Last-Event-ID: {last}\r\n"
            writer.write((head + "\r\n").encode())
            raw = b""
            try:
                raw = await reader.read(-1)  # HTTP/1.0: the body ends when the server closes
            except OSError:
                pass
            text = raw.decode("utf-8", "replace")
            status, _, rest = text.partition("\r\n\r\n")
            statuses.append(f"{port}:{status[:12]}:{len(rest)}")
            ok = status.startswith("HTTP/1.1 200") or status.startswith("HTTP/1.0 200")
            if ok:
                # a killed process may cut a frame in half: keep only complete frames
                complete, _, _ = rest.rpartition("\n\n")
                got = kept_frames(complete + "\n\n") if complete else []
                frames += got
                for frame in reversed(got):
                    ids = [ln[4:] for ln in frame.split("\n") if ln.startswith("id: ")]
                    if ids:
                        last = ids[-1]
                        break
                if rest.endswith(": done\n\n"):
                    break
        finally:
            writer.close()
        reconnects += 1
        await asyncio.sleep(0.02)
    joined = "".join(frames)
    return {
        "sha": hashlib.sha256(joined.encode()).hexdigest(),
        "frames": len(frames),
        "reconnects": reconnects,
        "refused": refused,
        "statuses": statuses[-4:],  # the last responses: what a failing test shows
    }


async def main(a: argparse.Namespace) -> None:
    ports = [int(p) for p in a.ports.split(",")]
    deadline = asyncio.get_running_loop().time() + a.timeout
    results = await asyncio.gather(
        *(one(a.stream_id, ports, a.first + i, deadline) for i in range(a.clients))
    )
    tmp = Path(a.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(results))
    os.replace(tmp, a.out)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--stream-id", required=True)
    p.add_argument("--ports", required=True)
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--timeout", type=float, default=50.0)
    asyncio.run(main(p.parse_args()))
