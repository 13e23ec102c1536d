"""`manage.py ingest_book`: in-process through call_command, and as a real subprocess for
exit statuses and the locked-store message."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from ingestion.models import Document, IngestionTask
from ragsite.rag import providers
from ragsite.rag.exceptions import STORE_LOCKED_MESSAGE
from tests.processes import run_manage

from .conftest import assert_index_consistent, copy_pages, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)


def ingest_book(*args: str) -> str:
    out = StringIO()
    call_command("ingest_book", *args, stdout=out)
    return out.getvalue()


def test_command_ingests_the_book_and_prints_a_summary(tiny_book, store):
    dry = ingest_book("--dry-run")
    assert "(nothing was embedded or written)" in dry
    assert "2 new" in dry
    assert store.count() == 0

    first = ingest_book()
    # Not a terminal: one plain line per page, then the summary.
    assert "[1/2] new       intro.md:" in first
    assert "[2/2] new       lab/parts-list.mdx:" in first
    assert "2 found: 2 new, 0 changed, 0 unchanged, 0 deleted, 0 failed" in first
    task = IngestionTask.objects.get(dry_run=False)
    assert f"embeddings: {task.embeddings_computed} computed" in first
    assert task.source == "manage.py"
    assert_index_consistent(store)

    (tiny_book / "intro.md").unlink()
    second = ingest_book()
    assert "deleted   intro.md:" in second
    assert "0 new, 0 changed, 1 unchanged, 1 deleted, 0 failed" in second
    assert "embeddings: 0 computed" in second
    assert list(Document.objects.values_list("path", flat=True)) == ["lab/parts-list.mdx"]


def test_command_takes_a_path_inside_the_book(tiny_book, store):
    output = ingest_book(str(tiny_book / "lab"))

    assert "1 found: 1 new" in output
    assert IngestionTask.objects.get().path == "lab"


def test_command_refuses_a_missing_path(tiny_book):
    with pytest.raises(CommandError, match="No such folder or file"):
        ingest_book(str(tiny_book / "nope"))


def test_command_fails_when_nothing_can_be_ingested(tmp_path, settings, store):
    book = tmp_path / "book"
    book.mkdir()
    (book / "only.md").write_bytes(b"caf\xe9")
    settings.BOOK_DIR = book

    with pytest.raises(CommandError, match="The book could not be ingested: None of the 1 files"):
        ingest_book()


def test_exit_status_of_a_real_process(tmp_path, docusaurus_fixture_dir):
    bad_book = tmp_path / "bad"
    bad_book.mkdir()
    (bad_book / "only.md").write_bytes(b"\x00\x01binary")
    good_book = copy_pages(docusaurus_fixture_dir, tmp_path / "good", ("intro.md",))
    env = subprocess_env(
        data_dir=tmp_path / "data", qdrant_path=tmp_path / "qdrant", book_dir=good_book
    )
    assert run_manage(env, "migrate", "--verbosity", "0").returncode == 0

    failed = run_manage(env, "ingest_book", str(bad_book))
    succeeded = run_manage(env, "ingest_book")

    assert failed.returncode == 1
    assert "The book could not be ingested" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert succeeded.returncode == 0, succeeded.stderr
    assert "[1/1] new       intro.md:" in succeeded.stdout
    assert "succeeded" in succeeded.stdout


def test_a_locked_store_is_one_clear_sentence(tmp_path, tiny_book, settings):
    providers.get_store()  # this process now holds the embedded store's folder, like a server
    env = subprocess_env(
        data_dir=tmp_path / "data", qdrant_path=settings.QDRANT_PATH, book_dir=tiny_book
    )

    result = run_manage(env, "ingest_book")

    assert result.returncode == 1
    assert STORE_LOCKED_MESSAGE.format(path=settings.QDRANT_PATH) in result.stderr
    assert "Traceback" not in result.stderr
