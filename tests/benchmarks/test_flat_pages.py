"""The flat-page benchmark's copies: sub-headings gone, everything else as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestion.markdown import parse_page
from tests.conftest import import_script

BENCH_DIR = Path(__file__).resolve().parent.parent.parent / "benchmarks"

PAGE = """\
---
title: Ownership
sidebar_position: 2
---

Intro paragraph.

## The Stack and the Heap

Stack text.

> ### Command Line Notation
>
> Quoted text.

```rust
## not a heading: a line inside a fence
fn main() {}
```

### Variable Scope {#scope}

Scope text.

A setext heading stays
----------------------
"""


@pytest.fixture(scope="module")
def flat():
    return import_script(BENCH_DIR, "flat_pages")


def test_strip_subheadings_removes_atx_levels_two_to_six_and_nothing_else(flat):
    text = "# Title\n\nA.\n\n## Two\n\nB.\n\n###### Six\n\nC.\n\n```\n## fenced\n```\n"
    stripped, removed = flat.strip_subheadings(text)
    assert removed == 2
    assert stripped == "# Title\n\nA.\n\n\nB.\n\n\nC.\n\n```\n## fenced\n```\n"


def test_flatten_book_leaves_one_section_per_page_and_the_rest_untouched(flat, tmp_path):
    source = tmp_path / "book"
    (source / "docs").mkdir(parents=True)
    (source / "docs" / "ownership.md").write_text(PAGE)
    summary = "# Summary\n\n## Part one\n\n- [Ownership](docs/ownership.md)\n"
    (source / "SUMMARY.md").write_text(summary)
    (source / "docs" / "notes.txt").write_text("## kept\n")

    pages, removed = flat.flatten_book(source, tmp_path / "flat")

    assert (pages, removed) == (1, 3)
    target = tmp_path / "flat"
    assert (target / "SUMMARY.md").read_text() == summary
    assert (target / "docs" / "notes.txt").read_text() == "## kept\n"
    text = (target / "docs" / "ownership.md").read_text()
    assert text.startswith("---\ntitle: Ownership\nsidebar_position: 2\n---\n")
    assert "## not a heading: a line inside a fence" in text
    assert "A setext heading stays" in text
    for gone in ("The Stack and the Heap", "Command Line Notation", "Variable Scope"):
        assert gone not in text
    for kept in ("Stack text.", "Quoted text.", "Scope text.", "fn main() {}"):
        assert kept in text
    original = parse_page(path="docs/ownership.md", text=PAGE, site_url="https://example.org")
    page = parse_page(path="docs/ownership.md", text=text, site_url="https://example.org")
    assert page.title == original.title == "Ownership"
    assert len(original.sections) > 2
    # The setext heading is the one heading left: the copy has its own top section and it.
    assert [s.heading_path for s in page.sections] == [(), ("A setext heading stays",)]
