"""Admin smoke tests: the ingestion pages an author uses, with real data in them."""

from __future__ import annotations

import time

import pytest

from ingestion.admin import INGEST_REFUSED_MESSAGE
from ingestion.models import IngestionTask
from ingestion.services import INGESTION_RUNNING_MESSAGE, book_ingest, task_create

pytestmark = pytest.mark.django_db(transaction=True)

DASHBOARD = "/admin/ingestion/dashboard/"
INGEST_NOW = "/admin/ingestion/dashboard/ingest-now/"


@pytest.fixture
def ingested(tiny_book, store) -> IngestionTask:
    task = book_ingest(book_dir=tiny_book, source="manage.py")
    assert task.status == "succeeded"
    return task


def wait_until_finished(task_id, timeout: float = 240.0) -> IngestionTask:
    deadline = time.monotonic() + timeout
    while True:
        task = IngestionTask.objects.get(pk=task_id)
        if not task.is_active:
            return task
        assert time.monotonic() < deadline, f"task still {task.status}"
        time.sleep(0.2)


def test_documents_and_tasks_are_listed_and_searchable(admin_client, ingested):
    documents = admin_client.get("/admin/ingestion/document/")
    found = admin_client.get("/admin/ingestion/document/", {"q": "parts"})
    tasks = admin_client.get("/admin/ingestion/ingestiontask/")
    task_page = admin_client.get(f"/admin/ingestion/ingestiontask/{ingested.pk}/change/")

    assert documents.status_code == 200
    assert "intro.md" in documents.text
    assert "lab/parts-list.mdx" in found.text
    assert "intro.md" not in found.text
    assert tasks.status_code == 200
    assert str(ingested.pk)[:8] in tasks.text
    assert "Ingest now" in tasks.text
    assert task_page.status_code == 200
    assert "Embeddings computed" in task_page.text
    assert "Save" not in task_page.text  # read-only
    assert "new (2)" in task_page.text  # the files the run touched
    assert "<code>intro.md</code>" in task_page.text
    assert "<code>lab/parts-list.mdx</code>" in task_page.text


def test_a_document_page_shows_its_chunks(admin_client, ingested):
    from ingestion.models import Document

    document = Document.objects.get(path="intro.md")
    response = admin_client.get(f"/admin/ingestion/document/{document.pk}/change/")

    assert response.status_code == 200
    assert "Welcome" in response.text
    assert document.chunks.first().content_hash in response.text


def test_dashboard_shows_what_an_author_wants_at_a_glance(admin_client, ingested):
    index = admin_client.get("/admin/")
    response = admin_client.get(DASHBOARD)

    assert DASHBOARD in index.text  # linked from the admin index
    assert response.status_code == 200
    stats = response.context["stats"]
    assert stats["pages"] == 2
    assert stats["chunks"] == ingested.chunks_added
    assert stats["store_points"] == ingested.chunks_added
    assert stats["counts_agree"] is True
    assert stats["last_success"].pk == ingested.pk
    assert "pages indexed" in response.text
    assert "embeddings saved by change detection" in response.text
    assert "agrees with the chunks above" in response.text


def test_ingest_now_runs_in_the_serving_process(admin_client, tiny_book, store, ingested):
    response = admin_client.post(INGEST_NOW, follow=True)

    assert response.status_code == 200
    task = IngestionTask.objects.filter(source="admin").get()
    assert f"Ingestion started (task {task.pk})" in response.text
    finished = wait_until_finished(task.pk)
    assert finished.status == "succeeded"
    assert finished.files_unchanged == 2
    assert finished.embeddings_computed == 0
    dashboard = admin_client.get(DASHBOARD)
    assert dashboard.context["stats"]["embeddings_saved_total"] >= ingested.chunks_added


def test_ingest_now_explains_why_it_cannot_start(admin_client, tiny_book):
    running = task_create(source="api", book_dir=tiny_book)

    response = admin_client.post(INGEST_NOW, follow=True)

    reason = INGESTION_RUNNING_MESSAGE.format(task_id=running.pk)
    assert INGEST_REFUSED_MESSAGE.format(reason=reason) in response.text
    assert IngestionTask.objects.count() == 1


def test_ingest_now_needs_post_and_staff(admin_client, client):
    assert admin_client.get(INGEST_NOW).status_code == 405
    assert client.post(INGEST_NOW).status_code == 302  # to the login page
    assert not IngestionTask.objects.exists()


def test_dashboard_says_which_site_generator_it_chose(admin_client, tmp_path, settings):
    book = tmp_path / "mdbook"
    (book / "src").mkdir(parents=True)
    (book / "book.toml").write_text('[book]\ntitle = "Tide Tables"\n', encoding="utf-8")
    (book / "src" / "SUMMARY.md").write_text("- [Tides](tides.md)\n", encoding="utf-8")
    (book / "src" / "tides.md").write_text("# Tides\n\nHigh tide comes twice a day.\n")
    settings.BOOK_DIR = book / "src"
    from ragsite.rag.config import get_config

    get_config.cache_clear()
    try:
        page = admin_client.get(DASHBOARD)
    finally:
        get_config.cache_clear()
    assert page.status_code == 200
    assert page.context["book"].generator == "mdbook"
    assert "published with <strong>mdbook</strong>" in page.text
    assert "Tide Tables" in page.text
