"""The test books: the vendored ones stay what their READMEs say, and the whole-book tier
skips without ../shared/books except in CI (RAGSITE_REQUIRE_BOOKS=1), where it fails."""

from __future__ import annotations

import re

import pytest

from tests.conftest import (
    DOCUSAURUS_FIXTURE_DIR,
    FIXTURES_DIR,
    REQUIRE_BOOKS_ENV,
    RUST_FIXTURE_DIR,
    whole_book,
)


def test_a_missing_whole_book_is_skipped(tmp_path, monkeypatch):
    monkeypatch.delenv(REQUIRE_BOOKS_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="whole-book tier: .*absent-book"):
        whole_book(tmp_path / "absent-book")


def test_a_missing_whole_book_fails_when_ci_requires_it(tmp_path, monkeypatch):
    monkeypatch.setenv(REQUIRE_BOOKS_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{REQUIRE_BOOKS_ENV}=1 requires it"):
        whole_book(tmp_path / "absent-book")


def test_a_present_whole_book_is_returned(tmp_path, monkeypatch):
    monkeypatch.setenv(REQUIRE_BOOKS_ENV, "1")
    assert whole_book(tmp_path) == tmp_path


def test_ci_requires_the_whole_book_tier():
    run = (FIXTURES_DIR.parent.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert any(line.startswith(f"export {REQUIRE_BOOKS_ENV}=1") for line in run.splitlines())


def test_the_vendored_rust_chapters_carry_their_licences_and_source():
    book = RUST_FIXTURE_DIR.parent
    assert "Copyright (c) 2010 The Rust Project Developers" in (book / "LICENSE-MIT").read_text()
    apache = (book / "LICENSE-APACHE").read_text()
    assert "Apache License" in apache
    assert "Version 2.0, January 2004" in apache
    readme = (book / "README.md").read_text()
    assert "commit `9175448`" in readme
    assert "MIT OR Apache-2.0" in readme
    assert 'src = "src"' in (book / "book.toml").read_text()
    # SUMMARY.md lists exactly the chapters that are there, as mdBook requires.
    listed = re.findall(r"\]\((ch[\w-]+\.md)\)", (RUST_FIXTURE_DIR / "SUMMARY.md").read_text())
    assert sorted(listed) == sorted(p.name for p in RUST_FIXTURE_DIR.glob("ch*.md"))
    assert len(listed) == 6


def test_the_vendored_chapters_are_the_books_own_files(rust_book_dir):
    for chapter in RUST_FIXTURE_DIR.glob("ch*.md"):
        assert chapter.read_bytes() == (rust_book_dir / chapter.name).read_bytes(), chapter.name


def test_the_vendored_site_is_a_docusaurus_site_with_the_features_it_claims():
    site = DOCUSAURUS_FIXTURE_DIR.parent
    assert "module.exports = config;" in (site / "docusaurus.config.js").read_text()
    pages = {p.relative_to(DOCUSAURUS_FIXTURE_DIR).as_posix(): p.read_text() for p in
             DOCUSAURUS_FIXTURE_DIR.rglob("*.md*")}  # fmt: skip
    everything = "\n".join(pages.values())
    for feature in (
        "slug: /intro",
        "id: moving-safely",
        "import Tabs from '@theme/Tabs';",
        '<TabItem value="ubuntu" label="Ubuntu 22.04" default>',
        '<PartsTable currency="EUR" />',
        ":::info Note",
        ":::tip[Save your place]",
        "```mermaid",
        "export const Highlight",
        "{/* The limit was 0.8 m/s before the 2024 review. */}",
    ):
        assert feature in everything, feature
    assert all(text.startswith("---\n") for text in pages.values())  # front matter everywhere
