"""Ingestion stores each chunk's sentence vectors beside its vector (same model run), and
answering reads them instead of embedding the sources' sentences."""

from __future__ import annotations

import pytest

from chat.services import answer_collect, book_search
from ingestion.models import CachedEmbedding
from ingestion.services import book_ingest
from ragsite.rag import providers, sentences
from ragsite.rag.extractive import ExtractiveChatModel
from ragsite.rag.passages import quotable_sentences
from tests.conftest import CountingEmbedder

pytestmark = pytest.mark.django_db(transaction=True)

# The pages speak of a time-of-flight sensor, never of "lidar": a question naming a
# technical term the book lacks is doubted (docs/chat.md, `rare_terms`).
QUESTIONS = [
    "How does a time-of-flight sensor measure distance?",
    "What does the parts list contain?",
]


def _ingest(book):
    task = book_ingest(book_dir=book, source="manage.py")
    assert task.status == "succeeded", task.errors
    return task


async def test_the_sources_sentences_have_stored_vectors(small_book, store, embedder):
    from asgiref.sync import sync_to_async

    await sync_to_async(_ingest)(small_book)
    rows = await sync_to_async(list)(CachedEmbedding.objects.all())
    assert rows
    assert all(row.sentences is not None for row in rows)
    lookup = providers.get_sentence_vectors()
    total = known = 0
    for question in QUESTIONS:
        retrieval = await book_search(query=question, k=5, embedder=embedder, store=store)
        hashes = [hit.chunk.content_hash for hit in retrieval.sections]
        found = await sync_to_async(lookup.lookup)(embedder=embedder, hashes=hashes)
        for hit in retrieval.sections:
            for sentence in quotable_sentences(hit.chunk.body):
                total += 1
                known += sentences.sentence_key(sentence) in found
    # Every quotable sentence, save perhaps one past the model's 256-token window.
    assert total > 10
    assert known >= total - 1, (known, total)


async def test_an_extractive_answer_embeds_only_the_question(small_book, store, embedder):
    from asgiref.sync import sync_to_async

    await sync_to_async(_ingest)(small_book)
    counting = CountingEmbedder(embedder)
    result = await answer_collect(
        message=QUESTIONS[0],
        embedder=counting,
        store=store,
        llm=ExtractiveChatModel(embedder=counting),
    )
    assert result["mode"] == "extractive"
    assert "[1]" in result["answer"]
    # The search embeds the question; the answerer scores every sentence from the
    # stored vectors (the question's vector again, not a second model run, in serving).
    assert set(counting.texts) == {QUESTIONS[0]}


def test_chunks_cut_into_other_sentences_are_embedded_again_once(
    small_book, store, embedder, monkeypatch
):
    _ingest(small_book)
    rows = CachedEmbedding.objects.count()
    # The answerer's sentence cutting changed (a new SENTENCES_VERSION): the pages are
    # re-chunked and every chunk embedded again, once, for its new sentence vectors.
    monkeypatch.setattr(sentences, "SENTENCES_VERSION", sentences.SENTENCES_VERSION + 1)
    again = _ingest(small_book)
    assert again.embeddings_computed == rows
    assert set(CachedEmbedding.objects.values_list("sentences_version", flat=True)) == {
        sentences.SENTENCES_VERSION
    }
    assert _ingest(small_book).embeddings_computed == 0


def test_answering_keeps_recent_chunks_sentence_vectors_in_memory(
    small_book, store, embedder, django_assert_num_queries
):
    from ingestion.services.cache import DatabaseSentenceVectors

    _ingest(small_book)
    rows = CachedEmbedding.objects.values_list("content_hash", "sentences")
    hashes = [content_hash for content_hash, blob in rows if blob][:3]  # chunks with prose
    lookup = DatabaseSentenceVectors(memo_chunks=2)
    with django_assert_num_queries(1):
        first = lookup.lookup(embedder=embedder, hashes=hashes)
    assert first
    with django_assert_num_queries(1):  # two of three kept: the third is read again
        again = lookup.lookup(embedder=embedder, hashes=hashes)
    assert again.keys() == first.keys()
    assert sentences.TOKENS_KEY not in first  # three chunks' signatures do not merge
    assert all((again[key] == first[key]).all() for key in first)
    with django_assert_num_queries(0):  # the two most recently used
        assert lookup.lookup(embedder=embedder, hashes=[hashes[0], hashes[2]])


