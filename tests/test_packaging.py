"""Packaging: the core's dependencies, the extras, what the sdist carries, the plugins' metadata.

The "without X installed" cases run in a fresh interpreter with ``sys.modules[X] = None``, which makes
``import X`` fail exactly as when X is not installed.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the suite runs on 3.11 in CI
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PLUGINS = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))

#: What the core may require: the hook machinery, models, retry, the OTel API, the config's needs,
#: and jiter (partial JSON of streamed tool arguments, until pydantic_core's parser replaces it).
CORE = {"pluggy", "pydantic", "tenacity", "opentelemetry-api", "pydantic-settings", "tomli", "jiter"}

#: Packages behind extras (and the SDKs): none of them may be needed to import or use the core.
OPTIONAL = (
    "click",
    "httpx",
    "httpx_sse",
    "h11",
    "orjson",
    "openai",
    "anthropic",
    "starlette",
    "sse_starlette",
    "uvicorn",
    "fastapi",
    "redis",
    "google.genai",
    "ollama",
    "boto3",
    "botocore",
    "aiobotocore",
)


def _run(code: str, *, block: tuple[str, ...] = OPTIONAL, args: tuple[str, ...] = ()) -> Any:
    prelude = f"import sys\nfor _m in {block!r}:\n    sys.modules[_m] = None  # as if not installed\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={**os.environ, "SCHWARM_STREAM_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


# -- the core needs only the core -------------------------------------------------------


def test_the_core_requires_only_the_core_dependencies() -> None:
    required = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert required == CORE


def test_import_and_a_whole_stream_work_without_any_optional_package() -> None:
    result = _run(
        """
        import asyncio
        import schwarm_stream
        from schwarm_stream import compose, config, sinks, sources, transformers  # noqa: F401
        from schwarm_stream.builtins import accumulate, buffer, metrics, recovery, retry, timeouts  # noqa: F401
        from schwarm_stream.sources import from_iterator

        async def main():
            async with schwarm_stream.open(from_iterator(["Hel", "lo"])) as stream:
                await stream.collect()
            return stream.message.text

        print(asyncio.run(main()))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Hello"


@pytest.mark.parametrize(
    ("code", "module", "extra"),
    [
        (
            "from schwarm_stream.sources.native import native_openai_chat as f; f('http://127.0.0.1:9/v1', model='m', messages=[])",
            "httpx",
            "native",
        ),
        (
            "from schwarm_stream.sources.native import native_anthropic as f; f('http://127.0.0.1:9', model='m', messages=[], max_tokens=1)",
            "httpx",
            "native",
        ),
    ],
    ids=["native_openai_chat", "native_anthropic"],
)
def test_a_missing_extra_is_missing_dependency_with_the_install_hint(
    code: str, module: str, extra: str
) -> None:
    result = _run(
        f"""
        from schwarm_stream import MissingDependency
        try:
            {code}
        except MissingDependency as exc:
            print(exc)
        else:
            print("no error")
        """
    )
    assert result.returncode == 0, result.stderr
    assert f"pip install 'schwarm-stream[{extra}]'" in result.stdout
    assert repr(module) in result.stdout


