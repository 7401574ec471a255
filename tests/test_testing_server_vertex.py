"""The loopback provider server's Vertex AI routes, through the real google-genai SDK in Vertex mode
(``genai.Client(vertexai=True, ...)``) over 127.0.0.1: express mode (an API key), project mode
(``project=``, ``location=`` and static OAuth credentials, so nothing leaves the machine), ``/v1`` and
a tuned model's endpoint; the same scripting and faults as the Gemini route, the offline provider,
and the sync client on the threaded server."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

genai = pytest.importorskip("google.genai")  # the extra "gemini"
from google.genai import errors as genai_errors  # noqa: E402
from google.genai import types  # noqa: E402
from google.oauth2.credentials import Credentials  # noqa: E402

from schwarm_stream import (  # noqa: E402
    Config,
    Pipeline,
    ProviderError,
    StreamIncomplete,
    StreamTimeout,
    TransportError,
)
from schwarm_stream.sources import gemini_generate  # noqa: E402
from schwarm_stream.testing._gemini_wire import (  # noqa: E402
    VERTEX_CREATE_TIME,
    gemini_error_body,
    gemini_error_event,
    gemini_response,
    gemini_stream_events,
)
from schwarm_stream.testing.server import (  # noqa: E402
    ROUTES,
    JSONReply,
    OfflineProvider,
    ProviderServer,
    Split,
    SSEReply,
    Stall,
    ThreadedProviderServer,
    _route,
)

MODEL = "gemini-2.5-flash"
EXACT = {"retry": {"attempts": 1}, "recovery": {"mid_stream": "raise"}}
NO_SDK_RETRY = {"http_options": {"retry_options": {"attempts": 1}}}


def express(url: str, **options: Any) -> Any:
    """Vertex AI express mode: an API key, no project (``/v1beta1/publishers/google/models/...``)."""
    return genai.Client(
        vertexai=True, api_key="vx-key", http_options=types.HttpOptions(base_url=url, **options)
    )


def project(url: str, location: str = "us-central1", token: str = "ya29.loopback", **options: Any) -> Any:
    """Vertex AI with a project and location; a static token (no refresh, so no call to Google)."""
    return genai.Client(
        vertexai=True,
        project="proj-1",
        location=location,
        credentials=Credentials(token=token),
        http_options={"base_url": url, **options},
    )


def pipeline(cfg: dict[str, Any] | None = None) -> Pipeline:
    return Pipeline(config=Config.from_dict(cfg or EXACT))


async def collect(client: Any, model: str = MODEL, cfg: dict[str, Any] | None = None, **kw: Any) -> Any:
    async with pipeline(cfg).open(gemini_generate(client, model=model, contents="Hi", **kw)) as stream:
        return await stream.collect()


@pytest.fixture(autouse=True)
def _no_google_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK reads project, location and keys from the environment; none of them here."""
    for var in (
        "GOOGLE_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_GENAI_USE_ENTERPRISE",
        "GOOGLE_GENAI_API_VERSION",
    ):
        monkeypatch.delenv(var, raising=False)


def test_the_vertex_routes_are_routes_and_the_paths_tell_them_apart() -> None:
    assert {"vertex-stream", "vertex-generate"} <= set(ROUTES)
    m = "publishers/google/models/gemini-2.5-flash"
    assert _route("POST", f"/v1beta1/{m}:streamGenerateContent") == "vertex-stream"
    assert _route("POST", f"/v1beta1/{m}:generateContent") == "vertex-generate"
    assert (
        _route("POST", f"/v1beta1/projects/p/locations/us-east5/{m}:streamGenerateContent") == "vertex-stream"
    )
    assert _route("POST", f"/v1/projects/p/locations/global/{m}:generateContent") == "vertex-generate"
    assert _route("POST", "/v1/projects/p/locations/l/endpoints/123:streamGenerateContent") == "vertex-stream"
    assert (
        _route("POST", "/v1beta1/publishers/anthropic/models/claude:streamGenerateContent") == "vertex-stream"
    )
    # the Gemini API's path stays the Gemini route; near misses are no route
    assert _route("POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent") == "gemini-stream"
    assert _route("POST", f"/v1beta/{m}:streamGenerateContent") is None  # Vertex has no v1beta
    assert _route("POST", f"/v1beta1/projects/p/{m}:streamGenerateContent") is None  # no location
    assert _route("POST", "/v1beta1/endpoints/123:streamGenerateContent") is None  # endpoints need a project
    assert _route("GET", f"/v1beta1/{m}:streamGenerateContent") is None
    assert _route("POST", f"/v1beta1/{m}:countTokens") is None


