"""Gemini, Ollama and Bedrock: the SDKs stay out of ``import schwarm_stream`` (with them installed), and
the sources' ``gen_ai.provider.name`` values are the installed GenAI semantic conventions' own."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

SDKS = ("google.genai", "ollama", "boto3", "botocore", "aiobotocore")


def test_importing_the_package_and_its_sources_imports_no_sdk() -> None:
    for sdk in ("google.genai", "ollama", "boto3"):
        pytest.importorskip(sdk)  # installed: the check below means something
    code = (
        "import sys\n"
        "import schwarm_stream, schwarm_stream.sources, schwarm_stream.testing.server\n"
        "from schwarm_stream.sources import gemini_generate, ollama_chat, native_ollama, bedrock_converse\n"
        f"print(sorted(m for m in {SDKS!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_provider_names_are_the_conventions_values() -> None:
    with warnings.catch_warnings():  # the incubating module marks the attribute as moved
        warnings.simplefilter("ignore")
        names = pytest.importorskip("opentelemetry.semconv._incubating.attributes.gen_ai_attributes")
    values = names.GenAiProviderNameValues
    from schwarm_stream.sources import native_ollama
    from schwarm_stream.sources._bedrock import PROVIDER as BEDROCK
    from schwarm_stream.sources._gemini import GeminiSource

    assert GeminiSource.provider == values.GCP_GEMINI.value == "gcp.gemini"
    assert values.GCP_VERTEX_AI.value == "gcp.vertex_ai"  # a Vertex AI client's name (test_source_gemini)
    assert BEDROCK == values.AWS_BEDROCK.value == "aws.bedrock"
    # Ollama has no well-known value: the source uses its own lowercase name, as the conventions allow
    assert native_ollama("http://127.0.0.1:9", model="m", messages=[]).provider == "ollama"
    assert "ollama" not in {v.value for v in values}
