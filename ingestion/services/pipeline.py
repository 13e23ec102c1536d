"""The ingestion run: a folder of Markdown/MDX pages into an incremental index.

`book_ingest` is the one entry point that does the work; the `ingest_book` command, the
API and the admin are thin callers (the latter two through `task_start`, which runs it
in a background thread of the serving process, the one that holds the embedded store).

Two threads: this one reads, chunks (`page_chunks`) and embeds pages (`EmbeddingCache`);
`_Writer` writes finished pages to the store and SQLite meanwhile.

The order of writes is what makes a crash harmless. For every new or changed page:
1. its vectors are computed (or taken from the `CachedEmbedding` cache) and cached;
2. its new points are upserted into the vector store;
3. its obsolete points (in the store, not among the new ids) are deleted;
4. SQLite (`Document`, `DocumentChunk`) is updated in one transaction.
Pages whose files were deleted lose their points only after every other page was
written. A kill between any two steps leaves each page searchable in its old or new
version, and the next run sees the SQLite row disagree with the file or the store and
finishes the job without embedding again (the vectors are cached in step 1).
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import logging
import os
import queue
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from ragsite.rag import providers, sentences, sparse
from ragsite.rag.config import get_config
from ragsite.rag.exceptions import BadRequest, DimensionMismatch, RagError
from ragsite.rag.types import Chunk, Embedder, Vector, VectorStore

from .. import chunking
from ..models import Document, DocumentChunk, IngestionTask
from ..sites import Site, book_site
from .cache import EmbeddingCache, cache_prune, embedder_key, sentence_misses_forget
from .discovery import BookFile, book_discover, book_target, ignore_patterns, in_scope
from .lifecycle import (
    _ACTIVE_HERE,
    _ACTIVE_LOCK,
    CANCELLED_MESSAGE,
    FileOutcome,
    ProgressCallback,
    Run,
    _process_token,
    task_create,
    task_finish,
)
from .pages import PageUnreadable, page_chunks

logger = logging.getLogger(__name__)

BOOK_DIR_MISSING_MESSAGE = "The book folder {path} does not exist."
NO_FILES_MESSAGE = "No .md or .mdx files found in {path}."
ALL_FILES_FAILED_MESSAGE = "None of the {count} files could be ingested."
READ_ERROR_MESSAGE = "could not be read: {error}"
# A run that embedded at least this many chunks hands its freed memory back to the system
# at the end (`memory_release`); a smaller one grew the heap too little to be worth it.
RELEASE_AFTER_EMBEDDINGS = 100


@dataclass(slots=True)
class _FileWork:
    """A page ready to be written: its chunks, their vectors and the point ids it replaces."""

    path: str
    sha: str
    signature: str
    title: str
    url: str
    chunks: list[Chunk]
    vectors: list[Vector]
    old_ids: set[str]
    action: str
    embedded: int


@dataclass(slots=True)
class _Removal:
    """A page to take out of the index (file deleted, now a draft)."""

    path: str
    ids: set[str]
    action: str  # deleted | skipped


@dataclass(slots=True)
class _Cleanup:
    """Stray points of an unchanged page (left by an interrupted run)."""

    path: str
    ids: set[str]
    chunks: int


@dataclass(slots=True)
class _Failure:
    """A page that could not be read; its previous version stays indexed."""

    path: str
    message: str


@dataclass(slots=True)
class _Plan:
    """What the embedding side knows about the index when the run starts."""

    store_ids: dict[str, set[str]]
    documents: dict[str, Document]
    signature: str
    chunk_ids: dict[str, set[str]] = field(default_factory=dict)


def _apply(item: Any, *, run: Run, store: VectorStore, dry_run: bool) -> None:
    """Write one item to the store then SQLite (or only count it in a dry run)."""
    now = timezone.now()
    if isinstance(item, _FileWork):
        new_ids = [c.id for c in item.chunks]
        obsolete = item.old_ids - set(new_ids)
        if not dry_run:
            if item.chunks:
                store.upsert(item.chunks, item.vectors)
            if obsolete:
                store.delete(sorted(obsolete))
            _document_replace(item=item, now=now)
        counter = {"new": "files_new"}.get(item.action, "files_changed")
        run.file_done(
            FileOutcome(item.path, item.action, chunks=len(item.chunks), embedded=item.embedded),
            **{counter: 1},
            chunks_added=len(set(new_ids) - item.old_ids),
            chunks_deleted=len(obsolete),
        )
    elif isinstance(item, _Cleanup):
        if not dry_run and item.ids:
            store.delete(sorted(item.ids))
        run.file_done(
            FileOutcome(item.path, "unchanged", chunks=item.chunks),
            files_unchanged=1,
            chunks_unchanged=item.chunks,
            chunks_deleted=len(item.ids),
        )
    elif isinstance(item, _Removal):
        if not dry_run:
            if item.ids:
                store.delete(sorted(item.ids))
            Document.objects.filter(path=item.path).delete()
        if item.action == "deleted":
            run.add(files_deleted=1, chunks_deleted=len(item.ids))
            run.removed(FileOutcome(item.path, "deleted", chunks=len(item.ids)))
        else:
            run.file_done(
                FileOutcome(item.path, "skipped", message="draft"),
                files_skipped=1,
                chunks_deleted=len(item.ids),
            )
    elif isinstance(item, _Failure):
        if not dry_run:
            Document.objects.update_or_create(
                path=item.path,
                defaults={"status": Document.Status.FAILED, "error": item.message},
                create_defaults={
                    "status": Document.Status.FAILED,
                    "error": item.message,
                    "title": PurePosixPath(item.path).stem,
                },
            )
        run.error(item.path, item.message)
        run.file_done(FileOutcome(item.path, "failed", message=item.message), files_failed=1)


def _document_replace(*, item: _FileWork, now) -> None:
    """Point SQLite at the page's new version (one transaction)."""
    with transaction.atomic():
        document, _ = Document.objects.update_or_create(
            path=item.path,
            defaults={
                "title": item.title[:500],
                "url": (item.url or "")[:2000],
                "content_sha256": item.sha,
                "signature": item.signature,
                "chunk_count": len(item.chunks),
                "token_count": sum(c.token_count for c in item.chunks),
                "status": Document.Status.INDEXED,
                "error": "",
                "last_ingested_at": now,
            },
        )
        DocumentChunk.objects.filter(document=document).delete()
        DocumentChunk.objects.bulk_create(
            DocumentChunk(
                id=c.id,
                document=document,
                position=c.position,
                content_hash=c.content_hash,
                token_count=c.token_count,
                heading=c.heading[:1000],
            )
            for c in item.chunks
        )


