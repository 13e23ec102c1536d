"""Recall@k and MRR@k from the rank of each question's first hit; per-method scores."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ragsite.rag.types import Chunk

CUTOFFS = (1, 5, 10)  # Recall@1, @5, @10
DEFAULT_K = 10


def recall_at(ranks: Sequence[int | None], k: int) -> float:
    """Return the share of questions whose first hit is within the top `k` (0 for none)."""
    if not ranks:
        return 0.0
    return sum(1 for rank in ranks if rank is not None and rank <= k) / len(ranks)


def mrr_at(ranks: Sequence[int | None], k: int) -> float:
    """Return the mean reciprocal rank of the first hit, counting ranks beyond `k` as 0."""
    if not ranks:
        return 0.0
    return sum(1.0 / rank for rank in ranks if rank is not None and rank <= k) / len(ranks)


def cutoffs_for(k: int) -> tuple[int, ...]:
    """Return the Recall@n cutoffs that a search of depth `k` can measure (1, 5, 10 and k)."""
    return tuple(sorted({n for n in CUTOFFS if n <= k} | {k}))


@dataclass(frozen=True, slots=True)
class MethodScores:
    """The figures of one retrieval method over a question set."""

    method: str
    label: str
    recall: dict[int, float]  # cutoff -> Recall@cutoff
    mrr: float  # MRR@k
    k: int
    ranks: dict[str, int | None]  # question id -> rank of the first hit

    def as_dict(self) -> dict[str, Any]:
        """Return the figures as JSON-able data (`recall@5`, `mrr@10`, ...)."""
        data: dict[str, Any] = {"method": self.method, "label": self.label}
        data.update({f"recall@{n}": round(value, 4) for n, value in self.recall.items()})
        data[f"mrr@{self.k}"] = round(self.mrr, 4)
        data["ranks"] = dict(self.ranks)
        return data


def method_score(
    *, method: str, label: str, question_ids: Sequence[str], ranks: Sequence[int | None], k: int
) -> MethodScores:
    """Score one method from the rank of its first hit for each question."""
    return MethodScores(
        method=method,
        label=label,
        recall={n: recall_at(ranks, n) for n in cutoffs_for(k)},
        mrr=mrr_at(ranks, k),
        k=k,
        ranks=dict(zip(question_ids, ranks, strict=True)),
    )


def median_tokens(chunks: Sequence[Chunk], *, count: Callable[[str], int] | None = None) -> float:
    """Return the median token length of the chunks (0 for none).

    A chunk's `token_count` is used when set; `count(text)` measures the others.
    """
    counts = [
        chunk.token_count or (count(chunk.text) if count is not None else 0) for chunk in chunks
    ]
    return float(statistics.median(counts)) if counts else 0.0
