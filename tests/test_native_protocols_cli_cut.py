"""``schwarm-stream run --provider gemini|ollama|bedrock`` on a body cut mid-answer (each SDK ends its
iterator without an error there): the command reports the stream incomplete, with the partial text,
and exits with the stream-error code, in a real subprocess against the loopback server."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("click")

from schwarm_stream.cli._common import EXIT_STREAM  # noqa: E402
from schwarm_stream.testing.server import (  # noqa: E402
    OfflineProvider,
    RecordedRequest,
    Reply,
    SSEReply,
    ThreadedProviderServer,
)

#: provider -> (its SDK module, environment with a dummy key, the route, the events the cut keeps)
CASES = {
    "gemini": ("google.genai", {"GEMINI_API_KEY": "loopback-key"}, "gemini-stream", 2),
    "ollama": ("ollama", {"OLLAMA_API_KEY": "loopback-key"}, "ollama-chat", 2),
    "bedrock": (
        "boto3",
        {"AWS_ACCESS_KEY_ID": "AKIDLOOPBACK", "AWS_SECRET_ACCESS_KEY": "not-secret"},
        "bedrock-converse-stream",
        3,  # messageStart, then two text deltas
    ),
}


class Cut:
    """The offline provider, every streamed body of ``route`` ending cleanly after ``keep`` events."""

    def __init__(self, route: str, keep: int) -> None:
        self.offline = OfflineProvider()
        self.route, self.keep = route, keep

    def __call__(self, request: RecordedRequest) -> Reply:
        reply = self.offline(request)
        if request.route == self.route and isinstance(reply, SSEReply):
            reply = dataclasses.replace(reply, parts=reply.parts[: self.keep], end="eof")
        return reply


@pytest.mark.parametrize("provider", sorted(CASES))
def test_run_reports_a_cut_body_as_incomplete(provider: str) -> None:
    module, env, route, keep = CASES[provider]
    pytest.importorskip(module)
    with ThreadedProviderServer(Cut(route, keep)) as server:
        result = subprocess.run(
            [
                sys.executable, "-m", "schwarm_stream", "run", "--provider", provider,
                "--base-url", server.url, "--model", "m", "--json", "Hello there",
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "NO_COLOR": "1", **env},
        )
        routes = {r.route for r in server.requests}
    assert routes == {route}
    assert result.returncode == EXIT_STREAM, (result.stdout, result.stderr)
    out = json.loads(result.stdout)
    assert out["error"]["type"] == "StreamIncomplete" and not out["complete"]
    assert out["text"] and "You said: Hello there".startswith(out["text"])  # the partial, kept
