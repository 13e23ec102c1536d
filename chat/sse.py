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

    One task runs `events` ahead of the consumer; each step yields everything it has
    produced by then as one chunk, so the events that are ready together (an extractive
    answer's tokens and `done`) go out in one write instead of one write each: on
    loopback a write runs the reader's TCP stack too. An event is never held back while
    it waits for a later one. Cancellation (the reader closed the tab) is forwarded to
    `events`, so its own cleanup runs before this generator ends; its errors are raised
    here.
    """
    loop = asyncio.get_running_loop()
    ready: list[bytes] = []
    wake: asyncio.Future[None] | None = None

    def woken(*_: object) -> None:
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def produce() -> None:
        try:
            async for chunk in events:
                ready.append(chunk)
                woken()
        finally:
            woken()
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    producer = asyncio.ensure_future(produce())
    producer.add_done_callback(woken)
    try:
        while True:
            if not ready and not producer.done():
                wake = loop.create_future()
                timer = loop.call_later(interval, woken)
                try:
                    await wake
                finally:
                    timer.cancel()
                    wake = None
                if not ready and not producer.done():
                    yield sse_comment()
                    continue
            if ready:
                chunk = b"".join(ready)
                ready.clear()
                yield chunk
                continue
            producer.result()  # its error, if it failed
            return
    finally:
        if not producer.done():
            producer.cancel()
            # Wait for the inner generator's cleanup; its CancelledError is expected.
            with contextlib.suppress(asyncio.CancelledError):
                await producer
