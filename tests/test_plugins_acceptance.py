"""The third-party path, end to end: separately built distributions installed into a fresh venv.

A stranger's plugin ("acme-streamlog") is written to a temporary folder, built into a wheel by pip
with its own pyproject.toml, and installed with schwarm-stream and both first-party distributions
into a new virtual environment. Everything then runs in that venv's own processes: its
``schwarm-stream`` console script, its interpreter.

Offline and fast: the venv is created without pip (the current pip installs into it with
``--python``), and it reaches the already installed third-party dependencies (pydantic, pluggy, the
SDKs, hatchling for the builds) through a ``.pth`` file pointing at a folder of links to them. That
folder leaves out every schwarm-stream distribution and every other plugin of the current
environment, so the fresh venv sees only what was installed into it.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from schwarm_stream.testing import openai_chat_events

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"

ACME_PYPROJECT = """
[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "acme-streamlog"
version = "2.5.0"
dependencies = ["schwarm-stream"]

[project.entry-points.schwarm_stream]
acme = "acme_streamlog"

[tool.hatch.build.targets.wheel]
packages = ["acme_streamlog"]
"""

ACME_MODULE = '''
"""A third-party plugin: logs lifecycle hooks to $ACME_LOG; its chunk hook always fails."""

import os

from schwarm_stream import hookimpl


def _log(*parts):
    path = os.environ.get("ACME_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(" ".join(parts) + "\\n")


_log("imported")


@hookimpl
def stream_start(stream):
    _log("stream_start", stream.provider)


@hookimpl
def stream_complete(stream, message):
    _log("stream_complete", message.text)


@hookimpl
def stream_chunk(stream, chunk):
    raise RuntimeError("acme chunk hook exploded")
'''


def _deps_folder(target: Path) -> Path:
    """Links to every installed top-level entry of the current environment except schwarm-stream's own."""
    target.mkdir()
    skipped_tops: set[str] = set()
    sites = [Path(p) for p in site.getsitepackages()]
    for sp in sites:
        for dist_info in sp.glob("*.dist-info"):
            eps = dist_info / "entry_points.txt"
            is_plugin = eps.exists() and "[schwarm_stream]" in eps.read_text(encoding="utf-8")
            if dist_info.name.lower().startswith(("schwarm_stream", "schwarm-stream")) or is_plugin:
                skipped_tops.add(dist_info.name)
    for sp in sites:
        for entry in sp.iterdir():
            name = entry.name
            if (
                name in skipped_tops
                or name.endswith(".pth")
                or name.startswith(("__editable__", "_editable_impl"))
            ):
                continue
            if name.startswith(("schwarm_stream", "acme_streamlog")) or name == "__pycache__":
                continue
            link = target / name
            if not link.exists():
                link.symlink_to(entry)
    return target


def _run(
    cmd: list[str], env: dict[str, str], cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


@dataclass
class FreshVenv:
    root: Path
    python: Path
    script: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": f"{self.python.parent}:/usr/bin:/bin",
            "HOME": str(self.root),
            "PYTHONDONTWRITEBYTECODE": "1",
            "NO_COLOR": "1",
        }
        env.update(extra)
        return env

    def run(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        return _run([*args], self.env(**env), self.root, check=check)


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> FreshVenv:
    try:
        import hatchling  # noqa: F401  (the build backend must be importable for offline builds)
    except ImportError:
        pytest.fail("hatchling is needed to build the test distributions: pip install 'schwarm-stream[test]'")
    root = tmp_path_factory.mktemp("fresh-venv")
    host_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }

    # 1. a stranger's plugin, in its own folder, built into a wheel by pip
    acme = root / "acme-streamlog"
    (acme / "acme_streamlog").mkdir(parents=True)
    (acme / "pyproject.toml").write_text(ACME_PYPROJECT)
    (acme / "acme_streamlog" / "__init__.py").write_text(ACME_MODULE)
    wheels = root / "wheels"
    pip = [sys.executable, "-m", "pip"]
    _run(
        [
            *pip,
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(wheels),
            str(acme),
        ],
        host_env,
        root,
    )
    (wheel,) = wheels.glob("acme_streamlog-2.5.0-*.whl")

    # 2. a new venv that reaches the dependencies, but no schwarm-stream distribution, through a .pth
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], host_env, root)
    python = venv / "bin" / "python"
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], host_env, root
    ).stdout.strip()
    deps = _deps_folder(root / "deps")
    (Path(purelib) / "_test_deps.pth").write_text(f"{deps}\n")

    # 3. install schwarm-stream, the first-party plugins from their folders, and the wheel
    install = [
        *pip,
        "--python",
        str(python),
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
    ]
    _run(
        [
            *install,
            str(ROOT),
            str(PLUGINS / "schwarm-stream-jsonl"),
            str(PLUGINS / "schwarm-stream-redact"),
            str(wheel),
        ],
        host_env,
        root,
    )
    script = venv / "bin" / "schwarm-stream"
    assert script.exists(), "the console script was not installed"
    return FreshVenv(root=root, python=python, script=script)


@pytest.fixture
def sse_file(tmp_path: Path) -> Path:
    path = tmp_path / "hello.sse"
    path.write_bytes(b"".join(openai_chat_events(["Hel", "lo"])))
    return path


def plugin_listing(venv: FreshVenv, **env: str) -> dict[str, dict[str, object]]:
    result = venv.run(str(venv.script), "plugins", "--json", **env)
    return {p["name"]: p for p in json.loads(result.stdout)}


