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


async def _send_error(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    """ASGI middleware: a size cap (on /api/) and a read deadline (everywhere) on bodies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection, guarding the body of HTTP requests."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_api = scope.get("path", "").startswith(API_PREFIX)
        limit: int | None = settings.API_MAX_BODY_BYTES if is_api else None
        timeout: float = settings.REQUEST_BODY_TIMEOUT_S
        too_large = _error_body(
            "payload_too_large",
            PAYLOAD_TOO_LARGE_MESSAGE.format(limit=limit),
            {"limit_bytes": limit},
        )

        if limit is not None:
            for name, value in scope.get("headers", []):
                if name == b"content-length" and value.isdigit() and int(value) > limit:
                    await _send_error(send, 413, too_large)
                    return

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        state = {"body_done": False, "received": 0, "answered": False}

        async def guarded_receive() -> Message:
            if state["answered"]:
                return {"type": "http.disconnect"}
            if state["body_done"]:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                logger.info(
                    "dropped %s %s: body not received in %ss",
                    scope.get("method"),
                    scope.get("path"),
                    timeout,
                )
                details = {"timeout_s": timeout}
                await answer(408, _error_body("request_timeout", REQUEST_TIMEOUT_MESSAGE, details))
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if limit is not None and state["received"] > limit:
                    await answer(413, too_large)
                    return {"type": "http.disconnect"}
                if not message.get("more_body", False):
                    state["body_done"] = True
            return message

        async def answer(status: int, body: bytes) -> None:
            state["answered"] = True
            await _send_error(send, status, body)

        async def guarded_send(message: Message) -> None:
            if not state["answered"]:  # the guard has answered; Django's late reply is dropped
                await send(message)

        await self.app(scope, guarded_receive, guarded_send)
