"""Channels for agents: /llms.txt, /llms-full.txt, /pages/<path>, and the MCP server at
/mcp, driven by the official `mcp` SDK's own client over a live uvicorn on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from ingestion.services import book_ingest

PAGES = {
    "intro.md": (
        "---\ntitle: The Lighthouse Keeper's Manual\n---\n\n"
        "This manual teaches how to run a coastal lighthouse.\n\n"
        "## Lamp care\n\nTrim the wick every four hours and polish the Fresnel lens "
        "with a soft chamois cloth so the beam stays bright.\n"
    ),
    "weather/fog.md": (
        "# Fog signals\n\nIn fog, sound the diaphone horn twice every minute until the "
        "visibility is over two nautical miles.\n\n## Logging\n\n"
        "Write the start and end time of every fog watch in the station log.\n"
    ),
}


@pytest.fixture
def indexed_book(tmp_path: Path, settings) -> Path:
    """A two-page book written here, ingested with the real embedder into this test's store."""
    book = tmp_path / "book"
    for rel, text in PAGES.items():
        (book / rel).parent.mkdir(parents=True, exist_ok=True)
        (book / rel).write_text(text, encoding="utf-8")
    settings.BOOK_DIR = book
    settings.SITE_URL = "https://keeper.example.org"
    settings.SEARCH_RATE_LIMIT = settings.MCP_RATE_LIMIT = "1000/m"
    from ragsite.rag.config import get_config

    get_config.cache_clear()
    task = book_ingest(book_dir=book, source="manage.py")
    assert task.status == "succeeded", task.errors
    yield book
    get_config.cache_clear()


@pytest.mark.django_db(transaction=True)
def test_llms_txt_lists_every_page_with_its_published_url(indexed_book, client):
    response = client.get("/llms.txt")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    lines = text.splitlines()
    assert lines[0] == "# The Lighthouse Keeper's Manual"
    assert lines[2].startswith("> ")
    assert "- [The Lighthouse Keeper's Manual](https://keeper.example.org/docs/intro)" in lines
    assert "- [Fog signals](https://keeper.example.org/docs/weather/fog)" in lines


@pytest.mark.django_db(transaction=True)
def test_llms_full_txt_holds_every_page_text_and_its_source(indexed_book, client):
    text = client.get("/llms-full.txt").content.decode()
    assert "Source: https://keeper.example.org/docs/weather/fog" in text
    assert "sound the diaphone horn twice every minute" in text
    assert "## Lamp care" in text
    assert "title:" not in text  # front matter is not page text


@pytest.mark.django_db(transaction=True)
def test_pages_serves_indexed_pages_only(indexed_book, client, tmp_path):
    (tmp_path / "secret.md").write_text("do not serve", encoding="utf-8")
    page = client.get("/pages/weather/fog.md")
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/markdown")
    assert page.content.decode().startswith("# Fog signals")
    for path in ("/pages/../secret.md", "/pages/secret.md", "/pages/nothing.md"):
        assert client.get(path).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_llms_txt_links_to_this_service_without_a_site_url(indexed_book, client, settings):
    settings.SITE_URL = ""
    from ragsite.rag.config import get_config

    get_config.cache_clear()
    book_ingest(book_dir=indexed_book, source="manage.py", force=True)
    text = client.get("/llms.txt").content.decode()
    assert "- [Fog signals](/pages/weather/fog.md)" in text


async def test_mcp_tools_over_streamable_http(indexed_book, live_server):
    from mcp import Client

    async with Client(f"{live_server.url}/mcp") as mcp_client:
        tools = {tool.name: tool for tool in (await mcp_client.list_tools()).tools}
        assert set(tools) == {"search_book", "read_page"}
        assert "query" in tools["search_book"].input_schema["properties"]

        found = await mcp_client.call_tool("search_book", {"query": "what to do in fog", "k": 3})
        assert not found.is_error
        results = json.loads(found.content[0].text)
        results = results if isinstance(results, list) else [results]
        assert results[0]["path"] == "weather/fog.md"
        assert results[0]["url"].startswith("https://keeper.example.org/docs/weather/fog")
        assert "diaphone" in results[0]["text"]

        page = await mcp_client.call_tool("read_page", {"path": "intro.md"})
        assert not page.is_error
        body = json.loads(page.content[0].text)
        assert body["title"] == "The Lighthouse Keeper's Manual"
        assert "Fresnel lens" in body["text"]

        missing = await mcp_client.call_tool("read_page", {"path": "../etc/passwd"})
        assert missing.is_error
        assert "No indexed page" in missing.content[0].text


async def test_mcp_is_rate_limited_like_search(indexed_book, live_server, settings):
    settings.MCP_RATE_LIMIT = "2/m"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        statuses = [(await http.post("/mcp", json=body, headers=headers)) for _ in range(3)]
    assert statuses[-1].status_code == 429
    assert statuses[-1].headers["Retry-After"].isdigit()
    assert statuses[-1].json()["error"]["code"] == "rate_limited"
    assert all(r.status_code != 429 for r in statuses[:2])
