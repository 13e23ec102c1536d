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


@pytest.fixture(autouse=True)
def _isolated_store(settings, tmp_path):
    """Point the embedded store at a fresh folder; close it afterwards (releases the lock)."""
    settings.QDRANT_PATH = tmp_path / "qdrant"
    settings.QDRANT_COLLECTION = "test"
    from ragsite import health

    health.clear_cache()
    yield
    providers.reset()


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
