"""Channels for agents: `/llms.txt`, `/llms-full.txt`, page Markdown, and the MCP server.

`/llms.txt` follows llmstxt.org: the book's title as an `#` heading, a one-line summary
as a blockquote, then one Markdown link per indexed page to its published URL (or, with
no SITE_URL, to this service's `/pages/<path>`). `/llms-full.txt` is every page's
text in the same order. Both are built from the index (SQLite's documents) and cached
until the next ingestion finishes.

The MCP server (the official `mcp` SDK, streamable HTTP) offers two read-only tools,
`search_book(query, k)` and `read_page(path)`, the same services the HTTP API uses. It is
mounted at `/mcp` by `ragsite.asgi`, which also rate-limits it like search.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from ingestion.overview import book_overview
from ingestion.selectors import PageText, book_pages, index_summary, page_read

MCP_INSTRUCTIONS = (
    "Read-only access to one book. Use search_book to find the sections that answer a "
    "question (each result has a citation URL), then read_page for a whole page."
)
MAX_SEARCH_K = 20
PAGE_NOT_FOUND_MESSAGE = "No indexed page has this path; search_book lists the paths."
_MARKDOWN = "text/markdown; charset=utf-8"
_PLAIN = "text/plain; charset=utf-8"


def _cache_key(name: str) -> str:
    # A new successful ingestion changes last_ingested_at, which retires the old text.
    return f"ragsite:agents:{name}:{index_summary()['last_ingested_at']}"


def _page_link(path: str, url: str | None) -> str:
    return url or f"/pages/{quote(path)}"


def _book_title() -> str:
    return book_overview(questions=False).title


def llms_txt_build() -> str:
    """Return the llms.txt index of the book: title, summary, one link per page."""
    pages = book_pages()
    title = _book_title()
    lines = [
        f"# {title}",
        "",
        f"> {title}: {len(pages)} pages, searchable through this service's /api/search "
        "and MCP server (/mcp).",
        "",
        "## Pages",
        "",
    ]
    lines += [f"- [{page.title or page.path}]({_page_link(page.path, page.url)})" for page in pages]
    return "\n".join(lines) + "\n"


def llms_full_txt_build() -> str:
    """Return every indexed page's Markdown, in book order, each headed by its source."""
    texts: list[str] = [f"# {_book_title()}"]
    for document in book_pages():
        page = page_read(document.path)
        if page is not None:
            texts.append(f"Source: {_page_link(page.path, page.url)}\n\n{page.markdown}")
    return "\n\n---\n\n".join(texts) + "\n"


def _cached(name: str, build) -> str:
    key = _cache_key(name)
    text = cache.get(key)
    if text is None:
        text = build()
        cache.set(key, text, timeout=None)
    return text


@require_safe
async def llms_txt(request: HttpRequest) -> HttpResponse:
    """GET /llms.txt: the llmstxt.org index of the book."""
    text = await sync_to_async(_cached)("llms", llms_txt_build)
    return HttpResponse(text, content_type=_PLAIN)


@require_safe
async def llms_full_txt(request: HttpRequest) -> HttpResponse:
    """GET /llms-full.txt: the whole book as Markdown."""
    text = await sync_to_async(_cached)("llms-full", llms_full_txt_build)
    return HttpResponse(text, content_type=_PLAIN)


@require_safe
async def page_markdown(request: HttpRequest, path: str) -> HttpResponse:
    """GET /pages/<path>: one indexed page as Markdown (404 for any other path)."""
    page = await sync_to_async(page_read)(path)
    if page is None:
        return HttpResponse(PAGE_NOT_FOUND_MESSAGE, status=404, content_type=_PLAIN)
    return HttpResponse(page.markdown, content_type=_MARKDOWN)


# --- the MCP server ---------------------------------------------------------------------


def _tool_error(message: str) -> Exception:
    """An error the agent sees with its message (any other exception reads as a crash)."""
    from mcp.server.mcpserver.exceptions import ToolError

    return ToolError(message)


def _page_dict(page: PageText) -> dict[str, Any]:
    return {"path": page.path, "title": page.title, "url": page.url, "text": page.markdown}


async def search_book(query: str, k: int = 5) -> list[dict[str, Any]]:
    """Search the book; return the best sections with title, heading, URL, path and text.

    Args:
        query: what to look for, in the reader's words.
        k: how many sections to return (1 to 20).
    """
    from chat.services import book_search

    query = query.strip()
    if not query:
        raise _tool_error("query must not be empty")
    retrieval = await book_search(query=query[:2000], k=max(1, min(MAX_SEARCH_K, int(k))))
    return [
        {
            "title": hit.chunk.title,
            "heading": hit.chunk.heading,
            "url": hit.chunk.url,
            "path": hit.chunk.path,
            "score": round(hit.score, 4),
            "text": hit.chunk.body,
        }
        for hit in retrieval.hits
    ]


async def read_page(path: str) -> dict[str, Any]:
    """Read one whole page of the book as Markdown, by the `path` a search result gave."""
    page = await sync_to_async(page_read)(path)
    if page is None:
        raise _tool_error(PAGE_NOT_FOUND_MESSAGE)
    return _page_dict(page)


def mcp_server():
    """Build the MCP server with the book's two read-only tools."""
    from mcp.server import MCPServer

    server = MCPServer(name="ragsite", instructions=MCP_INSTRUCTIONS)
    server.tool(name="search_book")(search_book)
    server.tool(name="read_page")(read_page)
    return server


def mcp_asgi_app():
    """Return the streamable-HTTP ASGI app of the MCP server, served at `/mcp`.

    Stateless with JSON responses: every request stands alone, so nothing is kept per
    client and any process (or replica) can answer it. Host checks are Django's
    ALLOWED_HOSTS, applied by `ragsite.asgi` before the request gets here.
    """
    from mcp.server.transport_security import TransportSecuritySettings

    return mcp_server().streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
