"""The OpenAPI document and its human docs page: built from the validating models, served
offline (Swagger UI's files come from this server, no CDN)."""

from __future__ import annotations

import re

import httpx
import pytest

from chat.schemas import MESSAGE_MAX_CHARS, SEARCH_K_MAX, SELECTION_MAX_CHARS
from ingestion.schemas import PATH_MAX_BYTES

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_document_is_built_from_the_request_models(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    schemas = document["components"]["schemas"]

    chat = schemas["ChatRequest"]
    assert chat["required"] == ["message"]
    assert chat["properties"]["message"]["maxLength"] == MESSAGE_MAX_CHARS
    assert chat["properties"]["selection"]["anyOf"][0]["maxLength"] == SELECTION_MAX_CHARS
    assert chat["properties"]["stream"] == {"default": True, "title": "Stream", "type": "boolean"}
    assert schemas["FeedbackRequest"]["properties"]["rating"]["enum"] == ["up", "down"]
    assert schemas["IngestRequest"]["additionalProperties"] is False
    assert schemas["IngestRequest"]["properties"]["path"]["anyOf"][0]["maxLength"] == (
        PATH_MAX_BYTES
    )

    search = document["paths"]["/api/search"]["get"]
    k = next(p for p in search["parameters"] if p["name"] == "k")
    assert (k["in"], k["required"], k["schema"]["maximum"]) == ("query", False, SEARCH_K_MAX)
    chat_op = document["paths"]["/api/chat"]["post"]
    assert set(chat_op["responses"]["200"]["content"]) == {"text/event-stream", "application/json"}
    events = chat_op["responses"]["200"]["content"]["text/event-stream"]["schema"]["oneOf"]
    assert [e["properties"]["event"]["const"] for e in events] == [
        "meta", "sources", "token", "done", "error",
    ]  # fmt: skip
    for code in ("400", "413", "415", "429"):
        assert code in chat_op["responses"]
    assert document["paths"]["/api/ingest"]["post"]["security"] == [{"bearer": []}]


def test_every_error_is_documented_in_the_error_shape(client):
    document = client.get("/api/openapi.json").json()
    error = document["components"]["schemas"]["ErrorResponse"]
    assert error["required"] == ["error"]
    detail = document["components"]["schemas"]["ErrorDetail"]
    assert detail["required"] == ["code", "message", "details"]
    for name, response in document["components"]["responses"].items():
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, name


def test_docs_page_loads_swagger_ui_from_this_server_only(live_server):
    with httpx.Client(base_url=live_server.url, timeout=20) as client:
        page = client.get("/api/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        assert "/api/openapi.json" in html
        assert "validatorUrl: null" in html
        # Nothing from another host: every script and stylesheet is a local path.
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets
        assert all(asset.startswith("/") for asset in assets), assets
        for asset in assets:
            served = client.get(asset)
            assert served.status_code == 200, asset
        bundle = next(a for a in assets if a.endswith("swagger-ui-bundle.js"))
        assert "SwaggerUIBundle" in client.get(bundle).text
