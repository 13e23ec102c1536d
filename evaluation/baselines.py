"""Baselines the real retrieval path is compared with: BM25 alone (rank-bm25).

rank-bm25 is in the `eval` dependency group (part of `dev`), not a run-time dependency:
it is imported when a baseline is built, with a clear message when it is missing.
"""

from __future__ import annotations

from collections.abc import Sequence

from ragsite.rag.sparse import tokenize
from ragsite.rag.types import Chunk

from .questions import EvaluationError

BM25_MISSING_MESSAGE = (
    "The BM25 baseline needs rank-bm25, in the 'eval' dependency group: "
    "run `uv sync --group eval` (the dev group includes it)."
)


class Bm25Baseline:
    """BM25 alone (rank-bm25's BM25Okapi) over the same chunk texts as the index.

    Chunks and queries are tokenised by `ragsite.rag.sparse.tokenize`, the tokeniser of
    the store's sparse vectors, so the comparison measures the ranking, not the tokens.
    """

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        try:
            from rank_bm25 import BM25Okapi
        except ImportError as exc:  # the `eval` dependency group is not installed
            raise EvaluationError(BM25_MISSING_MESSAGE) from exc

        self.chunks = list(chunks)
        # BM25Okapi divides by the mean document length: an empty corpus cannot be built.
        corpus = [tokenize(chunk.text) or [""] for chunk in self.chunks]
        self._bm25 = BM25Okapi(corpus) if corpus else None

    def search(self, query: str, k: int) -> list[Chunk]:
        """Return the best `k` chunks for `query`, best first (ties keep chunk order)."""
        terms = tokenize(query)
        if self._bm25 is None or not terms or k <= 0:
            return []
        scores = self._bm25.get_scores(terms)
        order = sorted(range(len(self.chunks)), key=lambda i: (-scores[i], i))
        return [self.chunks[i] for i in order[:k] if scores[i] > 0]
