"""The SSE encoder: what an EventSource in the reader's browser parses off the wire."""

from __future__ import annotations

import asyncio
import json

import pytest

from chat.services.events import Done, Failed, Meta, Sources, Token
from chat.sse import sse_comment, sse_event, with_keepalive
from ragsite.rag.exceptions import EmbeddingError, LLMTimeout
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


async def test_keepalive_sends_the_events_ready_together_in_one_part():
    """An extractive answer's tokens are ready at once: one write, not one each."""
    frames = [sse_event("token", {"text": word}) for word in ("One", " two", " three.")]

    async def ready_at_once():
        for frame in frames:
            yield frame

    received = [chunk async for chunk in with_keepalive(ready_at_once(), interval=3600)]
    assert received == [b"".join(frames)]
    assert [event.data["text"] for event in SSEReader().feed(received[0].decode())] == [
        "One",
        " two",
        " three.",
    ]


async def test_keepalive_sends_each_event_as_soon_as_it_is_ready():
    """A model's tokens arrive one by one: each goes out before the next is there."""
    more = asyncio.Event()

    async def one_by_one():
        yield sse_event("token", {"text": "first"})
        await more.wait()
        yield sse_event("token", {"text": "second"})

    stream = with_keepalive(one_by_one(), interval=3600)
    assert await anext(stream) == sse_event("token", {"text": "first"})
    more.set()
    assert [chunk async for chunk in stream] == [sse_event("token", {"text": "second"})]


async def test_keepalive_raises_what_the_source_raises_after_what_it_sent():
    async def failing():
        yield sse_event("meta", {"session_id": "s"})
        raise EmbeddingError("the model is gone")

    stream = with_keepalive(failing(), interval=3600)
    assert await anext(stream) == sse_event("meta", {"session_id": "s"})
    with pytest.raises(EmbeddingError, match="the model is gone"):
        await anext(stream)


async def test_keepalive_stops_reading_on_for_a_reader_that_does_not_read():
    from chat.sse import MAX_BUFFERED_CHUNKS

    produced = 0

    async def endless():
        nonlocal produced
        while True:
            produced += 1
            yield b"x"
            await asyncio.sleep(0)

    stream = with_keepalive(endless(), interval=3600)
    first = await anext(stream)
    for _ in range(10 * MAX_BUFFERED_CHUNKS):
        await asyncio.sleep(0)
    # What the reader took, and at most one buffer more: then the source waits.
    assert produced <= len(first) + MAX_BUFFERED_CHUNKS
    assert produced >= len(first) + MAX_BUFFERED_CHUNKS - 1
    await stream.aclose()


def test_typed_events_encode_to_the_names_and_fields_of_api_md():
    events = [
        Meta(session_id="s", message_id="m"),
        Sources(sources=[{"n": 1, "title": "T", "url": None}]),
        Token(text="LiDAR\ntimes [1]."),
        Done(
            answer="LiDAR times [1].",
            citations=[1],
            uncertain=False,
            follow_ups=["Why?"],
            mode="llm",
            usage={"total_tokens": 3},
        ),
        Failed(error=LLMTimeout("upstream 10.0.0.7 timed out")),
        Failed(error=EmbeddingError("The embedding model failed.")),
    ]
    wire = b"".join(sse_event(event.name, event.data()) for event in events).decode()
    parsed = SSEReader().feed(wire)
    assert [e.event for e in parsed] == ["meta", "sources", "token", "done", "error", "error"]
    assert parsed[0].data == {"session_id": "s", "message_id": "m"}
    assert parsed[2].data == {"text": "LiDAR\ntimes [1]."}
    assert set(parsed[3].data) == {
        "answer",
        "citations",
        "uncertain",
        "follow_ups",
        "mode",
        "usage",
    }
    # The model's own failure text (it may name internal hosts) never reaches the reader.
    assert parsed[4].data["code"] == "llm_timeout"
    assert "10.0.0.7" not in parsed[4].data["message"]
    assert parsed[5].data == {
        "code": "embedder_unavailable",
        "message": "The embedding model failed.",
    }
