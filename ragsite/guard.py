"""An ASGI guard in front of Django: caps what a request body may cost before it is read.

Django's ASGI handler reads the whole body before any view runs, and waits for it as
long as the client likes. This guard answers, itself and in the API's JSON error shape:

- `413` at once when an /api/ request declares a Content-Length over API_MAX_BODY_BYTES,
  or when its (chunked) body grows past that while it is read;
- `408` when the body has not fully arrived REQUEST_BODY_TIMEOUT_S after the request
  started (a client that sends headers and then nothing, or trickles bytes).

Either way the connection is closed (`Connection: close`) and Django sees the client
as gone (`http.disconnect`), so the request is dropped without a traceback. Once the
body is complete, `receive` is passed through untouched: a long SSE answer is not
subject to the deadline.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

from .http import API_PREFIX, PAYLOAD_TOO_LARGE_MESSAGE

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_MESSAGE = "The request body did not arrive in time."

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _error_body(code: str, message: str, details: dict[str, Any]) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": details}}).encode()


def _cors_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The CORS headers Django's responses to this request would carry (ragsite/cors.py):
    without them a widget on another origin cannot read why it was refused."""
    from django.core.handlers.asgi import ASGIRequest
    from django.http import HttpResponse

    from ragsite.cors import CorsMiddleware

    request = ASGIRequest(scope, io.BytesIO())
    middleware = CorsMiddleware(lambda request: HttpResponse())
    if not middleware.is_enabled(request):
        return []
    response = middleware.add_response_headers(request, HttpResponse())
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.items()
        if name.lower().startswith("access-control-") or name.lower() == "vary"
    ]


async def _send_error(send: Send, status: int, body: bytes, scope: Scope) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *_cors_headers(scope),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _Request:
    """One HTTP request's body, read through a deadline and a byte count."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, limit: int | None) -> None:
        self.scope, self._receive, self._send, self.limit = scope, receive, send, limit
        self.timeout: float = settings.REQUEST_BODY_TIMEOUT_S
        self.deadline = asyncio.get_running_loop().time() + self.timeout
        self.received = 0
        self.body_done = False
        self.answered = False  # the guard sent the response; Django's is dropped

    async def receive(self) -> Message:
        """The app's `receive`: the body under the deadline and cap, then pass-through."""
        if self.answered:
            return {"type": "http.disconnect"}
        if self.body_done:  # e.g. Django waiting for a disconnect while it streams
            return await self._receive()
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self._receive()
        except TimeoutError:
            logger.info(
                "dropped %s %s: body not received in %ss",
                self.scope.get("method"),
                self.scope.get("path"),
                self.timeout,
            )
            details = {"timeout_s": self.timeout}
            await self.answer(408, _error_body("request_timeout", REQUEST_TIMEOUT_MESSAGE, details))
            return {"type": "http.disconnect"}
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.limit is not None and self.received > self.limit:
                await self.answer(413, _too_large(self.limit))
                return {"type": "http.disconnect"}
            self.body_done = not message.get("more_body", False)
        return message

    async def send(self, message: Message) -> None:
        """The app's `send`, silenced once the guard has answered."""
        if not self.answered:
            await self._send(message)

    async def answer(self, status: int, body: bytes) -> None:
        """Send the guard's own error response (and close the connection)."""
        self.answered = True
        await _send_error(self._send, status, body, self.scope)


def _too_large(limit: int) -> bytes:
    return _error_body(
        "payload_too_large", PAYLOAD_TOO_LARGE_MESSAGE.format(limit=limit), {"limit_bytes": limit}
    )


class BodyGuard:
    """ASGI middleware: a size cap (on /api/) and a read deadline (everywhere) on bodies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection, guarding the body of HTTP requests."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = settings.API_MAX_BODY_BYTES if scope["path"].startswith(API_PREFIX) else None
        if limit is not None:
            for name, value in scope.get("headers", []):
                if name == b"content-length" and value.isdigit() and int(value) > limit:
                    await _send_error(send, 413, _too_large(limit), scope)  # no byte read
                    return
        request = _Request(scope, receive, send, limit)
        await self.app(scope, request.receive, request.send)
