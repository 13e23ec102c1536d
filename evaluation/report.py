"""What one evaluation measured: per-method scores, out-of-book doubt, chunk statistics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .metrics import MethodScores, cutoffs_for


@dataclass(frozen=True, slots=True)
class OutOfBookScores:
    """How often retrieval flags the questions the book does not answer as uncertain.

    `flagged` holds the ids it flagged; `near` the ids of near-domain questions (about a
    neighbouring subject, the hard case).
    """

    ids: tuple[str, ...]
    flagged: frozenset[str]
    near: frozenset[str] = frozenset()

    @property
    def questions(self) -> int:
        """How many out-of-book questions were asked."""
        return len(self.ids)

    def share(self, ids: Sequence[str] | None = None) -> float:
        """Return the share of `ids` (default all) that were flagged (0 for none)."""
        ids = self.ids if ids is None else ids
        return sum(1 for i in ids if i in self.flagged) / len(ids) if ids else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the figures as JSON-able data."""
        near = [i for i in self.ids if i in self.near]
        far = [i for i in self.ids if i not in self.near]
        return {
            "questions": self.questions,
            "flagged": len(self.flagged),
            "flagged_share": round(self.share(), 4),
            "near_domain": {"questions": len(near), "flagged_share": round(self.share(near), 4)},
            "far": {"questions": len(far), "flagged_share": round(self.share(far), 4)},
            "not_flagged": [i for i in self.ids if i not in self.flagged],
        }

    def line(self) -> str:
        """Return the figures as one line of the table's footer."""
        near = [i for i in self.ids if i in self.near]
        far = [i for i in self.ids if i not in self.near]
        return (
            f"out of book: {len(self.flagged)} of {self.questions} flagged as uncertain "
            f"({self.share():.0%}; near-domain {self.share(near):.0%} of {len(near)}, "
            f"far {self.share(far):.0%} of {len(far)})"
        )


@dataclass(slots=True)
class EvaluationReport:
    """Everything one evaluation measured."""

    book: str
    k: int
    questions: int
    pages: int
    chunks: int
    median_chunk_tokens: float
    chunk_tokens: int  # CHUNK_TOKENS the chunks were cut with
    chunk_overlap_tokens: int
    score_floor: float
    embedder: str
    methods: list[MethodScores] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)  # questions with no hit above the floor
    skipped_pages: dict[str, str] = field(default_factory=dict)  # path -> why it was not chunked
    seconds_ingest: float = 0.0
    seconds_search: float = 0.0
    question_files: list[str] = field(default_factory=list)
    vector_engine: str = ""
    out_of_book: OutOfBookScores | None = None

    @property
    def seconds_total(self) -> float:
        """Ingestion plus search time."""
        return self.seconds_ingest + self.seconds_search

    def method(self, name: str) -> MethodScores:
        """Return the scores of the method called `name`."""
        for scores in self.methods:
            if scores.method == name:
                return scores
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-able data (what `--json` writes)."""
        return {
            "book": self.book,
            "k": self.k,
            "questions": self.questions,
            "pages": self.pages,
            "chunks": self.chunks,
            "median_chunk_tokens": self.median_chunk_tokens,
            "chunk_tokens": self.chunk_tokens,
            "chunk_overlap_tokens": self.chunk_overlap_tokens,
            "score_floor": self.score_floor,
            "embedder": self.embedder,
            "vector_engine": self.vector_engine,
            "question_files": list(self.question_files),
            "seconds": {
                "ingest": round(self.seconds_ingest, 2),
                "search": round(self.seconds_search, 2),
                "total": round(self.seconds_total, 2),
            },
            "methods": [scores.as_dict() for scores in self.methods],
            "unsupported": list(self.unsupported),
            "unsupported_share": round(len(self.unsupported) / self.questions, 4)
            if self.questions
            else 0.0,
            "out_of_book": self.out_of_book.as_dict() if self.out_of_book else None,
            "skipped_pages": dict(self.skipped_pages),
        }


def report_table(report: EvaluationReport) -> str:
    """Return the report as a plain-text table (what `eval_retrieval` prints)."""
    cutoffs = cutoffs_for(report.k)
    headers = ["method", *(f"R@{n}" for n in cutoffs), f"MRR@{report.k}"]
    rows = [
        [scores.label, *(f"{scores.recall[n]:.3f}" for n in cutoffs), f"{scores.mrr:.3f}"]
        for scores in report.methods
    ]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    out = [
        f"Retrieval quality on {report.book}",
        f"questions: {report.questions}   pages: {report.pages}   chunks: {report.chunks}   "
        f"median chunk: {report.median_chunk_tokens:g} tokens "
        f"(CHUNK_TOKENS={report.chunk_tokens}, overlap {report.chunk_overlap_tokens})",
        f"embedder: {report.embedder}   score floor: {report.score_floor:g}   k: {report.k}"
        + (f"   store: {report.vector_engine}" if report.vector_engine else ""),
        "",
        line(headers),
        line(["-" * width for width in widths]),
        *(line(row) for row in rows),
        "",
    ]
    if report.out_of_book is not None and report.out_of_book.questions:
        out.append(report.out_of_book.line())
    if report.unsupported:
        out.append(
            f"no hit above the score floor for {len(report.unsupported)} question(s): "
            + ", ".join(report.unsupported)
        )
    for path, why in report.skipped_pages.items():
        out.append(f"skipped page {path}: {why}")
    out.append(
        f"time: {report.seconds_total:.1f} s (chunk + embed + index {report.seconds_ingest:.1f} s, "
        f"questions {report.seconds_search:.1f} s)"
    )
    return "\n".join(out)
