"""A throwaway ``redis-server`` for tests and benchmarks: loopback only, no persistence.

::

    server = RedisServer()
    server.start()          # a free port on 127.0.0.1, waits for PING
    ...
    server.restart()        # same port, empty (nothing is saved)
    server.close()

    cluster = RedisClusterServers(3)   # three masters on loopback, slots spread, no replicas
    cluster.start()
    ... RedisCluster(host="127.0.0.1", port=cluster.ports[0]) ...
    cluster.close()
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from typing import TYPE_CHECKING

import redis

if TYPE_CHECKING:
    from schwarm_stream import Stream

__all__ = ["RedisClusterServers", "RedisServer", "free_port", "wait_written"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process without persistence; can be stopped and restarted on its port."""

    def __init__(
        self, port: int | None = None, *, binary: str = "redis-server", extra: tuple[str, ...] = ()
    ) -> None:
        found = shutil.which(binary)
        if found is None:  # a missing server is a broken environment, not a reason to skip
            raise RuntimeError(f"{binary} is not installed (CI installs it in .ci/setup.d/)")
        self.binary = found
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="schwarm-redis-")
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", self.dir,
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode} on port {self.port}")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not answer PING")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


async def wait_written(stream: Stream, seq: int, *, timeout: float = 10.0) -> None:
    """Wait until Redis acknowledged ``stream``'s entries up to ``seq`` (tests use it to act mid-stream)."""
    from ._plugin import redis_log

    for _ in range(int(timeout / 0.005)):
        w = redis_log(stream)
        if w is not None and w.written_seq >= seq:
            return
        await asyncio.sleep(0.005)
    raise TimeoutError(f"stream {stream.id}: entry {seq} not written within {timeout}s")


class RedisClusterServers:
    """``n`` cluster-enabled ``redis-server`` masters on loopback, joined with ``redis-cli --cluster create``."""

    def __init__(self, n: int = 3) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError(
                "redis-cli is not installed (it comes with redis-server, .ci/setup.d/20-redis.sh)"
            )
        self.cli = cli
        # the bus port defaults to port + 10000, which may not exist for a high free port: pick one
        self.nodes = [
            RedisServer(
                extra=(
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-port", str(free_port()),
                )
            )
            for _ in range(n)
        ]  # fmt: skip

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        subprocess.run(
            [self.cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        for port in self.ports:  # every node must agree the cluster is up before a client connects
            client = redis.Redis(port=port)
            try:
                while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):  # type: ignore[no-untyped-call]
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster node {port} did not reach cluster_state:ok")
                    time.sleep(0.05)
            finally:
                client.close()

    def close(self) -> None:
        for node in self.nodes:
            node.close()
