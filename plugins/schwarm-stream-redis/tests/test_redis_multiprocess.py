"""Producer and readers in separate processes, through a real redis-server.

The producer (redis_producer_proc.py) streams from a loopback provider server with the official OpenAI
SDK client, through a broken first attempt (a Reset in the log) and a slow second one that holds in the
middle until the test opens a gate. Readers (redis_reader_proc.py) follow the log from other processes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from schwarm_stream_redis.testing import RedisServer

HERE = Path(__file__).parent
TIMEOUT = 60.0


def spawn(script: str, **args: Any) -> subprocess.Popen[bytes]:
    argv = [sys.executable, str(HERE / script)]
    for k, v in args.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(predicate: Any, what: str, procs: list[subprocess.Popen[bytes]] = ()) -> None:  # type: ignore[assignment]
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        for p in procs:
            if p.poll() is not None and p.returncode != 0:
                raise AssertionError(
                    f"helper exited with {p.returncode} while waiting for {what}: {stderr(p)}"
                )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def stderr(p: subprocess.Popen[bytes]) -> str:
    return p.stderr.read().decode(errors="replace")[-3000:] if p.stderr else ""


def lines(path: Path) -> list[dict[str, str]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def finish(p: subprocess.Popen[bytes]) -> None:
    try:
        rc = p.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError(f"helper did not finish: {stderr(p)}") from None
    assert rc == 0, stderr(p)


def result(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_readers_in_other_processes_end_with_the_producers_message_across_a_reader_restart(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    sid, tenant = uuid.uuid4().hex, "acme"
    gate, out = tmp_path / "gate", tmp_path / "producer.json"
    producer = spawn(
        "redis_producer_proc.py",
        url=redis_server.url,
        tenant=tenant,
        stream_id=sid,
        out=out,
        gate=gate,
        chunks=40,
        broken=6,
        delay=0.01,
    )
    procs = [producer]
    try:
        wait_for(lambda: Path(str(out) + ".started").exists(), "the producer's first event", procs)
        readers = {}
        for name in ("a", "b"):
            readers[name] = spawn(
                "redis_reader_proc.py",
                url=redis_server.url,
                tenant=tenant,
                stream_id=sid,
                journal=tmp_path / f"{name}.jsonl",
                result=tmp_path / f"{name}.json",
            )
        procs += readers.values()
        journal_b = tmp_path / "b.jsonl"
        # the producer holds at the middle of attempt 2: reader b has read past the Reset by then
        wait_for(
            lambda: any(e["type"] == "reset" for e in lines(journal_b)) and len(lines(journal_b)) >= 20,
            "reader b to read past the reset",
            procs,
        )
        readers["b"].send_signal(signal.SIGKILL)
        readers["b"].wait(TIMEOUT)
        seen_before_kill = lines(journal_b)
        assert not (tmp_path / "b.json").exists()  # it really died mid-stream

        readers["b"] = spawn(
            "redis_reader_proc.py",
            url=redis_server.url,
            tenant=tenant,
            stream_id=sid,
            journal=journal_b,
            result=tmp_path / "b.json",
        )
        procs.append(readers["b"])
        gate.write_text("go")  # the producer goes on while b is (re)starting
        for p in (producer, *readers.values()):
            finish(p)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()

    made = result(out)
    assert made["outcome"] == "complete" and made["recovery"] == "restarted"
    assert made["text"] == "".join(f"w{i} " for i in range(40))
    assert made["writer_state"] == "ok" and made["written_seq"] == made["delivered"] + 1
    for name in ("a", "b"):
        got = result(tmp_path / f"{name}.json")
        assert "error_type" not in got, got
        assert got["text"] == made["text"]  # exactly the producer's final message
        assert got["end_status"] == "complete" and got["end_text"] == made["text"]
        seqs = [int(e["seq"]) for e in lines(tmp_path / f"{name}.jsonl")]
        assert seqs == list(range(1, made["delivered"] + 2))  # every event once, in order, then the end
    b = result(tmp_path / "b.json")
    assert b["resumed_from"] == int(seen_before_kill[-1]["seq"]) > 0


@pytest.mark.parametrize("mode", ["fail", "degrade"])
def test_redis_restart_mid_stream_fails_or_degrades_and_the_reader_is_told(
    private_redis: RedisServer, tmp_path: Path, mode: str
) -> None:
    sid, tenant = uuid.uuid4().hex, "acme"
    gate, out = tmp_path / "gate", tmp_path / "producer.json"
    producer = spawn(
        "redis_producer_proc.py",
        url=private_redis.url,
        tenant=tenant,
        stream_id=sid,
        out=out,
        gate=gate,
        chunks=20,
        mode=mode,
        write_timeout=1.0,
    )
    procs = [producer]
    try:
        wait_for(lambda: Path(str(out) + ".started").exists(), "the producer's first event", procs)
        reader = spawn(
            "redis_reader_proc.py",
            url=private_redis.url,
            tenant=tenant,
            stream_id=sid,
            journal=tmp_path / "r.jsonl",
            result=tmp_path / "r.json",
            idle_timeout=20,
        )
        procs.append(reader)
        wait_for(lambda: len(lines(tmp_path / "r.jsonl")) >= 3, "the reader's first events", procs)
        private_redis.restart()  # no persistence: the log is gone
        gate.write_text("go")
        finish(producer)
        finish(reader)
        # a browser reconnecting after all this, from its last id
        again = spawn(
            "redis_reader_proc.py",
            url=private_redis.url,
            tenant=tenant,
            stream_id=sid,
            journal=tmp_path / "r.jsonl",
            result=tmp_path / "again.json",
        )
        procs.append(again)
        finish(again)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    made = result(out)
    full = "".join(f"w{i} " for i in range(20))
    if mode == "fail":
        assert made["error_type"] == "RedisSinkError" and made["writer_state"] == "failed"
        assert made["outcome"] == "error"
    else:
        assert "error_type" not in made and made["outcome"] == "complete"
        assert made["degraded"] is True and made["text"] == full  # the stream itself went on locally
    for name in ("r", "again"):
        got = result(tmp_path / f"{name}.json")
        # never a truncated "complete": the reader gets a typed error
        assert got["end_status"] is None and got["text"] != full
        assert got["error_type"] in {"StreamDegraded", "StreamGone", "LogUnavailable"}, got
    assert result(tmp_path / "again.json")["error_type"] == "StreamDegraded"
