"""Late interaction: which tokens count, the stored signature, MaxSim with the real model,
and the question's tokens kept from its own embedding."""

from __future__ import annotations

import numpy as np

from ragsite.rag import interaction
from ragsite.rag.embeddings import LocalEmbedder

QUESTION = "My program crashed; how do I see the chain of function calls that led there?"
BACKTRACE = (
    "Panics > Using a panic! Backtrace\n\nA backtrace is a list of all the functions that "
    "have been called to get to this point. Set the RUST_BACKTRACE environment variable to "
    "get a backtrace of exactly what happened to cause the error."
)
PANIC = (
    "Panics > Unrecoverable Errors\n\nSometimes bad things happen in your code, and there's "
    "nothing you can do about it. In these cases, Rust has the panic! macro. When a panic "
    "occurs, the program prints a failure message, unwinds, cleans up the stack and quits."
)
STRUCTS = (
    "Structs > Field Init Shorthand\n\nIt makes sense to name the function parameters with "
    "the same name as the struct fields, but repeating the names is tedious."
)


def test_content_tokens_leave_out_special_tokens_punctuation_stopwords_and_word_pieces():
    tokens = ["[CLS]", "how", "do", "i", "see", "the", "back", "##trace", "?", "[SEP]"]
    special = [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    rows = interaction.content_token_rows(tokens, special)
    assert [tokens[i] for i in rows] == ["see", "back"]


def test_a_question_of_stopwords_alone_keeps_its_real_tokens():
    model = LocalEmbedder.default()
    rows = model.token_rows_sync("How do I?")
    assert rows.shape == (4, 384)  # how, do, i, ? (no [CLS] or [SEP])
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


def test_the_signature_is_one_sign_bit_per_dimension_of_each_content_token():
    model = LocalEmbedder.default()
    hidden, [encoding] = model._forward([BACKTRACE])
    bits = interaction.signature(hidden[0], encoding)
    content = interaction.content_token_rows(encoding.tokens, encoding.special_tokens_mask)
    assert bits.dtype == np.uint8
    assert bits.shape == (len(content), 384 // 8)
    assert len(content) < sum(encoding.attention_mask) - 2  # stopwords and "." left out
    assert np.array_equal(np.unpackbits(bits, axis=1), (hidden[0][content] > 0).astype(np.uint8))


def test_maxsim_prefers_the_passage_that_says_the_question_in_other_words():
    model = LocalEmbedder.default()
    _, _, signatures = model.embed_spans_sync([BACKTRACE, PANIC, STRUCTS], [[], [], []])
    question = model.token_rows_sync(QUESTION)
    scores = [interaction.maxsim(question, bits) for bits in signatures]
    assert scores[0] > scores[1] > scores[2], scores
    assert all(0.0 < score < 1.0 for score in scores)
    assert interaction.maxsim(question, np.empty((0, 48), dtype=np.uint8)) == 0.0


def test_a_questions_tokens_are_kept_from_its_embedding():
    model = LocalEmbedder.default()
    text = "Which tokens does the question keep after embed_sync?"
    model.embed_sync([text])
    first = model.token_rows_sync(text)
    assert model.token_rows_sync(text) is first  # remembered, not run again
    hidden, [encoding] = model._forward([text])
    assert np.allclose(first, interaction.token_rows(hidden[0], encoding), atol=1e-6)
