"""`manage.py check_index [--repair]` and health's drift check, on a real local store."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ingestion.models import CachedEmbedding, DocumentChunk
from ingestion.services import book_ingest
from ragsite.health import index_drift
from ragsite.rag import providers
from ragsite.rag.types import Chunk

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = {
    "sensors.md": "# Sensors\n\n## LiDAR\n\nLiDAR measures distance by timing laser pulses "
    "that bounce off surfaces.\n\n## IMU\n\nAn inertial measurement unit combines "
    "accelerometers and gyroscopes.\n",
    "control.md": "# Control\n\n## PID\n\nA PID controller computes its command from the "
    "proportional, integral and derivative terms of the error.\n\n## MPC\n\nModel "
    "predictive control optimises over a horizon.\n",
}


def index_small_book(tmp_path: Path, settings) -> Path:
    """Write two pages, point BOOK_DIR at them and ingest them with the real embedder."""
    book = tmp_path / "book"
    book.mkdir()
    for name, text in PAGES.items():
        (book / name).write_text(text)
    settings.BOOK_DIR = book
    settings.CHUNK_TOKENS, settings.CHUNK_OVERLAP_TOKENS = 32, 0  # one chunk per section
    task = book_ingest(book_dir=book, source="manage.py")
    assert task.status == "succeeded", task.errors
    return book


def run(*args: str) -> str:
    out = StringIO()
    call_command("check_index", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_in_sync_index_reports_so(tmp_path, settings):
    index_small_book(tmp_path, settings)
    chunks = DocumentChunk.objects.count()
    assert chunks >= 4
    output = run()
    assert f"SQLite: {chunks} chunks; vector store: {chunks} points" in output
    assert "The index is in sync." in output


def test_drift_is_reported_and_repaired_without_embedding(tmp_path, settings, client):
    index_small_book(tmp_path, settings)
    store = providers.get_store()
    lost = list(
        DocumentChunk.objects.filter(document__path="sensors.md").values_list("id", flat=True)
    )
    store.delete(lost[:2])  # two points of one page lost
    survivor = DocumentChunk.objects.filter(document__path="control.md").first()
    vector = store.get_vectors([survivor.id])[survivor.id]
    stray = Chunk(
        id="00000000-0000-5000-8000-000000000001",
        text="A point no chunk row knows about.",
        body="A point no chunk row knows about.",
        title="Gone",
        heading="",
        path="gone.md",
        url=None,
        position=0,
        content_hash="0" * 64,
    )
    store.upsert([stray], [vector])
    chunks = DocumentChunk.objects.count()

    health = client.get("/api/health").json()
    assert health["status"] == "degraded"
    assert health["checks"]["index"] == {
        **health["checks"]["index"],
        "status": "degraded",
        "chunks": chunks,
        "points": chunks - 1,
    }

    with pytest.raises(CommandError, match="check_index --repair"):
        run()
    drift = index_drift()
    assert drift.missing == {"sensors.md": set(lost[:2])}
    assert drift.orphans == {"gone.md": {stray.id}}

    cached_before = CachedEmbedding.objects.count()
    output = run("--repair")
    assert "1 orphan points deleted, 1 pages rebuilt, 0 embeddings computed." in output
    assert "The index is in sync." in output
    assert CachedEmbedding.objects.count() == cached_before
    assert index_drift().in_sync
    assert store.count() == DocumentChunk.objects.count() == chunks
    assert client.get("/api/health").json()["checks"]["index"]["status"] == "ok"


def test_locked_store_is_one_clear_sentence(tmp_path, settings):
    index_small_book(tmp_path, settings)
    providers.reset()  # release this process's lock, then hold the folder elsewhere
    portalocker = pytest.importorskip("portalocker")
    from ragsite.rag.datafolder import LOCK_FILE

    with (Path(settings.QDRANT_PATH) / LOCK_FILE).open("a") as handle:
        portalocker.lock(
            handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING
        )
        try:
            with pytest.raises(CommandError, match="in use by another ragsite process"):
                run("--repair")
        finally:
            portalocker.unlock(handle)


def test_drift_during_an_ingestion_is_not_degraded(tmp_path, settings, client):
    from ingestion.models import IngestionTask

    index_small_book(tmp_path, settings)
    providers.get_store().delete([DocumentChunk.objects.first().id])
    IngestionTask.objects.create(source="api", book_dir="book", status="running")
    index = client.get("/api/health").json()["checks"]["index"]
    assert index["status"] == "ok"
    assert index["ingesting"] is True
    assert index["points"] == index["chunks"] - 1