def test_installed_code_comes_from_the_fresh_venv(fresh_venv: FreshVenv) -> None:
    code = "import schwarm_stream, acme_streamlog; print(schwarm_stream.__file__); print(acme_streamlog.__file__)"
    lines = fresh_venv.run(str(fresh_venv.python), "-c", code).stdout.split()
    assert all(line.startswith(str(fresh_venv.root / "venv")) for line in lines), lines


def test_import_loads_no_plugin(fresh_venv: FreshVenv, tmp_path: Path) -> None:
    log = tmp_path / "acme.log"
    code = "import schwarm_stream, sys; schwarm_stream.Pipeline(); print('acme_streamlog' in sys.modules)"
    assert fresh_venv.run(str(fresh_venv.python), "-c", code, ACME_LOG=str(log)).stdout.strip() == "False"
    assert not log.exists()


def test_listed_by_plugins_json(fresh_venv: FreshVenv) -> None:
    listing = plugin_listing(fresh_venv)
    acme = listing["acme"]
    assert acme["distribution"] == "acme-streamlog" and acme["version"] == "2.5.0"
    assert acme["hooks"] == ["stream_chunk", "stream_complete", "stream_start"]
    assert acme["builtin"] is False and acme["enabled"] is True and acme["blocked"] is False
    assert listing["jsonl"]["distribution"] == "schwarm-stream-jsonl" and listing["jsonl"]["enabled"] is True
    assert (
        listing["redact"]["distribution"] == "schwarm-stream-redact" and listing["redact"]["enabled"] is True
    )
    assert set(listing) == {"acme", "jsonl", "redact"}  # nothing leaks in from the test environment


def test_receives_hooks_during_replay_and_its_failure_is_reported(
    fresh_venv: FreshVenv, sse_file: Path, tmp_path: Path
) -> None:
    log = tmp_path / "acme.log"
    result = fresh_venv.run(str(fresh_venv.script), "replay", "--json", str(sse_file), ACME_LOG=str(log))
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["complete"] is True and record["text"] == "Hello" and record["error"] is None
    assert log.read_text().splitlines() == ["imported", "stream_start openai", "stream_complete Hello"]
    assert (
        "plugin 'acme' failed in hook 'stream_chunk': RuntimeError: acme chunk hook exploded" in result.stderr
    )


def test_kept_out_by_disable_plugin_autoload(fresh_venv: FreshVenv, sse_file: Path, tmp_path: Path) -> None:
    log = tmp_path / "acme.log"
    off = {"SCHWARM_STREAM_DISABLE_PLUGIN_AUTOLOAD": "1", "ACME_LOG": str(log)}
    listing = plugin_listing(fresh_venv, **off)
    assert listing["acme"]["status"] == "not loaded" and listing["acme"]["enabled"] is False
    result = fresh_venv.run(str(fresh_venv.script), "replay", "--json", str(sse_file), **off)
    assert json.loads(result.stdout)["complete"] is True
    assert not log.exists()  # not even imported
    assert "acme" not in result.stderr


def test_disabled_by_name_in_the_environment(fresh_venv: FreshVenv, sse_file: Path, tmp_path: Path) -> None:
    log = tmp_path / "acme.log"
    result = fresh_venv.run(
        str(fresh_venv.script),
        "replay",
        str(sse_file),
        SCHWARM_STREAM_DISABLE_PLUGINS="acme",
        ACME_LOG=str(log),
    )
    assert "complete" in result.stdout
    assert not log.exists()
    assert plugin_listing(fresh_venv, SCHWARM_STREAM_DISABLE_PLUGINS="acme")["acme"]["blocked"] is True


FIRST_PARTY = """
import asyncio, json, sys
import schwarm_stream
from schwarm_stream.testing import ScriptedSource
from schwarm_stream_jsonl import jsonl_replay

recording = sys.argv[1]
config = {
    "jsonl": {"path": recording},
    "redact": {"enabled": True},
    "plugins": {"disable": ["acme"]},
}

async def main():
    pipeline = schwarm_stream.Pipeline(config=config)
    async with pipeline.open(ScriptedSource(["my key is sk-a", "nt-api03-" + "k" * 30, " ok"])) as stream:
        shown = "".join([e.text async for e in stream if isinstance(e, schwarm_stream.Chunk)])
    replayed = await schwarm_stream.Pipeline(config={"plugins": {"autoload": False}}).open(jsonl_replay(recording)).collect()
    names = {i.name: i.distribution for i in pipeline.plugins() if not i.builtin and i.enabled}
    print(json.dumps({"shown": shown, "message": stream.message.text, "replayed": replayed.text, "plugins": names}))

asyncio.run(main())
"""


def test_first_party_distributions_work_through_the_entry_point(
    fresh_venv: FreshVenv, tmp_path: Path
) -> None:
    script = tmp_path / "first_party.py"
    script.write_text(textwrap.dedent(FIRST_PARTY))
    recording = tmp_path / "rec.jsonl"
    out = json.loads(fresh_venv.run(str(fresh_venv.python), str(script), str(recording)).stdout)
    assert out["plugins"] == {"jsonl": "schwarm-stream-jsonl", "redact": "schwarm-stream-redact"}
    assert out["shown"] == "my key is [REDACTED:anthropic_key] ok"
    assert out["message"] == "my key is sk-ant-api03-" + "k" * 30 + " ok"  # the accumulator keeps it
    assert out["replayed"] == out["shown"]  # the recording holds what consumers saw
    assert "sk-ant" not in recording.read_text()
