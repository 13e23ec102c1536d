"""Ingestion services: turn a folder of Markdown/MDX pages into an incremental index.

`book_ingest` is the one entry point that does the work; the `ingest_book` command, the
API and the admin are thin callers (the latter two through `task_start`, which runs it
in a background thread of the serving process, the one that holds the embedded store).

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

import asyncio
import fnmatch
import hashlib
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from ragsite import observability as metrics
from ragsite.rag import providers
from ragsite.rag.config import get_config
from ragsite.rag.exceptions import (
    BadRequest,
    DimensionMismatch,
    EmbeddingError,
    IngestionQueueUnavailable,
    IngestionRunning,
    PathOutsideBook,
    RagError,
)
from ragsite.rag.types import Chunk, Embedder, Vector, VectorStore

from .models import CachedEmbedding, Document, DocumentChunk, IngestionTask
from .sites import Site, book_site

logger = logging.getLogger(__name__)

BOOK_SUFFIXES = (".md", ".mdx")
SKIPPED_DIR_NAMES = frozenset({"node_modules", "__pycache__"})
IGNORE_FILE_NAME = ".ragsiteignore"
# Cached vectors no chunk uses any more are kept this long: a page removed and later
# restored (or moved between runs) is still not embedded again.
CACHE_KEEP_DAYS = 30
# A task of another host that has not saved progress for this long is considered dead.
OTHER_HOST_STALE_AFTER = timedelta(minutes=30)
# The `hostname` of a task queued for a Celery worker that has not claimed it yet.
QUEUE_OWNER = "(queued for a worker)"
QUEUE_UNAVAILABLE_MESSAGE = (
    "The ingestion queue (CELERY_BROKER_URL) is unreachable; the task was not queued."
)

PATH_OUTSIDE_BOOK_MESSAGE = "The path must be a folder or file inside the book folder."
PATH_NOT_FOUND_MESSAGE = "No such folder or file in the book: {path}"
BOOK_DIR_MISSING_MESSAGE = "The book folder {path} does not exist."
NO_FILES_MESSAGE = "No .md or .mdx files found in {path}."
ALL_FILES_FAILED_MESSAGE = "None of the {count} files could be ingested."
INGESTION_RUNNING_MESSAGE = "An ingestion is already running (task {task_id})."
STALE_TASK_MESSAGE = "interrupted: the process running it stopped"
CANCELLED_MESSAGE = "cancelled: interrupted by the user; the pages written so far stay indexed"
READ_ERROR_MESSAGE = "could not be read: {error}"

# Set by task_create and cleared when the run ends: tasks this process owns. A task row
# with this process's pid and start time but absent here belongs to an earlier process
# that happened to have the same pid.
_ACTIVE_HERE: set[str] = set()
_ACTIVE_LOCK = threading.Lock()


# --- paths and discovery ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookFile:
    """A page found in the book folder."""

    path: str  # posix, relative to the book folder
    abs_path: Path


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What one ingestion did to one page (passed to `on_progress`)."""

    path: str
    action: str  # new | changed | repaired | unchanged | deleted | skipped | failed
    chunks: int = 0
    embedded: int = 0
    message: str = ""


def book_path_resolve(*, book_dir: Path, path: str | None) -> Path:
    """Return the absolute, symlink-resolved path of `path` inside `book_dir`.

    Raises:
        PathOutsideBook: the path is absolute, has a `..` part, or resolves (through a
            symlink) outside the book folder.
        BadRequest: the path does not exist.
    """
    root = Path(book_dir).resolve()
    if path is None or path.strip() in {"", "."}:
        return root
    raw = path.strip().replace("\\", "/")
    candidate = PurePosixPath(raw)
    if candidate.is_absolute() or ".." in candidate.parts or ":" in candidate.parts[0]:
        raise PathOutsideBook(PATH_OUTSIDE_BOOK_MESSAGE, details={"path": path})
    resolved = (root / Path(*candidate.parts)).resolve()
    if not resolved.is_relative_to(root):
        raise PathOutsideBook(PATH_OUTSIDE_BOOK_MESSAGE, details={"path": path})
    if not resolved.exists():
        raise BadRequest(PATH_NOT_FOUND_MESSAGE.format(path=raw), details={"path": path})
    return resolved


