"""The SSE encoder: what an EventSource in the reader's browser parses off the wire."""

from __future__ import annotations

import asyncio
import json

import pytest

from chat.sse import sse_comment, sse_event, with_keepalive
from tests.chat.conftest import SSEReader


def test_event_is_name_line_data_line_and_blank_line():
    frame = sse_event("token", {"text": "Hello"})
    assert frame == b'event: token\ndata: {"text":"Hello"}\n\n'


def test_newlines_in_data_stay_inside_one_json_line():
    frame = sse_event("token", {"text": "line one\nline two\r\n\n"}).decode()
    # Exactly one blank line (the terminator): the payload cannot end the event early.
    assert frame.count("\n\n") == 1
    assert frame.endswith("\n\n")
    [event] = SSEReader().feed(frame)
    assert event.event == "token"
    assert event.data == {"text": "line one\nline two\r\n\n"}


def test_multi_line_text_payload_becomes_several_data_lines():
    frame = sse_event("note", "first\nsecond\rthird").decode()
    assert frame == "event: note\ndata: first\ndata: second\ndata: third\n\n"


def test_unicode_is_sent_as_utf8_not_escaped():
    frame = sse_event("token", {"text": "Über Roboter — 机器人 🤖 \u2028 fin"})
    assert "机器人 🤖".encode() in frame
    [event] = SSEReader().feed(frame.decode("utf-8"))
    assert event.data["text"] == "Über Roboter — 机器人 🤖 \u2028 fin"


def test_event_names_must_be_one_line():
    with pytest.raises(ValueError, match="one non-empty line"):
        sse_event("done\ndata: injected", {})
    with pytest.raises(ValueError, match="one non-empty line"):
        sse_event("", {})


def test_comment_is_ignored_by_parsers():
    assert sse_comment() == b": ping\n\n"
    reader = SSEReader()
    events = reader.feed((sse_comment("a\nb") + sse_event("done", {"ok": True})).decode())
    assert [e.event for e in events] == ["done"]
    assert reader.comments == ["a", "b"]


def test_data_is_compact_json():
    frame = sse_event("sources", {"sources": [{"n": 1, "url": None}]}).decode()
    data_line = frame.splitlines()[1]
    assert json.loads(data_line.removeprefix("data: ")) == {"sources": [{"n": 1, "url": None}]}


async def test_keepalive_pings_while_the_source_is_silent():
    release = asyncio.Event()

    async def slow():
        await release.wait()  # e.g. the LLM thinking about its first token
        yield sse_event("token", {"text": "hi"})

    stream = with_keepalive(slow(), interval=0.01)
    assert await anext(stream) == b": ping\n\n"
    release.set()
    received = [chunk async for chunk in stream]
    assert received[-1] == b'event: token\ndata: {"text":"hi"}\n\n'


async def test_keepalive_forwards_cancellation_to_the_source():
    cleaned_up = asyncio.Event()

    async def endless():
        try:
            while True:
                await asyncio.sleep(3600)
                yield b""
        finally:
            cleaned_up.set()

    async def consume():
        async for _ in with_keepalive(endless(), interval=3600):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned_up.is_set()
