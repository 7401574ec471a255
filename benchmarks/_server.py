"""A minimal loopback SSE server for the end-to-end cases, run as a separate process.

Its CPU must not be charged to the client being measured, and it must be
cheaper per chunk than any client, so it is not the project's (scripted,
h11-based) test server: it parses just enough HTTP/1.1 (request line, headers,
``content-length`` body, keep-alive) and answers every POST with the
benchmark's prebuilt Chat Completions stream (a short one under ``/short/``), one chunked-encoding frame per
SSE event, each handed to the kernel with its own ``write`` (TCP_NODELAY), the
way a provider flushes every token.

    python benchmarks/_server.py PORT_FILE
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _workload import workload

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n"
    b"x-request-id: req_bench\r\ntransfer-encoding: chunked\r\n\r\n"
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


def frames(events: list[bytes]) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(e), e) for e in events] + [b"0\r\n\r\n"]


def bodies() -> tuple[list[bytes], list[bytes]]:
    """The full stream, and a short one (role, 5 text chunks, finish, usage, [DONE]) for first-event timing."""
    events = workload().chat_sse
    return frames(events), frames([*events[:6], *events[-3:]])


async def serve(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, full: list[bytes], short: list[bytes]
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
            if length:
                await reader.readexactly(length)
            if not lines[0].startswith("POST "):
                writer.write(NOT_FOUND)
                continue
            writer.write(HEAD)
            for frame in short if b"/short/" in head.split(b"\r\n", 1)[0] else full:
                writer.write(frame)
                await writer.drain()
                await asyncio.sleep(0)  # one frame per write: let the loop flush it before the next
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port_file: str) -> None:
    full, short = bodies()
    server = await asyncio.start_server(lambda r, w: serve(r, w, full, short), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    Path(port_file).write_text(str(port))  # noqa: ASYNC240 - once, before serving
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
