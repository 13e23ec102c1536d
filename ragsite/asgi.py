"""ASGI entry point: `uvicorn ragsite.asgi:application` (see docs/architecture.md).

Django serves everything except `/mcp`, which goes to the MCP server of
`ragsite.agents` (a Starlette app from the official SDK) after the same host check and a
rate limit like search's. The MCP app needs its session manager running: it is started
on the first `/mcp` request in each event loop and stopped at lifespan shutdown, so it
works whether or not the server sends lifespan events. In front of both, the body guard
(`ragsite/guard.py`) caps /api/ bodies and drops requests whose body never arrives.
"""

from __future__ import annotations

import asyncio
import io
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

django_application = get_asgi_application()

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
