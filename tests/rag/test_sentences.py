"""Sentence vectors from the chunk's own model run: where each sentence lies, its vector,
the stored form, and the answerer scoring with them instead of embedding sentences."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ragsite.rag import sentences
from ragsite.rag.embeddings import LocalEmbedder
from ragsite.rag.extractive import sentence_similarities
from ragsite.rag.passages import quotable_sentences
from ragsite.rag.types import Chunk, Source
from tests.conftest import CountingEmbedder

BODY = (
    "## Ownership\n\n"
    "Ownership is a set of rules that govern how a Rust program manages memory. "
    "Some languages have **garbage collection** that regularly looks for no-longer-used "
    "memory as the program runs; in other languages, the programmer must explicitly "
    "allocate and free the memory.\n\n"
    "- Each value in Rust has an *owner*.\n"
    "- There can only be one owner at a time.\n\n"
    '```rust\nlet s = String::from("hello");\n```\n\n'
    "When the owner goes out of scope, the value will be dropped (see [the drop "
    "chapter](ch15-03-drop.md) for the `Drop` trait)."
)
TEXT = f"Understanding Ownership > What Is Ownership?\n\n{BODY}"


def _chunk(text: str = TEXT, body: str = BODY) -> Chunk:
    return Chunk(
        id="c1",
        text=text,
        body=body,
        title="Understanding Ownership",
        heading="What Is Ownership?",
        path="ch04-01.md",
        url=None,
        position=0,
        content_hash="hash-c1",
    )


def _cosine(a, b) -> float:
    return float(np.dot(np.asarray(a), np.asarray(b)))


def test_every_quotable_sentence_is_found_in_the_embedded_text():
    quoted = quotable_sentences(BODY)
    spans = sentences.sentence_spans(TEXT, BODY)
    assert [text for text, _, _ in spans] == quoted
    assert len(quoted) == 5  # two prose sentences, two list items, the last sentence
    breadcrumb_end = len(TEXT) - len(BODY)
    for text, start, end in spans:
        assert breadcrumb_end <= start < end <= len(TEXT)
        words = sentences._words(TEXT[start:end])
        assert words[:3] == sentences._words(text)[:3]
        assert words[-3:] == sentences._words(text)[-3:]
    # Markup inside the span is the book's, the sentence is the cleaned one.
    link = next(span for span in spans if "dropped" in span[0])
    assert "](ch15-03-drop.md)" in TEXT[link[1] : link[2]]
    assert "](" not in link[0]


def test_a_sentence_not_in_the_text_is_left_out():
    spans = sentences.sentence_spans("Breadcrumb\n\nSomething else entirely here.", BODY)
    assert spans == []


def test_span_vectors_come_from_the_same_run_as_the_text_vector(embedder):
    model = LocalEmbedder.default()
    spans = sentences.sentence_spans(TEXT, BODY)
    vectors, pooled, _ = model.embed_spans_sync([TEXT], [[(a, b) for _, a, b in spans]])
    # The chunk's own vector is exactly the one embed_sync gives (cached vectors stay valid).
    assert np.allclose(vectors[0], model.embed_sync([TEXT])[0], atol=1e-6)
    assert len(pooled[0]) == len(spans)
    assert all(v is not None for v in pooled[0])
    for vector in pooled[0]:
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    # A sentence's vector is read in its passage's context, so it also leans towards its
    # neighbours; it still resembles the sentence embedded alone more than the others.
    alone = model.embed_sync([text for text, _, _ in spans])
    matrix = np.array([[_cosine(v, other) for other in alone] for v in pooled[0]])
    own = np.diag(matrix)
    others = matrix[~np.eye(len(spans), dtype=bool)]
    assert own.min() > 0.55, own
    assert own.mean() > others.mean() + 0.15, (own.mean(), others.mean())


def test_a_span_past_the_truncation_has_no_vector():
    model = LocalEmbedder.default()
    long_text = "word " * 400 + "The last sentence lies far past the model's window."
    start = long_text.index("The last")
    _, pooled, _ = model.embed_spans_sync([long_text], [[(0, 20), (start, len(long_text))]])
    assert pooled[0][0] is not None
    assert pooled[0][1] is None


def test_spans_must_match_the_texts():
    with pytest.raises(ValueError, match="one list of spans per text"):
        LocalEmbedder.default().embed_spans_sync(["one", "two"], [[]])


def test_pack_and_unpack_keep_each_sentence_under_its_key():
    rng = np.random.default_rng(0)
    first, second = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 384)))
    blob = sentences.pack(
        [("First sentence here.", first), ("Skipped.", None), ("Second.", second)]
    )
    assert len(blob) == 4 + 2 * (sentences.KEY_BYTES + 2 * 384)  # header + two records
    found = sentences.unpack(blob, 384)
    assert set(found) == {
        sentences.sentence_key("First sentence here."),
        sentences.sentence_key("Second."),
    }
    assert np.allclose(found[sentences.sentence_key("First sentence here.")], first, atol=1e-3)
    # The key ignores markup and case: the cleaned and the book's form of a sentence agree.
    assert sentences.sentence_key("The `Drop` **trait**.") == sentences.sentence_key(
        "the drop trait"
    )
    assert sentences.TOKENS_KEY not in found  # no token signature was given
    assert sentences.unpack(b"", 384) == {}
    assert sentences.unpack(b"short", 384) == {}
    assert sentences.unpack(blob[:-1], 384) == {}  # cut short: not read as anything


def test_the_stored_form_keeps_the_chunks_token_signature():
    rng = np.random.default_rng(1)
    vector = rng.normal(size=384)
    bits = np.packbits(rng.normal(size=(7, 384)) > 0, axis=1)
    found = sentences.unpack(sentences.pack([("One sentence.", vector)], bits), 384)
    assert np.array_equal(found[sentences.TOKENS_KEY], bits)
    assert found[sentences.TOKENS_KEY].shape == (7, 48)
    assert sentences.sentence_key("One sentence.") in found
    # A sentence's key is never the signature's: a sentence with no words included.
    assert sentences.sentence_key("...") != sentences.TOKENS_KEY


async def test_the_answerer_scores_stored_sentences_without_embedding_them(embedder):
    model = LocalEmbedder.default()
    spans = sentences.sentence_spans(TEXT, BODY)
    _, pooled, _ = model.embed_spans_sync([TEXT], [[(a, b) for _, a, b in spans]])
    stored = sentences.unpack(
        sentences.pack(zip((t for t, _, _ in spans), pooled[0], strict=True)), 384
    )
    counting = CountingEmbedder(embedder)
    embedded = counting.texts

    source = Source(n=1, chunk=_chunk(), score=0.8, snippet="")
    question = "Who owns a value in Rust?"
    scores = await sentence_similarities(
        question=question, sources=[source], embedder=counting, stored={"hash-c1": stored}
    )
    assert embedded == [question]  # the question only: every sentence was stored
    assert set(scores) == set(quotable_sentences(BODY))
    best = max(scores, key=scores.get)
    assert "owner" in best.lower()
    # Without stored vectors, the candidates are embedded now, with the same outcome.
    embedded.clear()
    fresh = await sentence_similarities(question=question, sources=[source], embedder=counting)
    assert len(embedded) > 1
    assert "owner" in max(fresh, key=fresh.get).lower()


def test_memory_sentence_vectors_are_per_embedder_and_chunk(embedder):
    store = sentences.MemorySentenceVectors()
    vector = np.ones(384, dtype=np.float32) / np.sqrt(384)
    store.put(embedder=embedder, content_hash="h1", vectors={b"k" * 8: vector})
    assert set(store.lookup(embedder=embedder, hashes=["h1", "h2"])) == {b"k" * 8}
    assert store.lookup(embedder=embedder, hashes=["h2"]) == {}
    assert sentences.NoSentenceVectors().lookup(embedder=embedder, hashes=["h1"]) == {}


async def test_a_sentence_two_chunks_share_is_scored_with_its_own_chunks_vector(embedder):
    # Overlapping chunks each read the shared sentence in their own context: the answer
    # quotes it from the first source, so that chunk's vector is the one that counts.
    shared = "Each value in Rust has an owner, and only one owner at a time."
    question = "How many owners can a value have?"
    (query,) = await embedder.embed([question])
    query = np.asarray(query, dtype=np.float32)
    away = np.roll(query, 7)  # a unit vector far from the question
    key = sentences.sentence_key(shared)
    first = dataclasses.replace(_chunk(), id="a", body=shared, content_hash="a")
    second = dataclasses.replace(_chunk(), id="b", body=shared, content_hash="b")
    stored = {"a": {key: query}, "b": {key: away}}
    sources = [Source(1, first, 0.8, ""), Source(2, second, 0.7, "")]
    scores = await sentence_similarities(
        question=question, sources=sources, embedder=embedder, stored=stored
    )
    assert scores[shared] == pytest.approx(1.0, abs=1e-3)
    swapped = await sentence_similarities(
        question=question, sources=sources[::-1], embedder=embedder, stored=stored
    )
    assert swapped[shared] == pytest.approx(_cosine(query, away), abs=1e-3)


def test_vectors_per_chunk_keeps_each_chunks_own(embedder):
    store = sentences.MemorySentenceVectors()
    one, two = np.eye(384, dtype=np.float32)[:2]
    store.put(embedder=embedder, content_hash="h1", vectors={b"k" * 8: one})
    store.put(embedder=embedder, content_hash="h2", vectors={b"k" * 8: two})
    found = sentences.vectors_per_chunk(store, embedder=embedder, hashes=["h1", "h2", "h3", ""])
    assert set(found) == {"h1", "h2"}  # a chunk with none stored is left out
    assert (found["h1"][b"k" * 8] == one).all()
    assert (found["h2"][b"k" * 8] == two).all()
    nothing = sentences.NoSentenceVectors()
    assert sentences.vectors_per_chunk(nothing, embedder=embedder, hashes=["h1"]) == {}
