"""doubt_quality's capture: what `evidence_gather` received, for every question asked."""

from __future__ import annotations

from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from ingestion.services import book_ingest
from tests.conftest import import_script

BENCH_DIR = Path(__file__).resolve().parent.parent.parent / "benchmarks"
pytestmark = pytest.mark.django_db(transaction=True)

PAGE = """\
# Sensors

A lidar measures distance by timing laser pulses reflected from objects. It sees in
the dark, but rain and fog scatter its pulses.

## Cameras

A camera gives colour and texture. A stereo pair estimates depth from the disparity
between its two images.
"""
QUESTION = "How does a lidar measure distance?"


async def test_a_question_two_sets_share_is_captured_with_the_evidence_of_its_first_search(
    tmp_path,
):
    book = tmp_path / "book"
    book.mkdir()
    (book / "sensors.md").write_text(PAGE)
    task = await sync_to_async(book_ingest)(book_dir=book, source="manage.py")
    assert task.status == "succeeded", task.errors
    doubt = import_script(BENCH_DIR, "doubt_quality")

    # The second time, book_search answers from its memory of searches and gathers no
    # evidence: the capture must still hold the question, with the first one's inputs.
    captured = await doubt._capture(
        [
            {"id": "in-book", "question": QUESTION},
            {"id": "again", "question": QUESTION, "out_of_book": True},
        ]
    )

    assert [q["id"] for q in captured] == ["in-book", "again"]
    first, again = captured
    assert again["inputs"] is first["inputs"]
    assert first["inputs"]["query"] == QUESTION
    assert first["supported"]
    assert again["supported"]
    rows = doubt.doubt_judge(captured)
    assert [row["uncertain"] for row in rows] == [False, False]
    figures = doubt.doubt_figures(rows)
    assert figures["in_book_uncertain"] == 0.0
    assert figures["passed_out_of_book"] == ["again"]
