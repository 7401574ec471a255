"""The CLI's Bedrock pieces (``cli._sources``): the ``run`` source through boto3 against the offline
provider, and the replay helpers serving recorded ``ConverseStream`` bodies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("boto3")  # the extra "bedrock"

from schwarm_stream import Config, Pipeline
from schwarm_stream.cli._sources import (
    BEDROCK_PROTOCOL,
    bedrock_replay_source,
    is_eventstream,
    provider_source,
    replay_reply,
)
from schwarm_stream.sources import to_converse
from schwarm_stream.testing.server import ROUTES, OfflineProvider, ProviderServer
from tests.test_source_bedrock import converse_from

CORPUS = Path(__file__).parent / "data" / "corpus-bedrock"
RECORDINGS = sorted(CORPUS.glob("*/*.eventstream"))
EXACT = Config.from_dict({"retry": {"attempts": 1}, "recovery": {"mid_stream": "raise"}})


def load(path: Path) -> bytes:
    return path.read_bytes()


async def test_run_source_streams_from_the_offline_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    # boto3's own credential chain (the environment here), as `run --provider bedrock` uses it
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDLOOPBACK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-secret")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    async with ProviderServer(OfflineProvider()) as server:
        source = provider_source("bedrock", "unused", server.url, "amazon.nova-lite-v1:0", 64, "Hello there")
        async with Pipeline(config=EXACT).open(source) as stream:
            message = await stream.collect()
    assert message.complete and message.text == "You said: Hello there"
    request = server.requests[0]
    assert request.path == "/model/amazon.nova-lite-v1%3A0/converse-stream"
    assert request.json["inferenceConfig"] == {"maxTokens": 64}
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDLOOPBACK/")


def test_eventstream_bodies_are_told_from_sse_and_json() -> None:
    assert all(is_eventstream(load(p)[:12]) for p in RECORDINGS)
    assert not is_eventstream(b"data: {}\n\n")
    assert not is_eventstream(b'{"type":"message_start"}\n')
    assert not is_eventstream(b"\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00")  # a wrong prelude CRC


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name.split(".")[0])
async def test_replay_helpers_serve_a_recording_through_boto3(path: Path) -> None:
    assert BEDROCK_PROTOCOL in ROUTES
    body = load(path)
    async with ProviderServer() as server:
        server.script(BEDROCK_PROTOCOL, replay_reply(body))
        async with Pipeline(config=EXACT).open(bedrock_replay_source(server)) as stream:
            message = await stream.collect()
    assert message.complete and to_converse(message) == converse_from(body)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "schwarm_stream", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, "NO_COLOR": "1", **env},
    )


def test_cli_run_provider_bedrock_streams_from_the_offline_provider() -> None:
    from schwarm_stream.testing.server import ThreadedProviderServer

    creds = {"AWS_ACCESS_KEY_ID": "AKIDLOOPBACK", "AWS_SECRET_ACCESS_KEY": "not-secret"}
    with ThreadedProviderServer(OfflineProvider()) as server:
        result = _cli(
            "run", "--provider", "bedrock", "--base-url", server.url, "-m", "amazon.nova-lite-v1:0",
            "--json", "Hello there", env=creds,
        )  # fmt: skip
        route = server.requests[0].route
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["complete"] and out["text"] == "You said: Hello there"
    assert route == BEDROCK_PROTOCOL


def test_cli_replay_detects_bedrock_recordings_and_flags_a_cut_one(tmp_path: Path) -> None:
    result = _cli("replay", "--json", *map(str, RECORDINGS), env={})
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(RECORDINGS) and all(line["complete"] for line in lines)
    cut = tmp_path / "cut.eventstream"
    body = load(RECORDINGS[0])
    cut.write_bytes(body[: len(body) // 2])
    result = _cli("replay", "--protocol", BEDROCK_PROTOCOL, str(cut), env={})
    assert result.returncode == 1 and "incomplete" in result.stdout


def test_cli_run_provider_bedrock_with_a_missing_profile_is_a_usage_error() -> None:
    result = _cli("run", "--provider", "bedrock", "-m", "m", "Hi", env={"AWS_PROFILE": "no-such-profile"})
    assert result.returncode == 2, result.stderr
    assert "no-such-profile" in result.stderr and "Traceback" not in result.stderr
