"""Bad input on every /api/ endpoint is a JSON 4xx in the shape of API.md, never a 500
and never Django's HTML: deep nesting, NUL bytes, long path components, wrong content
types, oversized bodies, too many query parameters, wrong methods, unknown paths, CSRF."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import AsyncClient, Client

from ingestion.schemas import PATH_PART_TOO_LONG_MESSAGE
from ragsite.health import STORE_UNAVAILABLE_MESSAGE
from ragsite.http import (
    INVALID_JSON_MESSAGE,
    NOT_FOUND_MESSAGE,
    NUL_MESSAGE,
    TOO_DEEP_MESSAGE,
    TOO_MANY_PARAMETERS_MESSAGE,
    UNSUPPORTED_MEDIA_MESSAGE,
)
from tests.chat import conftest as chat_fixtures

# The small robotics book, indexed with the real embedder (tests/chat/conftest.py).
small_book = chat_fixtures.small_book
small_book_index = chat_fixtures.small_book_index

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "validation-token"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
POST_ENDPOINTS = ["/api/chat", "/api/feedback", "/api/ingest"]
GET_ENDPOINTS = ["/api/health", "/api/search", "/api/ingest/status", "/api/openapi.json"]


@pytest.fixture(autouse=True)
def _token_and_limits(settings):
    settings.INGEST_TOKEN = TOKEN
    for name in ("CHAT", "SEARCH", "FEEDBACK", "INGEST"):  # the views answer, not the limits
        setattr(settings, f"{name}_RATE_LIMIT", "1000/m")
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def assert_error(response, status: int, code: str) -> dict:
    """The response is a JSON error of API.md's shape with this status and code."""
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["details"], dict)
    return body["error"]


def nested(depth: int) -> str:
    return '{"message": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("path", POST_ENDPOINTS)
@pytest.mark.parametrize("depth", [40, 1000, 20_000])
def test_deeply_nested_json_is_400_without_a_traceback(client, path, depth, caplog):
    with caplog.at_level(logging.ERROR):
        response = client.post(path, data=nested(depth), content_type="application/json", **AUTH)
    error = assert_error(response, 400, "bad_request")
    assert error["message"] in {TOO_DEEP_MESSAGE, INVALID_JSON_MESSAGE}
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat", {"message": "What is\u0000LiDAR?"}),
        ("/api/chat", {"message": "Hi", "session_id": "a\u0000b"}),
        ("/api/feedback", {"message_id": "x\u0000", "rating": "up"}),
        ("/api/ingest", {"path": "part-1\u0000/x"}),
        ("/api/ingest", {"path\u0000": "x"}),
    ],
)
def test_nul_characters_are_400(client, path, body):
    response = client.post(path, data=json.dumps(body), content_type="application/json", **AUTH)
    assert assert_error(response, 400, "bad_request")["message"] == NUL_MESSAGE


def test_nul_in_a_query_is_400(client):
    response = client.get("/api/search", {"q": "li\x00dar"})
    assert assert_error(response, 400, "bad_request")["message"] == NUL_MESSAGE


def test_ingest_path_with_a_component_over_255_bytes_is_400(client, tmp_path, settings):
    settings.BOOK_DIR = tmp_path
    for path in ("a" * 256, f"docs/{'é' * 128}/x"):
        response = client.post(
            "/api/ingest", data={"path": path}, content_type="application/json", **AUTH
        )
        error = assert_error(response, 400, "bad_request")
        assert error["message"] == PATH_PART_TOO_LONG_MESSAGE
        assert error["details"]["fields"][0]["field"] == "path"
    # 255 bytes exactly is a name the filesystem can hold: just not in this book.
    response = client.post(
        "/api/ingest", data={"path": "a" * 255}, content_type="application/json", **AUTH
    )
    assert assert_error(response, 400, "bad_request")["details"] == {"path": "a" * 255}


@pytest.mark.parametrize("path", POST_ENDPOINTS)
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_bodies_that_are_not_application_json_are_415(client, path, content_type):
    # text/plain is what a browser may send cross-origin without a preflight.
    response = client.post(
        path, data='{"message": "What is LiDAR?"}', content_type=content_type, **AUTH
    )
    assert assert_error(response, 415, "unsupported_media_type")["message"] == (
        UNSUPPORTED_MEDIA_MESSAGE
    )


def test_json_with_a_charset_is_accepted(client, small_book):
    response = client.post(
        "/api/chat",
        data=json.dumps({"message": "What is LiDAR?", "stream": False}),
        content_type="application/json; charset=utf-8",
    )
    assert response.status_code == 200
    assert response.json()["sources"][0]["heading"] == "LiDAR"


@pytest.mark.parametrize("path", POST_ENDPOINTS)
def test_bodies_over_the_cap_are_413(client, settings, path):
    settings.API_MAX_BODY_BYTES = 4096
    body = json.dumps({"message": "x" * 5000})
    response = client.post(path, data=body, content_type="application/json", **AUTH)
    assert assert_error(response, 413, "payload_too_large")["details"] == {"limit_bytes": 4096}


