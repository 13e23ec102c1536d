"""Measuring retrieval quality: a question set, the hit rule, Recall@k and MRR, baselines.

The first half is pure (no Django, no I/O besides reading a question file): question
parsing, text normalisation, the hit rule of issue 6, the metrics, the BM25 baseline
and the report. The second half, `retrieval_evaluate`, runs an evaluation: it chunks a
book with the ingestion chunker, embeds the chunks into a *temporary in-memory*
collection (the live index and SQLite are never touched) and sends every question
through the real retrieval path (`chat.services.book_search`), and optionally through
BM25 alone and the dense vector alone over the same chunks.

The hit rule (a chunk answers a question when):
- it comes from the question's `gold_file` (suffix match on its path), and
- it contains one of the `answers` (NFKC, case-folded, whitespace-collapsed, on word
  boundaries), or at least half of the 5-word shingles of `gold_text` are in the
  chunk, or at least half of the chunk's own 5-word shingles are in `gold_text`
  (a short chunk lying wholly inside the gold passage).

docs/retrieval-quality.md explains the question set, the figures and how to rerun.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import statistics
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ragsite.rag.sparse import tokenize
from ragsite.rag.types import Chunk, Embedder, Vector, VectorStore

logger = logging.getLogger(__name__)

SHINGLE_SIZE = 5
SHINGLE_SHARE = 0.5  # "at least half of the shingles"
CUTOFFS = (1, 5, 10)  # Recall@1, @5, @10
DEFAULT_K = 10

QUESTIONS_MISSING_MESSAGE = "The question file {path} does not exist."
QUESTIONS_UNREADABLE_MESSAGE = "The question file {path} could not be read: {error}"
QUESTIONS_EMPTY_MESSAGE = "The question file {path} holds no questions."
LINE_NOT_JSON_MESSAGE = "{source}, line {line}: not valid JSON ({error})."
LINE_NOT_OBJECT_MESSAGE = "{source}, line {line}: expected a JSON object, got {kind}."
LINE_FIELD_MESSAGE = "{source}, line {line}: {problem}."
DUPLICATE_ID_MESSAGE = "{source}, line {line}: duplicate id {id!r} (first on line {first})."
BOOK_MISSING_MESSAGE = "The book folder {path} does not exist."
BOOK_EMPTY_MESSAGE = "No pages to evaluate: no .md or .mdx files were chunked in {path}."


class EvaluationError(Exception):
    """The evaluation cannot run: a bad question file or book folder (message says why)."""


# --- the question set ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Question:
    """One question of a set, with what a correct retrieval must find."""

    id: str
    question: str
    answers: tuple[str, ...]  # short strings found verbatim in the gold passage
    gold_file: str  # path of the page that answers it, relative to the book folder
    gold_text: str  # the passage that answers it, verbatim (20-80 words)


def _field_problem(data: dict[str, Any]) -> str | None:
    """Return what is wrong with a question object, None when it is well formed."""
    for name in ("id", "question", "gold_file", "gold_text"):
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            return f"field {name!r} must be a non-empty string"
    answers = data.get("answers")
    if (
        not isinstance(answers, list)
        or not answers
        or not all(isinstance(a, str) and a.strip() for a in answers)
    ):
        return "field 'answers' must be a non-empty list of non-empty strings"
    return None


def questions_parse(lines: Iterable[str], *, source: str = "<questions>") -> list[Question]:
    """Parse JSONL question lines (blank lines skipped) into questions.

    Raises:
        EvaluationError: a line is not a JSON object with the expected fields, or an
            id repeats; the message names `source` and the 1-based line number.
    """
    questions: list[Question] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvaluationError(
                LINE_NOT_JSON_MESSAGE.format(source=source, line=number, error=exc.msg)
            ) from exc
        if not isinstance(data, dict):
            raise EvaluationError(
                LINE_NOT_OBJECT_MESSAGE.format(source=source, line=number, kind=type(data).__name__)
            )
        problem = _field_problem(data)
        if problem:
            raise EvaluationError(
                LINE_FIELD_MESSAGE.format(source=source, line=number, problem=problem)
            )
        qid = data["id"].strip()
        if qid in first_line:
            raise EvaluationError(
                DUPLICATE_ID_MESSAGE.format(
                    source=source, line=number, id=qid, first=first_line[qid]
                )
            )
        first_line[qid] = number
        questions.append(
            Question(
                id=qid,
                question=data["question"].strip(),
                answers=tuple(a.strip() for a in data["answers"]),
                gold_file=data["gold_file"].strip(),
                gold_text=data["gold_text"].strip(),
            )
        )
    return questions


def questions_load(path: Path | str) -> list[Question]:
    """Read a JSONL question file.

    Raises:
        EvaluationError: the file is missing, unreadable, empty or has a bad line.
    """
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(QUESTIONS_MISSING_MESSAGE.format(path=path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvaluationError(QUESTIONS_UNREADABLE_MESSAGE.format(path=path, error=exc)) from exc
    questions = questions_parse(text.splitlines(), source=str(path))
    if not questions:
        raise EvaluationError(QUESTIONS_EMPTY_MESSAGE.format(path=path))
    return questions


# --- normalisation and the hit rule -------------------------------------------------------

_WHITESPACE_RE = re.compile(r"\s+")
_WORD_RE = re.compile(r"\w+")
_FENCE_LINE_RE = re.compile(r"^[ \t]*(?:`{3,}|~{3,}).*$", re.MULTILINE)


def normalise(text: str) -> str:
    """Return `text` NFKC-normalised, case-folded, with whitespace runs collapsed to one space."""
    return _WHITESPACE_RE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def words(text: str) -> list[str]:
    """Return the normalised words of `text` (runs of letters, digits and underscores)."""
    return _WORD_RE.findall(normalise(text))


def shingles(text: str, size: int = SHINGLE_SIZE) -> set[tuple[str, ...]]:
    """Return the set of `size`-word shingles of `text` (one shingle if it is shorter)."""
    ws = words(text)
    if len(ws) < size:
        return {tuple(ws)} if ws else set()
    return {tuple(ws[i : i + size]) for i in range(len(ws) - size + 1)}


def contains_answer(text: str, answer: str) -> bool:
    """True when the normalised `answer` occurs in the normalised `text` on word boundaries.

    A boundary is the edge of the text or a non-word character next to the match, so
    "ZMP" matches "(ZMP)" but not "ZMPs", and "$700" matches "~$700".
    """
    needle = normalise(answer)
    if not needle:
        return False
    pattern = r"(?<!\w)" + re.escape(needle) + r"(?!\w)"
    return re.search(pattern, normalise(text)) is not None


def passage_occurs(passage: str, document: str) -> bool:
    """True when the words of `passage` occur contiguously in `document`.

    Punctuation, whitespace and Markdown markup (code fence lines with their language
    included) are ignored, so a passage copied from a rendered page matches its source.
    """
    needle = " ".join(words(_FENCE_LINE_RE.sub("", passage)))
    haystack = " ".join(words(_FENCE_LINE_RE.sub("", document)))
    return bool(needle) and f" {needle} " in f" {haystack} "


def _path_parts(path: str) -> tuple[str, ...]:
    parts = PurePosixPath(path.replace("\\", "/")).parts
    return tuple(part for part in parts if part not in ("", ".", "/"))


def path_matches(chunk_path: str, gold_file: str) -> bool:
    """True when `chunk_path` ends with `gold_file`, compared whole path component by component."""
    gold = _path_parts(gold_file)
    chunk = _path_parts(chunk_path)
    return bool(gold) and len(chunk) >= len(gold) and chunk[-len(gold) :] == gold


def shingle_overlap(text: str, gold_text: str) -> bool:
    """True when `text` holds at least half of the gold shingles, or half of its own are gold."""
    own, gold = shingles(text), shingles(gold_text)
    if not own or not gold:
        return False
    shared = len(own & gold)
    return shared > 0 and (
        shared >= SHINGLE_SHARE * len(gold) or shared >= SHINGLE_SHARE * len(own)
    )


def is_hit(*, path: str, text: str, question: Question) -> bool:
    """Apply the hit rule to one retrieved chunk (its path and its text)."""
    if not path_matches(path, question.gold_file):
        return False
    if any(contains_answer(text, answer) for answer in question.answers):
        return True
    return shingle_overlap(text, question.gold_text)


def first_hit_rank(chunks: Sequence[Chunk], question: Question) -> int | None:
    """Return the 1-based rank of the first chunk that is a hit, None when none is."""
    for rank, chunk in enumerate(chunks, start=1):
        if is_hit(path=chunk.path, text=chunk.text, question=question):
            return rank
    return None


# --- metrics --------------------------------------------------------------------------------


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


# --- the BM25 baseline ----------------------------------------------------------------------


class Bm25Baseline:
    """BM25 alone (rank-bm25's BM25Okapi) over the same chunk texts as the index.

    Chunks and queries are tokenised by `ragsite.rag.sparse.tokenize`, the tokeniser of
    the store's sparse vectors, so the comparison measures the ranking, not the tokens.
    """

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        from rank_bm25 import BM25Okapi

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


# --- the report -----------------------------------------------------------------------------


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
            "seconds": {
                "ingest": round(self.seconds_ingest, 2),
                "search": round(self.seconds_search, 2),
                "total": round(self.seconds_total, 2),
            },
            "methods": [scores.as_dict() for scores in self.methods],
            "unsupported": list(self.unsupported),
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
        f"embedder: {report.embedder}   score floor: {report.score_floor:g}   k: {report.k}",
        "",
        line(headers),
        line(["-" * width for width in widths]),
        *(line(row) for row in rows),
        "",
    ]
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


# --- running an evaluation ------------------------------------------------------------------

HYBRID = "hybrid"
HYBRID_RAW = "hybrid_raw"
DENSE = "dense"
BM25 = "bm25"
METHOD_LABELS = {
    HYBRID: "hybrid (book_search)",
    HYBRID_RAW: "hybrid, no floor/dedup",
    DENSE: "dense only",
    BM25: "bm25 only",
}


@dataclass(slots=True)
class _IndexedBook:
    chunks: list[Chunk]
    pages: int
    skipped: dict[str, str]


def _embed_texts(embedder: Embedder, texts: Sequence[str], batch_size: int) -> list[Vector]:
    """Embed texts in batches, synchronously when the embedder offers it."""
    vectors: list[Vector] = []
    embed_sync = getattr(embedder, "embed_sync", None)
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        result = embed_sync(batch) if embed_sync is not None else asyncio.run(embedder.embed(batch))
        vectors.extend(list(vector) for vector in result)
    return vectors


def book_index_temporary(
    *,
    book_dir: Path,
    store: VectorStore,
    embedder: Embedder,
    pages: Sequence[str] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> _IndexedBook:
    """Chunk the book's pages like ingestion does and upsert them into `store`.

    The same discovery (ignore globs included), decoding, chunker and chunk settings as
    `ingestion.services.book_ingest`, without its SQLite bookkeeping: nothing outside
    `store` is written. `pages` limits the run to those book paths.
    """
    from ingestion.chunking import build_chunks
    from ingestion.markdown import PageError, decode_page
    from ingestion.services import book_discover, ignore_patterns
    from ragsite.rag.config import get_config

    config = get_config()
    files = book_discover(
        book_dir=book_dir, ignore=ignore_patterns(book_dir=book_dir, extra=config.ingest_ignore)
    )
    if pages is not None:
        wanted = set(pages)
        files = [f for f in files if f.path in wanted]
    chunks: list[Chunk] = []
    skipped: dict[str, str] = {}
    seen_ids: set[str] = set()
    for book_file in files:
        try:
            text = decode_page(book_file.abs_path.read_bytes())
            page, page_chunks = build_chunks(
                path=book_file.path,
                text=text,
                site_url=config.site_url,
                docs_prefix=config.site_docs_prefix,
                max_tokens=config.chunk_tokens,
                overlap_tokens=config.chunk_overlap_tokens,
            )
        except (OSError, PageError) as exc:
            skipped[book_file.path] = str(exc)
            continue
        if page.draft:
            skipped[book_file.path] = "draft: true (not published)"
            continue
        for chunk in page_chunks:
            if chunk.id not in seen_ids:  # ingestion drops repeated ids the same way
                seen_ids.add(chunk.id)
                chunks.append(chunk)
    if not chunks:
        raise EvaluationError(BOOK_EMPTY_MESSAGE.format(path=book_dir))
    if on_progress:
        on_progress(
            f"chunked {len(files) - len(skipped)} pages into {len(chunks)} chunks; embedding"
        )
    vectors = _embed_texts(embedder, [chunk.text for chunk in chunks], config.embedding_batch_size)
    store.ensure_collection(dimension=embedder.dimension)
    store.upsert(chunks, vectors)
    return _IndexedBook(chunks=chunks, pages=len(files) - len(skipped), skipped=skipped)


async def _search_all(
    *,
    questions: Sequence[Question],
    query_vectors: Sequence[Vector],
    k: int,
    score_floor: float | None,
    baselines: bool,
    embedder: Embedder,
    store: VectorStore,
    bm25: Bm25Baseline | None,
) -> tuple[dict[str, list[int | None]], list[str]]:
    """Run every question through each method; return ranks per method and unsupported ids."""
    from chat.services import book_search

    ranks: dict[str, list[int | None]] = {HYBRID: []}
    if baselines:
        ranks.update({HYBRID_RAW: [], DENSE: [], BM25: []})
    unsupported: list[str] = []
    for question, vector in zip(questions, query_vectors, strict=True):
        retrieval = await book_search(
            query=question.question, k=k, score_floor=score_floor, embedder=embedder, store=store
        )
        if not retrieval.supported:
            unsupported.append(question.id)
        ranks[HYBRID].append(first_hit_rank([hit.chunk for hit in retrieval.hits], question))
        if not baselines:
            continue
        for method in (HYBRID_RAW, DENSE):
            mode = "hybrid" if method == HYBRID_RAW else "dense"
            hits = await asyncio.to_thread(
                store.search, query_text=question.question, query_vector=vector, k=k, mode=mode
            )
            ranks[method].append(first_hit_rank([hit.chunk for hit in hits], question))
        found = bm25.search(question.question, k) if bm25 is not None else []
        ranks[BM25].append(first_hit_rank(found, question))
    return ranks, unsupported


def retrieval_evaluate(
    *,
    questions: Sequence[Question],
    book_dir: Path,
    k: int = DEFAULT_K,
    baselines: bool = False,
    score_floor: float | None = None,
    pages: Sequence[str] | None = None,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> EvaluationReport:
    """Index a book into a temporary collection and measure retrieval on `questions`.

    Args:
        questions: the question set (see `questions_load`).
        book_dir: the book's root folder.
        k: how many chunks each method returns per question (the depth of the metrics).
        baselines: also score BM25 alone, the dense vector alone, and hybrid search
            without the score floor and duplicate collapsing, on the same chunks.
        score_floor: the floor `book_search` applies; default RETRIEVAL_SCORE_FLOOR.
        pages: only index these book paths (a quick subset evaluation).
        embedder: default: the configured provider.
        store: an empty store to index into; default: a fresh in-memory Qdrant
            collection, dropped afterwards. Never pass the live store.
        on_progress: called with a short line of text at each stage.

    Returns:
        The report: one MethodScores per method, plus the chunk statistics and timings.

    Raises:
        EvaluationError: `book_dir` is missing or yields no chunks.
        EmbeddingError, VectorStoreError: when a component fails.
    """
    from ragsite.rag import providers
    from ragsite.rag.config import get_config
    from ragsite.rag.tokens import count_tokens

    if k <= 0:
        raise ValueError("k must be positive")
    book_dir = Path(book_dir).resolve()
    if not book_dir.is_dir():
        raise EvaluationError(BOOK_MISSING_MESSAGE.format(path=book_dir))
    config = get_config()
    floor = config.retrieval_score_floor if score_floor is None else score_floor
    embedder = embedder or providers.get_embedder()
    own_store = store is None
    if store is None:
        from ragsite.rag.vectorstore import QdrantStore, memory_client

        store = QdrantStore(memory_client(), f"eval-{uuid.uuid4().hex[:12]}")
    try:
        started = time.perf_counter()
        indexed = book_index_temporary(
            book_dir=book_dir, store=store, embedder=embedder, pages=pages, on_progress=on_progress
        )
        bm25 = Bm25Baseline(indexed.chunks) if baselines else None
        ingest_seconds = time.perf_counter() - started

        if on_progress:
            on_progress(f"asking {len(questions)} questions")
        started = time.perf_counter()
        query_vectors: list[Vector] = (
            _embed_texts(embedder, [q.question for q in questions], config.embedding_batch_size)
            if baselines
            else [[] for _ in questions]
        )
        ranks, unsupported = asyncio.run(
            _search_all(
                questions=questions,
                query_vectors=query_vectors,
                k=k,
                score_floor=floor,
                baselines=baselines,
                embedder=embedder,
                store=store,
                bm25=bm25,
            )
        )
        search_seconds = time.perf_counter() - started
    finally:
        if own_store:
            store.drop()

    ids = [q.id for q in questions]
    return EvaluationReport(
        book=str(book_dir),
        k=k,
        questions=len(questions),
        pages=indexed.pages,
        chunks=len(indexed.chunks),
        median_chunk_tokens=median_tokens(indexed.chunks, count=count_tokens),
        chunk_tokens=config.chunk_tokens,
        chunk_overlap_tokens=config.chunk_overlap_tokens,
        score_floor=floor,
        embedder=f"{getattr(embedder, 'provider', '?')}: {getattr(embedder, 'model', '?')}",
        methods=[
            method_score(method=m, label=METHOD_LABELS[m], question_ids=ids, ranks=r, k=k)
            for m, r in ranks.items()
        ],
        unsupported=unsupported,
        skipped_pages=indexed.skipped,
        seconds_ingest=ingest_seconds,
        seconds_search=search_seconds,
    )
