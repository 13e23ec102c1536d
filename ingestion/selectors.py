"""Read-only queries over the ingestion models (and, for the dashboard, the store's count)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import Max, Sum

from ragsite.rag.config import get_config
from ragsite.rag.exceptions import RagError
from ragsite.rag.types import VectorStore

from .markdown import PageError, decode_page, parse_page
from .models import CachedEmbedding, Document, DocumentChunk, IngestionTask

logger = logging.getLogger(__name__)

RECENT_TASKS = 10


def iso_z(value: datetime | None) -> str | None:
    """Return a datetime as ISO 8601 UTC with a `Z` (API.md), or None."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _last_success() -> IngestionTask | None:
    return (
        IngestionTask.objects.filter(status=IngestionTask.Status.SUCCEEDED, dry_run=False)
        .order_by("-finished_at")
        .first()
    )


def index_summary() -> dict[str, Any]:
    """Return {"documents", "chunks", "last_ingested_at"} for the health endpoint."""
    last = _last_success()
    last_at = (
        last.finished_at if last else Document.objects.aggregate(at=Max("last_ingested_at"))["at"]
    )
    return {
        "documents": Document.objects.filter(chunk_count__gt=0).count(),
        "chunks": DocumentChunk.objects.count(),
        "last_ingested_at": iso_z(last_at),
    }


def task_get(task_id: str | uuid.UUID) -> IngestionTask | None:
    """Return the task with this id, or None (also for a string that is not a uuid)."""
    try:
        key = task_id if isinstance(task_id, uuid.UUID) else uuid.UUID(str(task_id))
    except ValueError:
        return None
    return IngestionTask.objects.filter(pk=key).first()


def task_latest() -> IngestionTask | None:
    """Return the most recently created task, or None."""
    return IngestionTask.objects.order_by("-created_at").first()


def task_as_dict(task: IngestionTask) -> dict[str, Any]:
    """Return a task as the status JSON of API.md (plus additive fields)."""
    return {
        "task_id": str(task.id),
        "status": task.status,
        "source": task.source,
        "book_dir": task.book_dir,
        "files_total": task.files_total,
        "files_done": task.files_done,
        "files_unchanged": task.files_unchanged,
        "files_failed": task.files_failed,
        "files_deleted": task.files_deleted,
        "chunks_added": task.chunks_added,
        "chunks_deleted": task.chunks_deleted,
        "embeddings_computed": task.embeddings_computed,
        "progress": round(task.progress, 4),
        "started_at": iso_z(task.started_at),
        "finished_at": iso_z(task.finished_at),
        "duration_s": task.duration_s,
        "errors": list(task.errors),
        # Additive fields (API.md allows adding, never renaming):
        "path": task.path or None,
        "force": task.force,
        "dry_run": task.dry_run,
        "files_new": task.files_new,
        "files_changed": task.files_changed,
        "files_skipped": task.files_skipped,
        "embeddings_reused": task.embeddings_reused,
        "created_at": iso_z(task.created_at),
    }


def embeddings_saved(task: IngestionTask) -> int:
    """Return how many embeddings change detection spared a task: unchanged chunks + cache hits."""
    return task.chunks_unchanged + task.embeddings_reused


def ingestion_stats(*, store: VectorStore | None = None) -> dict[str, Any]:
    """Return what a book author wants at a glance (the admin dashboard).

    With a `store`, its point count is included so SQLite and Qdrant can be compared.
    """
    documents = Document.objects.all()
    totals = documents.aggregate(chunks=Sum("chunk_count"), tokens=Sum("token_count"))
    real_runs = IngestionTask.objects.filter(dry_run=False).exclude(status__in=IngestionTask.ACTIVE)
    run_totals = real_runs.aggregate(
        computed=Sum("embeddings_computed"),
        reused=Sum("embeddings_reused"),
        unchanged=Sum("chunks_unchanged"),
    )
    computed = run_totals["computed"] or 0
    saved = (run_totals["reused"] or 0) + (run_totals["unchanged"] or 0)
    store_points: int | None = None
    store_error = ""
    if store is not None:
        try:
            store_points = store.count()
        except RagError as exc:
            store_error = exc.message
    chunk_rows = DocumentChunk.objects.count()
    return {
        "pages": documents.filter(chunk_count__gt=0).count(),
        "pages_failed": documents.filter(status=Document.Status.FAILED).count(),
        "chunks": chunk_rows,
        "tokens": totals["tokens"] or 0,
        "store_points": store_points,
        "store_error": store_error,
        "counts_agree": None if store_points is None else store_points == chunk_rows,
        "cached_embeddings": CachedEmbedding.objects.count(),
        "embeddings_computed_total": computed,
        "embeddings_saved_total": saved,
        "saved_ratio": round(saved / (saved + computed), 3) if saved + computed else None,
        "last_success": _last_success(),
        "last_task": task_latest(),
        "active_task": IngestionTask.objects.filter(status__in=IngestionTask.ACTIVE).first(),
        "recent_tasks": list(IngestionTask.objects.order_by("-created_at")[:RECENT_TASKS]),
        "recent_failures": list(
            IngestionTask.objects.filter(status=IngestionTask.Status.FAILED).order_by(
                "-created_at"
            )[:5]
        ),
        "failed_pages": list(documents.filter(status=Document.Status.FAILED).order_by("path")[:20]),
        "largest_pages": list(
            documents.filter(chunk_count__gt=0).order_by("-chunk_count", "path")[:5]
        ),
    }


# --- pages, for agents (llms.txt, MCP) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageText:
    """One indexed page as Markdown: its title, published URL and section texts."""

    path: str
    title: str
    url: str | None
    markdown: str


def book_pages() -> list[Document]:
    """Return the indexed pages (with at least one chunk), in book order (by path)."""
    return list(Document.objects.filter(chunk_count__gt=0).order_by("path"))


def page_read(path: str) -> PageText | None:
    """Return an indexed page as Markdown, or None when `path` is not an indexed page.

    Only paths the index knows are read, so a caller cannot reach any other file. The
    text is the page as parsed for the index (front matter, imports and JSX removed),
    one `##`-style heading per section.
    """
    document = Document.objects.filter(path=path, chunk_count__gt=0).first()
    if document is None:
        return None
    config = get_config()
    try:
        data = (config.book_dir / document.path).read_bytes()
        page = parse_page(
            path=document.path,
            text=decode_page(data),
            site_url=config.site_url,
            docs_prefix=config.site_docs_prefix,
        )
    except (OSError, PageError) as exc:
        logger.warning("page %s could not be read for agents: %s", path, exc)
        return None
    parts = [f"# {page.title}"]
    for section in page.sections:
        if section.heading_path:
            level = min(6, len(section.heading_path) + 1)
            parts.append(f"{'#' * level} {section.heading_path[-1]}")
        parts.extend(block.text for block in section.blocks if block.text.strip())
    markdown = "\n\n".join(parts)
    return PageText(
        path=document.path, title=page.title, url=document.url or None, markdown=markdown
    )
