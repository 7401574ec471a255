"""examples/flask_sse.py over real sockets: werkzeug's server on 127.0.0.1, an httpx client, the sync SDK.

The app is the example's own ``create_app``; the provider is the loopback server in its own thread. A
client that disconnects mid-answer must close the provider stream (``cancelled``) and leave no thread.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import openai
import pytest
from httpx_sse import connect_sse
from werkzeug.serving import BaseWSGIServer, make_server

from schwarm_stream import Pipeline
from schwarm_stream.testing.server import (
    OfflineProvider,
    Sleep,
    SSEReply,
    ThreadedProviderServer,
    openai_chat_events,
)
from tests.support.sync_checks import Ends, no_new_threads

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "flask_sse.py"
CORE = {"plugins": {"autoload": False, "disable": ["retry", "recovery", "timeouts"]}}


@pytest.fixture(scope="module")
def example() -> Iterator[ModuleType]:
    """The example as a module (its ``_provider`` helper lives next to it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(EXAMPLE.parent))
        spec = importlib.util.spec_from_file_location("flask_sse_example", EXAMPLE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


def serve(app: Any) -> tuple[BaseWSGIServer, str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, name="werkzeug", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def read(url: str, q: str) -> list[tuple[str, Any]]:
    with httpx.Client(timeout=30) as http, connect_sse(http, "GET", f"{url}/chat", params={"q": q}) as sse:
        assert sse.response.headers["content-type"].startswith("text/event-stream")
        return [(e.event, json.loads(e.data)) for e in sse.iter_sse()]


def test_the_flask_route_streams_both_turns_and_the_tool_result(example: ModuleType) -> None:
    with ThreadedProviderServer(OfflineProvider()) as provider:
        client = openai.OpenAI(api_key="sk-test", base_url=provider.openai_base_url)
        server, url = serve(example.create_app(client, "m"))
        try:
            with no_new_threads():  # the request's thread and its loop thread are gone after the answer
                events = read(url, "What's the weather in Rome?")
        finally:
            server.shutdown()
    names = [name for name, _ in events]
    assert names.count("turn") == 2 and names[-1] == "done" and events[-1][1] == {"outcome": "complete"}
    tool = next(data for name, data in events if name == "tool")
    assert tool == {
        "name": "get_weather",
        "arguments": {"city": "Rome"},
        "content": "Sunny and 21 degrees in Rome",
    }
    text = "".join(data["text"] for name, data in events if name == "chunk")
    assert text.endswith("The tool returned: Sunny and 21 degrees in Rome")
    assert names.index("tool") < names.index("turn")  # the tool result is sent as soon as it exists


def test_a_failing_stream_sends_the_typed_error_with_its_partial_text(example: ModuleType) -> None:
    with ThreadedProviderServer() as provider:
        provider.script(
            "openai-chat", SSEReply(openai_chat_events(["par", "tial"], finish_reason=None, done=False))
        )
        client = openai.OpenAI(api_key="sk-test", base_url=provider.openai_base_url)
        server, url = serve(example.create_app(client, "m", pipeline=Pipeline(config=CORE)))
        try:
            events = read(url, "hi")
        finally:
            server.shutdown()
    assert events[-2:] == [
        ("error", {"error": "StreamIncomplete", "partial": "partial"}),
        ("done", {"outcome": "error"}),
    ]


def test_a_client_that_disconnects_closes_the_provider_stream_and_its_thread(example: ModuleType) -> None:
    # A long answer: 400 chunks, 10 ms apart. The client leaves after the first one.
    body = openai_chat_events([f"w{i} " for i in range(400)])
    paced = [body[0], *[part for event in body[1:] for part in (Sleep(0.01), event)]]
    ends = Ends()
    with ThreadedProviderServer() as provider:
        provider.script("openai-chat", SSEReply(paced))
        client = openai.OpenAI(api_key="sk-test", base_url=provider.openai_base_url)
        server, url = serve(example.create_app(client, "m", pipeline=Pipeline([ends], config=CORE)))
        try:
            with no_new_threads():
                with (
                    httpx.Client(timeout=30) as http,
                    connect_sse(http, "GET", f"{url}/chat", params={"q": "hi"}) as sse,
                ):
                    first = next(sse.iter_sse())
                # The server notices on its next write, closes the generator, and the stream ends.
                assert ends.ended.wait(30), "the provider stream did not end after the client left"
                provider.wait_connections(0)
        finally:
            server.shutdown()
    assert first.event == "chunk"
    assert ends.outcomes == ["cancelled"]  # not "complete": the answer was not read to its end
