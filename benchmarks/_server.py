"""A minimal loopback SSE server for the end-to-end cases, run as a separate process.

Its CPU must not be charged to the client being measured, and it must be
cheaper per chunk than any client, so it is not the project's (scripted,
h11-based) test server: it parses just enough HTTP/1.1 (request line, headers,
``content-length`` body, keep-alive) and answers every POST with the
benchmark's prebuilt Chat Completions stream (a short one under ``/short/``; the same answer as Anthropic
Messages events for a path ending in ``/messages``), one chunked-encoding frame per
SSE event, each handed to the kernel with its own ``write`` (TCP_NODELAY), the
way a provider flushes every token.

Under ``/paced/`` (the scale test) the body's ``"t0"`` (a ``time.monotonic()``
value: on Linux one clock for every process) and ``"n"``, ``"interval"`` make
a paced stream: the role chunk due at ``t0``, text chunk ``j`` at
``t0 + j * interval`` (``j = 1..n``), then finish, usage and ``[DONE]``. The
server never waits for the client: lateness it adds itself is its own.

    python benchmarks/_server.py PORT_FILE
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _workload import TEXT_CHUNKS, workload

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n"
    b"x-request-id: req_bench\r\ntransfer-encoding: chunked\r\n\r\n"
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


def frames(events: list[bytes]) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(e), e) for e in events] + [b"0\r\n\r\n"]


def bodies() -> dict[str, list[bytes]]:
    """The full stream, a short one (role, 5 text chunks, finish, usage, [DONE]) for first-event timing,
    the same answer as Anthropic Messages events (full and short), and the pieces of a paced stream."""
    w = workload()
    events = w.chat_sse
    anth = [
        b"event: %s\ndata: %s\n\n" % (d["type"].encode(), json.dumps(d, separators=(",", ":")).encode())
        for d in w.anthropic_dicts
    ]
    return {
        "full": frames(events),
        "short": frames([*events[:6], *events[-3:]]),
        "anthropic": frames(anth),
        # message_start, the text block's start, 5 text deltas, its stop, message_delta, message_stop
        "anthropic_short": frames([*anth[:7], anth[2 + TEXT_CHUNKS], *anth[-2:]]),
        "paced_role": frames(events[:1])[:1],
        "paced_text": frames(events[1:2])[:1],
        "paced_tail": frames(events[-3:]),
    }


async def paced(writer: asyncio.StreamWriter, body: bytes, b: dict[str, list[bytes]]) -> None:
    spec = json.loads(body)
    t0, n, interval = float(spec["t0"]), int(spec["n"]), float(spec["interval"])
    writer.write(b["paced_role"][0])
    text = b["paced_text"][0]
    for j in range(1, n + 1):
        wait = t0 + j * interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        writer.write(text)
        await writer.drain()
    for frame in b["paced_tail"]:
        writer.write(frame)
    await writer.drain()


async def serve(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, b: dict[str, list[bytes]]
) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b""
            if not lines[0].startswith("POST "):
                writer.write(NOT_FOUND)
                continue
            target = lines[0].split(" ")[1]
            writer.write(HEAD)
            if "/paced/" in target:
                await paced(writer, body, b)
                continue
            short = "/short/" in target
            if target.endswith("/messages"):
                todo = b["anthropic_short" if short else "anthropic"]
            else:
                todo = b["short" if short else "full"]
            for frame in todo:
                writer.write(frame)
                await writer.drain()
                await asyncio.sleep(0)  # one frame per write: let the loop flush it before the next
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port_file: str) -> None:
    # The scale test holds up to 10,000 connections at once: one descriptor each, and a deep accept queue.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    b = bodies()
    server = await asyncio.start_server(lambda r, w: serve(r, w, b), "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    Path(port_file).write_text(str(port))  # noqa: ASYNC240 - once, before serving
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
