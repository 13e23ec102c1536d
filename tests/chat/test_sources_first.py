"""Under load: sources first in a burst, and an extractive answer handed on whole sentences."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from chat.services import answer_stream, answering
from chat.services.answering import _SourcesFirst

pytestmark = pytest.mark.django_db(transaction=True)


class _SlowEmbedder:
    """The real embedder, a beat late: its question is still before its sources."""

    def __init__(self, inner: Any, delay_s: float) -> None:
        self._inner, self._delay_s = inner, delay_s

    async def embed(self, texts):
        await asyncio.sleep(self._delay_s)
        return await self._inner.embed(texts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def test_an_answer_waits_for_the_sources_of_a_question_still_searching(small_book, embedder):
    order: list[str] = []

    async def ask(name: str, question: str, **kwargs) -> None:
        async for event in answer_stream(message=question, **kwargs):
            if event.name in {"sources", "token"} and f"{name} {event.name}" not in order:
                order.append(f"{name} {event.name}")

    await asyncio.gather(
        ask("quick", "How does LiDAR measure distance?", embedder=embedder),
        ask("slow", "What does an IMU measure?", embedder=_SlowEmbedder(embedder, 0.1)),
    )
    # The quick question's answer is composed only once the slow one has its sources.
    assert order.index("quick sources") < order.index("slow sources") < order.index("quick token")


async def test_one_question_alone_never_waits(small_book, embedder, monkeypatch):
    monkeypatch.setattr(answering, "SOURCES_FIRST_MAX_WAIT_S", 30.0)  # a wait would show
    loop = asyncio.get_running_loop()
    started = loop.time()
    events = [e.name async for e in answer_stream(message="How does LiDAR measure distance?")]
    assert events[-1] == "done"
    assert loop.time() - started < 20


async def test_the_wait_is_bounded_and_a_dropped_question_does_not_hold_it(monkeypatch):
    monkeypatch.setattr(answering, "SOURCES_FIRST_MAX_WAIT_S", 0.05)
    gate = _SourcesFirst()
    stuck = gate.enter()  # a question that never gets its sources
    loop = asyncio.get_running_loop()
    started = loop.time()
    await gate.turn()
    assert 0.04 <= loop.time() - started < 5  # waited, but only the maximum

    del stuck  # its stream was dropped without being closed
    gc.collect()
    started = loop.time()
    await gate.turn()
    assert loop.time() - started < 0.04

    ticket = gate.enter()
    waiting = asyncio.ensure_future(gate.turn())
    await asyncio.sleep(0)
    assert not waiting.done()
    ticket.leave()
    ticket.leave()  # idempotent
    await asyncio.wait_for(waiting, 1)


async def test_a_question_that_comes_later_does_not_lengthen_the_wait(monkeypatch):
    monkeypatch.setattr(answering, "SOURCES_FIRST_MAX_WAIT_S", 30.0)  # a wait would show
    gate = _SourcesFirst()
    ahead = gate.enter()
    waiting = asyncio.ensure_future(gate.turn())  # an answer: one question is ahead of it
    await asyncio.sleep(0)
    later = gate.enter()  # a newer question, still before its sources
    assert not waiting.done()
    ahead.leave()
    await asyncio.wait_for(waiting, 1)  # done, though `later` has no sources yet
    later.leave()


def test_an_extractive_answer_is_handed_on_a_sentence_at_a_time():
    text = "LiDAR times laser pulses [1]. It measures `Rc<T>` too!\n\n- a list item\nLast words"
    pieces = answering._sentences_of(text)
    assert "".join(pieces) == text
    assert pieces == [  # the words' leading spaces stay with them, as when streamed
        "LiDAR times laser pulses [1].",
        " It measures `Rc<T>` too!",
        "\n\n- a list item\nLast words",
    ]


def test_a_sources_prompt_tokens_are_counted_exactly_in_two_parts(small_book_index):
    from chat import prompts
    from chat.services.sources import _source_tokens
    from ragsite.rag.tokens import count_tokens
    from ragsite.rag.types import Source

    chunks, _ = small_book_index
    for n, chunk in enumerate(chunks, start=1):
        source = Source(n=n, chunk=chunk, score=0.5, snippet="")
        assert _source_tokens(source) == count_tokens(prompts.format_source(source))


@pytest.fixture
def thread_hops(monkeypatch) -> list[str]:
    """The functions sent to a worker thread with `asyncio.to_thread`, in order."""
    hops: list[str] = []
    real = asyncio.to_thread

    async def counted(func, /, *args, **kwargs):
        hops.append(getattr(func, "__qualname__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    return hops


async def test_a_first_question_leaves_the_event_loop_twice_before_its_sources(
    small_book, embedder, thread_hops
):
    """One worker thread embeds the question, one searches and packs the sources; the
    providers are looked up on the loop once they are built."""
    providers = answering.providers
    assert not providers.serving_ready()
    providers.get_embedder(), providers.get_store()  # as the server's start-up warming does
    assert providers.serving_ready()
    hops = thread_hops
    async for event in answer_stream(message="Why does a gyroscope estimate drift?"):
        if event.name == "sources":
            break
    assert len(hops) == 2, hops
    assert "search_and_pack" in hops[1]


async def test_an_extractive_answer_takes_no_thread_hop_after_its_sources(
    small_book, embedder, thread_hops
):
    """Scoring the sentences reads the built embedder on the loop: after its sources,
    the answer leaves it only to embed sentences (this book has no stored sentence
    vectors), never to look the embedder up (and for the message write, through
    Django's own thread)."""
    providers = answering.providers
    providers.get_embedder(), providers.get_store()  # as the server's start-up warming does
    assert providers.embedder_ready()
    hops = thread_hops
    before_sources = None
    async for event in answer_stream(message="Why does a gyroscope drift?"):
        if event.name == "sources":
            before_sources = len(hops)
    assert event.name == "done"
    assert event.data()["mode"] == "extractive"
    assert before_sources == 2, hops
    after = hops[before_sources:]
    assert after, "the sentences were embedded in a worker thread"
    assert all(hop.endswith("embed_sync") for hop in after), hops
