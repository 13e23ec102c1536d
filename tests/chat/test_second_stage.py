"""book_search's second stage: candidates re-ordered by their best sentence's cosine, from
the sentence vectors stored with each chunk, then by late interaction with their token
signatures; each off without what it reads or at weight 0."""

from __future__ import annotations

import pytest

from chat.services.retrieval import hits_by_best_sentence
from ragsite.rag import providers, sentences
from ragsite.rag.passages import quotable_sentences
from ragsite.rag.types import Chunk, Hit


def _chunk(n: int, body: str) -> Chunk:
    return Chunk(
        id=f"c{n}",
        text=f"Sensors\n\n{body}",
        body=body,
        title="Sensors",
        heading=f"Part {n}",
        path=f"p{n}.md",
        url=None,
        position=0,
        content_hash=f"hash-{n}",
    )


GENERAL = _chunk(1, "Robots carry many sensors. Each sensor has its own strengths and costs.")
PRECISE = _chunk(
    2,
    "Cameras come in many kinds and sizes. A lidar measures distance by timing laser "
    "pulses reflected from objects.",
)
QUESTION = "How does a lidar measure distance?"


@pytest.fixture
def stored(embedder):
    """The two chunks' sentences, embedded alone, in a memory lookup (restored after)."""
    memory = sentences.MemorySentenceVectors()
    for chunk in (GENERAL, PRECISE):
        texts = quotable_sentences(chunk.body)
        vectors = embedder.embed_sync(texts)
        memory.put(
            embedder=embedder,
            content_hash=chunk.content_hash,
            vectors={sentences.sentence_key(t): v for t, v in zip(texts, vectors, strict=True)},
        )
    previous = providers.set_sentence_vectors(memory)
    yield memory
    providers.set_sentence_vectors(previous)


def test_the_chunk_whose_sentence_answers_moves_up(stored, embedder):
    [query] = embedder.embed_sync([QUESTION])
    hits = [Hit(GENERAL, 0.40, 1.0), Hit(PRECISE, 0.38, 0.97)]  # fused: GENERAL first
    ranked = hits_by_best_sentence(hits, query, embedder=embedder, weight=0.5)
    assert [hit.chunk.id for hit in ranked] == ["c2", "c1"]
    assert [hit.score for hit in ranked] == [0.38, 0.40]  # the cosines are kept
    assert ranked[0].rank_score > ranked[1].rank_score


def test_weight_zero_or_no_stored_vectors_keep_the_first_stage(stored, embedder):
    [query] = embedder.embed_sync([QUESTION])
    hits = [Hit(GENERAL, 0.40, 1.0), Hit(PRECISE, 0.38, 0.97)]
    assert hits_by_best_sentence(hits, query, embedder=embedder, weight=0) == hits
    providers.set_sentence_vectors(sentences.NoSentenceVectors())
    assert hits_by_best_sentence(hits, query, embedder=embedder, weight=0.5) == hits


def test_a_sentence_two_chunks_share_counts_with_each_chunks_own_vector(embedder):
    # Neighbouring chunks overlap: the same sentence is stored with each, pooled from
    # each chunk's own model run. Each chunk is scored with its own, whatever the order.
    shared = "A lidar measures distance by timing laser pulses reflected from objects."
    first, second = _chunk(3, shared), _chunk(4, "Cameras see colour. " + shared)
    [query] = embedder.embed_sync([QUESTION])
    [close, far] = embedder.embed_sync([shared, "Robots carry many sensors."])
    memory = sentences.MemorySentenceVectors()
    for chunk, vector in ((first, close), (second, far)):
        memory.put(
            embedder=embedder,
            content_hash=chunk.content_hash,
            vectors={sentences.sentence_key(shared): vector},
        )
    previous = providers.set_sentence_vectors(memory)
    try:
        for hits in (
            [Hit(second, 0.4, 1.0), Hit(first, 0.4, 1.0)],
            [Hit(first, 0.4, 1.0), Hit(second, 0.4, 1.0)],
        ):
            ranked = hits_by_best_sentence(hits, query, embedder=embedder, weight=0.5)
            assert [hit.chunk.id for hit in ranked] == ["c3", "c4"]
    finally:
        providers.set_sentence_vectors(previous)


def test_late_interaction_moves_up_the_chunk_that_matches_the_questions_words(embedder):
    from chat.services.retrieval import hits_by_interaction
    from ragsite.rag.embeddings import LocalEmbedder
    from tests.rag.test_interaction import BACKTRACE, PANIC, QUESTION, STRUCTS

    model = LocalEmbedder.default()
    chunks = [_chunk(n, text.split("\n\n", 1)[1]) for n, text in ((5, PANIC), (6, BACKTRACE))]
    chunks.append(_chunk(7, STRUCTS.split("\n\n", 1)[1]))
    _, _, signatures = model.embed_spans_sync([PANIC, BACKTRACE, STRUCTS], [[], [], []])
    memory = sentences.MemorySentenceVectors()
    for chunk, bits in zip(chunks, signatures, strict=True):
        memory.put(
            embedder=model, content_hash=chunk.content_hash, vectors={sentences.TOKENS_KEY: bits}
        )
    hits = [Hit(chunks[0], 0.40, 1.0), Hit(chunks[1], 0.38, 0.9), Hit(chunks[2], 0.2, 0.8)]
    previous = providers.set_sentence_vectors(memory)
    try:
        ranked = hits_by_interaction(hits, QUESTION, embedder=model, weight=1.5)
        assert [hit.chunk.id for hit in ranked] == ["c6", "c5", "c7"]
        assert ranked[0].rank_score == 0.9 + 1.5  # the best MaxSim of the three scales to 1
        assert ranked[2].rank_score == 0.8  # the lowest to 0
        assert [hit.score for hit in ranked] == [0.38, 0.40, 0.2]  # the cosines are kept
        # Off at weight 0, for an embedder without token outputs, and without signatures.
        assert hits_by_interaction(hits, QUESTION, embedder=model, weight=0) == hits
        assert hits_by_interaction(hits, QUESTION, embedder=object(), weight=1.5) == hits
        providers.set_sentence_vectors(sentences.NoSentenceVectors())
        assert hits_by_interaction(hits, QUESTION, embedder=model, weight=1.5) == hits
    finally:
        providers.set_sentence_vectors(previous)


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_reads_the_stored_vectors_without_an_earlier_tests_memory(run, embedder):
    """tests/conftest.py gives every test a fresh DatabaseSentenceVectors: the vectors
    (and misses) one test's database gave are not there for the next (run 2 would see run
    1's otherwise), so whether a search runs its second stages never depends on the order
    or the timing of the tests before it."""
    from ingestion.services.cache import DatabaseSentenceVectors, embedder_key

    source = providers.get_sentence_vectors()
    assert isinstance(source, DatabaseSentenceVectors)
    assert not source._chunks
    assert not source._misses
    # What this test leaves behind: a remembered chunk and a fresh miss.
    key = embedder_key(embedder)
    source._chunks[(key, GENERAL.content_hash)] = {sentences.TOKENS_KEY: None}
    source._misses[(key, PRECISE.content_hash)] = 0.0
