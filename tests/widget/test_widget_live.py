"""The widget end to end in real Chromium against the real backend.

uvicorn serves the project on loopback (tests/live.py) with the default book (this
repository's docs/) ingested into a fresh local Qdrant folder by the real packaged
embedding model. Answers come from the extractive model (the out-of-the-box setup)
or from the real openai SDK talking to the fake OpenAI-compatible server when a test
needs to hold or pace the stream.
"""

from __future__ import annotations

import re
import time

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import override_settings
from playwright.sync_api import expect

from chat.models import Feedback, Message
from ingestion.services import book_ingest
from ragsite.rag import providers

pytestmark = pytest.mark.browser

STARTER = "How does ingestion avoid re-embedding unchanged pages?"
PUBLISHED_SITE = "https://book.example"  # SITE_URL in tests/settings.py
LLM_ANSWER = (
    "Ingestion stores a **sha256** of every page and chunk [1], so a re-run only embeds "
    "what changed:\n\n"
    "- unchanged pages are skipped [1]\n"
    "- vectors are cached by content hash [2]\n\n"
    "Run `python manage.py ingest` again after editing the book."
)
FOLLOW_UPS = "- How are deleted pages handled?\n- Where are the vectors stored?"


@pytest.fixture(scope="module")
def ingested_store(browser, tmp_path_factory, django_db_setup, django_db_blocker):
    """docs/ ingested once per module into its own Qdrant folder (embedding is the slow part).

    It asks for the browser first, so a machine without Chromium skips before embedding.

    Chat reads only the vector store, so each test points QDRANT_PATH at this folder; the
    ingestion's database rows are flushed by the first test's teardown.
    """
    path = tmp_path_factory.mktemp("widget-book") / "qdrant"
    with django_db_blocker.unblock(), override_settings(QDRANT_PATH=path, QDRANT_COLLECTION="book"):
        task = book_ingest(book_dir=django_settings.BOOK_DIR, source="manage.py")
        assert task.status == "succeeded", task.errors
        assert task.chunks_added > 0
    providers.reset()  # close the client: each test reopens the folder
    return path


@pytest.fixture
def book_server(settings, ingested_store, live_server):
    """The project served on loopback with docs/ indexed; rate-limit counters cleared."""
    settings.QDRANT_PATH = ingested_store
    settings.QDRANT_COLLECTION = "book"
    cache.clear()
    return live_server


def wait_for(condition, what: str, timeout: float = 10.0):
    """Poll the database-side effect of a browser action (the server finishes after the UI)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def published_site(context):
    """The published book site, so citation links opened in a new tab land somewhere."""

    def handle(route):
        route.fulfill(
            body="<!doctype html><title>The book</title><p>A section.</p>", content_type="text/html"
        )

    context.route(f"{PUBLISHED_SITE}/**", handle)


@pytest.fixture
def paced_llm(llm_settings, fake_openai):
    """A language model (the fake server) answering LLM_ANSWER word by word."""

    def respond(body):
        return LLM_ANSWER if body.get("stream") else FOLLOW_UPS

    fake_openai.reply_with(respond)
    fake_openai.token_delay = 0.04
    return fake_openai


def shadow(page, selector: str):
    """A locator inside the widget's (open) shadow root."""
    return page.locator(f"ragsite-chat {selector}")


