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


# A reader slower than the answer: the stream stops reading it on when this much waits.
MAX_BUFFERED_CHUNKS = 64


async def with_keepalive(
    events: AsyncIterator[bytes], *, interval: float = KEEPALIVE_SECONDS
) -> AsyncIterator[bytes]:
    """Pass `events` through, inserting a `: ping` comment whenever `interval` seconds pass
    without one (e.g. while a slow LLM thinks about its first token).

    `events` runs in a task of its own, and what it has produced by the time the reader
    is sent the next part goes out together: the token events of an extractive answer,
    which are ready at once, are one socket write instead of one each (each write is a
    system call and a trip through the ASGI server). A model's tokens, which arrive one
    by one, still go out one by one, as soon as each is ready. At most
    MAX_BUFFERED_CHUNKS wait for a slow reader before `events` is paused.

    Cancellation (the reader closed the tab) is forwarded to the pending step of
    `events`, so its own cleanup runs before this generator ends; an exception it
    raises reaches the reader's side after what it sent before.
    """
    pump = _Pump(events)
    try:
        while True:
            chunk = await pump.next_chunk(interval)
            if chunk is None:
                return
            yield chunk or sse_comment()
    finally:
        await pump.close()


class _Pump:
    """Runs an async iterator of bytes in its own task, buffering what it yields."""

    def __init__(self, events: AsyncIterator[bytes]) -> None:
        self._events = events
        self._buffer: list[bytes] = []
        self._finished = False
        self._error: BaseException | None = None
        self._ready: asyncio.Future[None] | None = None  # the reader's side waits on it
        self._room: asyncio.Future[None] | None = None  # the task waits on it when full
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for chunk in self._events:
                self._buffer.append(chunk)
                self._wake()
                if len(self._buffer) >= MAX_BUFFERED_CHUNKS:
                    self._room = loop.create_future()
                    await self._room
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the reader's side, raised there
            self._error = exc
        finally:
            self._finished = True
            self._wake()

    def _wake(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    async def next_chunk(self, interval: float) -> bytes | None:
        """What is buffered, joined; b"" when `interval` passes first; None at the end."""
        if not self._buffer and not self._finished:
            loop = asyncio.get_running_loop()
            self._ready = ready = loop.create_future()
            timer = loop.call_later(interval, _resolve, ready)
            try:
                await ready
            finally:
                timer.cancel()
                self._ready = None
        if self._buffer:
            chunk = b"".join(self._buffer)
            self._buffer.clear()
            if self._room is not None and not self._room.done():
                self._room.set_result(None)
            return chunk
        if self._finished:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            return None
        return b""  # the interval passed: nothing to send

    async def close(self) -> None:
        """Stop the task (its cleanup runs first) and close the iterator."""
        if not self._task.done():
            self._task.cancel()
            # Wait for the inner generator's cleanup; its CancelledError is expected.
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            await aclose()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