class _Writer:
    """A thread that writes finished pages while the next page is being embedded.

    Embedding (onnxruntime) releases the GIL, so store and SQLite writes overlap with it.
    The queue is short: the embedder never runs far ahead of what is safely written.
    """

    def __init__(self, *, run: Run, store: VectorStore, dry_run: bool):
        self.run = run
        self.store = store
        self.dry_run = dry_run
        self.error: BaseException | None = None
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.thread = threading.Thread(target=self._loop, name="ingest-writer", daemon=True)
        self.thread.start()

    def put(self, item: Any) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _loop(self) -> None:
        try:
            while (item := self.queue.get()) is not None:
                if self.error is None:
                    try:
                        _apply(item, run=self.run, store=self.store, dry_run=self.dry_run)
                    except BaseException as exc:  # handed to the embedding thread
                        self.error = exc
        finally:
            connection.close()


def _signature(*, config, embedder: Embedder, site: Site) -> str:
    """Hash of everything besides the file that shapes a page's chunks and vectors.

    `chunking.CHUNKER_VERSION` is part of it: a chunker change re-chunks every page
    (and, through the cache, embeds only the chunk texts that changed); so is
    `sentences.SENTENCES_VERSION`: a change of the answerer's sentences embeds every
    chunk again, for its sentence vectors; and `sparse.SPARSE_VERSION`: a change of the
    BM25 terms encodes every chunk's sparse vector again.
    """
    parts = (
        f"chunker-{chunking.CHUNKER_VERSION}",
        f"sentences-{sentences.SENTENCES_VERSION}",
        f"sparse-{sparse.SPARSE_VERSION}",
        config.chunk_tokens,
        config.chunk_overlap_tokens,
        config.site_url,
        config.site_docs_prefix,
        embedder_key(embedder),
        site.identity,
    )
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()


