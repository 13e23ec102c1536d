"""Celery tasks of ingestion (run by `celery -A ragsite worker`; see ragsite/celery.py)."""

from __future__ import annotations

from pathlib import Path

from celery import shared_task

INGEST_TASK_NAME = "ragsite.ingest"


@shared_task(name=INGEST_TASK_NAME, ignore_result=True)
def ingest(task_id: str, book_dir: str) -> str:
    """Run the queued ingestion task `task_id` in this worker; return its final status."""
    from .services import task_run

    return task_run(task_id=task_id, book_dir=Path(book_dir))
