"""CORS by the book's site: SITE_URL's origin by default, `*` only when asked for out
loud, loopback pages only for the local demo, and never the `null` origin unless listed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from django.test import Client

from tests.conftest import REPO_DIR

pytestmark = pytest.mark.django_db

BOOK = "https://book.example"  # tests.settings sets SITE_URL=https://book.example
EVIL = "https://evil.example"


CODE = (
    "import json, ragsite.settings as s; print(json.dumps({'origins': "
    "s.CORS_ALLOWED_ORIGINS, 'all': s.CORS_ALLOW_ALL_ORIGINS, "
    "'regexes': s.CORS_ALLOWED_ORIGIN_REGEXES}))"
)


def load_settings(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    """Import ragsite.settings in a fresh interpreter with exactly these variables."""
    clean = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    clean |= {"RAGSITE_SKIP_DOTENV": "1", "RAGSITE_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.run(
        [sys.executable, "-c", CODE],
        cwd=REPO_DIR,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cors_settings(tmp_path, **env: str) -> dict:
    """The CORS settings ragsite.settings derives from exactly these variables."""
    result = load_settings(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_site_url_alone_allows_only_its_origin(tmp_path):
    assert cors_settings(tmp_path, SITE_URL="https://me.github.io/my-book") == {
        "origins": ["https://me.github.io"],
        "all": False,
        "regexes": [],
    }


def test_listed_origins_replace_the_site_and_star_needs_saying(tmp_path):
    listed = cors_settings(
        tmp_path, SITE_URL=BOOK, CORS_ALLOWED_ORIGINS="https://a.example, http://b.example:8080/"
    )
    assert listed == {
        "origins": ["https://a.example", "http://b.example:8080"],
        "all": False,
        "regexes": [],
    }
    assert cors_settings(tmp_path, SITE_URL=BOOK, CORS_ALLOW_ALL_ORIGINS="true")["all"] is True


def test_without_a_site_only_loopback_pages_are_allowed(tmp_path):
    settings = cors_settings(tmp_path)
    assert settings["origins"] == []
    assert settings["all"] is False
    [pattern] = settings["regexes"]
    for origin in ("http://localhost:3000", "http://127.0.0.1:8000", "http://[::1]:3000"):
        assert re.match(pattern, origin)
    for origin in ("https://evil.example", "http://localhost.evil.example", "null"):
        assert not re.match(pattern, origin)


def test_an_origin_with_a_path_stops_start_up_naming_the_variable(tmp_path):
    result = load_settings(tmp_path, CORS_ALLOWED_ORIGINS="https://a.example/book")
    assert result.returncode != 0
    assert "CORS_ALLOWED_ORIGINS must list origins like https://book.example" in result.stderr


def preflight(client: Client, origin: str, path: str = "/api/chat"):
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )


def test_the_books_origin_is_allowed_and_others_are_not(client):
    allowed = preflight(client, BOOK)
    assert allowed.status_code == 200
    assert allowed["Access-Control-Allow-Origin"] == BOOK
    assert "POST" in allowed["Access-Control-Allow-Methods"]
    assert "content-type" in allowed["Access-Control-Allow-Headers"]

    for origin in (EVIL, "null", "http://localhost:3000"):
        response = preflight(client, origin)
        assert "Access-Control-Allow-Origin" not in response, origin
        response = client.get("/api/openapi.json", HTTP_ORIGIN=origin)
        assert "Access-Control-Allow-Origin" not in response, origin
    answered = client.get("/api/openapi.json", HTTP_ORIGIN=BOOK)
    assert answered["Access-Control-Allow-Origin"] == BOOK
    assert "Retry-After" in answered["Access-Control-Expose-Headers"]


def test_allow_all_is_star_but_never_for_the_null_origin(client, settings):
    settings.CORS_ALLOW_ALL_ORIGINS = True
    assert preflight(client, EVIL)["Access-Control-Allow-Origin"] == "*"
    assert client.get("/api/health", HTTP_ORIGIN=EVIL)["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Origin" not in preflight(client, "null")
    assert "Access-Control-Allow-Origin" not in client.get("/api/health", HTTP_ORIGIN="null")


def test_the_null_origin_is_allowed_when_listed(client, settings):
    settings.CORS_ALLOWED_ORIGINS = [BOOK, "null"]
    assert preflight(client, "null")["Access-Control-Allow-Origin"] == "null"


def test_a_cross_origin_post_without_preflight_is_refused(client):
    # text/plain is the one body a browser sends cross-origin without asking first.
    response = client.post(
        "/api/chat", data='{"message": "hi"}', content_type="text/plain", HTTP_ORIGIN=EVIL
    )
    assert response.status_code == 415
    assert "Access-Control-Allow-Origin" not in response
