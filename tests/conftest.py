"""Shared fixtures: every test gets its own Qdrant folder and collection; the real
packaged embedding model is loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragsite.rag import providers

REPO_DIR = Path(__file__).resolve().parent.parent
SHARED_BOOKS = REPO_DIR.parent / "shared" / "books"
TEXTBOOK_DIR = SHARED_BOOKS / "physical-ai-humanoid-robotics"
RUST_BOOK_DIR = SHARED_BOOKS / "rust-book"


def pytest_collection_modifyitems(config, items):
    """Run `slow` tests (the whole-textbook ingest) first: they fill the session's
    embedding memo below, so later tests that index the same pages embed nothing new."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


class EmbeddingMemo:
    """Remembers the packaged model's vector for each text for the whole session.

    The real model still embeds every distinct text once; the memo only spares the
    2-core CI machine from embedding the same textbook page again in another module.
    Services count the texts they send to the embedder, so embedding counts that tests
    assert on are unchanged. Tests marked `no_embedding_memo` reach the model directly.
    """

    def __init__(self, original):
        self.original = original
        self.vectors: dict[str, list[float]] = {}
        self.enabled = True

    def embed(self, embedder, texts: list[str]) -> list[list[float]]:
        if not self.enabled:
            return self.original(embedder, texts)
        missing = list(dict.fromkeys(text for text in texts if text not in self.vectors))
        if missing:
            self.vectors.update(zip(missing, self.original(embedder, missing), strict=True))
        return [list(self.vectors[text]) for text in texts]


@pytest.fixture(scope="session", autouse=True)
def _embedding_memo():
    """Install the session's EmbeddingMemo on the local embedder."""
    from ragsite.rag.embeddings import LocalEmbedder

    original = LocalEmbedder._embed
    memo = EmbeddingMemo(original)
    LocalEmbedder._embed = lambda self, texts: memo.embed(self, texts)
    yield memo
    LocalEmbedder._embed = original


@pytest.fixture(autouse=True)
def _memo_switch(request, _embedding_memo):
    """Turn the memo off for tests marked `no_embedding_memo`."""
    _embedding_memo.enabled = request.node.get_closest_marker("no_embedding_memo") is None
    yield
    _embedding_memo.enabled = True


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
def _fresh_cache():
    """Rate-limit counters and LLM budgets live in the process cache: none at test start."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session")
def textbook_dir() -> Path:
    """The Docusaurus textbook in ../shared/books (read-only)."""
    assert TEXTBOOK_DIR.is_dir(), f"test book missing: {TEXTBOOK_DIR}"
    return TEXTBOOK_DIR


@pytest.fixture(scope="session")
def rust_book_dir() -> Path:
    """The Rust book (mdBook) in ../shared/books (read-only)."""
    assert RUST_BOOK_DIR.is_dir(), f"test book missing: {RUST_BOOK_DIR}"
    return RUST_BOOK_DIR


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
