"""The widget on its own, in real Chromium: safe Markdown, the SSE parser, options,
keyboard use and the messages for failures the real backend cannot be made to produce
on demand (a 429, a dropped connection, an `error` event).

The host page and the API are served by Playwright's request routing from two made-up
origins, so the widget runs cross-origin with CORS exactly as on a book site. The
end-to-end tests against the real backend are in test_widget_live.py.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from .conftest import WIDGET_JS

pytestmark = pytest.mark.browser

BOOK = "http://book.test"
API = "http://api.test"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "content-type",
    "Access-Control-Expose-Headers": "Retry-After",
}
SOURCES = [
    {"n": 1, "title": "Ingestion", "heading": "Chunking", "url": "https://site.test/docs/ingestion#chunking",
     "path": "ingestion.md", "score": 0.8, "snippet": "Pages are split along headings."},
    {"n": 2, "title": "Architecture", "heading": "Hashes", "url": None,
     "path": "architecture.md", "score": 0.7, "snippet": "A sha256 per chunk."},
]  # fmt: skip


def sse(name: str, data: dict) -> str:
    """One event exactly as API.md writes it."""
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def host_page(attributes: str = "", body: str = "") -> str:
    """A plain book page embedding the widget from the API origin (data-api defaults to it)."""
    return (
        "<!doctype html><html lang='en'><head><title>Book</title></head><body>"
        f"<h1>A book page</h1><p id='para'>Chunks are embedded once and cached by hash.</p>{body}"
        f"<script src='{API}/static/ragsite/widget.js' {attributes} defer></script></body></html>"
    )


def serve(context, *, page_html: str, chat=None, feedback_status: int = 204):
    """Route the made-up origins: the host page, widget.js, and a scripted API."""
    requests: list[dict] = []
    script = WIDGET_JS.read_text()

    def handle(route):
        request = route.request
        if request.method == "OPTIONS":
            route.fulfill(status=204, headers=CORS)
        elif request.url.endswith("/static/ragsite/widget.js"):
            route.fulfill(body=script, content_type="application/javascript", headers=CORS)
        elif request.url.endswith("/api/chat"):
            requests.append(json.loads(request.post_data or "{}"))
            chat(route)
        elif request.url.endswith("/api/feedback"):
            requests.append(json.loads(request.post_data or "{}"))
            route.fulfill(status=feedback_status, headers=CORS)
        elif request.url.startswith(BOOK):
            route.fulfill(body=page_html, content_type="text/html; charset=utf-8")
        else:
            route.abort()

    context.route(f"{BOOK}/**", handle)
    context.route(f"{API}/**", handle)
    return requests


def stream_reply(events: str, status: int = 200):
    """A chat handler answering with this SSE body."""

    def chat(route):
        route.fulfill(
            status=status, body=events, headers={**CORS, "Content-Type": "text/event-stream"}
        )

    return chat


def answer_events(answer: str, *, mode: str = "llm", uncertain: bool = False) -> str:
    events = ": ping\n\n" + sse("meta", {"session_id": "s-1", "message_id": "m-1"})
    events += sse("sources", {"sources": SOURCES})
    for start in range(0, len(answer), 6):
        events += sse("token", {"text": answer[start : start + 6]})
    return events + sse(
        "done",
        {"answer": answer, "citations": [1, 2], "uncertain": uncertain,
         "follow_ups": ["What is a chunk?"], "mode": mode, "usage": {}},
    )  # fmt: skip


def shadow(page, selector: str):
    """A locator inside the widget's shadow root (Playwright pierces open shadow roots)."""
    return page.locator(f"ragsite-chat {selector}")


def render(page, markdown: str, sources=None) -> str:
    return page.evaluate(
        "([text, sources]) => window.__ragsiteTest.renderMarkdown(text, sources)",
        [markdown, sources or []],
    )


@pytest.fixture
def book_page(context, page):
    """The host page with the widget loaded (no API traffic scripted)."""
    serve(context, page_html=host_page())
    page.goto(f"{BOOK}/")
    page.wait_for_function("window.__ragsiteTest !== undefined")
    return page


def test_html_in_an_answer_is_shown_as_text(book_page):
    html = render(
        book_page,
        'Look: <img src=x onerror="window.__pwned=1"> and <script>window.__pwned=2</script>\n\n'
        "**<b>bold</b>** [click](javascript:window.__pwned=3) [ok](https://example.com/a?b=1)",
    )
    assert "<img" not in html
    assert "<script" not in html
    assert "<b>" not in html
    assert "&lt;img src=x onerror=" in html
    assert "&lt;script&gt;window.__pwned=2&lt;/script&gt;" in html
    assert "javascript:" not in html.split("click")[0]  # the unsafe link became plain text
    assert 'href="javascript' not in html
    assert (
        '<a href="https://example.com/a?b=1" target="_blank" rel="noopener noreferrer">ok</a>'
        in html
    )
    assert book_page.evaluate("window.__pwned") is None


