"""book_search's second stage: candidates re-ordered by their best sentence's cosine, from
the sentence vectors stored with each chunk; off without them or at weight 0."""

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
