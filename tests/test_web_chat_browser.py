"""The web chat example end to end in headless Chromium.

- a forced reconnect mid-answer: the server cuts the first SSE connection of the answer after a few
  events; the browser's EventSource reconnects with Last-Event-ID and the server replays the rest from
  its ring buffer. The page must then show the full answer exactly once, and the tool call the model made;
- a reload mid-answer: the page kept the channel id in sessionStorage, replays the answer and follows
  it to its end;
- a second prompt while one streams is refused (Send disabled, Enter ignored), then works once done;
- the console stays clean (no favicon 404).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from schwarm_stream_starlette import ThreadedServer
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
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
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console messages, for get_log()
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
    assert "Sunny and 21 degrees in Paris" in tools[0]  # the tool result the agent loop relayed

    # The reconnect really happened, and resumed after the last event the browser had.
    connections = app.state.connections
    assert connections[0] is None
    assert len(connections) >= 2
    assert connections[1] == str(DROP_AFTER)

    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


EXPECTED = ["Let me check the weather.", "The tool returned: Sunny and 21 degrees in Paris"]


def _state(driver: webdriver.Chrome) -> str | None:
    return driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")


def _console_errors(driver: webdriver.Chrome) -> list[Any]:
    entries: list[Any] = driver.get_log("browser")  # type: ignore[no-untyped-call]  # selenium leaves it untyped
    return [e for e in entries if e.get("level") == "SEVERE"]


def _exchanges(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    return [
        {
            "user": [u.text for u in box.find_elements(By.CSS_SELECTOR, ".user")],
            "answers": [a.text for a in box.find_elements(By.CSS_SELECTOR, ".answer")],
            "tools": [t.text for t in box.find_elements(By.CSS_SELECTOR, ".tool")],
        }
        for box in driver.find_elements(By.CSS_SELECTOR, ".exchange")
    ]


def test_reload_mid_answer_resumes_from_the_saved_channel(browser: webdriver.Chrome) -> None:
    example = _example()
    with ThreadedProviderServer(OfflineProvider(chunk_delay=0.12)) as provider:
        app = example.create_app(provider.openai_base_url, retry_ms=200)
        with ThreadedServer(app) as url:
            browser.get(url + "/")
            browser.find_element(By.ID, "send").click()
            WebDriverWait(browser, 30).until(
                lambda d: (
                    d.find_elements(By.CSS_SELECTOR, ".answer")
                    and d.find_element(By.CSS_SELECTOR, ".answer").text
                )
            )
            saved = json.loads(browser.execute_script("return sessionStorage.getItem('schwarm-chat')"))
            (entry,) = saved
            channel = app.state.hub.channels[entry["id"]]
            assert not channel.done  # the reload really happens mid-answer
            browser.refresh()
            WebDriverWait(browser, 30).until(lambda d: _state(d) == "done")
            exchanges = _exchanges(browser)
            console = _console_errors(browser)
            assert channel.done

    assert app.state.answers[entry["id"]] == EXPECTED
    (exchange,) = exchanges  # the conversation survived the reload, once
    assert exchange["user"] == ["What's the weather in Paris?"]
    assert exchange["answers"] == EXPECTED
    (tool,) = exchange["tools"]
    assert "get_weather" in tool and "Sunny and 21 degrees in Paris" in tool
    # two subscriptions from scratch: the first page, then the reloaded one replaying from the start
    assert app.state.connections.count(None) == 2
    assert console == []


def test_a_second_prompt_waits_for_the_answer_that_streams(browser: webdriver.Chrome) -> None:
    example = _example()
    with ThreadedProviderServer(OfflineProvider(chunk_delay=0.1)) as provider:
        app = example.create_app(provider.openai_base_url, retry_ms=200)
        with ThreadedServer(app) as url:
            browser.get(url + "/")
            send = browser.find_element(By.ID, "send")
            prompt = browser.find_element(By.ID, "prompt")
            send.click()
            WebDriverWait(browser, 30, poll_frequency=0.05).until(lambda d: _state(d) == "streaming")
            assert not send.is_enabled()  # Send is disabled while an answer streams
            prompt.send_keys("Weather in Rome?", Keys.ENTER)  # and Enter does not submit either
            WebDriverWait(browser, 30).until(lambda d: _state(d) == "done" and send.is_enabled())
            assert len(app.state.answers) == 1
            assert len(_exchanges(browser)) == 1
            prompt.clear()
            prompt.send_keys("Weather in Rome?", Keys.ENTER)  # now it goes
            WebDriverWait(browser, 30).until(
                lambda d: len(_exchanges(d)) == 2 and _state(d) == "done" and send.is_enabled()
            )
            exchanges = _exchanges(browser)
            console = _console_errors(browser)

    first, second = exchanges
    assert first["user"] == ["What's the weather in Paris?"] and first["answers"] == EXPECTED
    assert second["user"] == ["Weather in Rome?"]
    assert second["answers"] == [
        "Let me check the weather.",
        "The tool returned: Sunny and 21 degrees in Rome",
    ]
    assert sorted(map(tuple, app.state.answers.values())) == sorted(
        [tuple(EXPECTED), tuple(second["answers"])]
    )
    assert console == []
