"""The web chat example end to end in headless Chromium, with a forced reconnect mid-answer.

The server cuts the first SSE connection of the answer after a few events; the browser's EventSource
reconnects with Last-Event-ID and the server replays the rest from its ring buffer. The page must then
show the full answer exactly once, and the tool call the model made.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
from schwarm_stream_starlette import ThreadedServer
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from schwarm_stream.testing.server import OfflineProvider, ThreadedProviderServer

ROOT = Path(__file__).resolve().parents[1]
CHROMEDRIVER = "/usr/bin/chromedriver"
DROP_AFTER = 8


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("web_chat_app", ROOT / "examples" / "web_chat" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def browser(tmp_path: Path):  # type: ignore[no-untyped-def]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium and Path(CHROMEDRIVER).exists(), (
        "headless Chromium is required: run .ci/setup.d/30-chromium.sh (apt-get install chromium chromium-driver)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=900,700",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_chat_page_survives_a_reconnect_mid_answer(browser: webdriver.Chrome, tmp_path: Path) -> None:
    example = _example()
    with ThreadedProviderServer(OfflineProvider(chunk_delay=0.02)) as provider:
        app = example.create_app(provider.openai_base_url, drop_after=DROP_AFTER, retry_ms=200)
        with ThreadedServer(app) as url:
            browser.get(url + "/")
            browser.find_element(By.ID, "send").click()
            WebDriverWait(browser, 30).until(
                lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done"
            )
            answers = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".answer")]
            tools = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".tool")]
            page_text = browser.find_element(By.ID, "log").text
            shot = tmp_path / "web_chat.png"
            assert browser.save_screenshot(str(shot))

    # What the agent loop's accumulator saw, turn by turn (the truth the page must match).
    (expected,) = app.state.answers.values()
    assert expected == ["Let me check the weather.", "The tool returned: Sunny and 21 degrees in Paris"]
    assert answers == expected
    for text in expected:
        assert page_text.count(text) == 1
    assert len(tools) == 1 and "get_weather" in tools[0] and "Paris" in tools[0]

    # The reconnect really happened, and resumed after the last event the browser had.
    connections = app.state.connections
    assert connections[0] is None
    assert len(connections) >= 2
    assert connections[1] == str(DROP_AFTER)

    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