async def test_book_search_orders_by_the_stored_sentences(small_book, store, embedder, monkeypatch):
    import dataclasses

    from asgiref.sync import sync_to_async

    from chat.services import retrieval
    from ragsite.rag.config import get_config

    await sync_to_async(_ingest)(small_book)
    question = "How does a lidar measure distance?"
    staged = await book_search(query=question, k=5, embedder=embedder, store=store)
    first_stage = dataclasses.replace(
        get_config(), retrieval_sentence_weight=0.0, retrieval_token_weight=0.0
    )
    monkeypatch.setattr(retrieval, "get_config", lambda: first_stage)
    first = await book_search(query=question, k=5, embedder=embedder, store=store)
    assert staged.supported == first.supported  # doubt is judged on the first stage
    # Second stage: fused / best fused + 0.5 x the best sentence's cosine (> 1 at the
    # top); the first stage's values are the blend's: score half + rank half, each <= 1.
    assert staged.hits[0].rank_score > 1.0
    assert all(0.0 < hit.rank_score <= 2.0 for hit in first.hits)
    assert {h.chunk.id for h in staged.hits} & {h.chunk.id for h in first.hits}
    assert [h.rank_score for h in staged.hits] == sorted(
        (h.rank_score for h in staged.hits), reverse=True
    )


def test_chunks_without_stored_vectors_are_not_asked_for_again_at_once(
    small_book, store, embedder, django_assert_num_queries
):
    from ingestion.services.cache import DatabaseSentenceVectors

    _ingest(small_book)
    lookup = DatabaseSentenceVectors(miss_ttl_s=60.0)
    with django_assert_num_queries(1):
        assert lookup.lookup(embedder=embedder, hashes=["no-such-chunk"]) == {}
    with django_assert_num_queries(0):  # remembered as missing
        assert lookup.lookup(embedder=embedder, hashes=["no-such-chunk"]) == {}
    expired = DatabaseSentenceVectors(miss_ttl_s=0.0)
    with django_assert_num_queries(2):  # asked again once the miss has expired
        expired.lookup(embedder=embedder, hashes=["no-such-chunk"])
        expired.lookup(embedder=embedder, hashes=["no-such-chunk"])


def test_vectors_an_ingestion_stores_are_read_at_once_not_after_the_miss_expires(
    small_book, store, embedder, django_assert_num_queries
):
    # Answering remembers the chunks it found without vectors for SENTENCE_MISS_TTL_S. A
    # search while an ingestion writes them (a serving process's own ingest) must not
    # go on ranking those chunks without their vectors once the run has stored them.
    from ingestion.services.cache import DatabaseSentenceVectors

    _ingest(small_book)
    hashes = [
        h for h, blob in CachedEmbedding.objects.values_list("content_hash", "sentences") if blob
    ]
    CachedEmbedding.objects.update(sentences=None, sentences_version=0)  # not written yet
    lookup = providers.get_sentence_vectors()
    assert isinstance(lookup, DatabaseSentenceVectors)
    with django_assert_num_queries(1):
        assert lookup.lookup(embedder=embedder, hashes=hashes) == {}
    with django_assert_num_queries(0):  # remembered as missing
        assert lookup.lookup(embedder=embedder, hashes=hashes) == {}

    task = book_ingest(book_dir=small_book, source="manage.py", force=True)
    assert task.status == "succeeded", task.errors
    assert task.embeddings_computed > 0
    with django_assert_num_queries(1):  # asked again: the run stored them
        assert lookup.lookup(embedder=embedder, hashes=hashes)
