"""Write docs/api.md from the ``__all__`` of the public modules: ``python docs/_ext/gen_api.py``.

The top-level names are grouped by hand (``TOP``); every other public module gets a section with its
docstring and one entry per name of its ``__all__``, in that order. An object exported by several modules
is documented once, under the first of them (``schwarm_stream.Source`` and not
``schwarm_stream.sources.Source``). ``--check`` writes nothing and exits 1 when docs/api.md differs.
``tests/test_docs_api.py`` checks the page against ``__all__`` whichever way it was written.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

PAGE = Path(__file__).resolve().parent.parent / "api.md"

TOP: dict[str, list[str]] = {
    "Opening streams": [
        "open",
        "open_sync",
        "Pipeline",
        "default_pipeline",
        "Stream",
        "SyncStream",
        "StreamStats",
        "Attempt",
        "Source",
    ],
    "Events": [
        "Event",
        "Chunk",
        "ChunkKind",
        "ToolCallDelta",
        "Usage",
        "Finish",
        "ResponseInfo",
        "Extra",
        "Reset",
        "Heartbeat",
        "Partial",
    ],
    "The message": ["Message", "ToolCall", "TokenUsage", "ContentBlock"],
    "Plugins": ["hookimpl", "hookspec", "Recovery", "Stash", "StashKey", "with_fallbacks"],
    "Agent loops and callbacks": ["agent_loop", "AgentLoop", "agent_loop_sync", "SyncAgentLoop", "CallbackHandler"],
    "Configuration": ["Config"],
    "Serving many streams": [
        "StreamRegistry",
        "stream_registry",
        "StreamInfo",
        "RegistryStats",
        "StatSummary",
        "Admission",
        "AdmissionConfig",
        "AdmissionStats",
        "Permit",
    ],
    "Errors": [
        "SchwarmStreamError",
        "StreamError",
        "TransportError",
        "ProviderError",
        "ProtocolError",
        "StreamIncomplete",
        "StreamTimeout",
        "StreamCancelled",
        "LimitExceeded",
        "AdmissionRefused",
        "InvalidToolArguments",
        "InvalidOutput",
        "ConfigError",
        "PluginError",
        "PluginLoadError",
        "MissingDependency",
    ],
    "Version": ["__version__"],
}

MODULES = [
    "schwarm_stream.sources",
    "schwarm_stream.sinks",
    "schwarm_stream.testing",
    "schwarm_stream.transformers",
    "schwarm_stream.compose.agent",
    "schwarm_stream.compose.callbacks",
    "schwarm_stream.compose.fanout",
    "schwarm_stream.compose.multi",
    "schwarm_stream.compose.ratelimit",
    "schwarm_stream.config",
    "schwarm_stream.hookspecs",
    "schwarm_stream.cost",
]

# Config sections declared by the built-in plugins, rendered on the plugins' pages (docs/builtins/).
SECTIONS_ELSEWHERE = {
    "RetryConfig": "retry",
    "RecoveryConfig": "recovery",
    "TimeoutsConfig": "timeouts",
    "LimitsConfig": "accumulate",
}

INTRO = """# API reference

Generated from the docstrings of the public modules: every name in the `__all__` of `schwarm_stream`,
`schwarm_stream.sources`, `.sinks`, `.testing`, `.transformers`, `.compose` and its modules, `.config`,
`.hookspecs` and `.cost` is on this page, once, under the first module that exports it
(`tests/test_docs_api.py` checks it; `python docs/_ext/gen_api.py` writes the page). Signatures show their
types; names in the text and in signatures link to their entries.
"""


def _module_docstring(module: str) -> list[str]:
    return [f"::: {module}", "    options:", "      members: false", "      show_root_heading: false", ""]


def _once(value: Any) -> bool:
    """Whether an object is recognised by identity (a constant may equal an unrelated one)."""
    return not isinstance(value, str | int | float | bool | tuple | frozenset | type(None))


def render() -> str:
    """The text of docs/api.md."""
    import schwarm_stream

    listed = [name for names in TOP.values() for name in names]
    if set(listed) != set(schwarm_stream.__all__):
        missing = sorted(set(schwarm_stream.__all__) - set(listed))
        extra = sorted(set(listed) - set(schwarm_stream.__all__))
        raise SystemExit(f"gen_api.py TOP: add {missing}, remove {extra}")
    seen = {id(getattr(schwarm_stream, n)) for n in listed if _once(getattr(schwarm_stream, n))}
    out = [INTRO, "## schwarm_stream", "", *_module_docstring("schwarm_stream")]
    for section, names in TOP.items():
        out += [f"## {section} (`schwarm_stream`)", ""]
        out += [line for name in names for line in (f"::: schwarm_stream.{name}", "")]
    for module in MODULES:
        mod = importlib.import_module(module)
        out += [f"## {module}", "", *_module_docstring(module)]
        for name in mod.__all__:
            value = getattr(mod, name)
            if _once(value):
                if id(value) in seen:
                    continue
                seen.add(id(value))
            out += [f"::: {module}.{name}", ""]
        if module == "schwarm_stream.config":
            links = ", ".join(f"[`{n}`](builtins/{page}.md)" for n, page in SECTIONS_ELSEWHERE.items())
            out += [
                "The sections of the built-in plugins are declared by the plugins and documented on their pages:",
                f"{links}.",
                "",
            ]
        if module == "schwarm_stream.hookspecs":
            out += [f"## The hooks (`{module}`)", ""]
            out += [line for hook in mod.HOOK_NAMES for line in (f"::: {module}.{hook}", "")]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    """Write the page, or with ``--check`` say whether it is up to date."""
    text = render()
    if "--check" in argv:
        current = PAGE.read_text(encoding="utf-8")
        if current != text:
            print(f"{PAGE} is out of date: run python docs/_ext/gen_api.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