async def test_express_mode_streams_from_the_vertex_route() -> None:
    async with ProviderServer(api_key="vx-key") as server:
        server.script("vertex-stream", SSEReply(gemini_stream_events(["Hel", "lo"], vertex=True)))
        message = await collect(express(server.vertex_base_url))
        [request] = server.requests
    assert message.complete and message.text == "Hello" and message.finish_reason == "STOP"
    assert message.provider == "gcp.vertex_ai"  # the source saw a Vertex AI client
    assert (request.route, request.path, request.query) == (
        "vertex-stream",
        "/v1beta1/publishers/google/models/gemini-2.5-flash:streamGenerateContent",
        {"alt": "sse"},
    )
    assert request.headers["x-goog-api-key"] == "vx-key" and "authorization" not in request.headers
    assert request.json["contents"] == [{"parts": [{"text": "Hi"}], "role": "user"}]


@pytest.mark.parametrize(
    ("location", "version", "prefix"),
    [
        ("us-central1", None, "/v1beta1/projects/proj-1/locations/us-central1"),
        ("global", "v1", "/v1/projects/proj-1/locations/global"),
    ],
)
async def test_project_mode_streams_from_the_vertex_route(
    location: str, version: str | None, prefix: str
) -> None:
    options = {"api_version": version} if version else {}
    async with ProviderServer(api_key="ya29.loopback") as server:
        server.script("vertex-stream", SSEReply(gemini_stream_events(["Bonjour"], vertex=True)))
        message = await collect(project(server.vertex_base_url, location, **options))
        [request] = server.requests
    assert message.complete and message.text == "Bonjour" and message.provider == "gcp.vertex_ai"
    assert request.route == "vertex-stream"
    assert request.path == f"{prefix}/publishers/google/models/{MODEL}:streamGenerateContent"
    assert request.headers["authorization"] == "Bearer ya29.loopback"  # the credentials' token


async def test_a_tuned_model_endpoint_is_the_vertex_route() -> None:
    async with ProviderServer() as server:
        server.script("vertex-stream", SSEReply(gemini_stream_events(["tuned"], vertex=True)))
        message = await collect(
            project(server.vertex_base_url), model="projects/proj-1/locations/us-central1/endpoints/987"
        )
        [request] = server.requests
    assert message.text == "tuned" and request.route == "vertex-stream"
    assert (
        request.path == "/v1beta1/projects/proj-1/locations/us-central1/endpoints/987:streamGenerateContent"
    )


async def test_a_wrong_token_is_a_401_the_sdk_raises() -> None:
    async with ProviderServer(api_key="ya29.right") as server:
        server.script("vertex-stream", SSEReply(gemini_stream_events(["never"], vertex=True)))
        with pytest.raises(ProviderError) as info:
            await collect(project(server.vertex_base_url, token="ya29.wrong"))
        assert server.pending("vertex-stream") == 1  # the scripted reply was not used
    assert info.value.status_code == 401 and not info.value.retryable


