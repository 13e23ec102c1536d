"""Fixtures for the ingestion tests: small copies of the vendored Docusaurus site, the real
store and embedder, and helpers that compare SQLite with Qdrant.

The embedder (~47 chunks/s on 2 shared cores) is the slow part, so most tests ingest a
few small pages of tests/fixtures/docusaurus-site; one test marked `slow` ingests the whole
textbook (the whole-book tier, tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ingestion.models import Document, DocumentChunk
from ragsite.rag import providers

# Four small pages (~22 chunks): a .md with a slug, an .mdx with an import and a JSX
# component, a folder index.mdx with Tabs, and a chapter with code and mermaid.
SMALL_PAGES = (
    "intro.md",
    "lab/parts-list.mdx",
    "lab/bench-setup/index.mdx",
    "basics/chapter-1-sensing.mdx",
)
TINY_PAGES = SMALL_PAGES[:2]  # ~8 chunks


def copy_pages(source: Path, target: Path, pages: tuple[str, ...]) -> Path:
    """Copy some pages of a book into `target`, keeping their relative paths."""
    for page in pages:
        destination = target / page
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / page, destination)
    return target


@pytest.fixture
def small_book(tmp_path, docusaurus_fixture_dir, settings) -> Path:
    """An editable copy of four small pages of the vendored site; BOOK_DIR points at it."""
    book = copy_pages(docusaurus_fixture_dir, tmp_path / "book", SMALL_PAGES)
    settings.BOOK_DIR = book
    return book


@pytest.fixture
def tiny_book(tmp_path, docusaurus_fixture_dir, settings) -> Path:
    """An editable copy of two small pages of the vendored site; BOOK_DIR points at it."""
    book = copy_pages(docusaurus_fixture_dir, tmp_path / "book", TINY_PAGES)
    settings.BOOK_DIR = book
    return book


@pytest.fixture
def store():
    """The real local Qdrant store of this test (its folder is the per-test QDRANT_PATH)."""
    return providers.get_store()


@pytest.fixture
def embedder():
    """The real packaged embedding model."""
    return providers.get_embedder()


def index_state(store) -> dict[str, dict[str, set[str]]]:
    """Return {"sqlite": {path: ids}, "store": {path: ids}} for comparing both sides."""
    sqlite: dict[str, set[str]] = {}
    for chunk_id, path in DocumentChunk.objects.values_list("id", "document__path"):
        sqlite.setdefault(path, set()).add(chunk_id)
    return {"sqlite": sqlite, "store": store.ids_by_path()}


def assert_index_consistent(store) -> None:
    """SQLite and Qdrant hold exactly the same chunks, page by page, with no duplicates."""
    state = index_state(store)
    indexed = {d.path: d.chunk_count for d in Document.objects.filter(chunk_count__gt=0)}
    assert state["store"] == state["sqlite"]
    assert {path: len(ids) for path, ids in state["sqlite"].items()} == indexed
    assert store.count() == DocumentChunk.objects.count() == sum(indexed.values())


# --- subprocesses ----------------------------------------------------------------------


def subprocess_env(*, data_dir: Path, qdrant_path: Path, book_dir: Path) -> dict[str, str]:
    """Environment for a `manage.py` subprocess using tests.settings with these folders."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "RAGSITE_TEST_SUBPROCESS": "1",  # tests.settings keeps the variables below
        "RAGSITE_DATA_DIR": str(data_dir),
        "QDRANT_PATH": str(qdrant_path),
        "QDRANT_COLLECTION": "test",
        "BOOK_DIR": str(book_dir),
        "PYTHONUNBUFFERED": "1",
    }
