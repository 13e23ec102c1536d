"""The micro-batcher: concurrent embeddings share one model run, each caller gets its own
vectors in order, errors and cancellations stay with the callers they belong to."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ragsite.rag.batching import MicroBatcher
from ragsite.rag.embeddings import LocalEmbedder


class Recording:
    """An embed_sync that records each run's texts (and can be made to fail or wait)."""

    def __init__(self, *, fail_on: str | None = None, delay: float = 0.0) -> None:
        self.runs: list[list[str]] = []
        self.fail_on = fail_on
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, texts):
        import time

        time.sleep(self.delay)
        with self.lock:
            self.runs.append(list(texts))
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError("model failed")
        return [[float(len(text)), float(i)] for i, text in enumerate(texts)]


async def test_concurrent_requests_share_one_run_and_get_their_own_vectors():
    model = Recording()
    batcher = MicroBatcher(model, window_s=0.01)
    questions = [[f"q{i}", f"question {i}!"] for i in range(10)]
    results = await asyncio.gather(*(batcher.embed(texts) for texts in questions))
    assert len(model.runs) == 1
    assert sorted(model.runs[0]) == sorted(t for texts in questions for t in texts)
    for texts, vectors in zip(questions, results, strict=True):
        assert [v[0] for v in vectors] == [float(len(t)) for t in texts]


async def test_requests_during_a_run_form_the_next_batch():
    model = Recording(delay=0.05)
    batcher = MicroBatcher(model, window_s=0.001)
    first = asyncio.ensure_future(batcher.embed(["alone"]))
    await asyncio.sleep(0.02)  # the first run is in flight now
    later = await asyncio.gather(*(batcher.embed([f"late {i}"]) for i in range(5)))
    assert (await first)[0][0] == len("alone")
    assert [len(run) for run in model.runs] == [1, 5]
    assert [v[0][0] for v in later] == [float(len(f"late {i}")) for i in range(5)]


async def test_a_batch_never_exceeds_its_size():
    model = Recording()
    batcher = MicroBatcher(model, window_s=0.01, max_batch=4)
    await asyncio.gather(*(batcher.embed([f"t{i}"]) for i in range(10)))
    assert all(len(run) <= 4 for run in model.runs)
    assert sum(len(run) for run in model.runs) == 10


async def test_each_caller_gets_its_vectors_when_its_own_run_is_done():
    """With one text per run (the int8 graph), the first caller of a batch does not wait
    for the batch's last run: here that run cannot end until the first caller has its
    vectors."""
    first_done = threading.Event()

    def model(texts):
        if texts == ["last"]:
            assert first_done.wait(5), "the first caller waited for the whole batch"
        return [[float(len(text))] for text in texts]

    batcher = MicroBatcher(model, window_s=0.01, run_size=lambda: 1)
    first = asyncio.ensure_future(batcher.embed(["first"]))
    last = asyncio.ensure_future(batcher.embed(["last"]))
    assert (await first)[0][0] == len("first")
    first_done.set()
    assert (await last)[0][0] == len("last")


async def test_one_text_per_run_does_not_wait_for_company():
    model = Recording()
    batcher = MicroBatcher(model, window_s=10.0, run_size=lambda: 1)
    assert await asyncio.wait_for(batcher.embed(["alone"]), 5) == [[5.0, 0.0]]


async def test_runs_are_cut_at_run_size_on_caller_boundaries():
    model = Recording()
    batcher = MicroBatcher(model, window_s=0.01, run_size=lambda: 3)
    questions = [["a", "b"], ["c"], ["d", "e"], ["f"]]
    results = await asyncio.gather(*(batcher.embed(texts) for texts in questions))
    assert [sorted(run) for run in model.runs] == [["a", "b", "c"], ["d", "e", "f"]]
    for texts, vectors in zip(questions, results, strict=True):
        assert [v[0] for v in vectors] == [float(len(t)) for t in texts]


async def test_an_error_fails_its_run_and_the_later_ones_only():
    model = Recording(fail_on="poison")
    batcher = MicroBatcher(model, window_s=0.01, run_size=lambda: 1)
    results = await asyncio.gather(
        batcher.embed(["fine"]),
        batcher.embed(["poison"]),
        batcher.embed(["later"]),
        return_exceptions=True,
    )
    assert results[0] == [[float(len("fine")), 0.0]]
    assert isinstance(results[1], RuntimeError)
    assert isinstance(results[2], RuntimeError)  # its run never happened
    assert (await batcher.embed(["after"]))[0][0] == len("after")


async def test_an_error_reaches_the_callers_of_its_batch_only():
    model = Recording(fail_on="poison", delay=0.03)
    batcher = MicroBatcher(model, window_s=0.005)
    first = asyncio.gather(
        batcher.embed(["poison"]), batcher.embed(["fine"]), return_exceptions=True
    )
    failed, same_batch = await first
    assert isinstance(failed, RuntimeError)
    assert isinstance(same_batch, RuntimeError)  # it shared the failed run
    assert (await batcher.embed(["after"]))[0][0] == len("after")


async def test_a_cancelled_caller_does_not_break_the_others():
    model = Recording(delay=0.05)
    batcher = MicroBatcher(model, window_s=0.001)
    running = asyncio.ensure_future(batcher.embed(["first"]))
    await asyncio.sleep(0.01)
    leaving = asyncio.ensure_future(batcher.embed(["leaves"]))
    staying = asyncio.ensure_future(batcher.embed(["stays"]))
    await asyncio.sleep(0)
    leaving.cancel()
    assert (await staying)[0][0] == len("stays")
    assert (await running)[0][0] == len("first")
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert ["leaves"] not in model.runs


async def test_the_local_embedder_batches_concurrent_questions_with_the_real_model():
    embedder = LocalEmbedder.default()
    questions = ["What is ownership?", "How do I borrow a value?", "What does Rc<T> do?"]
    alone = [embedder.embed_sync([q])[0] for q in questions]
    together = await asyncio.gather(*(embedder.embed([q]) for q in questions))
    for one, batched in zip(alone, together, strict=True):
        cosine = sum(a * b for a, b in zip(one, batched[0], strict=True))
        assert cosine > 0.9999  # padding to the batch's longest text changes nothing
