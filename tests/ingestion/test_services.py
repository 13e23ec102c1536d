"""book_ingest on real Docusaurus pages (the vendored site; the whole textbook in the
whole-book tier), with the real embedder and a real local Qdrant."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingestion import chunking
from ingestion.models import CachedEmbedding, Document, DocumentChunk, IngestionTask
from ingestion.services import (
    ALL_FILES_FAILED_MESSAGE,
    CANCELLED_MESSAGE,
    NO_FILES_MESSAGE,
    STALE_TASK_MESSAGE,
    BookTarget,
    book_discover,
    book_ingest,
    book_target,
    ignore_patterns,
    task_create,
    tasks_fail_stale,
)
from ragsite.rag import sparse
from ragsite.rag.exceptions import BadRequest, IngestionRunning, PathOutsideBook

from .conftest import TINY_PAGES, assert_index_consistent, index_state

pytestmark = pytest.mark.django_db(transaction=True)

INTRO = "intro.md"
CALCULATOR = "lab/parts-list.mdx"
WORKSTATION = "lab/bench-setup/index.mdx"
CHAPTER_1 = "basics/chapter-1-sensing.mdx"
NEW_SECTION = (
    "\n\n## Field notes\n\nOur lab calibrates every depth camera against a zebra-striped "
    "calibration target before each experiment.\n"
)


def ingest(book: Path, **kwargs) -> tuple[IngestionTask, dict[str, object]]:
    """Run book_ingest and collect the per-page outcomes by path."""
    outcomes = {}
    task = book_ingest(
        book_dir=book,
        source="manage.py",
        on_progress=lambda _task, outcome: outcomes.__setitem__(outcome.path, outcome),
        **kwargs,
    )
    return task, outcomes


def cached_hashes() -> set[str]:
    return set(CachedEmbedding.objects.values_list("content_hash", flat=True))


def indexed_hashes() -> set[str]:
    return set(DocumentChunk.objects.values_list("content_hash", flat=True))


def test_incremental_ingestion_embeds_only_what_changed(small_book, store, embedder):
    first, _ = ingest(small_book)
    assert first.status == "succeeded", first.errors
    assert (first.files_total, first.files_new, first.files_failed) == (4, 4, 0)
    assert first.embeddings_computed == len(indexed_hashes()) > 0
    assert first.chunks_added == DocumentChunk.objects.count()
    assert first.progress == 1.0
    assert_index_consistent(store)
    titles = dict(Document.objects.values_list("path", "title"))
    assert titles[INTRO] == "Welcome"  # front matter title
    assert titles[CHAPTER_1] == "Chapter 1: Sensing the World"

    again, _ = ingest(small_book)
    assert again.status == "succeeded"
    assert again.embeddings_computed == 0
    assert (again.files_unchanged, again.chunks_added, again.chunks_deleted) == (4, 0, 0)
    assert again.chunks_unchanged == DocumentChunk.objects.count()

    # Edit one page, delete another, rename a third (same content, new path).
    intro = small_book / INTRO
    intro.write_text(intro.read_text(encoding="utf-8") + NEW_SECTION, encoding="utf-8")
    deleted_ids = store.ids_by_path(CALCULATOR)[CALCULATOR]
    (small_book / CALCULATOR).unlink()
    renamed = "lab/bench-setup.mdx"
    (small_book / WORKSTATION).rename(small_book / renamed)
    before = cached_hashes()

    third, outcomes = ingest(small_book)
    assert third.status == "succeeded", third.errors
    new_hashes = indexed_hashes() - before
    assert new_hashes, "the edit should produce new chunk text"
    assert third.embeddings_computed == len(new_hashes)
    assert outcomes[INTRO].action == "changed"
    assert outcomes[renamed].action == "new"
    assert outcomes[renamed].embedded == 0
    assert outcomes[CHAPTER_1].action == "unchanged"
    assert (third.files_changed, third.files_new, third.files_unchanged) == (1, 1, 1)
    assert third.files_deleted == 2  # the deleted page and the renamed page's old path
    third.refresh_from_db()
    assert third.file_changes == {
        "new": [renamed],
        "changed": [INTRO],
        "deleted": sorted([CALCULATOR, WORKSTATION]),
    }
    assert store.ids_by_path(CALCULATOR) == {}
    assert store.ids_by_path(WORKSTATION) == {}
    assert not store.get_vectors(sorted(deleted_ids))
    assert not Document.objects.filter(path__in=[CALCULATOR, WORKSTATION]).exists()
    assert_index_consistent(store)

    # The edited text is what a reader's question now finds.
    query = "zebra-striped calibration target for depth cameras"
    hits = store.search(query_text=query, query_vector=embedder.embed_sync([query])[0], k=3)
    assert any(h.chunk.path == INTRO and "zebra-striped" in h.chunk.text for h in hits)

    forced, _ = ingest(small_book, force=True)
    assert forced.status == "succeeded"
    assert forced.embeddings_computed == len(indexed_hashes())
    assert (forced.chunks_added, forced.chunks_deleted) == (0, 0)  # same ids, rewritten
    assert_index_consistent(store)


@pytest.mark.parametrize(
    ("module", "version"),
    [(chunking, "CHUNKER_VERSION"), (sparse, "SPARSE_VERSION")],
    ids=["chunker", "sparse terms"],
)
def test_a_chunker_or_sparse_version_bump_rewrites_every_page_and_embeds_nothing_unchanged(
    tiny_book, store, monkeypatch, module, version
):
    # A new BM25 tokenisation (accents folded, say) must reach the stored sparse vectors,
    # or the question's terms would not be the chunks'.
    first, _ = ingest(tiny_book)
    assert first.status == "succeeded", first.errors
    ids_before = index_state(store)["store"]
    signatures = set(Document.objects.values_list("signature", flat=True))

    monkeypatch.setattr(module, version, getattr(module, version) + 1)
    bumped, outcomes = ingest(tiny_book)

    assert bumped.status == "succeeded", bumped.errors
    assert {o.action for o in outcomes.values()} == {"changed"}
    assert bumped.files_changed == len(TINY_PAGES)
    assert bumped.embeddings_computed == 0  # same chunk texts: every vector from the cache
    assert bumped.embeddings_reused == len(indexed_hashes())
    assert not signatures & set(Document.objects.values_list("signature", flat=True))
    assert index_state(store)["store"] == ids_before
    assert_index_consistent(store)

    again, _ = ingest(tiny_book)
    assert (again.files_unchanged, again.embeddings_computed) == (len(TINY_PAGES), 0)


def test_unreadable_pages_are_reported_and_the_rest_ingests(tiny_book, store):
    first, _ = ingest(tiny_book)
    assert first.status == "succeeded"
    intro_ids = store.ids_by_path(INTRO)[INTRO]

    (tiny_book / "latin1.md").write_bytes(
        "# Caf\xe9 notes\n\nCr\xe8me br\xfbl\xe9e.\n".encode("latin-1")
    )
    (tiny_book / "image.mdx").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tiny_book / "broken-front-matter.md").write_text(
        "---\ntitle: [unclosed\n---\n\n# Hi\n", encoding="utf-8"
    )
    # A page indexed before and now broken keeps its previous version searchable.
    (tiny_book / INTRO).write_bytes(b"---\ntitle: Welcome\n---\n\n\xff\xfe broken")

    task, outcomes = ingest(tiny_book)

    assert task.status == "succeeded"
    assert task.files_failed == 4
    errors = {e["path"]: e["message"] for e in task.errors}
    assert "not valid UTF-8" in errors["latin1.md"]
    assert "binary" in errors["image.mdx"]
    assert "front matter" in errors["broken-front-matter.md"]
    assert "not valid UTF-8" in errors[INTRO]
    assert outcomes[CALCULATOR].action == "unchanged"
    assert store.ids_by_path(INTRO)[INTRO] == intro_ids
    intro = Document.objects.get(path=INTRO)
    assert (intro.status, intro.chunk_count) == ("failed", len(intro_ids))
    assert "not valid UTF-8" in intro.error
    assert Document.objects.get(path="latin1.md").chunk_count == 0
    assert_index_consistent(store)


def test_a_book_where_nothing_can_be_read_fails(tmp_path, store):
    book = tmp_path / "book"
    book.mkdir()
    (book / "a.md").write_bytes(b"\xff\xfe\x00binary")
    (book / "b.md").write_bytes(b"caf\xe9")

    task, _ = ingest(book)

    assert task.status == "failed"
    assert task.errors[-1] == {"path": "", "message": ALL_FILES_FAILED_MESSAGE.format(count=2)}


def test_an_empty_book_fails_without_touching_the_index(tiny_book, tmp_path, store):
    ingest(tiny_book)
    empty = tmp_path / "empty"
    empty.mkdir()

    task, _ = ingest(empty)

    assert task.status == "failed"
    assert task.errors == [{"path": "", "message": NO_FILES_MESSAGE.format(path=empty)}]
    assert Document.objects.count() == 2  # a wrong folder never wipes the index
    assert_index_consistent(store)


def test_draft_pages_are_skipped_and_removed_when_they_become_drafts(tmp_path, store):
    book = tmp_path / "book"
    book.mkdir()
    (book / "published.md").write_text(
        "---\ntitle: Published\n---\n\nThe gearbox ratio is 50 to 1.\n"
    )
    (book / "secret.md").write_text("---\ntitle: Secret\ndraft: true\n---\n\nUnreleased plans.\n")
    first, _ = ingest(book)
    assert first.status == "succeeded"
    assert first.files_skipped == 1
    assert set(store.ids_by_path()) == {"published.md"}

    page = book / "published.md"
    page.write_text(page.read_text().replace("title: Published", "title: Published\ndraft: true"))
    second, outcomes = ingest(book)

    assert outcomes["published.md"].action == "skipped"
    assert second.files_skipped == 2
    assert store.count() == 0
    assert not Document.objects.exists()


def test_dry_run_counts_without_embedding_or_writing(tiny_book, store):
    task, outcomes = ingest(tiny_book, dry_run=True)

    assert task.status == "succeeded"
    assert task.dry_run
    assert task.files_new == 2
    assert task.embeddings_computed > 0
    assert task.chunks_added > 0
    assert {o.action for o in outcomes.values()} == {"new"}
    assert store.count() == 0
    assert not Document.objects.exists()
    assert not CachedEmbedding.objects.exists()


def test_a_path_limits_the_run_and_its_deletions(small_book, store):
    ingest(small_book)
    (small_book / INTRO).unlink()  # outside the scope below: must stay indexed

    task, outcomes = ingest(small_book, path="lab")

    assert task.path == "lab"
    assert task.files_total == 2
    assert set(outcomes) == {CALCULATOR, WORKSTATION}
    assert task.files_deleted == 0
    assert INTRO in store.ids_by_path()


def test_ctrl_c_cancels_the_task_and_keeps_the_pages_written(tiny_book, store, embedder):
    class Interrupted:
        """The real embedder, interrupted (Ctrl+C) on its second call: the second page."""

        provider, model, dimension = embedder.provider, embedder.model, embedder.dimension
        calls = 0

        def embed_sync(self, texts):
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt
            return embedder.embed_sync(texts)

    with pytest.raises(KeyboardInterrupt):
        book_ingest(book_dir=tiny_book, source="manage.py", embedder=Interrupted())

    task = IngestionTask.objects.get()
    assert task.status == "cancelled"
    assert task.errors[-1] == {"path": "", "message": CANCELLED_MESSAGE}
    assert list(Document.objects.values_list("path", flat=True)) == [INTRO]
    assert_index_consistent(store)


def test_only_one_ingestion_at_a_time(tiny_book):
    running = task_create(source="api", book_dir=tiny_book)

    with pytest.raises(IngestionRunning) as excinfo:
        book_ingest(book_dir=tiny_book, source="manage.py")

    assert excinfo.value.details == {"task_id": str(running.pk)}


def test_tasks_of_a_dead_process_are_marked_failed(tiny_book):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    orphan = task_create(source="api", book_dir=tiny_book)
    IngestionTask.objects.filter(pk=orphan.pk).update(status="running", pid=int(dead.stdout))
    # A task row with this process's pid that this process does not own (an earlier
    # server that had the same pid) is stale too. (A dry run: the database allows one
    # active real ingestion, the orphan.)
    earlier = IngestionTask.objects.create(source="admin", book_dir="docs", status="running",
                                           pid=os.getpid(), hostname=orphan.hostname,
                                           process_token=orphan.process_token,
                                           dry_run=True)  # fmt: skip
    dry = task_create(source="manage.py", book_dir=tiny_book, dry_run=True)  # ours, alive

    assert tasks_fail_stale() == 2

    for task in (orphan, earlier):
        task.refresh_from_db()
        assert task.status == "failed"
        assert task.errors[-1] == {"path": "", "message": STALE_TASK_MESSAGE}
    dry.refresh_from_db()
    assert dry.status == "queued"


def test_paths_outside_the_book_are_refused(tmp_path):
    book = tmp_path / "book"
    (book / "part").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (book / "escape").symlink_to(outside)

    for bad in ("../outside", "part/../../outside", str(outside), "/etc", "escape"):
        with pytest.raises(PathOutsideBook):
            book_target(book_dir=book, path=bad)
    with pytest.raises(BadRequest):
        book_target(book_dir=book, path="no-such-part")
    assert book_target(book_dir=book, path="part").path == (book / "part").resolve()
    assert book_target(book_dir=book, path="part").scope == "part"
    assert book_target(book_dir=book, path=None).path == book.resolve()
    assert book_target(book_dir=book, path="./").scope == ""


def test_a_local_path_is_a_part_of_the_book_or_a_book_of_its_own(tmp_path, monkeypatch):
    """The command's PATH: relative to the working directory, resolved by the same function."""
    book = tmp_path / "book"
    (book / "part").mkdir(parents=True)
    (book / "part" / "page.md").write_text("# Page\n", encoding="utf-8")
    other = tmp_path / "other"
    other.mkdir()
    (other / "loose.md").write_text("# Loose\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    assert book_target(book_dir=book, path="book/part/page.md", local=True) == BookTarget(
        book_dir=book.resolve(), scope="part/page.md"
    )
    assert book_target(book_dir=book, path=str(book), local=True).scope == ""
    assert book_target(book_dir=book, path="other", local=True) == BookTarget(
        book_dir=other.resolve()
    )
    with pytest.raises(PathOutsideBook, match="from inside BOOK_DIR"):
        book_target(book_dir=book, path="other/loose.md", local=True)
    with pytest.raises(BadRequest, match="No such folder or file: nope"):
        book_target(book_dir=book, path="nope", local=True)