def resolve_book_path(path: str | None) -> Path:
    """Return `path` (relative to BOOK_DIR) as an absolute path inside BOOK_DIR.

    Raises:
        PathOutsideBook: absolute, `..` or symlink escape (HTTP 400).
        BadRequest: no such folder or file in the book.
    """
    return book_path_resolve(book_dir=get_config().book_dir, path=path)


def ignore_patterns(*, book_dir: Path, extra: Iterable[str] = ()) -> list[str]:
    """Return the ignore globs: `extra` (INGEST_IGNORE) plus the book's `.ragsiteignore` lines."""
    patterns = [p.strip() for p in extra if p.strip()]
    ignore_file = Path(book_dir) / IGNORE_FILE_NAME
    if ignore_file.is_file():
        for line in ignore_file.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                patterns.append(line)
    return patterns


def _ignored(rel: str, patterns: Sequence[str], *, is_dir: bool) -> bool:
    """True when a glob matches the relative path or its name (`dir/` globs match folders only)."""
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        dir_only = pattern.endswith("/")
        glob = pattern.strip("/")
        if not glob or (dir_only and not is_dir):
            continue
        if fnmatch.fnmatchcase(rel, glob) or fnmatch.fnmatchcase(name, glob):
            return True
    return False


def book_discover(
    *, book_dir: Path, path: str | None = None, ignore: Sequence[str] = ()
) -> list[BookFile]:
    """Return every .md/.mdx page under `book_dir` (or its sub-path), sorted by path.

    Hidden files and folders, `node_modules`, files matching an ignore glob and
    symlinks pointing outside the book are skipped.
    """
    root = Path(book_dir).resolve()
    start = book_path_resolve(book_dir=root, path=path)
    found: list[BookFile] = []
    is_page = book_site(book_dir=root, config=get_config()).is_page  # SUMMARY.md, _partials

    def consider(abs_path: Path) -> None:
        rel = abs_path.relative_to(root).as_posix()
        if abs_path.name.startswith(".") or not abs_path.name.lower().endswith(BOOK_SUFFIXES):
            return
        if _ignored(rel, ignore, is_dir=False) or not is_page(rel):
            return
        if not abs_path.resolve().is_relative_to(root) or not abs_path.is_file():
            logger.warning("skipping %s: it points outside the book folder", rel)
            return
        found.append(BookFile(path=rel, abs_path=abs_path))

    if start.is_file():
        consider(start)
        return found
    for dirpath, dirnames, filenames in os.walk(start):
        here = Path(dirpath)
        kept = []
        for name in sorted(dirnames):
            rel_dir = (here / name).relative_to(root).as_posix()
            if (
                name.startswith(".")
                or name in SKIPPED_DIR_NAMES
                or _ignored(rel_dir, ignore, is_dir=True)
            ):
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            consider(here / name)
    found.sort(key=lambda f: f.path)
    return found


def _in_scope(path: str, scope: str) -> bool:
    return not scope or path == scope or path.startswith(scope + "/")


def _display_dir(book_dir: Path) -> str:
    """The book folder as users know it: relative to the project when inside it."""
    base = Path(settings.BASE_DIR).resolve()
    book_dir = Path(book_dir).resolve()
    return book_dir.relative_to(base).as_posix() if book_dir.is_relative_to(base) else str(book_dir)


# --- tasks -----------------------------------------------------------------------------------


