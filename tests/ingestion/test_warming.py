"""Start-up warming (chat/services/warming.py): after `caches_warm`, a question's search
reads no point from the engine and its sources' sentence vectors need no query."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from chat.services import book_search
from chat.services.warming import caches_warm
from ingestion.services import book_ingest
from ingestion.services.cache import DatabaseSentenceVectors
from ragsite.rag import providers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def memo():
    """This test's own sentence-vector memo, empty at the start: the one
    tests/conftest.py's `_fresh_sentence_vectors` gives every test."""
    fresh = providers.get_sentence_vectors()
    assert isinstance(fresh, DatabaseSentenceVectors)
    return fresh


def test_after_warming_the_first_question_reads_nothing_from_disk(
    small_book, store, embedder, memo, monkeypatch, django_assert_num_queries
):
    task = book_ingest(book_dir=small_book, source="manage.py")
    assert task.status == "succeeded", task.errors

    warmed = caches_warm()
    assert warmed["points"] == store.count() > 0
    assert warmed["sentences"] > 0
    assert "error" not in warmed

    reads: list[list[str]] = []
    real_retrieve = store._retrieve
    monkeypatch.setattr(
        store, "_retrieve", lambda ids, **kw: reads.append(list(ids)) or real_retrieve(ids, **kw)
    )
    retrieval = async_to_sync(book_search)(
        query="How does a lidar measure distance?", k=5, embedder=embedder, store=store
    )
    assert retrieval.sections
    assert reads == []  # every point the search found was in the store's memory
    hashes = [hit.chunk.content_hash for hit in retrieval.sections]
    with django_assert_num_queries(0):
        assert memo.lookup(embedder=embedder, hashes=hashes)


def test_warming_an_empty_index_reads_nothing_and_fails_nothing(store, memo):
    assert caches_warm() == {"points": 0, "sentences": 0, "seconds": pytest.approx(0, abs=5)}


def test_warming_derives_what_searches_and_sources_read_of_every_chunk(
    small_book, store, embedder, memo
):
    from chat.services import retrieval, sources
    from ragsite.rag import sentences, tokens

    task = book_ingest(book_dir=small_book, source="manage.py")
    assert task.status == "succeeded", task.errors
    memos = (tokens.count_tokens, sentences.chunk_sentence_keys, retrieval._shingles)
    for memoised in memos:
        memoised.cache_clear()

    caches_warm()
    misses = [memoised.cache_info().misses for memoised in memos]
    assert all(misses)  # the warm-up derived them
    for chunk in store.warm(1000):
        tokens.count_tokens(sources._own_text(chunk))
        sentences.chunk_sentence_keys(chunk.body)
        retrieval._shingles(retrieval._body(chunk), retrieval.SAME_TEXT_SHINGLE)
    assert [memoised.cache_info().misses for memoised in memos] == misses  # all memo hits


def test_an_ingest_in_the_serving_process_warms_again_once_it_has_written(
    tiny_book, store, memo, monkeypatch
):
    import threading

    from ingestion.services import task_start

    warmed: list[dict] = []
    real_warm = caches_warm
    monkeypatch.setattr(
        "chat.services.warming.caches_warm", lambda: warmed.append(real_warm()) or warmed[-1]
    )

    def ingest() -> None:
        task = task_start(source="api")
        for thread in threading.enumerate():  # gone already when it was quick
            if thread.name == f"ingest-{task.pk}":
                thread.join(timeout=240)
                assert not thread.is_alive(), "the ingestion did not finish"

    ingest()
    assert len(warmed) == 1
    assert warmed[0]["points"] == store.count() > 0
    assert store._handle.points.places is not None  # chunks_at needs no engine call
    ingest()  # unchanged: nothing written, nothing forgotten, nothing warmed again
    assert len(warmed) == 1


@pytest.fixture
def unfrozen():
    """The heap as this test found it: frozen objects thawed again at the end."""
    import gc

    from chat.services import warming

    yield
    warming._SERVING.clear()
    gc.unfreeze()


def test_a_serving_process_keeps_its_warmed_heap_out_of_the_collectors_passes(unfrozen):
    import gc

    from chat.services import warming

    warming.heap_refreeze()  # not a serving process: nothing frozen
    assert gc.get_freeze_count() == 0
    warming.heap_freeze_serving(now=False)  # an ingest is running: not yet
    assert gc.get_freeze_count() == 0
    warming.heap_refreeze()  # it has ended
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # Django, the models, the test's own
    assert len(gc.get_objects(generation=2)) < frozen  # left out of full collections


def test_an_ingest_in_the_serving_process_freezes_its_heap_again(
    tiny_book, store, memo, monkeypatch, unfrozen
):
    import threading

    from chat.services import warming
    from ingestion.services import task_start

    freezes: list[int] = []
    monkeypatch.setattr(warming, "heap_freeze", lambda: freezes.append(1))
    warming.heap_freeze_serving(now=False)  # as `manage.py serve` with an ingest running
    task = task_start(source="api")
    for thread in threading.enumerate():
        if thread.name == f"ingest-{task.pk}":
            thread.join(timeout=240)
    assert freezes == [1]