async def test_the_gemini_script_does_not_answer_a_vertex_client() -> None:
    """The routes are apart: a reply queued for the Gemini API is not served to a Vertex client."""
    async with ProviderServer() as server:
        server.script("gemini-stream", SSEReply(gemini_stream_events(["gemini"])))
        with pytest.raises(ProviderError) as info:
            await collect(express(server.vertex_base_url))
        assert server.pending("gemini-stream") == 1 and server.requests[0].route == "vertex-stream"
    assert info.value.status_code == 500 and "'vertex-stream'" in str(info.value)


async def test_the_sdk_parses_what_vertex_fills() -> None:
    """``vertex=True`` bodies carry ``createTime``: the Vertex parser keeps it, the Gemini API one drops it
    (why recorded Vertex streams are served to a Vertex client)."""
    evs = gemini_stream_events(["a", "b"], vertex=True)
    assert all(b'"createTime"' in e and b'"trafficType":"ON_DEMAND"' in e for e in evs)
    async with ProviderServer() as server:
        server.script("vertex-stream", SSEReply(evs))
        server.script("gemini-stream", SSEReply(evs))
        vx = [
            r
            async for r in await express(server.vertex_base_url).aio.models.generate_content_stream(
                model=MODEL, contents="Hi", config=NO_SDK_RETRY
            )
        ]
        api = genai.Client(api_key="k", http_options={"base_url": server.gemini_base_url})
        gm = [
            r
            async for r in await api.aio.models.generate_content_stream(
                model=MODEL, contents="Hi", config=NO_SDK_RETRY
            )
        ]
    created = datetime.datetime.fromisoformat(VERTEX_CREATE_TIME.replace("Z", "+00:00"))
    assert [r.create_time for r in vx] == [created, created]
    assert [r.create_time for r in gm] == [None, None]
    assert [r.text for r in vx] == [r.text for r in gm] == ["a", "b"]


async def test_generate_content_is_the_vertex_generate_route() -> None:
    async with ProviderServer() as server:
        server.script("vertex-generate", JSONReply(200, gemini_response("whole", vertex=True)))
        response = await project(server.vertex_base_url).aio.models.generate_content(
            model=MODEL, contents="Hi", config=NO_SDK_RETRY
        )
        [request] = server.requests
    assert response.text == "whole" and response.create_time is not None
    assert request.route == "vertex-generate" and request.path.endswith(f"/models/{MODEL}:generateContent")


# -- faults: the reply types work on the Vertex route as on every other ---------------------------------


async def test_http_429_with_retry_info_is_retryable_and_the_sdk_does_not_retry() -> None:
    retry = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]
    async with ProviderServer() as server:
        server.script("vertex-stream", JSONReply(429, gemini_error_body(429, "quota", details=retry)))
        with pytest.raises(ProviderError) as info:
            await collect(express(server.vertex_base_url))
        assert len(server.requests) == 1
    err = info.value
    assert (err.status_code, err.error_type, err.retry_after, err.retryable) == (
        429,
        "RESOURCE_EXHAUSTED",
        12.0,
        True,
    )
    assert "vx-key" not in str(err)


async def test_a_503_is_retried_by_the_pipeline_on_the_same_route() -> None:
    cfg = {"retry": {"attempts": 3, "initial_wait": 0, "max_wait": 0}}
    async with ProviderServer() as server:
        server.script(
            "vertex-stream",
            JSONReply(503, gemini_error_body(503)),
            SSEReply(gemini_stream_events(["second"], vertex=True)),
        )
        message = await collect(project(server.vertex_base_url), cfg=cfg)
        assert [r.route for r in server.requests] == ["vertex-stream", "vertex-stream"]
    assert message.complete and message.text == "second"


async def test_an_error_event_mid_stream_is_in_band_with_the_partial() -> None:
    evs = gemini_stream_events(["Hel", "lo", " there"], vertex=True)
    async with ProviderServer() as server:
        server.script("vertex-stream", SSEReply([*evs[:2], gemini_error_event(500, "internal")]))
        stream = pipeline().open(gemini_generate(express(server.vertex_base_url), model=MODEL, contents="Hi"))
        with pytest.raises(ProviderError) as info:
            async with stream:
                await stream.collect()
    assert (info.value.status_code, info.value.in_band) == (500, True)
    assert stream.message.text == "Hello" and not stream.message.complete


