"""Ingestion services, one module per concern; the public names are re-exported here.

- `discovery`: where a path points inside the book (`book_target`), ignore globs, pages.
- `pages`: one page's bytes to its chunks (`page_chunks`), shared with the evaluation app.
- `lifecycle`: the `IngestionTask` lifecycle (create, dispatch to a thread or a Celery worker, fail stale, finish).
- `cache`: the embedding cache (`EmbeddingCache`, `cache_prune`).
- `pipeline`: the run itself (`book_ingest`), embedding and writing on two threads.
"""

from .cache import CACHE_KEEP_DAYS, EmbeddingCache, cache_prune, embedder_key
from .discovery import (
    BOOK_SUFFIXES,
    FILE_OUTSIDE_BOOK_MESSAGE,
    IGNORE_FILE_NAME,
    PATH_MISSING_MESSAGE,
    PATH_NOT_FOUND_MESSAGE,
    PATH_OUTSIDE_BOOK_MESSAGE,
    BookFile,
    BookTarget,
    book_discover,
    book_target,
    ignore_patterns,
)
from .lifecycle import (
    CANCELLED_MESSAGE,
    INGESTION_RUNNING_MESSAGE,
    QUEUE_OWNER,
    QUEUE_UNAVAILABLE_MESSAGE,
    STALE_TASK_MESSAGE,
    FileOutcome,
    ProgressCallback,
    ingest_queue,
    task_create,
    task_dispatch,
    task_run,
    task_start,
    tasks_fail_stale,
)
from .pages import PageChunks, PageUnreadable, page_chunks
from .pipeline import (
    ALL_FILES_FAILED_MESSAGE,
    BOOK_DIR_MISSING_MESSAGE,
    NO_FILES_MESSAGE,
    READ_ERROR_MESSAGE,
    book_ingest,
)

__all__ = [
    "ALL_FILES_FAILED_MESSAGE",
    "BOOK_DIR_MISSING_MESSAGE",
    "BOOK_SUFFIXES",
    "CACHE_KEEP_DAYS",
    "CANCELLED_MESSAGE",
    "FILE_OUTSIDE_BOOK_MESSAGE",
    "IGNORE_FILE_NAME",
    "INGESTION_RUNNING_MESSAGE",
    "NO_FILES_MESSAGE",
    "PATH_MISSING_MESSAGE",
    "PATH_NOT_FOUND_MESSAGE",
    "PATH_OUTSIDE_BOOK_MESSAGE",
    "QUEUE_OWNER",
    "QUEUE_UNAVAILABLE_MESSAGE",
    "READ_ERROR_MESSAGE",
    "STALE_TASK_MESSAGE",
    "BookFile",
    "BookTarget",
    "EmbeddingCache",
    "FileOutcome",
    "PageChunks",
    "PageUnreadable",
    "ProgressCallback",
    "book_discover",
    "book_ingest",
    "book_target",
    "cache_prune",
    "embedder_key",
    "ignore_patterns",
    "ingest_queue",
    "page_chunks",
    "task_create",
    "task_dispatch",
    "task_run",
    "task_start",
    "tasks_fail_stale",
]
