"""``demo``'s summary counts the retries of every turn, in the right plural, and shows each one live."""

from __future__ import annotations

import re
from typing import Any

import pytest
from click.testing import CliRunner

from schwarm_stream.cli import cli
from schwarm_stream.testing import server as testing_server
from schwarm_stream.testing.server import JSONReply, OfflineProvider, RecordedRequest


class BusyAt(OfflineProvider):
    """The offline provider, except that the requests numbered in ``busy`` (1-based) get a 503."""

    def __init__(self, busy: set[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.busy = busy
        self.calls = 0

    def __call__(self, request: RecordedRequest) -> Any:
        self.calls += 1
        if self.calls in self.busy:
            return JSONReply(503, {"error": {"message": "busy", "type": "server_error"}})
        return super().__call__(request)


# Requests: turn 1 is request 1 (+ its retries), turn 2 follows. {1}: turn 1 retried once;
# {1, 3}: turn 1 retried once, then turn 2's first request (number 3) too.
@pytest.mark.parametrize(("busy", "retries"), [({1}, "1 retry"), ({1, 3}, "2 retries")])
def test_the_summary_counts_retries_across_turns(
    monkeypatch: pytest.MonkeyPatch, busy: set[int], retries: str
) -> None:
    monkeypatch.setattr(testing_server, "OfflineProvider", lambda **kw: BusyAt(busy, **kw))
    env = {"SCHWARM_STREAM__RETRY__INITIAL_WAIT": "0", "OPENAI_API_KEY": None}
    result = CliRunner().invoke(cli, ["demo", "--chunk-delay", "0"], env=env)
    assert result.exit_code == 0, result.output
    summary = result.stdout.strip().splitlines()[-1]
    assert re.match(
        rf"summary: 2 turns · \d+ chunks · .* · 1 tool call · {retries} · outcome complete$", summary
    )
    shown = re.findall(r"^retry: attempt 2 of 4 now after ProviderError.*503", result.stderr, re.M)
    assert len(shown) == len(busy)  # each retry was also shown as it happened