def _process_token(pid: int) -> str | None:
    """Return an identity of a live process (boot id + start time), None if it is gone."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None  # /proc works, the process does not exist
    except OSError:
        pass
    else:
        # The command name may contain spaces and parentheses; fields restart after the last ")".
        start_time = stat.rsplit(")", 1)[1].split()[19]
        return f"{boot_id}:{start_time}"
    try:  # no /proc: the best we can do is "a process with this pid exists"
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return f"pid:{pid}"


def _task_alive(task: IngestionTask, *, host: str, now) -> bool:
    if task.hostname != host:
        return now - task.updated_at < OTHER_HOST_STALE_AFTER
    if task.pid is None:
        return False
    if task.pid == os.getpid():
        with _ACTIVE_LOCK:
            return str(task.id) in _ACTIVE_HERE
    token = _process_token(task.pid)
    return token is not None and token == task.process_token


def tasks_fail_stale() -> int:
    """Mark queued/running tasks whose process is gone as failed; return how many.

    Called by `task_start`, the `ingest_book` command and the serve command at start-up.
    """
    now = timezone.now()
    host = socket.gethostname()
    failed = 0
    for task in IngestionTask.objects.filter(status__in=IngestionTask.ACTIVE):
        if _task_alive(task, host=host, now=now):
            continue
        started = task.started_at or task.created_at
        failed += IngestionTask.objects.filter(pk=task.pk, status__in=IngestionTask.ACTIVE).update(
            status=IngestionTask.Status.FAILED,
            finished_at=now,
            duration_s=round((now - started).total_seconds(), 3),
            errors=[*task.errors, {"path": "", "message": STALE_TASK_MESSAGE}],
            updated_at=now,
        )
        logger.warning("ingestion task %s marked failed: %s", task.id, STALE_TASK_MESSAGE)
    return failed


def task_create(
    *,
    source: str,
    book_dir: Path,
    path: str = "",
    force: bool = False,
    dry_run: bool = False,
) -> IngestionTask:
    """Create a queued task owned by this process, unless another ingestion is active.

    The check and the insert run in one SQLite IMMEDIATE transaction (settings), so two
    concurrent callers are serialised and the second one sees the first task.

    Raises:
        IngestionRunning: a (non dry-run) task is queued or running; `details.task_id` names it.
    """
    pid = os.getpid()
    try:
        with transaction.atomic():
            if not dry_run:
                _raise_if_active()
            task = IngestionTask.objects.create(
                source=source,
                book_dir=_display_dir(book_dir),
                path=path or "",
                force=force,
                dry_run=dry_run,
                pid=pid,
                hostname=socket.gethostname(),
                process_token=_process_token(pid) or "",
            )
    except IntegrityError:  # another process inserted its task between our check and insert
        _raise_if_active()
        raise
    with _ACTIVE_LOCK:
        _ACTIVE_HERE.add(str(task.id))
    return task


def _raise_if_active() -> None:
    active = (
        IngestionTask.objects.filter(status__in=IngestionTask.ACTIVE, dry_run=False)
        .order_by("created_at")
        .first()
    )
    if active is not None:
        raise IngestionRunning(
            INGESTION_RUNNING_MESSAGE.format(task_id=active.id),
            details={"task_id": str(active.id)},
        )


def task_start(*, source: str, path: str | None = None, force: bool = False) -> IngestionTask:
    """Start an ingestion of BOOK_DIR (or its sub-path) in a background thread of this process.

    Returns the queued task at once; poll it with `ingestion.selectors.task_get`.

    Raises:
        PathOutsideBook / BadRequest: `path` escapes BOOK_DIR or does not exist.
        IngestionRunning: another ingestion is queued or running.
    """
    book_dir = get_config().book_dir.resolve()
    target = resolve_book_path(path)
    rel = "" if target == book_dir else target.relative_to(book_dir).as_posix()
    tasks_fail_stale()
    task = task_create(source=source, book_dir=book_dir, path=rel, force=force)
    task_dispatch(task=task, book_dir=book_dir)
    return task


def ingest_queue() -> str:
    """Return where ingestions run: "celery" (a worker process) or "thread" (this one)."""
    if settings.INGEST_QUEUE != "auto":
        return settings.INGEST_QUEUE
    return "celery" if settings.QDRANT_URL and settings.CELERY_BROKER_URL else "thread"


def task_dispatch(*, task: IngestionTask, book_dir: Path) -> None:
    """Run a queued task: in a background thread here, or by a Celery worker.

    A queued Celery task belongs to no process until a worker claims it (`task_run`), so
    it is marked as owned by the queue: `tasks_fail_stale` then treats it like a task of
    another host, failing it only when it has made no progress for OTHER_HOST_STALE_AFTER.

    Raises:
        IngestionQueueUnavailable: the broker refused the task (it is marked failed).
    """
    if ingest_queue() == "celery":
        from ragsite.celery import app

        from .tasks import INGEST_TASK_NAME

        with _ACTIVE_LOCK:
            _ACTIVE_HERE.discard(str(task.id))
        IngestionTask.objects.filter(pk=task.pk).update(hostname=QUEUE_OWNER, pid=None)
        try:
            app.send_task(
                INGEST_TASK_NAME, kwargs={"task_id": str(task.id), "book_dir": str(book_dir)}
            )
        except Exception as exc:  # kombu raises many kinds of connection errors
            logger.warning("ingestion task %s could not be queued: %s", task.id, exc)
            _task_fail(task.id, QUEUE_UNAVAILABLE_MESSAGE)
            raise IngestionQueueUnavailable(QUEUE_UNAVAILABLE_MESSAGE) from None
        logger.info("ingestion task %s queued for a worker (source %s)", task.id, task.source)
        return
    thread = threading.Thread(
        target=task_run,
        kwargs={"task_id": task.id, "book_dir": book_dir},
        name=f"ingest-{task.id}",
        daemon=True,
    )
    thread.start()
    logger.info("ingestion task %s started in the background (source %s)", task.id, task.source)


def _task_fail(task_id, message: str) -> None:
    now = timezone.now()
    IngestionTask.objects.filter(pk=task_id, status__in=IngestionTask.ACTIVE).update(
        status=IngestionTask.Status.FAILED,
        finished_at=now,
        errors=[{"path": "", "message": message}],
        updated_at=now,
    )


def _task_claim(task_id) -> IngestionTask | None:
    """Make this process the owner of a queued task; None when it is no longer queued."""
    pid = os.getpid()
    claimed = IngestionTask.objects.filter(pk=task_id, status=IngestionTask.Status.QUEUED).update(
        pid=pid,
        hostname=socket.gethostname(),
        process_token=_process_token(pid) or "",
        updated_at=timezone.now(),
    )
    if not claimed:
        return None
    with _ACTIVE_LOCK:
        _ACTIVE_HERE.add(str(task_id))
    return IngestionTask.objects.get(pk=task_id)


def task_run(*, task_id, book_dir: Path) -> str:
    """Run a queued task in this process (a background thread or a Celery worker).

    Returns the task's final status ("skipped" when it was no longer queued, e.g. failed
    as stale before a busy worker got to it). Releases this thread's DB connection.
    """
    try:
        task = _task_claim(task_id)
        if task is None:
            logger.warning("ingestion task %s is no longer queued; not run", task_id)
            return "skipped"
        task = book_ingest(
            book_dir=Path(book_dir),
            path=task.path or None,
            force=task.force,
            source=task.source,
            task=task,
        )
        return task.status
    except Exception:  # book_ingest records its own failures; this is a last resort
        logger.exception("ingestion task %s crashed", task_id)
        IngestionTask.objects.filter(pk=task_id, status__in=IngestionTask.ACTIVE).update(
            status=IngestionTask.Status.FAILED, finished_at=timezone.now()
        )
        return IngestionTask.Status.FAILED
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE_HERE.discard(str(task_id))
        connection.close()


# --- the run ---------------------------------------------------------------------------------

_COUNTERS = (
    "files_total",
    "files_done",
    "files_new",
    "files_changed",
    "files_unchanged",
    "files_failed",
    "files_deleted",
    "files_skipped",
    "chunks_added",
    "chunks_deleted",
    "chunks_unchanged",
    "embeddings_computed",
    "embeddings_reused",
    "tokens_embedded",
)


class _Run:
    """The task's counters, shared by the embedding thread and the writer thread."""

    def __init__(
        self, task: IngestionTask, on_progress: Callable[[IngestionTask, FileOutcome], None] | None
    ):
        self.task = task
        self.on_progress = on_progress
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._partial = 0.0  # fraction of the file being embedded
        self.started = time.monotonic()

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self.task, name, getattr(self.task, name) + value)

    def error(self, path: str, message: str) -> None:
        with self._lock:
            self.task.errors = [*self.task.errors, {"path": path, "message": message}]

    def partial(self, fraction: float) -> None:
        self._partial = min(max(fraction, 0.0), 1.0)
        self.save()

    def file_done(self, outcome: FileOutcome, **counts: int) -> None:
        self.add(files_done=1, **counts)
        self._partial = 0.0
        self.save()
        if self.on_progress is not None:
            with self._lock:
                self.on_progress(self.task, outcome)

    def removed(self, outcome: FileOutcome) -> None:
        self.save()
        if self.on_progress is not None:
            with self._lock:
                self.on_progress(self.task, outcome)

    def save(self) -> None:
        """Write the counters, progress and heartbeat (one UPDATE)."""
        with self._save_lock:
            with self._lock:
                task = self.task
                if task.files_total:
                    done = min(task.files_done + self._partial, task.files_total)
                    task.progress = round(0.99 * done / task.files_total, 4)
                task.duration_s = round(time.monotonic() - self.started, 3)
                values: dict[str, Any] = {name: getattr(task, name) for name in _COUNTERS}
                values.update(
                    progress=task.progress, errors=list(task.errors), duration_s=task.duration_s
                )
            values["updated_at"] = timezone.now()
            IngestionTask.objects.filter(pk=task.pk).update(**values)


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