def test_markdown_subset(book_page):
    html = render(
        book_page,
        "# Title\n\nA **bold** and *em* word with `code <x>`.\nNext line [1].\n\n"
        "- one\n- two [2]\n\n1. first\n2. second\n\n```python\nif a < b:\n    print('**no**')\n```\n"
        "> quoted\n\nBare https://example.com/x. and [3] stays text.",
        SOURCES,
    )
    assert "<h3>Title</h3>" in html
    assert "<strong>bold</strong>" in html
    assert "<em>em</em>" in html
    assert "<code>code &lt;x&gt;</code>" in html
    assert "<br>" in html
    assert "<ul><li>one</li><li>two" in html
    assert "<ol><li>first</li><li>second</li></ol>" in html
    assert (
        '<pre tabindex="0"><code data-lang="python">if a &lt; b:\n    print(\'**no**\')</code></pre>'
        in html
    )
    assert "<blockquote><p>quoted</p></blockquote>" in html
    assert (
        '<a href="https://example.com/x" target="_blank" rel="noopener noreferrer">https://example.com/x</a>.'
        in html
    )
    # [1] links to source 1's section; [2] has no URL so it points at the source list;
    # [3] is not a source and stays as written.
    assert 'class="cite" href="https://site.test/docs/ingestion#chunking"' in html
    assert 'class="cite" href="#"' in html
    assert "[3] stays text" in html


def test_sse_parser_follows_the_event_stream_format(book_page):
    events = book_page.evaluate(
        "(chunks) => window.__ragsiteTest.parseSSE(chunks)",
        [
            ': ping\r\n\r\nevent: meta\r\ndata: {"session_id": "a"}\r',  # CRLF split across chunks
            '\n\r\nevent: token\ndata: {"text": "x"}\n\nevent: tok',
            'en\ndata:{"text":"y"}\ndata: more\n\ndata: unnamed\n\nevent: done\ndata: {}',
        ],
    )
    assert events == [
        {"event": "meta", "data": '{"session_id": "a"}'},
        {"event": "token", "data": '{"text": "x"}'},
        {"event": "token", "data": '{"text":"y"}\nmore'},
        {"event": "message", "data": "unnamed"},
        {"event": "done", "data": "{}"},
    ]


def test_streamed_answer_with_hostile_content_stays_inert(context, page):
    answer = 'Use <img src=x onerror="window.__pwned=1"> carefully [1].'
    requests = serve(context, page_html=host_page(), chat=stream_reply(answer_events(answer)))
    page.goto(f"{BOOK}/")
    page.get_by_role("button", name="Ask the book").click()
    page.get_by_role("textbox", name="Your question").fill("How?")
    page.keyboard.press("Enter")
    shadow(page, ".actions").wait_for()
    assert requests[0] == {"message": "How?", "stream": True}
    assert (
        shadow(page, ".answer")
        .last.inner_text()
        .startswith('Use <img src=x onerror="window.__pwned=1"> carefully')
    )
    assert shadow(page, ".answer img").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_rate_limit_shows_the_wait_and_holds_the_next_question(context, page):
    body = {"error": {"code": "rate_limited", "message": "Too many requests.", "details": {}}}

    def chat(route):
        route.fulfill(status=429, json=body, headers={**CORS, "Retry-After": "17"})

    requests = serve(context, page_html=host_page(), chat=chat)
    page.goto(f"{BOOK}/")
    page.get_by_role("button", name="Ask the book").click()
    box = page.get_by_role("textbox", name="Your question")
    box.fill("First?")
    box.press("Enter")
    error = shadow(page, ".assistant .error")
    error.wait_for()
    assert (
        error.inner_text() == "Too many questions right now. Please wait 17 seconds and try again."
    )
    box.fill("Second?")
    box.press("Enter")
    expect(shadow(page, ".composer .error")).to_contain_text("Please wait")
    assert len(requests) == 1  # the widget waits instead of hammering the server
    assert box.input_value() == "Second?"  # the unsent question is kept


