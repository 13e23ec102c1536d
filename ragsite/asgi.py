"""ASGI entry point: `uvicorn ragsite.asgi:application` (see docs/architecture.md).

Django serves everything except `/mcp`, which goes to the MCP server of
`ragsite.agents` (a Starlette app from the official SDK) after the same host check and a
rate limit like search's. The MCP app needs its session manager running: it is started
on the first `/mcp` request in each event loop and stopped at lifespan shutdown, so it
works whether or not the server sends lifespan events. In front of both, the body guard
(`ragsite/guard.py`) caps /api/ bodies and drops requests whose body never arrives.

Django's handler runs each request's thread-sensitive work (its request signals' sync
receivers, sync views, `sync_to_async` calls) in a thread of the request's own: it
starts a new one for every request, and another to join it afterwards, ~4 % of the
server's CPU under load. `ThreadReusingASGIHandler` hands each request a thread kept
from an earlier one instead: the same one-thread-per-request isolation, and the
request signals still close that thread's database connections when it ends.
"""

from __future__ import annotations

import asyncio
import io
import os
from concurrent.futures import ThreadPoolExecutor

import django
from asgiref.sync import ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")


class RequestThreads:
    """Single-thread executors for requests, kept between requests (on the event loop)."""

    KEEP = 64  # idle threads kept; beyond, a finished request's thread ends

    def __init__(self) -> None:
        self._idle: list[ThreadPoolExecutor] = []

    def take(self) -> ThreadPoolExecutor:
        if self._idle:
            return self._idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        # After whatever the request left running there (a write that outlives a reader
        # who left): its database connections are closed if broken or too old (SQLite's
        # are kept with the thread, CONN_MAX_AGE) and a pool's are returned.
        executor.submit(close_old_connections)
        if len(self._idle) < self.KEEP:
            self._idle.append(executor)
        else:
            executor.shutdown(wait=False)  # its thread ends after what it still runs


class ThreadReusingASGIHandler(ASGIHandler):
    """Django's ASGI handler, with each request's thread taken from `RequestThreads`."""

    def __init__(self) -> None:
        super().__init__()
        self.threads = RequestThreads()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # as Django's own __call__
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self.threads.take()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self.threads.give_back(executor)


django.setup(set_prefix=False)  # what get_asgi_application() does before its handler
django_application = ThreadReusingASGIHandler()

MCP_PATH = "/mcp"


class _McpInLoop:
    """The MCP app and the task holding its lifespan open, for one event loop."""

    def __init__(self) -> None:
        from ragsite.agents import mcp_asgi_app

        self.app = mcp_asgi_app()
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self._hold(), name="mcp-session-manager")

    async def _hold(self) -> None:
        async with self.app.router.lifespan_context(self.app):
            self.ready.set()
            await self.stop.wait()

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(self.task, return_exceptions=True)


class Application:
    """Route `/mcp` to the MCP server and everything else to Django."""

    def __init__(self, django_app) -> None:
        self.django_app = django_app
        self._mcp: dict[asyncio.AbstractEventLoop, _McpInLoop] = {}

    async def _mcp_app(self):
        loop = asyncio.get_running_loop()
        holder = self._mcp.get(loop)
        if holder is None or holder.task.done():
            holder = self._mcp[loop] = _McpInLoop()
        await holder.ready.wait()
        return holder.app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and scope["path"].rstrip("/") == MCP_PATH:
            refusal = await _mcp_refusal(scope)
            if refusal is not None:
                await _send_django_response(send, refusal)
                return
            await (await self._mcp_app())(scope, receive, send)
        else:
            await self.django_app(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                holder = self._mcp.pop(asyncio.get_running_loop(), None)
                if holder is not None:
                    await holder.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _mcp_refusal(scope):
    """Django's answer to refuse an MCP request (bad host, over the limit), or None."""
    from django.core.exceptions import DisallowedHost
    from django.core.handlers.asgi import ASGIRequest

    from ragsite.http import json_error
    from ragsite.ratelimit import ratelimit_check

    request = ASGIRequest(scope, io.BytesIO())
    try:
        request.get_host()
    except DisallowedHost:
        return json_error("bad_host", "This host is not served here.", 400)
    return await ratelimit_check(request, group="mcp", rate_setting="MCP_RATE_LIMIT")


async def _send_django_response(send, response) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.items()]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})


from ragsite.guard import BodyGuard  # noqa: E402  (needs the settings configured above)

application = BodyGuard(Application(django_application))