def test_three_megabyte_body_is_413_json(client):
    body = json.dumps({"message": "x" * 3 * 2**20})
    response = client.post("/api/chat", data=body, content_type="application/json")
    assert_error(response, 413, "payload_too_large")


@pytest.mark.parametrize("path", ["/api/search", "/api/health", "/api/ingest/status"])
def test_ten_thousand_query_parameters_are_400_json(client, path):
    query = "&".join(f"p{i}=1" for i in range(10_000))
    response = client.get(f"{path}?q=lidar&{query}")
    if path == "/api/search":
        error = assert_error(response, 400, "too_many_parameters")
        assert error["message"] == TOO_MANY_PARAMETERS_MESSAGE
    else:  # these read no parameters: the extra ones cost nothing and change nothing
        assert response["Content-Type"] == "application/json"
        assert response.status_code in {200, 404, 503}


@pytest.mark.parametrize("path", GET_ENDPOINTS)
@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_writes_to_get_only_endpoints_are_405_json_not_csrf_html(path, method):
    strict = Client(enforce_csrf_checks=True)
    response = getattr(strict, method)(path, data="{}", content_type="application/json")
    error = assert_error(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]
    assert "GET" in error["details"]["allowed"]


@pytest.mark.parametrize("path", POST_ENDPOINTS)
async def test_post_endpoints_need_no_csrf_token(path):
    strict = AsyncClient(enforce_csrf_checks=True)
    response = await strict.post(
        path,
        data='{"force": "no"}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    # The view's validation answer, not the CSRF middleware's 403 page.
    assert_error(response, 400, "bad_request")


def test_admin_keeps_csrf(admin_user):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    response = strict.post("/admin/logout/")
    assert response.status_code == 403
    assert "text/html" in response["Content-Type"]


@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
@pytest.mark.parametrize("path", ["/api/nope", "/api/", "/api/chat/extra", "/api/ingest/status/"])
def test_unknown_api_paths_are_404_json_for_every_method(method, path):
    strict = Client(enforce_csrf_checks=True)
    response = getattr(strict, method)(path)
    error = assert_error(response, 404, "not_found")
    assert error["message"] == NOT_FOUND_MESSAGE
    assert error["details"] == {"path": path}


def test_error_bodies_show_no_absolute_paths(client, tmp_path, settings):
    book = tmp_path / "book"
    book.mkdir()
    settings.BOOK_DIR = book
    for path in ("../etc", str(tmp_path), "missing-folder"):
        response = client.post(
            "/api/ingest", data={"path": path}, content_type="application/json", **AUTH
        )
        assert response.status_code == 400
        assert str(book) not in response.content.decode()


def test_disallowed_host_under_api_is_400_json(client, settings):
    settings.ALLOWED_HOSTS = ["book.example"]
    response = client.get("/api/health", HTTP_HOST="evil.example")
    assert_error(response, 400, "bad_request")
    # Outside /api/ Django's own page is kept.
    assert "text/html" in client.get("/", HTTP_HOST="evil.example")["Content-Type"]


def test_server_side_failures_name_no_folders_or_upstream_errors(client, settings, tmp_path):
    # A store folder that is a file: opening it fails with a message naming the path.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    settings.QDRANT_PATH = blocker
    response = client.get("/api/search", {"q": "lidar"})
    error = assert_error(response, 503, "vector_store_unavailable")
    assert error["message"] == STORE_UNAVAILABLE_MESSAGE  # the store gate answers first
    assert str(tmp_path) not in response.content.decode()


def test_a_5xx_error_response_keeps_only_its_class_sentence_and_ids():
    from ragsite.http import error_response
    from ragsite.rag.exceptions import EmbeddingError, IngestionRunning

    exc = EmbeddingError(
        "Could not load /srv/data/model.onnx: [Errno 13] Permission denied",
        details={"path": "/srv/data/model.onnx", "message_id": "m-1"},
    )
    body = json.loads(error_response(exc).content)
    assert body["error"] == {
        "code": "embedder_unavailable",
        "message": "The embedder failed to produce vectors.",
        "details": {"message_id": "m-1"},
    }
    # A 4xx is about the caller's own request and is shown as raised.
    running = IngestionRunning("An ingestion is running.", details={"task_id": "t-1"})
    assert json.loads(error_response(running).content)["error"]["details"] == {"task_id": "t-1"}


def test_csrf_failures_under_api_are_json_and_the_admin_keeps_its_page(rf):
    from ragsite.http import CSRF_FAILED_MESSAGE, csrf_failure

    api = csrf_failure(rf.post("/api/anything"), reason="CSRF cookie not set.")
    assert api.status_code == 403
    assert json.loads(api.content)["error"] == {
        "code": "csrf_failed",
        "message": CSRF_FAILED_MESSAGE,
        "details": {},
    }
    admin = csrf_failure(rf.post("/admin/login/"), reason="CSRF cookie not set.")
    assert admin.status_code == 403
    assert "text/html" in admin["Content-Type"]
