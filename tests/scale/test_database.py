"""One ingestion at a time across every process and replica: the database refuses a
second active task (a partial unique constraint), on SQLite and on PostgreSQL (CI runs
this file in its PostgreSQL pass too)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from django.db import IntegrityError, connection, transaction

from ingestion.models import IngestionTask
from ingestion.services import task_create
from ragsite.rag.exceptions import IngestionRunning


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_a_second_active_task():
    IngestionTask.objects.create(source="api", book_dir="docs", status="running")
    IngestionTask.objects.create(source="api", book_dir="docs", status="succeeded")
    IngestionTask.objects.create(source="api", book_dir="docs", status="queued", dry_run=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        IngestionTask.objects.create(source="admin", book_dir="docs", status="queued")
    assert IngestionTask.objects.filter(status__in=IngestionTask.ACTIVE, dry_run=False).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_create_exactly_one_task(tmp_path: Path):
    barrier = threading.Barrier(4)
    outcomes: list[str] = []
    lock = threading.Lock()

    def start() -> None:
        barrier.wait()
        try:
            task_create(source="api", book_dir=tmp_path)
            outcome = "created"
        except IngestionRunning:
            outcome = "refused"
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["created", "refused", "refused", "refused"]
    assert IngestionTask.objects.filter(status="queued").count() == 1
