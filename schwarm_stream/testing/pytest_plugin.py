"""pytest plugin for plugin authors (registered under ``pytest11``): fixtures for testing schwarm_stream plugins.

Installed with schwarm-stream, it is active in every pytest run; nothing to
configure. Fixtures:

``schwarm_config``
    The config dict for ``schwarm_pipeline`` (``{}``); override it in your
    ``conftest.py`` or test module to give your plugin its section.
``schwarm_pipeline``
    A :class:`~schwarm_stream.testing.StagedPipeline` built from
    ``schwarm_config``: built-ins only (entry-point autoload off), plus what
    ``register_plugin`` adds; retry and recovery waits are 0 during the test.
``register_plugin``
    ``register_plugin(plugin, name=None)`` registers a plugin for one test: in
    ``schwarm_pipeline`` and in the process-wide default pipeline (what
    ``schwarm_stream.open(source)`` uses), where it is removed again after the
    test, and a plugin it replaced (same name) is put back.
``hook_recorder``
    A registered :class:`~schwarm_stream.testing.HookRecorder`.
``scripted_stream``
    ``scripted_stream(*scripts, **source_options)`` opens a stream of
    ``schwarm_pipeline`` on a :class:`~schwarm_stream.testing.ScriptedSource`.
``provider_server`` / ``offline_provider``
    A started :class:`~schwarm_stream.testing.ProviderServer` (scripted per
    route; ``offline_provider`` answers every request with the deterministic
    :class:`~schwarm_stream.testing.OfflineProvider`). Async fixtures: they need
    pytest-asyncio (or another plugin running async fixtures).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .._stream import Stream
    from .pipeline import StagedPipeline
    from .recorder import HookRecorder
    from .scripted import ScriptItem
    from .server import ProviderServer

try:  # async fixtures need an async-capable plugin; pytest-asyncio is the common one
    import pytest_asyncio

    _async_fixture: Callable[..., Any] = pytest_asyncio.fixture
except ImportError:  # pragma: no cover - exercised only without pytest-asyncio
    _async_fixture = pytest.fixture


@pytest.fixture
def schwarm_config() -> dict[str, Any]:
    """Config for ``schwarm_pipeline``; override this fixture to configure your plugin."""
    return {}


@pytest.fixture
def schwarm_pipeline(schwarm_config: Any) -> Iterator[StagedPipeline]:
    """A pipeline with the built-ins only (no entry-point plugins) and ``schwarm_config``.

    While the test runs, retry and recovery waits are 0 (:func:`switches.no_waits`):
    a test never sleeps through a backoff; what is retried stays the same.
    """
    from .pipeline import StagedPipeline
    from .switches import no_waits

    with no_waits():
        yield StagedPipeline(config=schwarm_config)


@pytest.fixture
def register_plugin(schwarm_pipeline: StagedPipeline) -> Iterator[Callable[..., str]]:
    """``register_plugin(plugin, name=None)``: register a plugin for the duration of one test."""
    from .._pipeline import default_pipeline

    default = default_pipeline()
    undo: list[Callable[[], None]] = []

    def register(plugin: Any, name: str | None = None) -> str:
        registered = schwarm_pipeline.register(plugin, name=name)
        pm = default.plugin_manager
        previous = pm.get_plugin(name) if name is not None else None
        if previous is not None:
            default.unregister(name=name)
        default.register(plugin, name=name)

        def restore() -> None:
            default.unregister(plugin=plugin)
            if previous is not None:
                default.register(previous, name=name)

        undo.append(restore)
        return registered

    yield register
    for restore in reversed(undo):
        restore()


@pytest.fixture
def hook_recorder(register_plugin: Callable[..., str]) -> HookRecorder:
    """A :class:`HookRecorder` registered for this test (in ``schwarm_pipeline`` and the default pipeline)."""
    from .recorder import HookRecorder

    recorder = HookRecorder()
    register_plugin(recorder, name="hook_recorder")
    return recorder


@pytest.fixture
def scripted_stream(schwarm_pipeline: StagedPipeline) -> Callable[..., Stream]:
    """``scripted_stream(*scripts, **options)``: a stream of ``schwarm_pipeline`` on a scripted source.

    ``options`` are :class:`ScriptedSource` options (``provider``, ``model``,
    ``finish``) and ``Pipeline.open`` options (``metadata``, ``agent_id``,
    ``stream_id``).
    """
    from .scripted import ScriptedSource

    def open_stream(*scripts: Iterable[ScriptItem], **options: Any) -> Stream:
        open_kw = {k: options.pop(k) for k in ("metadata", "agent_id", "stream_id") if k in options}
        return schwarm_pipeline.open(ScriptedSource(*scripts, **options), **open_kw)

    return open_stream


@_async_fixture
async def provider_server() -> AsyncIterator[ProviderServer]:
    """A started :class:`ProviderServer` on 127.0.0.1; script replies with ``provider_server.script(...)``."""
    from .server import ProviderServer

    async with ProviderServer() as server:
        yield server


@_async_fixture
async def offline_provider() -> AsyncIterator[ProviderServer]:
    """A started :class:`ProviderServer` answering every request with :class:`OfflineProvider`."""
    from .server import OfflineProvider, ProviderServer

    async with ProviderServer(responder=OfflineProvider()) as server:
        yield server