def _plan(*, store: VectorStore, scope: str, dry_run: bool, signature: str) -> _Plan:
    """Read what the store and SQLite hold for the pages in scope."""
    if dry_run and store.count() == 0:
        store_ids: dict[str, set[str]] = {}
    else:
        store_ids = {p: set(ids) for p, ids in store.ids_by_path().items() if in_scope(p, scope)}
    documents = {d.path: d for d in Document.objects.all() if in_scope(d.path, scope)}
    plan = _Plan(store_ids=store_ids, documents=documents, signature=signature)
    for chunk_id, path in DocumentChunk.objects.values_list("id", "document__path"):
        if path in documents:
            plan.chunk_ids.setdefault(path, set()).add(chunk_id)
    return plan


def _ingest(
    *,
    run: Run,
    book_dir: Path,
    scope: str,
    force: bool,
    dry_run: bool,
    embedder: Embedder,
    store: VectorStore,
) -> None:
    config = get_config()
    if not book_dir.is_dir():
        raise BadRequest(BOOK_DIR_MISSING_MESSAGE.format(path=book_dir))
    files = book_discover(
        book_dir=book_dir,
        path=scope or None,
        ignore=ignore_patterns(book_dir=book_dir, extra=config.ingest_ignore),
    )
    if not files:
        raise BadRequest(NO_FILES_MESSAGE.format(path=book_dir / scope if scope else book_dir))
    run.task.files_total = len(files)
    run.save()
    site = book_site(book_dir=book_dir, config=config)
    logger.info("site generator: %s", site.describe())

    if not dry_run:
        try:
            store.ensure_collection(dimension=embedder.dimension)
        except DimensionMismatch as exc:  # the embedder changed: only a forced run may rebuild
            if not force:
                raise
            logger.warning(
                "embedder changed: dropping the collection to rebuild it (%s)", exc.message
            )
            store.drop()
            store.ensure_collection(dimension=embedder.dimension)
    plan = _plan(
        store=store,
        scope=scope,
        dry_run=dry_run,
        signature=_signature(config=config, embedder=embedder, site=site),
    )
    vectors = EmbeddingCache(
        run=run,
        embedder=embedder,
        force=force,
        dry_run=dry_run,
        batch_size=config.embedding_batch_size,
    )
    writer = _Writer(run=run, store=store, dry_run=dry_run)
    try:
        for book_file in files:
            item = _prepare(
                book_file=book_file,
                plan=plan,
                vectors=vectors,
                force=force,
                config=config,
                site=site,
            )
            writer.put(item)
        present = {f.path for f in files}
        gone = (set(plan.documents) | set(plan.store_ids)) - present
        for path in sorted(gone):
            ids = plan.store_ids.get(path, set()) | plan.chunk_ids.get(path, set())
            writer.put(_Removal(path=path, ids=ids, action="deleted"))
    finally:
        writer.close()
    if not dry_run and not scope:
        cache_prune()


def _prepare(
    *, book_file: BookFile, plan: _Plan, vectors: EmbeddingCache, force: bool, config, site: Site
) -> Any:
    """Decide what to do with one page and compute its vectors; return the writer's item."""
    path = book_file.path
    try:
        data = book_file.abs_path.read_bytes()
    except OSError as exc:
        return _Failure(path, READ_ERROR_MESSAGE.format(error=exc.strerror or exc))
    sha = hashlib.sha256(data).hexdigest()
    document = plan.documents.get(path)
    expected = plan.chunk_ids.get(path, set())
    present = plan.store_ids.get(path, set())
    action = "new" if document is None or not document.content_sha256 else "changed"
    if (
        not force
        and document is not None
        and document.content_sha256 == sha
        and document.signature == plan.signature
        and document.status == Document.Status.INDEXED
    ):
        if expected <= present:
            return _Cleanup(path=path, ids=present - expected, chunks=len(expected))
        action = "repaired"  # SQLite knows the page but some of its points are missing
    try:
        page = page_chunks(path=path, data=data, site=site, config=config)
    except PageUnreadable as exc:
        return _Failure(path, str(exc))
    if page.draft:
        return _Removal(path=path, ids=present | expected, action="skipped")
    chunk_vectors, embedded, _ = vectors.for_chunks(page.chunks)
    return _FileWork(
        path=path,
        sha=sha,
        signature=plan.signature,
        title=page.title,
        url=page.url,
        chunks=page.chunks,
        vectors=chunk_vectors,
        old_ids=present | expected,
        action=action,
        embedded=embedded,
    )


