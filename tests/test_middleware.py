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


@pytest.mark.django_db(transaction=True)
async def test_an_api_request_stays_on_the_loop_and_the_admin_still_saves_its_session(
    monkeypatch,
):
    from asgiref.sync import sync_to_async
    from django.contrib.auth import get_user_model

    from ragsite import middleware

    hops: list[str] = []

    def counting(fn, **kwargs):
        hops.append(getattr(fn, "__qualname__", repr(fn)))
        return sync_to_async(fn, **kwargs)

    monkeypatch.setattr(middleware, "sync_to_async", counting)
    client = AsyncClient()
    response = await client.get("/api/search", {"q": "lidar", "k": "1"})
    assert response.status_code in (200, 503)
    assert hops == []  # no middleware hook left the event loop

    await sync_to_async(get_user_model().objects.create_superuser)(
        username="author", email="author@example.com", password="a long pass phrase"
    )
    login = await client.post(
        "/admin/login/?next=/admin/",
        {"username": "author", "password": "a long pass phrase", "next": "/admin/"},
    )
    assert login.status_code == 302, login.content[:500]
    assert any("SessionMiddleware" in hop for hop in hops)  # the session was saved
    page = await client.get("/admin/")
    assert page.status_code == 200
    assert b"author" in page.content
