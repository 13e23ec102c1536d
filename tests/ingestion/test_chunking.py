"""Chunking: every chunk fits the embedding model's window, code stays whole, context is kept.

Token counts come from the real tokenizer of the packaged embedding model. Real pages
come from the vendored books in tests/fixtures/ and, in the whole-book tier, from the two
full books in ../shared/books (tests/conftest.py).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from ingestion.chunking import MIN_CHUNK_TOKENS, build_chunks, chunk_page
from ingestion.markdown import decode_page, parse_page
from ragsite.rag.tokens import MAX_MODEL_TOKENS, count_tokens, count_tokens_batch
from ragsite.rag.types import Chunk, chunk_id, sha256_text

SITE = "https://mrowaisabdullah.github.io/ai-humanoid-robotics"
MAX_TOKENS = 256  # settings.CHUNK_TOKENS default: the model window
OVERLAP = 32  # settings.CHUNK_OVERLAP_TOKENS default


def pages_of(book: Path) -> list[str]:
    return sorted(p.relative_to(book).as_posix() for p in book.rglob("*.md*"))


@functools.cache
def chunks_of(book: Path, rel: str, max_tokens: int = MAX_TOKENS) -> list[Chunk]:
    """Chunk one real page with the default settings (once per test run)."""
    text = decode_page((book / rel).read_bytes())
    _, chunks = build_chunks(
        path=rel,
        text=text,
        site_url=SITE,
        docs_prefix="/docs",
        max_tokens=max_tokens,
        overlap_tokens=OVERLAP,
    )
    return chunks


def chunk(text: str, *, max_tokens: int = MAX_TOKENS, overlap: int = OVERLAP, path: str = "p.md"):
    page = parse_page(path=path, text=text, site_url="https://b.org")
    return page, chunk_page(page, max_tokens=max_tokens, overlap_tokens=overlap)


def sentences(n: int, word: str = "robot") -> str:
    return " ".join(
        f"Sentence {i} explains how the {word} number {i} moves its arm." for i in range(n)
    )


# --- real books -----------------------------------------------------------------------------


def test_model_window_is_the_default_limit():
    assert MAX_MODEL_TOKENS == MAX_TOKENS


def test_every_chunk_of_the_vendored_books_fits_the_model_window(
    docusaurus_fixture_dir, rust_fixture_dir
):
    total = 0
    for book in (docusaurus_fixture_dir, rust_fixture_dir):
        for rel in pages_of(book):
            chunks = chunks_of(book, rel)
            assert chunks, rel
            real = count_tokens_batch([c.text for c in chunks])
            for c, tokens in zip(chunks, real, strict=True):
                assert c.token_count == tokens, (rel, c.position)
                assert tokens <= MAX_TOKENS, (rel, c.position)
            assert [c.position for c in chunks] == list(range(len(chunks)))
            total += len(chunks)
    assert len(pages_of(rust_fixture_dir)) == 7  # six chapters and SUMMARY.md
    assert total > 100  # ~30 site chunks and ~100 of the long Rust chapters


def test_every_textbook_chunk_fits_the_model_window(textbook_dir):
    total = 0
    for rel in pages_of(textbook_dir):
        chunks = chunks_of(textbook_dir, rel)
        assert chunks, rel
        real = count_tokens_batch([c.text for c in chunks])
        for c, tokens in zip(chunks, real, strict=True):
            assert c.token_count == tokens, (rel, c.position)
            assert tokens <= MAX_TOKENS, (rel, c.position)
        assert [c.position for c in chunks] == list(range(len(chunks)))
        total += len(chunks)
    assert total > 500  # the textbook is long: ~1,100 chunks


def test_rust_book_chunks_without_error_and_every_chunk_fits(rust_book_dir):
    pages = pages_of(rust_book_dir)
    assert len(pages) == 112
    chunks = [c for rel in pages for c in chunks_of(rust_book_dir, rel)]
    real = count_tokens_batch([c.text for c in chunks])
    assert max(real) <= MAX_TOKENS
    assert [c.token_count for c in chunks] == real
    assert len(chunks) > 1000


def test_vendored_chunk_fields_cite_the_page_and_section(docusaurus_fixture_dir):
    rel = "lab/bench-setup/index.mdx"
    chunks = chunks_of(docusaurus_fixture_dir, rel)
    top = chunks[0]
    assert top.heading == ""
    assert top.url == f"{SITE}/docs/lab/bench-setup/"
    assert top.text.startswith("Bench Setup Guide\n\nEvery workbench has one computer")
    ports = next(c for c in chunks if "sudo usermod -aG dialout $USER" in c.body)
    assert ports.heading == "Checking the Hardware > Serial Ports"
    assert ports.url == f"{SITE}/docs/lab/bench-setup/#serial-ports"
    assert ports.text == "Bench Setup Guide > Checking the Hardware > Serial Ports\n\n" + ports.body
    for c in chunks:
        assert c.path == rel
        assert c.title == "Bench Setup Guide"
        assert c.content_hash == sha256_text(c.text)
        assert c.id == chunk_id(rel, c.content_hash, 0)


def test_chunk_fields_cite_the_page_and_section(textbook_dir):
    rel = "lab-infrastructure/jetson-setup/index.mdx"
    chunks = chunks_of(textbook_dir, rel)
    top = chunks[0]
    assert top.heading == ""
    assert top.url == f"{SITE}/docs/lab-infrastructure/jetson-setup/"
    assert top.text.startswith("Jetson Orin Nano Setup Guide\n\nThe NVIDIA Jetson Orin Nano")
    specs = next(c for c in chunks if "| AI Performance | 40 TOPS | 20 TOPS |" in c.body)
    assert specs.heading == "Hardware Overview > Jetson Orin Nano Specifications"
    assert (
        specs.url == f"{SITE}/docs/lab-infrastructure/jetson-setup/#jetson-orin-nano-specifications"
    )
    assert specs.text == (
        "Jetson Orin Nano Setup Guide > Hardware Overview > Jetson Orin Nano Specifications\n\n"
        + specs.body
    )
    for c in chunks:
        assert c.path == rel
        assert c.title == "Jetson Orin Nano Setup Guide"
        assert c.content_hash == sha256_text(c.text)
        assert c.id == chunk_id(rel, c.content_hash, 0)


def test_every_code_block_of_the_vendored_site_stays_whole(docusaurus_fixture_dir):
    whole = blocks = 0
    for rel in pages_of(docusaurus_fixture_dir):
        source = decode_page((docusaurus_fixture_dir / rel).read_bytes())
        page = parse_page(path=rel, text=source, site_url=SITE)
        bodies = [c.body for c in chunks_of(docusaurus_fixture_dir, rel)]
        for block in (b for section in page.sections for b in section.blocks):
            if block.kind == "code":
                blocks += 1
                whole += any(block.text in body for body in bodies)
        fences = len(re.findall(r"^```(?!mermaid)\w+$", source, re.M))
        assert fences == sum(b.kind == "code" for s in page.sections for b in s.blocks), rel
    assert whole == blocks == 10


def test_code_blocks_that_fit_are_never_split(textbook_dir):
    whole = 0
    for rel in pages_of(textbook_dir):
        page = parse_page(
            path=rel, text=decode_page((textbook_dir / rel).read_bytes()), site_url=SITE
        )
        bodies = [c.body for c in chunks_of(textbook_dir, rel)]
        for section in page.sections:
            crumb = " > ".join([page.title, *section.heading_path])
            for block in section.blocks:
                if block.kind != "code":
                    continue
                if count_tokens(f"{crumb}\n\n{block.text}") <= MAX_TOKENS:
                    assert any(block.text in body for body in bodies), (rel, block.text[:60])
                    whole += 1
    assert whole > 50


def test_import_lines_of_code_samples_survive_chunking(docusaurus_book):
    for rel in pages_of(docusaurus_book):
        source = decode_page((docusaurus_book / rel).read_bytes())
        in_source = len(re.findall(r"^[ \t]*import \w", source, re.M))
        # MDX import lines are at the top level, outside code; the rest are code samples.
        mdx_imports = len(re.findall(r"^import \w+ from '@", source, re.M))
        in_chunks = sum(
            len(re.findall(r"^[ \t]*import \w", c.body, re.M))
            for c in chunks_of(docusaurus_book, rel)
        )
        assert in_chunks == in_source - mdx_imports, rel


def test_mdx_and_mermaid_never_reach_the_index(docusaurus_book):
    for rel in pages_of(docusaurus_book):
        for c in chunks_of(docusaurus_book, rel):
            assert "@theme/" not in c.text
            assert "@site/" not in c.text
            assert "<TabItem" not in c.text
            assert "<BudgetCalculator" not in c.text
            assert "<PartsTable" not in c.text
            assert "```mermaid" not in c.text
            assert "graph LR" not in c.text


def test_an_admonition_is_in_exactly_one_chunk(docusaurus_fixture_dir):
    admonition = [
        c
        for c in chunks_of(docusaurus_fixture_dir, "lab/bench-setup/index.mdx")
        if "Note: Ask a supervisor for an account" in c.body
    ]
    assert len(admonition) == 1


def test_the_textbook_admonition_is_in_exactly_one_chunk(textbook_dir):
    admonition = [
        c
        for c in chunks_of(textbook_dir, "lab-infrastructure/jetson-setup/index.mdx")
        if "Note: For humanoid robotics applications" in c.body
    ]
    assert len(admonition) == 1


@pytest.mark.parametrize(
    ("tier", "page"),
    [
        ("vendored", "lab/bench-setup/index.mdx"),
        ("whole", "part-2-nervous-system/chapter-6-ros2-architecture.mdx"),
    ],
)
def test_chunking_is_deterministic(request, tier, page):
    docusaurus, mdbook = books_of(request, tier)
    for book, rel in [(docusaurus, page), (mdbook, "ch08-02-strings.md")]:
        text = decode_page((book / rel).read_bytes())
        runs = [
            build_chunks(
                path=rel,
                text=text,
                site_url=SITE,
                docs_prefix="/docs",
                max_tokens=256,
                overlap_tokens=32,
            )[1]
            for _ in range(2)
        ]
        assert runs[0] == runs[1]
        assert [c.id for c in runs[0]] == [c.id for c in chunks_of(book, rel)]


def books_of(request, tier: str) -> tuple[Path, Path]:
    """The Docusaurus book and the mdBook of a tier: vendored, or whole (../shared/books)."""
    if tier == "vendored":
        return (
            request.getfixturevalue("docusaurus_fixture_dir"),
            request.getfixturevalue("rust_fixture_dir"),
        )
    return request.getfixturevalue("textbook_dir"), request.getfixturevalue("rust_book_dir")


@pytest.mark.parametrize("tier", ["vendored", "whole"])
def test_tiny_chunks_remain_only_where_no_neighbour_has_room(request, tier):
    chunks_seen = tiny = 0
    for book in books_of(request, tier):
        for rel in pages_of(book):
            chunks = chunks_of(book, rel)
            chunks_seen += len(chunks)
            crumbs = count_tokens_batch([c.text.split("\n\n", 1)[0] for c in chunks])
            for i, (c, crumb) in enumerate(zip(chunks, crumbs, strict=True)):
                body = c.token_count - crumb  # the body's tokens ("\n\n" adds none)
                if len(chunks) == 1 or body >= MIN_CHUNK_TOKENS:
                    continue
                tiny += 1
                # 16 tokens of margin for the heading line a merge across sections adds.
                for neighbour in chunks[max(0, i - 1) : i] + chunks[i + 1 : i + 2]:
                    assert neighbour.token_count + body + 16 > MAX_TOKENS, (rel, c.body)
    assert tiny < chunks_seen / 100


# --- the rules on small pages ---------------------------------------------------------------------


NEXT = (
    "A different topic entirely, with enough words to stand alone as a chunk of its own. "
    "Legs carry the robot across uneven ground while the arms keep it balanced."
)


def test_overlap_carries_the_last_sentences_into_the_next_chunk_of_the_section():
    _, chunks = chunk(f"# Arms\n\n## Motion\n\n{sentences(40)}\n\n## Next\n\n{NEXT}")
    motion = [c for c in chunks if c.heading == "Motion"]
    assert len(motion) > 1
    first_sentences = re.split(r"(?<=\.) ", motion[0].body)
    carried = motion[1].body.split(" Sentence ")[0]
    assert carried.startswith("Sentence ")
    assert carried in first_sentences[-2:]  # the last sentence of the previous chunk
    assert count_tokens(carried) - 2 <= OVERLAP
    following = next(c for c in chunks if c.heading == "Next")
    assert following.body.startswith("A different topic")  # no overlap across sections


def test_tiny_section_merges_into_a_neighbour_and_keeps_its_heading():
    text = f"# Guide\n\n## Details\n\n{sentences(12)}\n\n## Summary\n\nShort line.\n"
    _, chunks = chunk(text)
    assert len(chunks) == 1
    assert chunks[0].heading == "Details"
    assert chunks[0].body.endswith("## Summary\n\nShort line.")
    assert chunks[0].url == "https://b.org/docs/p#details"


def test_tiny_top_section_merges_into_the_following_chunk():
    text = f"# Guide\n\nHi.\n\n## Details\n\n{sentences(12)}\n"
    _, chunks = chunk(text)
    assert len(chunks) == 1
    assert chunks[0].heading == ""  # where the chunk starts
    assert chunks[0].body.startswith("Hi.\n\n## Details\n\nSentence 0")


def test_long_paragraph_is_split_at_sentence_boundaries():
    _, chunks = chunk(f"# Arms\n\n{sentences(30)}", max_tokens=64, overlap=0)
    assert len(chunks) > 3
    for c in chunks:
        assert c.token_count <= 64
        assert c.body.startswith("Sentence ")
        assert c.body.endswith("moves its arm.")


def test_long_code_block_is_split_between_lines_and_each_part_stays_fenced():
    code = "\n".join(f"value_{i} = compute(arm={i}, speed={i * 2})" for i in range(60))
    _, chunks = chunk(
        f"# Code\n\nThe whole sample:\n\n```python\nimport numpy as np\n{code}\n```\n",
        max_tokens=128,
    )
    parts = [c.body for c in chunks]
    assert len(parts) > 2
    lines: list[str] = []
    for body in parts:
        fenced = body[body.index("```python\n") :]
        assert fenced.endswith("\n```")
        lines.extend(fenced.split("\n")[1:-1])
    assert lines == ["import numpy as np", *code.split("\n")]
    assert parts[0].startswith("The whole sample:\n\n```python\nimport numpy as np")


def test_long_table_is_split_between_rows_repeating_the_header():
    rows = "\n".join(f"| Joint {i} | {i * 10} degrees | servo model X{i} |" for i in range(40))
    text = f"# Joints\n\n| Joint | Range | Motor |\n|---|---|---|\n{rows}\n"
    _, chunks = chunk(text, max_tokens=96)
    assert len(chunks) > 2
    seen = []
    for c in chunks:
        lines = c.body.split("\n")
        assert lines[:2] == ["| Joint | Range | Motor |", "| --- | --- | --- |"]
        seen.extend(lines[2:])
        assert c.token_count <= 96
    assert seen == [f"| Joint {i} | {i * 10} degrees | servo model X{i} |" for i in range(40)]


def test_table_and_list_that_fit_stay_whole():
    rows = "\n".join(f"| Joint {i} | {i * 10} |" for i in range(5))
    items = "\n".join(f"- Step {i}: tighten bolt {i}" for i in range(6))
    text = f"# Build\n\n{sentences(8)}\n\n| Joint | Range |\n|---|---|\n{rows}\n\n{items}\n"
    _, chunks = chunk(text, max_tokens=128)
    assert any("| Joint | Range |" in c.body and "| Joint 4 | 40 |" in c.body for c in chunks)
    assert any(
        "- Step 0: tighten bolt 0" in c.body and "- Step 5: tighten bolt 5" in c.body
        for c in chunks
    )


def test_long_list_is_split_between_items():
    items = "\n".join(
        f"- Step {i}: tighten the bolt number {i} on the left knee joint" for i in range(40)
    )
    _, chunks = chunk(f"# Assembly\n\n{items}\n", max_tokens=96)
    assert len(chunks) > 2
    seen = [line for c in chunks for line in c.body.split("\n")]
    assert seen == items.split("\n")


def test_identical_chunks_in_one_page_get_distinct_ids():
    text = "# Page\n\n## A\n\n" + sentences(3) + "\n\n## A\n\n" + sentences(3) + "\n"
    _, chunks = chunk(text)
    assert chunks[0].text == chunks[1].text
    assert chunks[0].id != chunks[1].id
    assert chunks[1].id == chunk_id("p.md", chunks[1].content_hash, 1)
    assert [c.url for c in chunks] == ["https://b.org/docs/p#a", "https://b.org/docs/p#a-1"]


def test_no_site_url_means_no_chunk_url():
    page = parse_page(path="p.md", text=f"# P\n\n## S\n\n{sentences(4)}", site_url="")
    assert [c.url for c in chunk_page(page, max_tokens=256, overlap_tokens=32)] == [None]


def test_an_injected_counter_is_the_ruler():
    """A non-additive ruler (characters / 3) still yields chunks that fit it."""

    def by_characters(text: str) -> int:
        return len(text) // 3 + 2

    page = parse_page(path="p.md", text=f"# P\n\n## S\n\n{sentences(30)}", site_url="")
    chunks = chunk_page(page, max_tokens=100, overlap_tokens=10, count_tokens=by_characters)
    assert len(chunks) > 3
    assert all(c.token_count == by_characters(c.text) <= 100 for c in chunks)


def test_a_limit_too_small_for_the_breadcrumb_is_an_error():
    page = parse_page(path="p.md", text="# A fairly long page title\n\nText.", site_url="")
    with pytest.raises(ValueError, match="max_tokens=8"):
        chunk_page(page, max_tokens=8, overlap_tokens=0)