def test_discovery_skips_hidden_vendored_ignored_and_escaping_files(tmp_path):
    book = tmp_path / "book"
    for page in ("a.md", "b.mdx", "guide/c.md", "guide/drafts/d.md", ".hidden/e.md",
                 "node_modules/pkg/readme.md", "notes.txt", "guide/f.md", ".g.md"):  # fmt: skip
        (book / page).parent.mkdir(parents=True, exist_ok=True)
        (book / page).write_text("# Page\n")
    (tmp_path / "secret.md").write_text("# Outside\n")
    (book / "linked.md").symlink_to(tmp_path / "secret.md")
    (book / ".ragsiteignore").write_text("# drafts are private\ndrafts/\n")

    patterns = ignore_patterns(book_dir=book, extra=["f.md"])
    found = [f.path for f in book_discover(book_dir=book, ignore=patterns)]

    assert found == ["a.md", "b.mdx", "guide/c.md"]


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~30 s alone; much longer on a machine busy with other jobs
def test_the_whole_textbook_ingests_and_reingests_for_free(tmp_path, textbook_dir, store):
    import shutil

    book = tmp_path / "book"
    shutil.copytree(textbook_dir, book)

    first, _ = ingest(book)

    assert first.status == "succeeded", first.errors
    assert first.files_total == first.files_new == 22
    assert first.files_failed == 0
    assert_index_consistent(store)
    assert all(
        path in store.ids_by_path() for path in Document.objects.values_list("path", flat=True)
    )
    assert Document.objects.get(path="lab-infrastructure/jetson-setup/index.mdx").url.endswith(
        "/docs/lab-infrastructure/jetson-setup/"  # index.mdx: its folder
    )

    again, _ = ingest(book)

    assert again.embeddings_computed == 0
    assert again.files_unchanged == 22
