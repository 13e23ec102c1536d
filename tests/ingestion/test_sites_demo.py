"""The demo page and the health report follow the indexed book: its title, its generator,
starter questions made from its own sections."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest

from ingestion.overview import book_title, starter_question
from ingestion.services import book_ingest
from ingestion.sites import site_for

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sites"


@pytest.fixture
def mkdocs_book(tmp_path, settings):
    project = shutil.copytree(FIXTURES / "mkdocs", tmp_path / "mkdocs")
    settings.BOOK_DIR = project / "docs"
    settings.SITE_URL = "https://example.org/robot-notes"
    return project / "docs"


def starters_of(page: str) -> list[str]:
    match = re.search(r'data-starters="([^"]*)"', page)
    return html.unescape(match.group(1)).split("|") if match else []


@pytest.mark.parametrize(
    ("heading", "question"),
    [
        ("What Is Ownership?", "What Is Ownership?"),
        ("Ownership Rules", "What are Ownership Rules?"),
        ("Variable Scope", "What is Variable Scope?"),
        ("The Stack and the Heap", "What should I know about the Stack and the Heap?"),
        ("The Slice Type", "What is the Slice Type?"),
        ("Keywords Currently in Use", "What should I know about Keywords Currently in Use?"),
        ("Who Rust Is For", "What does the book say about who Rust Is For?"),
        ("Installing Rust", "What should I know about installing Rust?"),
        ("How Cargo Builds", "What does the book say about how Cargo Builds?"),
        ("Step 1: Mount the target", "How do I mount the target?"),
        ("Ünïcödé names are folded", None),
        ("Lidar & Radar (2024 models)", "What are Lidar & Radar?"),
        ("Summary", None),
        ("What You'll Learn", None),
        ("1.2", None),
    ],
)
def test_starter_questions_are_phrased_from_headings(heading, question):
    assert starter_question(heading) == question


def test_demo_page_follows_the_book(client, mkdocs_book, store, embedder):
    assert book_ingest(book_dir=mkdocs_book, source="manage.py").status == "succeeded"
    page = client.get("/").content.decode()

    assert "<title>Ask Field Robot Notes</title>" in page
    assert "<h1>Field Robot Notes</h1>" in page
    assert 'data-title="Ask Field Robot Notes"' in page
    assert "ragsite docs" not in page
    assert "mkdocs site, detected from mkdocs.yml" in page
    starters = starters_of(page)
    assert 2 <= len(starters) <= 4
    # Every starter is phrased from a heading the index holds, and shown on the page too.
    shown = re.search(r'<ul class="starters">(.*?)</ul>', page, re.S).group(1)
    assert [html.unescape(q) for q in re.findall(r"<li>(.*?)</li>", shown)] == starters
    assert "What is Getting started?" not in starters
    assert len({q.split()[-1] for q in starters}) == len(starters)  # from different sections
    assert set(starters) <= {
        "What should I know about getting started?",
        "What are Lidar & Radar?",
        "What is the scan Topic?",
        "What should I know about Ünïcödé names are folded?",
        "What is Setup?",
        "How do I mount the target?",
        "What are Wheel encoders?",
        "What's a PID loop?",
        "What is Forward kinematics?",
        "What is Inverse kinematics?",
    }

    health = client.get("/api/health").json()
    assert health["book"] == {
        "title": "Field Robot Notes",
        "generator": "mkdocs",
        "detected_from": "mkdocs.yml",
    }
    assert set(health) >= {"status", "version", "checks", "index"}  # API.md's fields stay


def test_the_default_book_keeps_the_page_about_ragsite(client, settings):
    settings.BOOK_DIR = Path(settings.BASE_DIR) / "docs"
    page = client.get("/").content.decode()
    assert "<h1>Chat with a book</h1>" in page
    assert 'data-title="Ask the ragsite docs"' in page
    assert "How does ingestion avoid re-embedding unchanged pages?" in starters_of(page)


def test_book_titles_come_from_the_generators_files(tmp_path):
    (tmp_path / "SUMMARY.md").write_text("# The Rust Programming Language\n\n- [Intro](a.md)\n")
    assert book_title(site=site_for(book_dir=tmp_path), book_dir=tmp_path) == (
        "The Rust Programming Language"
    )
    (tmp_path / "SUMMARY.md").write_text("# Summary\n\n- [Intro](a.md)\n")  # mdBook's default
    (tmp_path / "book.toml").write_text('[book]\ntitle = "My Notes"\n')
    assert book_title(site=site_for(book_dir=tmp_path), book_dir=tmp_path) == "My Notes"


def test_a_generic_first_page_title_gives_way_to_its_heading(tmp_path, settings, store, embedder):
    book = tmp_path / "book"
    book.mkdir()
    (book / "intro.md").write_text(
        "---\ntitle: Welcome\n---\n\n# Welcome to Physical Gardening\n\n"
        "This handbook covers soil, sowing and watering in small kitchen gardens.\n"
    )
    settings.BOOK_DIR = book
    book_ingest(book_dir=book, source="manage.py")
    assert book_title(site=site_for(book_dir=book), book_dir=book) == "Physical Gardening"