RECORDER = """() => {
  // Record every state of the streaming answer and of the live region's aria-busy.
  const root = document.querySelector('ragsite-chat').shadowRoot;
  const log = root.querySelector('.log');
  window.__seen = {texts: [], busy: [log.getAttribute('aria-busy')]};
  new MutationObserver(() => {
    const answers = root.querySelectorAll('.assistant .answer');
    const text = answers.length ? answers[answers.length - 1].textContent : '';
    const seen = window.__seen;
    if (text && text !== seen.texts[seen.texts.length - 1]) seen.texts.push(text);
    const busy = log.getAttribute('aria-busy');
    if (busy !== seen.busy[seen.busy.length - 1]) seen.busy.push(busy);
  }).observe(log, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def test_reader_asks_sees_sources_streams_cites_rates_and_comes_back(
    book_server, published_site, paced_llm, context, page, artifacts_dir
):
    gate = paced_llm.hold_first_token()
    page.goto(f"{book_server.url}/")

    # The demo page explains ragsite and shows the exact embed line for this backend.
    assert page.get_by_role("heading", name="Chat with a book").is_visible()
    snippet = (
        f'<script src="{book_server.url}/static/ragsite/widget.js" '
        f'data-api="{book_server.url}" defer></script>'
    )
    assert page.locator("#embed pre").inner_text() == snippet
    assert page.get_by_role("link", name="Health report").get_attribute("href") == "/api/health"
    assert page.get_by_role("link", name="Admin").first.get_attribute("href") == "/admin/"

    page.get_by_role("button", name="Ask the book").click()
    dialog = page.get_by_role("dialog", name="Ask the ragsite docs")
    assert dialog.is_visible()
    page.evaluate(RECORDER)
    dialog.get_by_role("button", name=STARTER).click()

    # Sources arrive before the first token (the model is held back).
    source_links = shadow(page, ".sources li a")
    source_links.first.wait_for()
    assert shadow(page, ".log").get_attribute("aria-busy") == "true"
    assert shadow(page, ".status").inner_text() == "Searching the book\u2026"
    hrefs = [link.get_attribute("href") for link in source_links.all()]
    assert hrefs
    assert all(href.startswith(f"{PUBLISHED_SITE}/docs/") for href in hrefs)
    assert all(link.get_attribute("target") == "_blank" for link in source_links.all())

    gate.set()
    shadow(page, ".actions").wait_for()

    # The answer streamed in: many token events, several visible states, then done.
    seen = page.evaluate("window.__seen")
    stats = page.evaluate("window.__ragsiteTest.stats()")
    assert stats["tokens"] >= 10
    assert len(seen["texts"]) >= 3
    assert seen["busy"] == ["false", "true", "false"]
    answer = shadow(page, ".assistant .answer").last
    assert answer.locator("strong").inner_text() == "sha256"
    assert answer.locator("li").count() == 2
    assert answer.locator("code").inner_text() == "python manage.py ingest"
    assert "Ingestion stores a sha256 of every page and chunk" in answer.inner_text()
    page.mouse.move(0, 0)
    page.screenshot(path=artifacts_dir / "widget.png")  # the answered widget, for people to look at

    # Citations link to the section URLs the sources event carried (stored with the message).
    wait_for(lambda: Message.objects.filter(status="complete").exists(), "the answer to be stored")
    message = Message.objects.get()
    citation = answer.locator("a.cite").first
    assert citation.inner_text() == "1"
    assert citation.get_attribute("href") == message.sources[0]["url"]
    assert citation.get_attribute("href") == hrefs[0]
    with context.expect_page() as opened:
        citation.click()
    assert opened.value.url == message.sources[0]["url"]
    opened.value.close()

    # Follow-up questions are offered as buttons.
    assert shadow(page, ".followup").all_inner_texts() == [
        "How are deleted pages handled?",
        "Where are the vectors stored?",
    ]

    # Feedback is stored, and can be changed.
    helpful = page.get_by_role("button", name="Helpful", exact=True)
    not_helpful = page.get_by_role("button", name="Not helpful")
    helpful.click()
    expect(shadow(page, ".feedback-msg")).to_have_text("Thanks, your feedback was recorded.")
    expect(helpful).to_have_attribute("aria-pressed", "true")
    assert Feedback.objects.get(message=message).rating == "up"
    not_helpful.click()
    expect(not_helpful).to_have_attribute("aria-pressed", "true")
    expect(helpful).to_have_attribute("aria-pressed", "false")
    assert Feedback.objects.get(message=message).rating == "down"

    # Copy puts the answer on the clipboard.
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=book_server.url)
    page.get_by_role("button", name="Copy answer").click()
    expect(shadow(page, ".feedback-msg")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == message.answer

    # Reload: the same session and the visible transcript come back.
    session_id = str(message.conversation.session_id)
    stored = page.evaluate("JSON.parse(localStorage.getItem(Object.keys(localStorage)[0]))")
    assert stored["session_id"] == session_id
    page.reload()
    page.get_by_role("button", name="Ask the book").click()
    expect(shadow(page, ".user")).to_have_text(f"You: {STARTER}")
    restored = shadow(page, ".assistant .answer").last
    expect(restored).to_contain_text("Ingestion stores a sha256 of every page and chunk")
    assert restored.locator("a.cite").first.get_attribute("href") == hrefs[0]
    expect(page.get_by_role("button", name="Not helpful")).to_have_attribute("aria-pressed", "true")

    # The next question continues the same conversation.
    with page.expect_request(f"{book_server.url}/api/chat") as sent:
        shadow(page, ".followup").first.click()
    assert sent.value.post_data_json["session_id"] == session_id
    assert sent.value.post_data_json["message"] == "How are deleted pages handled?"
    shadow(page, ".actions").nth(1).wait_for()
    wait_for(
        lambda: Message.objects.filter(conversation__session_id=session_id).count() == 2,
        "the follow-up to join the conversation",
    )

    # "New conversation" forgets the session and the transcript.
    page.get_by_role("button", name="New conversation").click()
    expect(shadow(page, ".turn")).to_have_count(0)
    expect(shadow(page, ".starters button")).to_have_count(4)
    assert page.evaluate("localStorage.length") == 0


def test_stop_keeps_the_partial_answer(book_server, paced_llm, page):
    paced_llm.token_delay = 0.3  # slow enough to stop halfway
    page.goto(f"{book_server.url}/")
    page.get_by_role("button", name="Ask the book").click()
    box = page.get_by_role("textbox", name="Your question")
    box.fill(STARTER)
    box.press("Enter")
    page.wait_for_function(
        "(document.querySelector('ragsite-chat').shadowRoot.querySelector('.assistant .answer').textContent || '').length > 12"
    )
    page.get_by_role("button", name="Stop").click()
    shadow(page, ".muted-note").wait_for()
    assert shadow(page, ".muted-note").inner_text() == "Stopped."
    partial = shadow(page, ".assistant .answer").inner_text()
    assert partial.startswith("Ingestion stores")  # what had arrived stays on screen
    assert "python manage.py ingest" not in partial  # ...and nothing after the stop
    assert shadow(page, ".log").get_attribute("aria-busy") == "false"
    assert page.get_by_role("button", name="Send").is_visible()
    assert paced_llm.wait_for_cancel()  # the backend stopped asking the model too
    wait_for(
        lambda: Message.objects.filter(status="partial").exists(), "the partial answer to be stored"
    )


def test_ask_about_a_selected_passage(book_server, page):
    page.goto(f"{book_server.url}/")
    paragraph = page.locator("#embedding-paragraph")
    paragraph.evaluate("el => el.scrollIntoView({block: 'center'})")
    paragraph.click(click_count=3)  # select the paragraph like a reader would
    selected = page.evaluate("document.getSelection().toString().trim()")
    assert selected.startswith("The default embedding model is all-MiniLM-L6-v2")
    ask = page.get_by_role("button", name="Ask about this")
    ask.wait_for()
    button_box, text_box = ask.bounding_box(), paragraph.bounding_box()
    assert (
        text_box["y"] - 60 <= button_box["y"] <= text_box["y"] + text_box["height"] + 60
    )  # near it

    with page.expect_request(f"{book_server.url}/api/chat") as sent:
        ask.click()
    body = sent.value.post_data_json
    assert body["message"] == "Explain this passage"
    assert body["selection"] == selected
    assert page.get_by_role("dialog").is_visible()
    expect(shadow(page, ".passage")).to_contain_text(f"About this passage\u201c{selected[:40]}")
    shadow(page, ".actions").wait_for()
    wait_for(
        lambda: Message.objects.filter(selection=selected).exists(), "the question to be stored"
    )
    # Out of the box there is no language model: the answer quotes the book and says so.
    assert shadow(page, ".note").first.inner_text() == (
        "This answer quotes the book directly; no AI model wrote it."
    )
    assert shadow(page, ".assistant .answer").inner_text().strip()
    assert not ask.is_visible()


HOSTILE_PAGE = """<!doctype html><html><head><style>
html { font-size: 64px !important; }
body *:not(script) { all: unset !important; display: none !important; }
* { font: italic 48px/5 "Comic Sans MS", cursive !important; color: red !important;
    background: lime !important; box-sizing: content-box !important; letter-spacing: 9px !important; }
