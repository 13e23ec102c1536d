"""Shared fixtures: every test gets its own Qdrant folder and collection; the real
packaged embedding model is loaded once per session.

Books: tests that need "a real book" read the small vendored ones in tests/fixtures/ (six
chapters of the Rust book, a hand-written Docusaurus site). The whole-book tier reads the
two full books in ../shared/books beside the clone: it is skipped when they are absent,
and fails instead when RAGSITE_REQUIRE_BOOKS=1 (set by .ci/run), so CI always runs it."""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ragsite.rag import providers
from ragsite.rag.config import get_config

REPO_DIR = Path(__file__).resolve().parent.parent
SHARED_BOOKS = REPO_DIR.parent / "shared" / "books"
TEXTBOOK_DIR = SHARED_BOOKS / "physical-ai-humanoid-robotics"
RUST_BOOK_DIR = SHARED_BOOKS / "rust-book"
FIXTURES_DIR = REPO_DIR / "tests" / "fixtures"
DOCUSAURUS_FIXTURE_DIR = FIXTURES_DIR / "docusaurus-site" / "docs"
RUST_FIXTURE_DIR = FIXTURES_DIR / "rust-book" / "src"
REQUIRE_BOOKS_ENV = "RAGSITE_REQUIRE_BOOKS"


def import_script(folder: Path, name: str) -> ModuleType:
    """Import the script `name` of `folder` (benchmarks/ holds scripts, not a package)."""
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def whole_book(path: Path) -> Path:
    """Return a full book of ../shared/books; skip the test when it is absent (fail in CI)."""
    if path.is_dir():
        return path
    reason = f"whole-book tier: {path} is not beside this clone"
    if os.environ.get(REQUIRE_BOOKS_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_BOOKS_ENV}=1 requires it", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config, items):
    """Run `slow` tests (the whole-textbook ingest) first: they fill the session's
    embedding memo below, so later tests that index the same pages embed nothing new.
    Only speed depends on this order: the memo returns what the model returns."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


class MemoEmbedder:
    """The real packaged embedder, remembering each text's vector for the whole session.

    The model still embeds every distinct text once; the memo only spares the 2-core CI
    machine from embedding the same textbook page again in another module. Services
    count the texts they send to the embedder, so embedding counts that tests assert on
    are unchanged. It implements the Embedder Protocol and is handed to the code under
    test like any embedder: as the `embedder=` collaborator, or by the provider seam.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.provider, self.model, self.dimension = inner.provider, inner.model, inner.dimension
        self.vectors: dict[str, list[float]] = {}
        self.span_vectors: dict[tuple[str, tuple], tuple[list[float], list, Any]] = {}
        self._lock = threading.Lock()

    def embed_sync(self, texts: Sequence[str]) -> list[list[float]]:
        """The model's vectors, each distinct text embedded once per session."""
        with self._lock:
            missing = list(dict.fromkeys(text for text in texts if text not in self.vectors))
        if missing:
            vectors = self.inner.embed_sync(missing)
            with self._lock:
                self.vectors.update(zip(missing, vectors, strict=True))
        return [list(self.vectors[text]) for text in texts]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """`embed_sync` in a worker thread, as the local embedder does."""
        return await asyncio.to_thread(self.embed_sync, texts)

    def embed_spans_sync(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]):
        """The model's text and span vectors, each distinct (text, spans) computed once."""
        keys = [(text, tuple(map(tuple, found))) for text, found in zip(texts, spans, strict=True)]
        with self._lock:
            missing = list(dict.fromkeys(key for key in keys if key not in self.span_vectors))
        if missing:
            vectors, pooled, signatures = self.inner.embed_spans_sync(
                [text for text, _ in missing], [list(found) for _, found in missing]
            )
            with self._lock:
                self.span_vectors.update(
                    zip(missing, zip(vectors, pooled, signatures, strict=True), strict=True)
                )
        results = [self.span_vectors[key] for key in keys]
        return (
            [list(v) for v, _, _ in results],
            [list(p) for _, p, _ in results],
            [s for _, _, s in results],
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # batch_size, model_path, ...


class CountingEmbedder:
    """An embedder that records every text it is asked to embed, then asks `inner`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.texts: list[str] = []
        self.provider, self.model, self.dimension = inner.provider, inner.model, inner.dimension

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts.extend(texts)
        return await self.inner.embed(texts)

    def embed_sync(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts.extend(texts)
        return self.inner.embed_sync(texts)


@pytest.fixture(scope="session")
def embedding_memo() -> MemoEmbedder:
    """The session's memo over the real packaged model."""
    from ragsite.rag.embeddings import LocalEmbedder

    return MemoEmbedder(LocalEmbedder.default())


@pytest.fixture(scope="session")
def embedder(embedding_memo) -> MemoEmbedder:
    """The embedder to pass as a collaborator (`embedder=`): the real model, memoised."""
    return embedding_memo


@pytest.fixture(autouse=True)
def _memo_provider(request, monkeypatch, embedding_memo):
    """The provider seam hands out the memo when the local embedder is configured, so the
    live server and services called without `embedder=` use it too. Tests marked
    `no_embedding_memo` get the providers as they are."""
    if request.node.get_closest_marker("no_embedding_memo") is not None:
        yield
        return
    build = providers.get_embedder.__wrapped__  # the uncached builder of the real provider

    @functools.cache
    def get_embedder():
        if get_config().embedding_provider == "local":
            return embedding_memo
        return build()

    monkeypatch.setattr(providers, "get_embedder", get_embedder)
    yield


@pytest.fixture(autouse=True)
def _isolated_store(settings, tmp_path):
    """Point the embedded store at a fresh folder; close it afterwards (releases the lock)."""
    settings.QDRANT_PATH = tmp_path / "qdrant"
    settings.QDRANT_COLLECTION = "test"
    from ragsite import health

    health.clear_cache()
    yield
    providers.reset()


@pytest.fixture(autouse=True)
def _sync_thread_connections_closed():
    """Close what the test opened in asgiref's one thread for sync code outside a request
    (`sync_to_async` in an async test, Django's async test client): Django's test client
    keeps `close_old_connections` off, so a PostgreSQL connection stayed open there and
    the test database could not be dropped at the end ("being accessed by other users")."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=30)


@pytest.fixture(autouse=True)
def _fresh_sentence_vectors():
    """Answering remembers, per process, the stored sentence vectors it read and the chunks
    it found without any (those for a minute: `SENTENCE_MISS_TTL_S`). Each test starts with
    that memory empty. Otherwise what an earlier test's database held or lacked, and how
    long ago it ran, would decide whether this test's search runs its second stages: a
    bare clone's suite once left the small book's cost section out of the top two."""
    from ingestion.services.cache import DatabaseSentenceVectors

    previous = providers.get_sentence_vectors()
    if not isinstance(previous, DatabaseSentenceVectors):
        yield
        return
    providers.set_sentence_vectors(DatabaseSentenceVectors())
    yield
    providers.set_sentence_vectors(previous)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit counters and LLM budgets live in the process cache: none at test start."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session")
def textbook_dir() -> Path:
    """The whole Docusaurus textbook in ../shared/books (read-only; whole-book tier)."""
    return whole_book(TEXTBOOK_DIR)


@pytest.fixture(scope="session")
def rust_book_dir() -> Path:
    """The whole Rust book (mdBook) in ../shared/books (read-only; whole-book tier)."""
    return whole_book(RUST_BOOK_DIR)


@pytest.fixture(scope="session", params=["vendored", "whole"])
def docusaurus_book(request) -> Path:
    """Each Docusaurus book in turn: the vendored site, then the whole textbook (whole-book tier)."""
    return DOCUSAURUS_FIXTURE_DIR if request.param == "vendored" else whole_book(TEXTBOOK_DIR)


@pytest.fixture(scope="session", params=["vendored", "whole"])
def mdbook_book(request) -> Path:
    """Each mdBook in turn: the vendored chapters, then the whole Rust book (whole-book tier)."""
    return RUST_FIXTURE_DIR if request.param == "vendored" else whole_book(RUST_BOOK_DIR)


@pytest.fixture(scope="session")
def docusaurus_fixture_dir() -> Path:
    """The vendored Docusaurus site's docs/ folder (read-only; tests/fixtures/docusaurus-site)."""
    return DOCUSAURUS_FIXTURE_DIR


@pytest.fixture(scope="session")
def rust_fixture_dir() -> Path:
    """The vendored chapters of the Rust book, an mdBook src/ folder (read-only)."""
    return RUST_FIXTURE_DIR


# --- fake OpenAI-compatible server (owned by the rag adapters work) ---------------------


@pytest.fixture(scope="session")
def fake_openai_server():
    """One fake OpenAI-compatible server (tests/fake_openai.py) for the whole session."""
    from tests.fake_openai import FakeOpenAI

    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def fake_openai(fake_openai_server):
    """The fake server with a fresh script and empty records for this test."""
    fake_openai_server.reset()
    yield fake_openai_server
    fake_openai_server.reset()


@pytest.fixture
def llm_settings(settings, fake_openai):
    """Settings that route chat (not embeddings) to the fake server; providers reset."""
    settings.OPENAI_BASE_URL = fake_openai.url
    settings.OPENAI_API_KEY = "test-key"
    settings.LLM_PROVIDER = "openai"
    settings.OPENAI_MAX_RETRIES = 1
    settings.OPENAI_TIMEOUT = 2.0
    return settings


# --- live server ---------------------------------------------------------------------


@pytest.fixture
def live_server(transactional_db):
    """uvicorn on a loopback port serving the project, sharing this process's store."""
    from tests.live import LiveServer

    server = LiveServer().start()
    yield server
    server.stop()
