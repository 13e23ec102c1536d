"""The chat with a language model: the real openai SDK against the fake OpenAI-compatible
server, served by uvicorn and read by a real HTTP client as the widget reads it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import httpx
import pytest
from asgiref.sync import sync_to_async

from chat import prompts
from chat.models import Message
from chat.services import Done, Failed, answer_stream, sources_pack
from chat.services.events import ANSWER_FAILED_MESSAGE
from ragsite.rag.exceptions import LLMError
from ragsite.rag.tokens import count_tokens
from ragsite.rag.types import AnswerRequest, ChatMessage, Hit
from tests.chat.conftest import SSEReader, by_name, chat_events

pytestmark = pytest.mark.django_db(transaction=True)

LIDAR_QUESTION = "How does LiDAR measure distance?"
LLM_FOLLOW_UPS = ["How accurate is LiDAR?", "Does LiDAR work in the dark?"]


def scripted(answer: str, *, rewrite: str = "LiDAR cost"):
    """A fake-server responder: the streamed answer, the rewrite, the follow-ups."""

    def respond(body: dict) -> str:
        if body.get("stream"):
            return answer
        system = body["messages"][0]["content"]
        if system == prompts.REWRITE_SYSTEM_PROMPT:
            return rewrite
        if system == prompts.FOLLOW_UPS_SYSTEM_PROMPT:
            return "\n".join(f"{i}. {q}" for i, q in enumerate(LLM_FOLLOW_UPS, 1))
        raise AssertionError(f"unexpected completion request: {system[:60]}")

    return respond


def answer_requests(fake) -> list[dict]:
    return [body for body in fake.chat_requests if body.get("stream")]


async def test_sources_arrive_before_the_llm_sends_its_first_token(
    live_server, llm_settings, fake_openai, small_book
):
    fake_openai.reply_with(scripted("LiDAR times laser pulses [1]."))
    gate = fake_openai.hold_first_token()
    reader, seen = SSEReader(), []
    names_when_released = None
    async with (
        httpx.AsyncClient(base_url=live_server.url, timeout=30) as client,
        client.stream("POST", "/api/chat", json={"message": LIDAR_QUESTION}) as response,
    ):
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        async for text in response.aiter_text():
            seen.extend(reader.feed(text))
            if not gate.is_set() and any(event.event == "sources" for event in seen):
                # The model has not produced a word yet, and the reader already has
                # the session and the sources on screen.
                names_when_released = [event.event for event in seen]
                gate.set()
    assert names_when_released == ["meta", "sources"]
    grouped = by_name(seen)
    assert "".join(t["text"] for t in grouped["token"]) == "LiDAR times laser pulses [1]."
    [done] = grouped["done"]
    assert done["mode"] == "llm"
    assert done["citations"] == [1]
    assert done["follow_ups"] == LLM_FOLLOW_UPS


async def test_invalid_citations_never_reach_the_reader(
    live_server, llm_settings, fake_openai, small_book, settings
):
    settings.RETRIEVAL_SCORE_FLOOR = 0.0  # every chunk counts: five sources
    settings.RETRIEVAL_K = 5
    fake_openai.reply_with(
        scripted(
            "LiDAR times laser pulses [1]. It is costly [2][9]. Depth cameras are cheaper [3, 9]."
        )
    )
    _, events = await chat_events(live_server.url, {"message": LIDAR_QUESTION})
    grouped = by_name(events)
    sources = grouped["sources"][0]["sources"]
    assert [source["n"] for source in sources] == [1, 2, 3, 4, 5]
    [done] = grouped["done"]
    assert done["answer"] == (
        "LiDAR times laser pulses [1]. It is costly [2]. Depth cameras are cheaper [3]."
    )
    assert all("9" not in token["text"] for token in grouped["token"])
    assert done["citations"] == [1, 2, 3]
    # Each citation points at the source of that number, in the order shown.
    for n in done["citations"]:
        assert sources[n - 1]["n"] == n
    assert sources[0]["heading"] == "LiDAR"
    assert done["usage"]["total_tokens"] > 0
    assert done["usage"]["context_tokens"] > 0
    message = await Message.objects.aget(message_id=grouped["meta"][0]["message_id"])
    assert message.usage == done["usage"]
    assert message.mode == "llm"


async def test_prompt_carries_numbered_sources_and_recent_turns(
    live_server, llm_settings, fake_openai, small_book
):
    fake_openai.reply_with(scripted("LiDAR times laser pulses [1]."))
    _, first = await chat_events(live_server.url, {"message": LIDAR_QUESTION})
    session_id = by_name(first)["meta"][0]["session_id"]

    fake_openai.reply_with(scripted("It costs thousands of dollars [1].", rewrite="LiDAR cost"))
    _, second = await chat_events(
        live_server.url, {"message": "what about its cost?", "session_id": session_id}
    )
    grouped = by_name(second)
    assert grouped["meta"][0]["session_id"] == session_id

    # The follow-up was rewritten by the model from the conversation so far...
    rewrite = next(
        body
        for body in fake_openai.chat_requests
        if body["messages"][0]["content"] == prompts.REWRITE_SYSTEM_PROMPT
    )
    assert LIDAR_QUESTION in rewrite["messages"][1]["content"]
    assert "what about its cost?" in rewrite["messages"][1]["content"]
    message = await Message.objects.aget(message_id=grouped["meta"][0]["message_id"])
    assert message.rewritten_query == "LiDAR cost"
    assert "LiDAR > Cost and trade-offs" in [s["heading"] for s in grouped["sources"][0]["sources"]]

    # ...and the answer prompt holds the rules, the earlier turn and numbered sources.
    messages = answer_requests(fake_openai)[-1]["messages"]
    assert messages[0] == {"role": "system", "content": prompts.SYSTEM_PROMPT}
    assert messages[1] == {"role": "user", "content": LIDAR_QUESTION}
    assert messages[2] == {"role": "assistant", "content": "LiDAR times laser pulses [1]."}
    final = messages[-1]
    assert final["role"] == "user"
    assert final["content"].endswith(f"{prompts.QUESTION_HEADER} what about its cost?")
    for source in grouped["sources"][0]["sources"]:
        assert f"[{source['n']}] " in final["content"]
    assert "several thousand dollars" in final["content"]


async def test_reader_leaving_cancels_the_llm_call_and_keeps_the_partial_answer(
    live_server, llm_settings, fake_openai, small_book
):
    fake_openai.reply_with(scripted("LiDAR times laser pulses [1]."))
    fake_openai.hold_first_token()
    reader, seen = SSEReader(), []
    async with (
        httpx.AsyncClient(base_url=live_server.url, timeout=30) as client,
        client.stream("POST", "/api/chat", json={"message": LIDAR_QUESTION}) as response,
    ):
        async for text in response.aiter_text():
            seen.extend(reader.feed(text))
            if any(event.event == "sources" for event in seen):
                # The reader closes the tab while the model is still thinking (its
                # request has reached the server, which holds the first token).
                assert await _wait_until(lambda: answer_requests(fake_openai))
                break
    message_id = by_name(seen)["meta"][0]["message_id"]

    assert await asyncio.to_thread(fake_openai.wait_for_cancel, 15)
    assert fake_openai.cancelled_streams == 1
    message = await _wait_for_status(message_id, Message.Status.PARTIAL)
    assert message.status == Message.Status.PARTIAL
    assert message.sources[0]["heading"] == "LiDAR"
    assert message.answer == ""


async def _wait_until(condition, attempts: int = 150) -> bool:
    """Poll a condition set by another thread (the fake server, uvicorn)."""
    for _ in range(attempts):
        if condition():
            return True
        await asyncio.sleep(0.1)
    return False


async def _wait_for_status(message_id: str, status: str, attempts: int = 100) -> Message:
    """The server stores the outcome right after the disconnect; poll until it has."""
    for _ in range(attempts):
        message = await Message.objects.filter(message_id=message_id).afirst()
        if message is not None and message.status == status:
            return message
        await asyncio.sleep(0.1)
    return await Message.objects.aget(message_id=message_id)


async def test_llm_failure_before_the_first_token_falls_back_to_extractive(
    live_server, llm_settings, fake_openai, small_book
):
    fake_openai.fail_next(2, status=500)  # the first try and the SDK's one retry
    _, events = await chat_events(live_server.url, {"message": LIDAR_QUESTION})
    grouped = by_name(events)
    assert [event.event for event in events][-1] == "done"
    [done] = grouped["done"]
    assert done["mode"] == "extractive"
    assert done["answer"].startswith(prompts.LLM_FALLBACK_NOTICE)
    assert "laser pulses" in done["answer"]
    assert done["citations"]
    assert "".join(t["text"] for t in grouped["token"]) == done["answer"]
    message = await Message.objects.aget(message_id=grouped["meta"][0]["message_id"])
    assert message.mode == "extractive"
    assert message.status == Message.Status.COMPLETE


async def test_model_saying_the_book_does_not_cover_it_marks_the_answer_uncertain(
    llm_settings, fake_openai, small_book
):
    fake_openai.reply_with(scripted("The book does not cover this."))
    events = [event async for event in answer_stream(message="Is LiDAR safe for eyes?")]
    [done] = [event for event in events if isinstance(event, Done)]
    assert done.uncertain is True
    assert done.citations == []
    assert (await Message.objects.aget()).uncertain is True


class _FailsAfterFirstToken:
    """A chat model that breaks mid-answer (the fake server cannot drop a stream halfway)."""

    provider = "openai"
    model = "breaks-mid-answer"

    async def stream(self, request: AnswerRequest) -> AsyncIterator[str]:
        yield "LiDAR times"
        raise LLMError("connection reset")

    async def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int = 256) -> str:
        raise LLMError("not used")


async def test_llm_failure_after_the_first_token_ends_with_one_error_event(small_book):
    events = [
        event async for event in answer_stream(message=LIDAR_QUESTION, llm=_FailsAfterFirstToken())
    ]
    names = [event.name for event in events]
    assert names == ["meta", "sources", "token", "error"]
    assert isinstance(events[-1], Failed)
    assert isinstance(events[-1].error, LLMError)
    assert events[-1].data() == {"code": "llm_unavailable", "message": ANSWER_FAILED_MESSAGE}
    message = await Message.objects.aget()
    assert message.status == Message.Status.ERROR
    assert message.answer == "LiDAR times"
    assert "llm_unavailable" in message.error


async def test_stream_false_with_a_failing_llm_is_a_json_error(small_book, async_client):
    # Before the first byte the failure is an ordinary response, not a broken stream.
    from chat.services import answer_collect

    with pytest.raises(LLMError) as excinfo:
        await answer_collect(message=LIDAR_QUESTION, llm=_FailsAfterFirstToken())
    assert excinfo.value.status == 502
    assert excinfo.value.message == ANSWER_FAILED_MESSAGE


async def test_context_is_packed_to_the_token_budget(small_book):
    from chat.services import book_search

    retrieval = await book_search(query="robot sensors", k=10, score_floor=0.0)
    hits: list[Hit] = retrieval.hits
    assert len(hits) == 10
    packed = sources_pack(hits=hits, budget=200)
    costs = [count_tokens(prompts.format_source(source)) for source in packed]
    assert sum(costs) <= 200
    assert 1 <= len(packed) < len(hits)
    assert [source.n for source in packed] == list(range(1, len(packed) + 1))
    # Most relevant first: the packed sources keep retrieval's order.
    order = [hit.chunk.id for hit in hits]
    assert [order.index(s.chunk.id) for s in packed] == sorted(
        order.index(s.chunk.id) for s in packed
    )


async def test_message_row_is_stored_even_when_the_consumer_stops_early(small_book):
    stream = answer_stream(message=LIDAR_QUESTION)
    async for event in stream:
        if event.name == "sources":
            break
    await stream.aclose()  # what Django does when the reader disconnects between events
    message = await sync_to_async(Message.objects.get)()
    assert message.status == Message.Status.PARTIAL
    assert message.latency_ms is not None