@pytest.mark.parametrize("end", ["eof", "truncate", "rst"])
async def test_a_cut_body_is_never_complete(end: str) -> None:
    evs = gemini_stream_events(["Hel", "lo", "!"], vertex=True)
    async with ProviderServer() as server:
        server.script("vertex-stream", SSEReply(evs[:2], end=end))  # type: ignore[arg-type]
        stream = pipeline().open(gemini_generate(project(server.vertex_base_url), model=MODEL, contents="Hi"))
        with pytest.raises((StreamIncomplete, TransportError)):
            async with stream:
                await stream.collect()
    assert stream.message.text == "Hello" and not stream.message.complete


async def test_split_bytes_and_a_stall() -> None:
    evs = gemini_stream_events(["Grüße, ", "Zoë"], vertex=True)
    body = b"".join(evs)
    async with ProviderServer() as server:
        server.script("vertex-stream", SSEReply([Split(body, tuple(range(1, len(body))))]))
        message = await collect(express(server.vertex_base_url))
        assert message.complete and message.text == "Grüße, Zoë"
        server.script("vertex-stream", SSEReply([evs[0], Stall()]))
        stream = pipeline({**EXACT, "timeouts": {"idle": 0.3}}).open(
            gemini_generate(express(server.vertex_base_url), model=MODEL, contents="Hi")
        )
        with pytest.raises(StreamTimeout):
            async with stream:
                await stream.collect()
        await server.wait_disconnect()
    assert stream.message.text == "Grüße, " and not stream.message.complete


# -- the offline provider and the threaded server --------------------------------------------------------


async def test_the_offline_provider_answers_vertex_clients() -> None:
    tools = [
        {
            "function_declarations": [
                {
                    "name": "get_weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                }
            ]
        }
    ]
    async with ProviderServer(OfflineProvider()) as server:
        async with pipeline().open(
            gemini_generate(
                express(server.vertex_base_url),
                model=MODEL,
                contents="Weather in Oslo?",
                config={"tools": tools},
            )
        ) as stream:
            called = await stream.collect()
        response = await project(server.vertex_base_url).aio.models.generate_content(
            model=MODEL, contents="Hello offline", config=NO_SDK_RETRY
        )
        assert [r.route for r in server.requests] == ["vertex-stream", "vertex-generate"]
    assert called.complete and called.provider == "gcp.vertex_ai"
    assert called.tool_calls[0].name == "get_weather" and called.tool_calls[0].parsed == {"city": "Oslo"}
    assert response.text and response.create_time is not None  # a Vertex body: createTime parsed


def test_the_sync_vertex_client_on_the_threaded_server() -> None:
    with ThreadedProviderServer(OfflineProvider()) as server:
        client = project(server.vertex_base_url)
        chunks = list(
            client.models.generate_content_stream(model=MODEL, contents="Hello there", config=NO_SDK_RETRY)
        )
        assert server.requests[-1].route == "vertex-stream"
        assert server.vertex_base_url == server.gemini_base_url == server.url
    assert "".join(c.text or "" for c in chunks)
    assert all(c.create_time is not None for c in chunks)
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP


def test_the_sdk_error_type_for_a_404_of_an_unknown_vertex_path() -> None:
    """A Vertex call the server has no route for (``countTokens``) is a 404 the SDK raises as ClientError."""
    with ThreadedProviderServer(OfflineProvider()) as server:
        client = express(server.vertex_base_url)  # held: a dropped client closes its connection pool
        with pytest.raises(genai_errors.ClientError) as info:
            client.models.count_tokens(model=MODEL, contents="Hi")
        assert server.requests[-1].route is None and server.requests[-1].path.endswith(":countTokens")
    assert info.value.code == 404