def test_the_cli_without_click_says_which_extra_to_install() -> None:
    result = _run(
        """
        from schwarm_stream import MissingDependency
        try:
            import schwarm_stream.cli
        except MissingDependency as exc:
            print(exc)
        """,
        block=("click",),
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'schwarm-stream[cli]'" in result.stdout


def test_the_command_without_click_prints_the_hint_not_a_traceback() -> None:
    result = _run(
        """
        import runpy
        sys.argv = ["schwarm-stream", "--version"]
        runpy.run_module("schwarm_stream", run_name="__main__")
        """,
        block=("click",),
    )
    assert result.returncode == 2
    assert "pip install 'schwarm-stream[cli]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_pytest_plugin_loads_without_h11_and_the_server_names_its_extra() -> None:
    # pytest loads the plugin (entry point pytest11) for every user who has schwarm-stream installed
    result = _run(
        """
        import schwarm_stream.testing.pytest_plugin
        from schwarm_stream import MissingDependency
        from schwarm_stream.testing import HookRecorder, scripted  # no server involved
        try:
            from schwarm_stream.testing import ProviderServer
        except MissingDependency as exc:
            print(exc)
        """,
        block=("h11",),
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'schwarm-stream[testing]'" in result.stdout


# -- the extras -------------------------------------------------------------------------


def _extra(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """The requirement names an extra brings, self-references (``schwarm-stream[a,b]``) expanded."""
    names: set[str] = set()
    for req in PYPROJECT["project"]["optional-dependencies"][name]:
        if _name(req) == "schwarm-stream":
            inner = re.search(r"\[(.*?)\]", req)
            assert inner is not None, req
            for other in inner.group(1).split(","):
                if other.strip() not in seen:
                    names |= _extra(other.strip(), seen | {name})
        else:
            names.add(_name(req))
    return names


def test_the_extras_cover_the_cli_the_test_server_and_the_native_sources() -> None:
    assert _extra("cli") >= {"click", "h11"}  # demo, replay and compare --offline use the loopback server
    assert _extra("testing") >= {"h11"}
    assert _extra("native") >= {"httpx"}
    assert _extra("all") >= _extra("cli") | _extra("testing") | _extra("native") | {"openai", "anthropic"}
    assert _extra("test") >= {"httpx", "httpx-sse", "h11", "click"}


def test_the_readme_commands_install_what_they_run() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install -e '.[all]' && .venv/bin/schwarm-stream demo" in readme
    # the demo: the CLI, the loopback server, the OpenAI SDK
    assert _extra("all") >= {"click", "h11", "openai"}
    assert PYPROJECT["project"]["scripts"]["schwarm-stream"].startswith("schwarm_stream.")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install -q -e '.[all,test]'" in ci
    assert 'pip install -q -e "$dist[test]"' in ci


# -- what gets built --------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The core's sdist and wheel, built offline with hatchling (no isolation, no index)."""
    out = tmp_path_factory.mktemp("dist")
    for target in ("sdist", "wheel"):
        proc = subprocess.run(
            [sys.executable, "-m", "hatchling", "build", "-t", target, "-d", str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


def test_the_sdist_carries_the_core_and_not_the_plugin_distributions(built: dict[str, Path]) -> None:
    with tarfile.open(built["sdist"]) as tar:
        names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
        pkg_info = tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith("/PKG-INFO")))
        assert pkg_info is not None
        meta = Parser().parsestr(pkg_info.read().decode())
    assert not [n for n in names if n.startswith("plugins/")]
    assert not [n for n in names if "node_modules" in n or "/.hypothesis" in n]
    for needed in (
        "pyproject.toml",
        "README.md",
        "schwarm_stream/__init__.py",
        "schwarm_stream/py.typed",
        "schwarm_stream/compose/__init__.py",
        "schwarm_stream/compose/agent.py",
        "schwarm_stream/multi.pyi",
    ):
        assert needed in names, needed
    required = {_name(r) for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r}
    assert required == CORE


def test_the_wheel_has_the_moved_modules_their_old_names_and_the_script(built: dict[str, Path]) -> None:
    with zipfile.ZipFile(built["wheel"]) as whl:
        names = set(whl.namelist())
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        eps = whl.read(entry_points).decode()
    for module in ("agent", "callbacks", "fanout", "multi", "ratelimit"):
        assert f"schwarm_stream/compose/{module}.py" in names
        assert f"schwarm_stream/{module}.pyi" in names
        assert f"schwarm_stream/{module}.py" not in names
    assert not [n for n in names if n.startswith(("plugins/", "tests/"))]
    assert f"schwarm-stream = {PYPROJECT['project']['scripts']['schwarm-stream']}" in eps


# -- the plugin distributions ---------------------------------------------------------


def test_there_are_four_plugin_distributions() -> None:
    assert [p.name for p in PLUGINS] == [
        "schwarm-stream-jsonl",
        "schwarm-stream-redact",
        "schwarm-stream-redis",
        "schwarm-stream-starlette",
    ]


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_each_plugin_declares_a_version_floor_on_the_core(plugin: Path) -> None:
    project = tomllib.loads((plugin / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    [core] = [r for r in project["dependencies"] if _name(r) == "schwarm-stream"]
    assert re.fullmatch(r"schwarm-stream>=0\.1(\.\d+)?", core), core
    for extra in project.get("optional-dependencies", {}).values():
        for req in extra:
            if _name(req) == "schwarm-stream":
                assert ">=" in req, req


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_each_plugin_entry_point_has_the_one_style(plugin: Path) -> None:
    # one style everywhere: "<package>:plugin", the package's ``plugin`` attribute (a module or an instance)
    project = tomllib.loads((plugin / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    package = plugin.name.replace("-", "_")
    name = plugin.name.removeprefix("schwarm-stream-")
    assert project["entry-points"] == {"schwarm_stream": {name: f"{package}:plugin"}}


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_each_plugin_entry_point_loads(plugin: Path) -> None:
    from importlib.metadata import EntryPoint

    project = tomllib.loads((plugin / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    [(name, value)] = project["entry-points"]["schwarm_stream"].items()
    obj = EntryPoint(name, value, "schwarm_stream").load()
    assert not isinstance(obj, type)  # a module or an instance, as the manager requires


# -- python -O ------------------------------------------------------------------------


def test_compose_has_no_assert_as_a_runtime_check() -> None:
    # asserts vanish under python -O; things built on the core check for real
    found = [
        f"{path.name}:{node.lineno}"
        for path in sorted((ROOT / "schwarm_stream" / "compose").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assert)
    ]
    assert not found
