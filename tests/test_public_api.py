"""The public surface: ``__all__``, lazy SDK imports, the missing-SDK error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import pytest

import schwarm_stream


def test_all_is_sorted_and_unique() -> None:
    assert list(schwarm_stream.__all__) == sorted(set(schwarm_stream.__all__))


def test_every_name_in_all_is_importable() -> None:
    for name in schwarm_stream.__all__:
        assert getattr(schwarm_stream, name, None) is not None, name


def test_all_equals_the_public_names_exported() -> None:
    exported = {
        name
        for name, value in vars(schwarm_stream).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(schwarm_stream.__all__) - {"__version__"} == exported


def test_public_classes_say_they_belong_to_the_package() -> None:
    for name in schwarm_stream.__all__:
        value = getattr(schwarm_stream, name)
        if isinstance(value, type):
            assert value.__module__.startswith("schwarm_stream"), name


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )


def test_import_does_not_import_the_sdks() -> None:
    result = _run(
        """
        import sys
        import schwarm_stream
        from schwarm_stream import sources
        sdks = ("openai", "anthropic", "boto3", "botocore", "aiobotocore", "google.genai", "ollama")
        leaked = sorted(m for m in sdks if m in sys.modules)
        print(",".join(leaked) or "none")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none"


@pytest.mark.parametrize(
    ("factory", "module", "extra"),
    [
        ("openai_chat(object(), model='m', messages=[])", "openai", "openai"),
        ("openai_responses(object(), model='m', input='x')", "openai", "openai"),
        ("anthropic_messages(object(), model='m', messages=[], max_tokens=1)", "anthropic", "anthropic"),
        ("native_ollama('http://127.0.0.1:1', model='m', messages=[])", "httpx", "native"),
    ],
)
def test_a_missing_sdk_is_missing_dependency_with_the_install_hint(
    factory: str, module: str, extra: str
) -> None:
    result = _run(
        f"""
        import sys
        sys.modules[{module!r}] = None  # as if it were not installed
        from schwarm_stream import MissingDependency
        from schwarm_stream.sources import anthropic_messages, native_ollama, openai_chat, openai_responses
        try:
            {factory}
        except MissingDependency as exc:
            assert isinstance(exc, ImportError)
            print(exc)
        else:
            print("no error")
        """
    )
    assert result.returncode == 0, result.stderr
    assert f"pip install 'schwarm-stream[{extra}]'" in result.stdout
    assert repr(module) in result.stdout


# agent, multi, fanout, ratelimit and callbacks live in schwarm_stream.compose; the old names stay.
MOVED = ("agent", "callbacks", "fanout", "multi", "ratelimit")


@pytest.mark.parametrize("name", MOVED)
def test_a_moved_module_keeps_its_old_name_as_the_same_module(name: str) -> None:
    import importlib

    old = importlib.import_module(f"schwarm_stream.{name}")
    new = importlib.import_module(f"schwarm_stream.compose.{name}")
    assert old is new
    assert getattr(schwarm_stream, name) is new
    assert getattr(schwarm_stream.compose, name) is new
    assert new.__name__ == f"schwarm_stream.compose.{name}"  # one module, under its real name


def test_the_old_import_statements_work_in_a_fresh_interpreter() -> None:
    result = _run(
        """
        import schwarm_stream.agent
        from schwarm_stream.multi import merge
        from schwarm_stream.ratelimit import RateLimit
        from schwarm_stream.fanout import Fanout
        from schwarm_stream.callbacks import CallbackHandler
        import schwarm_stream.compose.multi as multi
        import schwarm_stream.compose.agent as agent
        assert schwarm_stream.agent is agent
        assert schwarm_stream.agent.agent_loop is agent.agent_loop is schwarm_stream.agent_loop
        assert merge is multi.merge
        assert CallbackHandler is schwarm_stream.CallbackHandler
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_compose_all_is_every_public_name_of_its_modules() -> None:
    import importlib

    from schwarm_stream import compose

    assert list(compose.__all__) == sorted(set(compose.__all__), key=lambda n: (not n.isupper(), n))
    union: set[str] = set()
    for name in MOVED:
        module = importlib.import_module(f"schwarm_stream.compose.{name}")
        assert not union & set(module.__all__), name  # no two modules export the same name
        union |= set(module.__all__)
        for public in module.__all__:
            assert getattr(compose, public) is getattr(module, public), public
    assert set(compose.__all__) == union
    # names the docs import from schwarm_stream.multi are in its __all__ (HedgePolicy was missing)
    assert "HedgePolicy" in compose.multi.__all__


@pytest.mark.parametrize("name", MOVED)
def test_the_type_stub_of_an_old_name_reexports_the_module(name: str) -> None:
    from pathlib import Path

    stub = Path(schwarm_stream.__file__).with_name(f"{name}.pyi").read_text(encoding="utf-8")
    assert f"from .compose.{name} import *" in stub
    assert f"from .compose.{name} import __all__ as __all__" in stub
    assert not Path(schwarm_stream.__file__).with_name(f"{name}.py").exists()


def test_sinks_all_reexports_every_public_name_of_sse_and_websocket() -> None:
    # the compression helpers were public in sinks.sse but missing from schwarm_stream.sinks
    from schwarm_stream import sinks
    from schwarm_stream.sinks import sse, websocket

    assert list(sinks.__all__) == sorted(set(sinks.__all__), key=lambda n: (not n.isupper(), n))
    for module in (sse, websocket):
        for public in module.__all__:
            assert public in sinks.__all__, (
                f"{module.__name__}.{public} is not in schwarm_stream.sinks.__all__"
            )
            assert getattr(sinks, public) is getattr(module, public), public
