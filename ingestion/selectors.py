"""Read-only queries over the ingestion models (and, for the dashboard, the store's count)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from django.db.models import Max, Sum

from ragsite.rag.exceptions import RagError
from ragsite.rag.types import VectorStore

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
