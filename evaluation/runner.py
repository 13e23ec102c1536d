"""Running an evaluation: index a book into a temporary store, ask every question.

`retrieval_evaluate` chunks a book with ingestion's own `page_chunks`, embeds the
chunks into a *temporary* collection of the configured engine (VECTOR_ENGINE; the live
index and SQLite are never touched) and sends every in-book question through the real
retrieval path (`chat.services.book_search`), and optionally through BM25 alone, the
dense vector alone and the store's raw hybrid fusion over the same chunks. Out-of-book
questions go through `book_search` only: what counts is whether it doubts them
(`retrieval_doubts`).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragsite.rag import sentences
from ragsite.rag.sentences import MemorySentenceVectors
from ragsite.rag.types import Chunk, Embedder, Vector, VectorStore

from .baselines import Bm25Baseline
from .hits import first_hit_rank
from .metrics import DEFAULT_K, median_tokens, method_score
from .questions import EvaluationError, Question, questions_load
from .report import EvaluationReport, OutOfBookScores

if TYPE_CHECKING:
    from chat.services import Retrieval
    from ragsite.rag.config import RagConfig

logger = logging.getLogger(__name__)

BOOK_MISSING_MESSAGE = "The book folder {path} does not exist."
BOOK_EMPTY_MESSAGE = "No pages to evaluate: no .md or .mdx files were chunked in {path}."
DUPLICATE_ACROSS_FILES_MESSAGE = (
    "Question id {id!r} is in both {first} and {second}, which are asked of the same book."
)

# The four methods, in the order the table shows them: the two halves alone, the store's
# fusion of both, and the real retrieval path (fusion, score floor, near-duplicates).
BM25 = "bm25"
DENSE = "dense"
HYBRID_RAW = "hybrid_raw"
HYBRID = "hybrid"
METHOD_LABELS = {
    BM25: "bm25 only",
    DENSE: "dense only",
    HYBRID_RAW: "hybrid, no floor/dedup",
    HYBRID: "hybrid (book_search)",
}


def retrieval_doubts(retrieval: Retrieval) -> bool:
    """True when chat would treat this retrieval as uncertain (`book_supports` said no).

    The one place the harness asks chat's retrieval for doubt.
    """
    return not retrieval.supported


@dataclass(slots=True)
class _IndexedBook:
    chunks: list[Chunk]
    pages: int
    skipped: dict[str, str]
    sentence_vectors: MemorySentenceVectors = field(default_factory=lambda: MemorySentenceVectors())


def _embed_texts(embedder: Embedder, texts: Sequence[str], batch_size: int) -> list[Vector]:
    """Embed texts in batches, synchronously when the embedder offers it."""
    vectors: list[Vector] = []
    embed_sync = getattr(embedder, "embed_sync", None)
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        result = embed_sync(batch) if embed_sync is not None else asyncio.run(embedder.embed(batch))
        vectors.extend(list(vector) for vector in result)
    return vectors


@contextmanager
def store_temporary(config: RagConfig) -> Iterator[VectorStore]:
    """Yield an empty store of the configured engine that is gone when the block ends.

    VECTOR_ENGINE=qdrant-edge: an edge engine over a temporary folder; otherwise an
    in-memory qdrant-client collection (the same code as local mode and server mode).
    """
    name = f"eval-{uuid.uuid4().hex[:12]}"
    if config.vector_engine == "qdrant-edge":
        from ragsite.rag.edgestore import EdgeEngine, EdgeStore

        with tempfile.TemporaryDirectory(prefix="ragsite-eval-") as folder:
            engine = EdgeEngine(Path(folder))
            try:
                yield EdgeStore(engine, name)
            finally:
                engine.close()
        return
    from ragsite.rag.vectorstore import QdrantStore, memory_client

    store = QdrantStore(memory_client(), name)
    try:
        yield store
    finally:
        store.drop()


def book_index_temporary(
    *,
    book_dir: Path,
    store: VectorStore,
    embedder: Embedder,
    pages: Sequence[str] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> _IndexedBook:
    """Chunk the book's pages like ingestion does and upsert them into `store`.

    The same discovery (ignore globs and the site generator's "is this a page" rule
    included), site and `page_chunks` as `ingestion.services.book_ingest`, without its SQLite bookkeeping: nothing outside
    `store` is written. `pages` limits the run to those book paths.
    """
    from ingestion.services import PageUnreadable, book_discover, ignore_patterns, page_chunks
    from ingestion.sites import book_site
    from ragsite.rag.config import get_config

    config = get_config()
    site = book_site(book_dir=Path(book_dir), config=config)
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
            page = page_chunks(
                path=book_file.path,
                data=book_file.abs_path.read_bytes(),
                site=site,
                config=config,
            )
        except (OSError, PageUnreadable) as exc:
            skipped[book_file.path] = str(exc)
            continue
        if page.draft:
            skipped[book_file.path] = "draft: true (not published)"
            continue
        for chunk in page.chunks:
            if chunk.id not in seen_ids:  # one point per id, as in the live index
                seen_ids.add(chunk.id)
                chunks.append(chunk)
    if not chunks:
        raise EvaluationError(BOOK_EMPTY_MESSAGE.format(path=book_dir))
    if on_progress:
        on_progress(
            f"chunked {len(files) - len(skipped)} pages into {len(chunks)} chunks; embedding"
        )
    vectors, sentence_vectors = _embed_chunks(embedder, chunks, config.embedding_batch_size)
    store.ensure_collection(dimension=embedder.dimension)
    store.upsert(chunks, vectors)
    return _IndexedBook(
        chunks=chunks,
        pages=len(files) - len(skipped),
        skipped=skipped,
        sentence_vectors=sentence_vectors,
    )


def _embed_chunks(
    embedder: Embedder, chunks: Sequence[Chunk], batch_size: int
) -> tuple[list[Vector], MemorySentenceVectors]:
    """Embed the chunks as ingestion does: with the packaged model, their sentences too
    (kept in memory: the evaluation writes nothing outside its store)."""
    from ingestion.services.cache import embed_with_sentences

    vectors: list[Vector] = []
    memory = MemorySentenceVectors()
    for start in range(0, len(chunks), batch_size):
        batch = chunks[start : start + batch_size]
        computed, packed = embed_with_sentences(
            embedder, [c.text for c in batch], [c.body for c in batch]
        )
        vectors.extend(computed)
        for chunk, blob in zip(batch, packed, strict=True):
            if blob:
                memory.put(
                    embedder=embedder,
                    content_hash=chunk.content_hash,
                    vectors=sentences.unpack(blob, embedder.dimension),
                )
    return vectors, memory


@dataclass(slots=True)
class _Answers:
    ranks: dict[str, list[int | None]]
    unsupported: list[str]
    doubted_out_of_book: set[str]


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
) -> _Answers:
    """Run every question through each method; return ranks per method and the doubts."""
    from chat.services import book_search

    methods = [BM25, DENSE, HYBRID_RAW, HYBRID] if baselines else [HYBRID]
    answers = _Answers(ranks={m: [] for m in methods}, unsupported=[], doubted_out_of_book=set())
    for question, vector in zip(questions, query_vectors, strict=True):
        retrieval = await book_search(
            query=question.question, k=k, score_floor=score_floor, embedder=embedder, store=store
        )
        if question.out_of_book:
            if retrieval_doubts(retrieval):
                answers.doubted_out_of_book.add(question.id)
            continue
        if not retrieval.supported:
            answers.unsupported.append(question.id)
        answers.ranks[HYBRID].append(
            first_hit_rank([hit.chunk for hit in retrieval.hits], question)
        )
        if not baselines:
            continue
        for method in (HYBRID_RAW, DENSE):
            mode = "hybrid" if method == HYBRID_RAW else "dense"
            hits = await asyncio.to_thread(
                store.search, query_text=question.question, query_vector=vector, k=k, mode=mode
            )
            answers.ranks[method].append(first_hit_rank([hit.chunk for hit in hits], question))
        found = bm25.search(question.question, k) if bm25 is not None else []
        answers.ranks[BM25].append(first_hit_rank(found, question))
    return answers


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
    question_files: Sequence[str] = (),
    on_progress: Callable[[str], None] | None = None,
) -> EvaluationReport:
    """Index a book into a temporary collection and measure retrieval on `questions`.

    Args:
        questions: the question set (see `questions_load`); in-book questions are scored
            by rank, out-of-book ones by whether retrieval doubts them.
        book_dir: the book's root folder.
        k: how many chunks each method returns per question (the depth of the metrics).
        baselines: also score BM25 alone, the dense vector alone, and the store's hybrid
            fusion without the score floor and duplicate collapsing, on the same chunks.
        score_floor: the floor `book_search` applies; default RETRIEVAL_SCORE_FLOOR.
        pages: only index these book paths (a quick subset evaluation).
        embedder: default: the configured provider.
        store: an empty store to index into; default: a temporary collection of the
            configured engine (`store_temporary`), gone afterwards. Never pass the live store.
        question_files: where the questions come from (shown in the report).
        on_progress: called with a short line of text at each stage.

    Returns:
        The report: one MethodScores per method, the out-of-book doubt, the chunk
        statistics and timings.

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
    with _store_or_temporary(store, config) as target:
        started = time.perf_counter()
        indexed = book_index_temporary(
            book_dir=book_dir, store=target, embedder=embedder, pages=pages, on_progress=on_progress
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
        # book_search's second stage reads the temporary index's sentence vectors.
        previous = providers.set_sentence_vectors(indexed.sentence_vectors)
        try:
            answers = asyncio.run(
                _search_all(
                    questions=questions,
                    query_vectors=query_vectors,
                    k=k,
                    score_floor=floor,
                    baselines=baselines,
                    embedder=embedder,
                    store=target,
                    bm25=bm25,
                )
            )
        finally:
            providers.set_sentence_vectors(previous)
        search_seconds = time.perf_counter() - started

    in_book = [q.id for q in questions if not q.out_of_book]
    outside = [q for q in questions if q.out_of_book]
    return EvaluationReport(
        book=str(book_dir),
        k=k,
        questions=len(in_book),
        pages=indexed.pages,
        chunks=len(indexed.chunks),
        median_chunk_tokens=median_tokens(indexed.chunks, count=count_tokens),
        chunk_tokens=config.chunk_tokens,
        chunk_overlap_tokens=config.chunk_overlap_tokens,
        score_floor=floor,
        embedder=f"{getattr(embedder, 'provider', '?')}: {getattr(embedder, 'model', '?')}",
        methods=[
            method_score(method=m, label=METHOD_LABELS[m], question_ids=in_book, ranks=r, k=k)
            for m, r in answers.ranks.items()
        ],
        unsupported=answers.unsupported,
        skipped_pages=indexed.skipped,
        seconds_ingest=ingest_seconds,
        seconds_search=search_seconds,
        question_files=list(question_files),
        vector_engine=_engine_name(store, config),
        out_of_book=OutOfBookScores(
            ids=tuple(q.id for q in outside),
            flagged=frozenset(answers.doubted_out_of_book),
            near=frozenset(q.id for q in outside if q.near_domain),
        )
        if outside
        else None,
    )


@contextmanager
def _store_or_temporary(store: VectorStore | None, config: RagConfig) -> Iterator[VectorStore]:
    if store is not None:
        yield store
        return
    with store_temporary(config) as temporary:
        yield temporary


def _engine_name(store: VectorStore | None, config: RagConfig) -> str:
    if store is not None:
        return type(store).__name__
    return "qdrant-edge" if config.vector_engine == "qdrant-edge" else "qdrant-client (memory)"


def question_files_evaluate(
    pairs: Sequence[tuple[Path, Path]],
    *,
    on_progress: Callable[[str], None] | None = None,
    **options: Any,
) -> list[EvaluationReport]:
    """Evaluate several question files, each asked of its own book; one report per book.

    Files asked of the same book are evaluated together (the book is indexed once).

    Args:
        pairs: (question file, book folder), in the order given.
        on_progress: as for `retrieval_evaluate`.
        options: passed to `retrieval_evaluate` (k, baselines, score_floor, embedder, ...).

    Raises:
        EvaluationError: a bad question file, a missing book, or an id in two files of
            the same book.
    """
    books: dict[Path, tuple[list[str], list[Question], dict[str, str]]] = {}
    for questions_file, book in pairs:
        files, questions, first = books.setdefault(Path(book).resolve(), ([], [], {}))
        files.append(str(questions_file))
        for question in questions_load(questions_file):
            if question.id in first:
                raise EvaluationError(
                    DUPLICATE_ACROSS_FILES_MESSAGE.format(
                        id=question.id, first=first[question.id], second=questions_file
                    )
                )
            first[question.id] = str(questions_file)
            questions.append(question)
    reports = []
    for book, (files, questions, _) in books.items():
        if on_progress:
            on_progress(f"{book}: {', '.join(files)}")
        reports.append(
            retrieval_evaluate(
                questions=questions,
                book_dir=book,
                question_files=files,
                on_progress=on_progress,
                **options,
            )
        )
    return reports
