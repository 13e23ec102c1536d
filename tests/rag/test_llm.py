"""The OpenAI-compatible chat model: the real openai SDK against the fake server
(the extractive answerer is tested in test_extractive.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from ragsite.rag import providers
from ragsite.rag.exceptions import LLMError, LLMTimeout
from ragsite.rag.llm import OpenAIChatModel
from ragsite.rag.types import AnswerRequest, ChatMessage

REPLY = "Lidar measures distance by timing laser pulses [1]. Cameras add colour [2]."


def make_request(question: str = "How does lidar work?", sources=()) -> AnswerRequest:
    return AnswerRequest(
        question=question,
        sources=list(sources),
        messages=[
            ChatMessage("system", "Answer from the numbered sources.\n[1] Lidar ..."),
            ChatMessage("user", question),
        ],
    )


async def collect(model, request: AnswerRequest) -> list[str]:
    return [piece async for piece in model.stream(request)]


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# --- OpenAI-compatible model (fake server) ----------------------------------------


@pytest.fixture
async def chat_model(llm_settings):
    """Return the providers' chat model (call it after changing settings); closes its clients."""
    used = []

    def get():
        model = providers.get_chat_model()
        used.append(model)
        return model

    yield get
    for model in used:
        await model.aclose()


async def test_stream_yields_pieces_in_order_and_fills_usage(llm_settings, fake_openai, chat_model):
    model = chat_model()
    assert isinstance(model, OpenAIChatModel)
    fake_openai.queue_reply(REPLY)
    request = make_request()

    pieces = await collect(model, request)

    assert len(pieces) > 5  # streamed word by word, not in one piece
    assert "".join(pieces) == REPLY
    assert request.usage["completion_tokens"] == len(REPLY.split())
    assert request.usage["total_tokens"] == (
        request.usage["prompt_tokens"] + request.usage["completion_tokens"]
    )
    (body,) = fake_openai.chat_requests
    assert body["model"] == llm_settings.OPENAI_CHAT_MODEL
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "system", "content": "Answer from the numbered sources.\n[1] Lidar ..."},
        {"role": "user", "content": "How does lidar work?"},
    ]


async def test_server_error_is_retried_then_llm_error(llm_settings, fake_openai, chat_model):
    model = chat_model()
    fake_openai.fail_next(10, status=500)
    with pytest.raises(LLMError) as info:
        await collect(model, make_request())
    assert not isinstance(info.value, LLMTimeout)
    assert info.value.code == "llm_unavailable"
    assert info.value.details["upstream_status"] == 500
    assert len(fake_openai.chat_requests) == llm_settings.OPENAI_MAX_RETRIES + 1


async def test_one_server_error_is_absorbed_by_the_retry(fake_openai, chat_model):
    fake_openai.fail_next(1, status=503)
    fake_openai.queue_reply(REPLY)
    assert "".join(await collect(chat_model(), make_request())) == REPLY
    assert len(fake_openai.chat_requests) == 2


async def test_timeout_is_retried_then_llm_timeout(llm_settings, fake_openai, chat_model):
    llm_settings.OPENAI_TIMEOUT = 0.3
    fake_openai.response_delay = 3.0
    with pytest.raises(LLMTimeout) as info:
        await collect(chat_model(), make_request())
    assert info.value.code == "llm_timeout"
    assert len(fake_openai.chat_requests) == llm_settings.OPENAI_MAX_RETRIES + 1


async def test_stall_mid_stream_is_llm_timeout(llm_settings, fake_openai, chat_model):
    llm_settings.OPENAI_TIMEOUT = 0.3
    fake_openai.token_delay = 2.0  # headers arrive, then the tokens stall
    with pytest.raises(LLMTimeout):
        await collect(chat_model(), make_request())


async def test_closing_the_stream_cancels_the_upstream_call(fake_openai, chat_model):
    fake_openai.queue_reply(" ".join(["word"] * 200))
    fake_openai.token_delay = 0.02
    stream = chat_model().stream(make_request())
    assert (await anext(stream)).strip() == "word"
    await stream.aclose()  # what the SSE view does when the reader closes the tab
    assert fake_openai.wait_for_cancel()
    assert fake_openai.completed_streams == 0


async def test_cancelling_the_reader_task_propagates_and_cancels_upstream(fake_openai, chat_model):
    fake_openai.queue_reply(" ".join(["word"] * 200))
    fake_openai.token_delay = 0.02
    first_piece = asyncio.Event()

    async def reader():
        async for _ in chat_model().stream(make_request()):
            first_piece.set()

    task = asyncio.create_task(reader())
    await asyncio.wait_for(first_piece.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):  # never swallowed
        await task
    assert fake_openai.wait_for_cancel()


async def test_gate_holds_the_first_token_until_released(fake_openai, chat_model):
    fake_openai.queue_reply(REPLY)
    gate = fake_openai.hold_first_token()
    task = asyncio.create_task(collect(chat_model(), make_request()))
    assert await asyncio.to_thread(wait_until, lambda: fake_openai.chat_requests)
    assert not task.done()
    gate.set()
    assert "".join(await asyncio.wait_for(task, timeout=10)) == REPLY


async def test_complete_returns_text_and_maps_errors(fake_openai, chat_model):
    model = chat_model()
    fake_openai.queue_reply("What sensors measure distance?")
    text = await model.complete([ChatMessage("user", "rewrite: lidar?")], max_tokens=40)
    assert text == "What sensors measure distance?"
    body = fake_openai.chat_requests[0]
    assert body["max_tokens"] == 40
    assert not body.get("stream")

    fake_openai.fail_next(10)
    with pytest.raises(LLMError):
        await model.complete([ChatMessage("user", "again")])


async def test_ping_makes_a_real_call_and_reports_failure(fake_openai, chat_model):
    model = chat_model()
    await model.ping()
    assert [r["path"] for r in fake_openai.requests] == ["/v1/models"]

    fake_openai.fail_next(1)
    with pytest.raises(LLMError):
        await model.ping()
    assert len(fake_openai.requests) == 2  # health checks do not retry


async def test_unreachable_server_is_llm_error(llm_settings, chat_model):
    llm_settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # discard port: nothing listens
    llm_settings.OPENAI_MAX_RETRIES = 0
    with pytest.raises(LLMError):
        await collect(chat_model(), make_request())
