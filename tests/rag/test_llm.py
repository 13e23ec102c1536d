"""Chat models: the real openai SDK against the fake server, and the extractive answerer."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from ragsite.rag import providers
from ragsite.rag.exceptions import LLMError, LLMTimeout
from ragsite.rag.llm import (
    EXTRACTIVE_NOTICE,
    NO_SOURCES_MESSAGE,
    ExtractiveChatModel,
    OpenAIChatModel,
    extractive_answer,
)
from ragsite.rag.types import AnswerRequest, ChatMessage, Chunk, Source

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


# --- extractive answerer ----------------------------------------------------------


def source(n: int, body: str, *, title: str = "Sensors") -> Source:
    chunk = Chunk(
        id=f"id-{n}",
        text=f"{title}\n\n{body}",
        body=body,
        title=title,
        heading=title,
        path=f"chapter-{n}.md",
        url=None,
        position=0,
        content_hash=f"hash-{n}",
    )
    return Source(n=n, chunk=chunk, score=0.8, snippet=body[:80])


LIDAR = source(
    2,
    "Robots need to know what is around them. "
    "A lidar sensor measures distance by timing how long laser pulses take to return. "
    "The resulting point cloud describes the shape of the room.\n\n"
    "```python\nscan = lidar.read()  # returns distance in metres\n```\n\n"
    "See the figure.",
)
CAMERA = source(
    5,
    "Cameras capture colour images at high resolution. "
    "Unlike lidar, a camera does not measure distance directly; depth must be estimated. "
    "Stereo pairs estimate depth from two viewpoints.",
    title="Cameras",
)
COOKING = source(7, "Knead the dough for ten minutes, then let it rest in a warm place.")


def citations(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\[(\d+)\]", text)}


async def test_extractive_answer_quotes_and_cites_only_given_sources(settings):
    model = providers.get_chat_model()  # no key, no base URL: the offline default
    assert isinstance(model, ExtractiveChatModel)
    request = make_request("How does a lidar sensor measure distance?", [LIDAR, CAMERA])

    answer = "".join(await collect(model, request))

    assert answer.startswith(EXTRACTIVE_NOTICE)
    assert "timing how long laser pulses take to return [2]." in answer
    assert citations(answer) <= {2, 5}
    assert "lidar.read()" not in answer  # code is never quoted as prose
    assert "See the figure" not in answer  # too short to stand alone
    sentences = re.findall(r"\[\d+\][.!?]", answer)
    assert 2 <= len(sentences) <= 4


def test_extractive_answer_puts_the_best_match_first():
    answer = extractive_answer(
        question="How is depth estimated from stereo cameras?", sources=[LIDAR, CAMERA]
    )
    first_paragraph = answer.split("\n\n")[1]
    assert first_paragraph.startswith("Unlike lidar, a camera does not measure distance directly")
    assert citations(first_paragraph) == {5}


def test_extractive_answer_is_deterministic():
    question = "What does a lidar measure?"
    answers = {
        extractive_answer(question=question, sources=[LIDAR, CAMERA, COOKING]) for _ in range(3)
    }
    assert len(answers) == 1


async def test_extractive_without_sources_says_the_book_does_not_cover_it():
    answer = "".join(await collect(ExtractiveChatModel(), make_request("Who won in 1998?", [])))
    assert answer == NO_SOURCES_MESSAGE


async def test_extractive_streams_word_by_word():
    request = make_request("How does a lidar sensor measure distance?", [LIDAR])
    pieces = await collect(ExtractiveChatModel(), request)
    assert len(pieces) > 10
    assert "".join(pieces) == extractive_answer(question=request.question, sources=[LIDAR])


async def test_extractive_cannot_complete():
    with pytest.raises(LLMError):
        await ExtractiveChatModel().complete([ChatMessage("user", "rewrite this")])


def test_extractive_cleaning_keeps_snake_case_identifiers():
    from ragsite.rag.llm import _clean_markdown

    cleaned = _clean_markdown(
        "Set `RETRIEVAL_SCORE_FLOOR` and pass input_ids; this is **bold** and _soft_."
    )
    assert cleaned == "Set RETRIEVAL_SCORE_FLOOR and pass input_ids; this is bold and soft."
