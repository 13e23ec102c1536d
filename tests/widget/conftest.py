"""Real Chromium (Debian's package) driven by Playwright's sync API, one browser per module.

Never `playwright install`: the browser comes from apt (`apt-get install -y chromium`),
which bin/test does when it is missing. Without it the browser tests are skipped, except
in CI (`RAGSITE_REQUIRE_BROWSER=1`), where they fail.
"""

from __future__ import annotations

import os
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


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the whole module.

    While it runs, Playwright's sync API keeps an asyncio loop in the test thread, and
    Django then refuses sync ORM calls (the test's own queries, pytest-django's flush
    after a live-server test) as if they came from async code. The loop is not Django's,
    so the check is lifted for exactly that span, in tests only.
    """
    if not Path(CHROMIUM).exists():
        message = "Chromium is missing: run `apt-get install -y chromium` (bin/test does as root)."
        if os.environ.get("RAGSITE_REQUIRE_BROWSER") == "1":  # set by .ci/run
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
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