button, textarea, input, a { visibility: hidden !important; display: none !important; }
div, section, p, span, ol, ul, li { display: none !important; position: absolute !important; left: -9999px !important; }
ragsite-chat { display: none !important; opacity: 0 !important; transform: scale(0) !important; }
svg, path { fill: red !important; stroke-width: 30px !important; }
</style></head><body><p>Hostile book page</p>
<script src="{api}/static/ragsite/widget.js" data-api="{api}" defer></script></body></html>"""


def test_hostile_host_css_cannot_break_the_widget(book_server, page, artifacts_dir):
    # The hostile page is written into a document of the server's origin (a page served
    # from a made-up public origin may not load scripts from a loopback address).
    page.goto(f"{book_server.url}/a-page-without-the-widget")
    page.set_content(HOSTILE_PAGE.replace("{api}", book_server.url))
    launcher = page.get_by_role("button", name="Ask the book")
    expect(launcher).to_be_visible()
    box = launcher.bounding_box()
    assert 40 <= box["height"] <= 56  # its own 15px type, not the page's 48px
    assert launcher.evaluate("el => getComputedStyle(el).fontSize") == "15px"
    launcher.click()
    dialog = page.get_by_role("dialog", name="Ask the book")
    assert dialog.is_visible()
    box = page.get_by_role("textbox", name="Your question")
    box.fill("Where are the vectors stored?")
    box.press("Enter")
    shadow(page, ".actions").wait_for()
    assert shadow(page, ".sources li").count() >= 1
    assert shadow(page, ".assistant .answer").is_visible()
    assert (
        shadow(page, ".assistant .answer").evaluate("el => getComputedStyle(el).color")
        != "rgb(255, 0, 0)"
    )
    page.screenshot(path=artifacts_dir / "widget-hostile.png")


def test_phone_width_full_screen_panel(book_server, browser, artifacts_dir):
    phone = browser.new_context(
        viewport={"width": 360, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    try:
        page = phone.new_page()
        page.goto(f"{book_server.url}/")
        page.get_by_role("button", name="Ask the book").tap()
        dialog = page.get_by_role("dialog")
        dialog.evaluate("el => Promise.all(el.getAnimations().map((a) => a.finished))")
        box = dialog.bounding_box()
        assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 360, 740)
        assert not page.get_by_role("button", name="Ask the book").is_visible()  # covered panel
        page.get_by_role("button", name="Which embedding model does ragsite use?").tap()
        shadow(page, ".actions").wait_for()
        overflow = shadow(page, ".log").evaluate("el => el.scrollWidth - el.clientWidth")
        assert overflow <= 0  # nothing wider than the phone
        page.screenshot(path=artifacts_dir / "widget-360.png")
        page.get_by_role("button", name="Close").tap()
        assert page.get_by_role("button", name="Ask the book").is_visible()
    finally:
        phone.close()


def test_dark_theme_and_reduced_motion(live_server, browser):
    dark = browser.new_context(color_scheme="dark", reduced_motion="reduce")
    try:
        page = dark.new_page()
        page.goto(f"{live_server.url}/")
        page.get_by_role("button", name="Ask the book").click()
        panel = page.get_by_role("dialog")
        background = panel.evaluate("el => getComputedStyle(el).backgroundColor")
        channels = [int(c) for c in re.findall(r"\d+", background)[:3]]
        assert max(channels) < 60  # a dark panel
        assert panel.evaluate("el => getComputedStyle(el).animationName") == "none"
    finally:
        dark.close()
