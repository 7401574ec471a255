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
        leaked = sorted(m for m in ("openai", "anthropic") if m in sys.modules)
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
        from schwarm_stream.sources import anthropic_messages, openai_chat, openai_responses
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
