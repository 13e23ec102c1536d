"""The plain progress lines `serve` prints during its background ingest (real ingestion)."""

from __future__ import annotations

import itertools
import time

import pytest

from ingestion.models import IngestionTask
from ingestion.progress import ProgressLines
from ingestion.services import book_ingest, task_start

from .conftest import TINY_PAGES

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_line_every_few_seconds_and_one_at_the_end(tiny_book, store):
    lines: list[str] = []
    ticks = itertools.count(start=0.0, step=1.0)  # one "second" per page
    book_ingest(
        book_dir=tiny_book,
        source="manage.py",
        on_progress=ProgressLines(lines.append, every_s=60.0, clock=lambda: next(ticks)),
    )
    assert lines[0].startswith(f"ingest: 1/{len(TINY_PAGES)} pages (50%), ")
    assert lines[-1].startswith(f"ingest: all {len(TINY_PAGES)} pages read in ")
    assert f"{len(TINY_PAGES)} new, 0 changed, 0 unchanged, 0 failed" in lines[-1]
    assert len(lines) == 2  # the pages in between fall inside the 60 "seconds"


def test_task_start_reports_progress_from_its_thread_like_serve(tiny_book, store):
    lines: list[str] = []
    task = task_start(source="manage.py", on_progress=ProgressLines(lines.append, every_s=0.0))
    deadline = time.monotonic() + 240
    while IngestionTask.objects.get(pk=task.pk).is_active:
        assert time.monotonic() < deadline, "the ingestion did not finish"
        time.sleep(0.2)
    assert IngestionTask.objects.get(pk=task.pk).status == "succeeded"
    assert [line.split(" pages")[0] for line in lines] == [
        "ingest: 1/2",
        "ingest: all 2",
    ]