def _apply(item: Any, *, run: _Run, store: VectorStore, dry_run: bool) -> None:
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

    def __init__(self, *, run: _Run, store: VectorStore, dry_run: bool):
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


def _embedder_key(embedder: Embedder) -> str:
    return f"{embedder.provider}:{embedder.model}:{embedder.dimension}"


def _embed(embedder: Embedder, texts: list[str]) -> list[Vector]:
    embed_sync = getattr(embedder, "embed_sync", None)
    vectors = embed_sync(texts) if embed_sync is not None else asyncio.run(embedder.embed(texts))
    vectors = [list(v) for v in vectors]
    if len(vectors) != len(texts) or any(len(v) != embedder.dimension for v in vectors):
        raise EmbeddingError("The embedder returned vectors of an unexpected shape.")
    return vectors


def _batched(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Vectors:
    """Gives each chunk a vector: from the cache when its text was embedded before, else computed."""

    def __init__(
        self, *, run: _Run, embedder: Embedder, force: bool, dry_run: bool, batch_size: int
    ):
        self.run = run
        self.embedder = embedder
        self.key = _embedder_key(embedder)
        self.force = force
        self.dry_run = dry_run
        self.batch_size = batch_size
        self.fresh: set[str] = set()  # hashes embedded during this run (trusted even with force)

    def cached(self, hashes: Sequence[str]) -> dict[str, Vector]:
        """Return the cached vectors of these hashes (force: only those embedded in this run)."""
        wanted = [h for h in hashes if not self.force or h in self.fresh]
        found: dict[str, Vector] = {}
        for batch in _batched(wanted, 500):
            for row in CachedEmbedding.objects.filter(
                embedder=self.key, content_hash__in=batch
            ).only("content_hash", "vector"):
                found[row.content_hash] = row.unpack()
        return found

    def for_chunks(self, chunks: Sequence[Chunk]) -> tuple[list[Vector], int, int]:
        """Return (vectors in chunk order, embeddings computed, vectors reused)."""
        texts: dict[str, str] = {}
        tokens: dict[str, int] = {}
        for chunk in chunks:
            texts.setdefault(chunk.content_hash, chunk.text)
            tokens.setdefault(chunk.content_hash, chunk.token_count)
        if self.dry_run:  # count, do not compute
            known = set(self.cached(list(texts))) | (self.fresh & set(texts))
            todo = [h for h in texts if h not in known]
            self.fresh.update(todo)
            self.run.add(embeddings_computed=len(todo), embeddings_reused=len(texts) - len(todo))
            return [], len(todo), len(texts) - len(todo)
        vectors = self.cached(list(texts))
        reused = len(vectors)
        if reused and not self.force:
            CachedEmbedding.objects.filter(
                embedder=self.key, content_hash__in=list(vectors)
            ).update(last_used_at=timezone.now())
        todo = [h for h in texts if h not in vectors]
        done = 0
        for batch in _batched(todo, self.batch_size):
            computed = _embed(self.embedder, [texts[h] for h in batch])
            now = timezone.now()
            CachedEmbedding.objects.bulk_create(
                [
                    CachedEmbedding(
                        content_hash=h,
                        embedder=self.key,
                        dimension=self.embedder.dimension,
                        vector=CachedEmbedding.pack(v),
                        created_at=now,
                        last_used_at=now,
                    )
                    for h, v in zip(batch, computed, strict=True)
                ],
                update_conflicts=True,
                unique_fields=["embedder", "content_hash"],
                update_fields=["vector", "dimension", "last_used_at"],
            )
            vectors.update(zip(batch, computed, strict=True))
            self.fresh.update(batch)
            done += len(batch)
            self.run.add(
                embeddings_computed=len(batch), tokens_embedded=sum(tokens[h] for h in batch)
            )
            self.run.partial(done / len(todo))
        self.run.add(embeddings_reused=reused)
        return [vectors[c.content_hash] for c in chunks], len(todo), reused


def _signature(*, config, embedder: Embedder, site: Site) -> str:
    """Hash of everything besides the file that shapes a page's chunks and vectors."""
    parts = (
        config.chunk_tokens,
        config.chunk_overlap_tokens,
        config.site_url,
        config.site_docs_prefix,
        _embedder_key(embedder),
        site.identity,
    )
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()


def _plan(*, store: VectorStore, scope: str, dry_run: bool, signature: str) -> _Plan:
    """Read what the store and SQLite hold for the pages in scope."""
    if dry_run and store.count() == 0:
        store_ids: dict[str, set[str]] = {}
    else:
        store_ids = {p: set(ids) for p, ids in store.ids_by_path().items() if _in_scope(p, scope)}
    documents = {d.path: d for d in Document.objects.all() if _in_scope(d.path, scope)}
    plan = _Plan(store_ids=store_ids, documents=documents, signature=signature)
    for chunk_id, path in DocumentChunk.objects.values_list("id", "document__path"):
        if path in documents:
            plan.chunk_ids.setdefault(path, set()).add(chunk_id)
    return plan


def _unique_chunks(path: str, chunks: Sequence[Chunk]) -> list[Chunk]:
    seen: set[str] = set()
    unique = []
    for chunk in chunks:
        if chunk.id in seen:
            logger.warning("%s: duplicate chunk id %s dropped", path, chunk.id)
            continue
        seen.add(chunk.id)
        unique.append(chunk)
    return unique


def _ingest(
    *,
    run: _Run,
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
    vectors = _Vectors(
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
        _cache_prune()


def _prepare(
    *, book_file: BookFile, plan: _Plan, vectors: _Vectors, force: bool, config, site: Site
) -> Any:
    """Decide what to do with one page and compute its vectors; return the writer's item."""
    # Imported here: the serving process imports this module for its views, and only
    # an ingestion needs the Markdown parser.
    from .chunking import build_chunks
    from .markdown import PageError, decode_page

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
        text = decode_page(data)
        page, chunks = build_chunks(
            path=path,
            text=text,
            site_url=config.site_url,
            docs_prefix=config.site_docs_prefix,
            max_tokens=config.chunk_tokens,
            overlap_tokens=config.chunk_overlap_tokens,
            site=site,
        )
    except (PageError, ValueError) as exc:  # ValueError: CHUNK_TOKENS too small for the page
        return _Failure(path, str(exc))
    if page.draft:
        return _Removal(path=path, ids=present | expected, action="skipped")
    chunks = _unique_chunks(path, chunks)
    chunk_vectors, embedded, _ = vectors.for_chunks(chunks)
    return _FileWork(
        path=path,
        sha=sha,
        signature=plan.signature,
        title=page.title or PurePosixPath(path).stem,
        url=page.url or "",
        chunks=chunks,
        vectors=chunk_vectors,
        old_ids=present | expected,
        action=action,
        embedded=embedded,
    )


def _cache_prune() -> int:
    """Delete cached vectors that no chunk uses and nobody used for CACHE_KEEP_DAYS."""
    cutoff = timezone.now() - timedelta(days=CACHE_KEEP_DAYS)
    used = DocumentChunk.objects.filter(content_hash=OuterRef("content_hash"))
    deleted, _ = (
        CachedEmbedding.objects.filter(last_used_at__lt=cutoff).exclude(Exists(used)).delete()
    )
    return deleted


def _task_finish(run: _Run, status: str) -> None:
    """Save the task's final status, counters and timings."""
    task = run.task
    run.save()
    task.status = status
    task.finished_at = timezone.now()
    task.duration_s = round(time.monotonic() - run.started, 3)
    if status == IngestionTask.Status.SUCCEEDED:
        task.progress = 1.0
    task.save()
    if not task.dry_run:
        metrics.ingestion_finished(task)


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
    on_progress: Callable[[IngestionTask, FileOutcome], None] | None = None,
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
        target = book_path_resolve(book_dir=book_dir, path=path)
        scope = "" if target == book_dir else target.relative_to(book_dir).as_posix()
        task = task_create(
            source=source, book_dir=book_dir, path=scope, force=force, dry_run=dry_run
        )
    else:
        scope = task.path or ""
        task.force, task.dry_run = force, dry_run
    run = _Run(task, on_progress)
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
                embedder=embedder or providers.get_embedder(),
                store=store or providers.get_store(),
            )
        except KeyboardInterrupt:  # Ctrl+C on the command: record it, then let it stop the process
            run.error("", CANCELLED_MESSAGE)
            _task_finish(run, IngestionTask.Status.CANCELLED)
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
        _task_finish(run, task.status)
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE_HERE.discard(str(task.id))
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
