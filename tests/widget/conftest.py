"""Real Chromium (Debian's package) driven by Playwright's sync API, one browser per module.

Never `playwright install`: the browser comes from apt (`apt-get install -y chromium`),
which `.ci/run` does when it is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO_DIR = Path(__file__).resolve().parents[2]
WIDGET_JS = REPO_DIR / "static" / "ragsite" / "widget.js"
ARTIFACTS = REPO_DIR / "test-artifacts"


@pytest.fixture(autouse=True)
def _django_sync_calls_beside_playwright(monkeypatch):
    """Let test code use the ORM while Playwright's sync API keeps an event loop in this thread.

    Django refuses sync ORM calls when it sees a running loop; here the loop belongs to
    Playwright's greenlet, not to Django, so the check is a false alarm (tests only).
    """
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the whole module."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail("Chromium is missing: run `apt-get install -y chromium` (CI does this).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser):
    """A fresh browser profile (own localStorage) per test."""
    ctx = browser.new_context(viewport={"width": 1200, "height": 800}, color_scheme="light")
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    """A page whose JavaScript errors fail the test."""
    errors: list[str] = []
    tab = context.new_page()
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """test-artifacts/ (gitignored): screenshots the tests keep for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
