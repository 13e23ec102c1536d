"""Server-sent events: one pure encoder for the chat stream, plus a keep-alive wrapper.

Framing follows the WHATWG EventSource spec: an event is `event: <name>` then one
`data:` line per line of payload, ended by a blank line. Our payloads are one line of
JSON (json.dumps escapes newlines), but the encoder splits on every line terminator
the spec knows (CR, LF, CRLF) anyway, so no payload can ever break the framing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

# EventSource treats CR, LF and CRLF as line ends; nothing else (U+2028 is just text).
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")

KEEPALIVE_COMMENT = "ping"
KEEPALIVE_SECONDS = 15.0

INVALID_EVENT_NAME_MESSAGE = "An SSE event name must be one non-empty line (got {name!r})."


def _data_lines(payload: str) -> list[str]:
    return _LINE_BREAK_RE.split(payload)


def sse_event(event: str, data: Any) -> bytes:
    """Encode one event: `event: <name>`, one `data:` line per payload line, a blank line.

    `data` is serialised as compact UTF-8 JSON (non-ASCII kept as is); a str is sent as
    given (split into several `data:` lines when it spans several lines).
    """
    if not event or _LINE_BREAK_RE.search(event):
        raise ValueError(INVALID_EVENT_NAME_MESSAGE.format(name=event))
    payload = (
        data
        if isinstance(data, str)
        else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    )
    lines = [f"event: {event}"]
    lines += [f"data: {line}" for line in _data_lines(payload)]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def sse_comment(text: str = KEEPALIVE_COMMENT) -> bytes:
    """Encode a comment (`: <text>`), which clients ignore: keeps idle proxies from closing."""
    return ("".join(f": {line}\n" for line in _data_lines(text)) + "\n").encode("utf-8")


async def with_keepalive(
    events: AsyncIterator[bytes], *, interval: float = KEEPALIVE_SECONDS
) -> AsyncIterator[bytes]:
    """Pass `events` through, inserting a `: ping` comment whenever `interval` seconds pass
    without one (e.g. while a slow LLM thinks about its first token).

    Cancellation (the reader closed the tab) is forwarded to the pending step of
    `events`, so its own cleanup runs before this generator ends.
    """
    iterator = aiter(events)
    pending: asyncio.Future[bytes] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield sse_comment()
                continue
            step, pending = pending, None
            try:
                chunk = step.result()
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            # Wait for the inner generator's cleanup; its CancelledError is expected.
            with contextlib.suppress(asyncio.CancelledError):
                await pending
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
