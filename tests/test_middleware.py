"""The request path stays async: no sync-only middleware (each one would send every
request through a thread and back), and static files are still served by WhiteNoise."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import AsyncClient
from django.utils.module_loading import import_string


def test_every_middleware_runs_on_the_async_path():
    sync_only = [
        path
        for path in settings.MIDDLEWARE
        if not getattr(import_string(path), "async_capable", False)
    ]
    assert sync_only == []


@pytest.mark.django_db
async def test_static_files_are_served_on_the_async_path():
    client = AsyncClient()
    response = await client.get("/static/ragsite/widget.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith(("application/javascript", "text/javascript"))
    body = b"".join(response.streaming_content)  # WhiteNoise's file iterator
    assert b"data-api" in body
    missing = await client.get("/static/ragsite/no-such-file.js")
    assert missing.status_code == 404
    # Anything else goes on down the chain to the views.
    health = await client.get("/api/health")
    assert health.status_code in (200, 503)