def book_ingest(
    *,
    book_dir: Path,
    path: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    source: str,
    task: IngestionTask | None = None,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
    on_progress: ProgressCallback | None = None,
) -> IngestionTask:
    """Bring the index up to date with the book folder; return the finished task.

    Args:
        book_dir: the book's root folder; document paths are relative to it.
        path: a folder or file inside `book_dir` to limit the run to (deletions too).
        force: embed every chunk again (ignore the cache) and rewrite every page.
        dry_run: count what would change; embed nothing, write nothing but the task.
        source: "manage.py", "api" or "admin".
        task: a task from `task_create` to run; a new one is created when None.
        embedder, store: collaborators; default to `ragsite.rag.providers`.
        on_progress: called with the task and a `FileOutcome` after each page.

    Returns:
        The task, `succeeded` (failed pages are listed in `errors`) or `failed` (nothing
        could be ingested, or an error stopped the run: its message is in `errors`).

    Raises:
        IngestionRunning: `task` is None and another ingestion is active.
        PathOutsideBook / BadRequest: `path` is not inside `book_dir` (when `task` is None).
    """
    book_dir = Path(book_dir).resolve()
    if task is None:
        scope = book_target(book_dir=book_dir, path=path).scope
        task = task_create(
            source=source, book_dir=book_dir, path=scope, force=force, dry_run=dry_run
        )
    else:
        scope = task.path or ""
        task.force, task.dry_run = force, dry_run
    run = Run(task, on_progress)
    try:
        task.status = IngestionTask.Status.RUNNING
        task.started_at = timezone.now()
        task.pid = os.getpid()
        task.hostname = socket.gethostname()
        task.process_token = _process_token(task.pid) or ""
        task.save()
        logger.info(
            "ingestion %s: %s%s (force=%s, dry_run=%s)",
            task.id,
            task.book_dir,
            f"/{scope}" if scope else "",
            force,
            dry_run,
        )
        try:
            _ingest(
                run=run,
                book_dir=book_dir,
                scope=scope,
                force=force,
                dry_run=dry_run,
                embedder=embedder or providers.get_ingestion_embedder(),
                store=store or providers.get_store(),
            )
        except KeyboardInterrupt:  # Ctrl+C on the command: record it, then let it stop the process
            run.error("", CANCELLED_MESSAGE)
            task_finish(run, IngestionTask.Status.CANCELLED)
            raise
        except Exception as exc:
            message = exc.message if isinstance(exc, RagError) else f"{type(exc).__name__}: {exc}"
            if isinstance(exc, RagError):
                logger.error("ingestion %s failed: %s", task.id, message)
            else:
                logger.exception("ingestion %s failed", task.id)
            run.error("", message)
            task.status = IngestionTask.Status.FAILED
        else:
            if task.files_total and task.files_failed == task.files_total:
                run.error("", ALL_FILES_FAILED_MESSAGE.format(count=task.files_total))
                task.status = IngestionTask.Status.FAILED
            else:
                task.status = IngestionTask.Status.SUCCEEDED
        task_finish(run, task.status)
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE_HERE.discard(str(task.id))
        if task.embeddings_computed and not task.dry_run:
            sentence_misses_forget()  # the new chunks' vectors are there to be read now
        if task.embeddings_computed >= RELEASE_AFTER_EMBEDDINGS:
            memory_release()
    logger.info(
        "ingestion %s %s in %.1fs: %d files (%d new, %d changed, %d unchanged, %d deleted, %d failed), "
        "%d chunks added, %d deleted, %d embeddings computed",
        task.id,
        task.status,
        task.duration_s,
        task.files_total,
        task.files_new,
        task.files_changed,
        task.files_unchanged,
        task.files_deleted,
        task.files_failed,
        task.chunks_added,
        task.chunks_deleted,
        task.embeddings_computed,
    )
    return task


def memory_release() -> None:
    """Give what the run held back to the system: collect cycles, then trim glibc's heap.

    A full ingest allocates and frees hundreds of MB (pages, chunks, vectors, query
    results); glibc keeps freed memory in its heap unless asked, and a serving process
    would stay at its peak.
    """
    gc.collect()
    try:
        trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only
    except OSError:
        return
    if trim is not None:
        trim(0)
