"""Late interaction: a question's words matched one by one against a passage's tokens.

The first stage scores a chunk by one vector (its tokens' mean) and by BM25's exact
words. A question often hinges on one or two words that the chunk says in other words
("the chain of function calls" for "backtrace"), which the chunk's mean dilutes and BM25
cannot see. Late interaction (ColBERT's MaxSim) keeps the model's output for every token:
each of the question's content tokens finds its closest token in the passage, and the
passage scores the mean of those best matches.

The model is the packaged all-MiniLM-L6-v2, not a model trained for MaxSim; its token
outputs still carry their meaning in context. Measured as a second stage over the best
20 candidates (docs/retrieval-quality.md): R@5 / MRR@10 0.815 / 0.628 → 0.859 / 0.692 on
the Rust book, 0.902 / 0.734 → 0.943 / 0.792 on the textbook, 0.736 / 0.599 → 0.774 /
0.677 on the docs.

What is stored costs little: a chunk keeps only its content tokens (no punctuation,
special tokens or stopwords, a word's first piece only: ~85 of ~180 tokens), one sign
bit per dimension (48 bytes a token, ~4 KB a chunk), computed at ingestion from the
same model run as its vector and kept with its sentence vectors
(ragsite/rag/sentences.py). The question's tokens stay floats (asymmetric scoring); the
sign bits lost nothing measurable against int8 or float vectors. A search reads the
candidates' bits with their sentence vectors (one lookup, memoised) and scores 20
chunks in well under a millisecond.

Django-free; the tokens come from `LocalEmbedder` (ragsite/rag/embeddings.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

# Words that carry no topic of their own: a question's "how do I ... the" must not find
# its best match in every passage.
STOPWORDS = frozenset(
    "a an the of to in on for and or is are was be do does did i my me you your it its "
    "this that what which how why when can with from by as at if not so there their they "
    "we our".split()
)
_WORDLIKE = re.compile(r"\w")


def content_token_rows(tokens: Sequence[str], special: Sequence[int]) -> np.ndarray:
    """Indexes of the tokens that carry content: no special token, punctuation, stopword
    or "##" continuation piece (a word's first piece, read in context, stands for it:
    what was measured)."""
    keep = [
        index
        for index, (token, is_special) in enumerate(zip(tokens, special, strict=True))
        if not is_special and _WORDLIKE.match(token) is not None and token not in STOPWORDS
    ]
    return np.asarray(keep, dtype=np.int64)


def token_rows(hidden: np.ndarray, encoding: Any) -> np.ndarray:
    """The unit-length model outputs [n, dimension] of an encoded text's content tokens
    (all its real tokens when none is a content token: "How do I?")."""
    rows = content_token_rows(encoding.tokens, encoding.special_tokens_mask)
    if rows.size == 0:
        rows = np.flatnonzero(np.asarray(encoding.special_tokens_mask) == 0)
    vectors = hidden[rows].astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def signature(hidden: np.ndarray, encoding: Any) -> np.ndarray:
    """A passage's stored form: its content tokens' sign bits, packed [n, dimension / 8]."""
    rows = content_token_rows(encoding.tokens, encoding.special_tokens_mask)
    return np.packbits(hidden[rows] > 0, axis=1)


def maxsim(query: np.ndarray, bits: np.ndarray) -> float:
    """Mean over the question's tokens of its best match among the passage's tokens.

    `query` is `token_rows` of the question; `bits` is a passage's `signature`. A passage
    token is read as the unit vector of its signs (±1 / sqrt(dimension)).
    """
    return maxsim_many(query, [bits])[0]


def maxsim_many(query: np.ndarray, passages: Sequence[np.ndarray]) -> list[float]:
    """`maxsim` of the question against each passage's signature, in one product for all
    (a search scores ~20: one unpacking and one matrix product, not twenty)."""
    sizes = [bits.shape[0] if bits.size else 0 for bits in passages]
    if query.size == 0 or not any(sizes):
        return [0.0] * len(passages)
    dimension = query.shape[1]
    stacked = np.concatenate([bits for bits, size in zip(passages, sizes, strict=True) if size])
    signs = np.unpackbits(stacked, axis=1, count=dimension).astype(np.float32)
    # q . (2b - 1) = 2 (q . b) - sum(q): no second pass over the unpacked bits.
    products = 2.0 * (signs @ query.T) - query.sum(axis=1)  # [passage tokens, question's]
    starts = np.cumsum([0, *[size for size in sizes if size]])[:-1]
    best = np.maximum.reduceat(products, starts, axis=0).mean(axis=1) / np.sqrt(dimension)
    found = iter(best.tolist())
    return [next(found) if size else 0.0 for size in sizes]