def test_server_and_network_errors_are_explained(context, page):
    replies = iter(["json", "abort"])

    def chat(route):
        if next(replies) == "json":
            route.fulfill(
                status=503,
                headers=CORS,
                json={"error": {"code": "unavailable", "message": "The index is being rebuilt."}},
            )
        else:
            route.abort("connectionrefused")

    serve(context, page_html=host_page(), chat=chat)
    page.goto(f"{BOOK}/")
    page.get_by_role("button", name="Ask the book").click()
    box = page.get_by_role("textbox", name="Your question")
    box.fill("One?")
    box.press("Enter")
    shadow(page, ".assistant .error").wait_for()
    assert shadow(page, ".assistant .error").inner_text() == (
        "The server could not answer (error 503). Please try again later. The index is being rebuilt."
    )
    box.fill("Two?")
    box.press("Enter")
    shadow(page, ".assistant .error").nth(1).wait_for()
    assert shadow(page, ".assistant .error").nth(1).inner_text() == (
        "Could not reach the server. Check your connection and try again."
    )


def test_error_event_keeps_the_partial_answer(context, page):
    events = sse("meta", {"session_id": "s", "message_id": "m"}) + sse(
        "sources", {"sources": SOURCES}
    )
    events += sse("token", {"text": "Chunks are "}) + sse("token", {"text": "embedded"})
    events += sse(
        "error", {"code": "llm_failed", "message": "The language model stopped answering."}
    )
    serve(context, page_html=host_page(), chat=stream_reply(events))
    page.goto(f"{BOOK}/")
    page.get_by_role("button", name="Ask the book").click()
    page.get_by_role("textbox", name="Your question").fill("Why?")
    page.keyboard.press("Enter")
    shadow(page, ".assistant .error").wait_for()
    assert shadow(page, ".assistant .error").inner_text() == "The language model stopped answering."
    assert shadow(page, ".assistant .answer").inner_text() == "Chunks are embedded"
    assert shadow(page, ".log").get_attribute("aria-busy") == "false"


def test_keyboard_only_use(context, page):
    requests = serve(context, page_html=host_page(), chat=stream_reply(answer_events("Yes [1].")))
    page.goto(f"{BOOK}/")
    launcher = page.get_by_role("button", name="Ask the book")
    launcher.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Ask the book")
    assert dialog.is_visible()
    assert launcher.get_attribute("aria-expanded") == "true"
    box = page.get_by_role("textbox", name="Your question")
    assert box.evaluate("el => el.getRootNode().activeElement === el")  # focus moved into the panel
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    assert box.input_value() == "line one\nline two"
    page.keyboard.press("Enter")
    shadow(page, ".actions").wait_for()
    assert requests[0]["message"] == "line one\nline two"
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert launcher.get_attribute("aria-expanded") == "false"
    assert launcher.evaluate("el => el.getRootNode().activeElement === el")  # focus returned


def test_options_from_data_attributes(context, page):
    attributes = (
        'data-title="Demandez au livre" data-lang="fr" data-position="bottom-left" '
        'data-accent="rgb(200, 30, 30)" data-placeholder="Votre question ici" '
        'data-starters=\'["Qu’est-ce qu’un chunk ?", "Quel modèle ?"]\''
    )
    serve(context, page_html=host_page(attributes))
    page.goto(f"{BOOK}/")
    launcher = page.get_by_role("button", name="Interroger le livre")
    box = launcher.bounding_box()
    assert box["x"] < 100  # bottom-left
    assert launcher.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(200, 30, 30)"
    launcher.click()
    assert page.get_by_role("dialog", name="Demandez au livre").is_visible()
    assert (
        page.get_by_role("textbox", name="Votre question").get_attribute("placeholder")
        == "Votre question ici"
    )
    assert shadow(page, ".starters button").all_inner_texts() == [
        "Qu’est-ce qu’un chunk ?",
        "Quel modèle ?",
    ]
    assert page.get_by_role("button", name="Nouvelle conversation").is_visible()


def test_feedback_failure_is_reported_and_can_be_retried(context, page):
    requests = serve(
        context,
        page_html=host_page(),
        chat=stream_reply(answer_events("Yes [1].")),
        feedback_status=404,
    )
    page.goto(f"{BOOK}/")
    page.get_by_role("button", name="Ask the book").click()
    page.get_by_role("textbox", name="Your question").fill("Q?")
    page.keyboard.press("Enter")
    shadow(page, ".actions").wait_for()
    page.get_by_role("button", name="Not helpful").click()
    expect(shadow(page, ".feedback-msg")).to_have_text("Your feedback could not be recorded.")
    expect(page.get_by_role("button", name="Not helpful")).to_have_attribute(
        "aria-pressed", "false"
    )
    assert requests[-1] == {"message_id": "m-1", "rating": "down"}
