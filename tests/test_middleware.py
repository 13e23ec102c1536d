"""The request path stays async: no sync-only middleware (each one would send every
request through a thread and back), and static files are still served by WhiteNoise."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

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


async def _asgi_get(app, path: str) -> int:
    """One GET through the real ASGI application object; return the status code."""
    messages: list[dict] = []
    received = False

    async def receive():
        nonlocal received
        if received:  # Django listens for a disconnect after the body
            await asyncio.sleep(3600)
        received = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    return next(m["status"] for m in messages if m["type"] == "http.response.start")


@pytest.mark.django_db(transaction=True)
async def test_requests_reuse_their_threads_and_their_connections(monkeypatch):
    """Django starts a thread per request (and one to join it); ours keeps them, while
    each request still runs its thread-sensitive work on one thread of its own."""
    from django.db import connection

    from ragsite.asgi import ThreadReusingASGIHandler

    handler = ThreadReusingASGIHandler()
    # asyncio's default executor with one worker, as the count below takes it: its pool
    # adds a worker whenever none is idle at a submit, so on a loaded machine it started
    # two or three and the count depended on timing.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="asyncio")
    )
    started: list[str] = []
    real_start = threading.Thread.start

    def counting_start(thread):
        started.append(thread.name)
        return real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    for _ in range(8):
        assert await _asgi_get(handler, "/no-such-page/") == 404
    # One request thread, started once (and asyncio's default executor), not 16.
    assert [name for name in started if name.startswith("request")] == ["request_0"]
    assert len(started) <= 2, started

    # The kept thread is the one requests run in, and it keeps its SQLite connection
    # (CONN_MAX_AGE) for the next request instead of opening one per request; a
    # connection that had an error is closed by the next request's signals.
    loop = asyncio.get_running_loop()
    executor = handler.threads.take()
    handler.threads.give_back(executor)

    def open_connection():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return threading.get_ident(), id(connection.connection)

    ident, opened = await loop.run_in_executor(executor, open_connection)
    assert await _asgi_get(handler, "/no-such-page/") == 404
    kept = await loop.run_in_executor(
        executor, lambda: (threading.get_ident(), id(connection.connection))
    )
    assert kept == (ident, opened)

    def break_connection():
        connection.errors_occurred = True
        connection.is_usable = lambda: False  # what a dropped connection reports

    await loop.run_in_executor(executor, break_connection)
    assert await _asgi_get(handler, "/no-such-page/") == 404
    after = await loop.run_in_executor(
        executor, lambda: (threading.get_ident(), connection.connection is None)
    )
    assert after == (ident, True)
