"""Retrieval on pages without sub-headings: both books with every `##`-`######` removed.

Issue 10 found `book_search` losing to the store's own fusion on encyclopedia articles,
"a page without sub-headings is one section", and the near-duplicate collapse then
treated neighbouring chunks of that one section as repeats. Our two books are cut into
many small sections by their headings, so the question sets alone cannot show that
failure. This script makes the pages that would: it copies each book to OUT_DIR with
every ATX heading of level 2 to 6 removed from its Markdown pages (the page title, an
`# h1` or front matter, stays; so do fenced code, front matter and every other file, and
mdBook's `SUMMARY.md`, which is the table of contents, not a page), then runs
`manage.py eval_retrieval` with the baselines over the copies and prints its table.

    uv run python benchmarks/flat_pages.py --out-dir /tmp/flat --json /tmp/flat.json

Each page of the copies is one section, so a gold file is still found by its path: the
hit rule of `eval_retrieval` (gold file, then the answer words) is unchanged. Measured in
the 14th session (docs/retrieval-quality.md, "Pages without sub-headings").
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_DIR, RUST_BOOK_DIR, TEXTBOOK_DIR, machine_line  # noqa: E402

sys.path.insert(0, str(REPO_DIR))

# The parser ingestion reads pages with: its headings are the ones removed, and its
# front-matter rule keeps a `---` block whole.
from ingestion.markdown import _parser as page_parser  # noqa: E402

MARKDOWN_SUFFIXES = {".md", ".mdx", ".markdown"}
# mdBook's table of contents: its `#` lines are part titles, not a page's sections.
TABLE_OF_CONTENTS = "SUMMARY.md"
QUESTION_SETS = {
    TEXTBOOK_DIR.name: REPO_DIR / "benchmarks" / "questions" / "textbook.jsonl",
    RUST_BOOK_DIR.name: REPO_DIR / "benchmarks" / "questions" / "rust-book.jsonl",
}


def strip_subheadings(text: str, *, mdx: bool = False) -> tuple[str, int]:
    """`text` without its ATX headings of level 2 to 6, and how many were removed.

    Ingestion's parser finds them, so a `## ` line inside a fenced block, an HTML block
    or the front matter stays, and so does a setext heading (underlined), which books
    rarely use for sections. The removed line is dropped whole; the text around it is
    left as it was.
    """
    lines = text.splitlines(keepends=True)
    drop: set[int] = set()
    for token in page_parser(mdx=mdx).parse(text):
        if (
            token.type == "heading_open"
            and token.tag != "h1"
            and token.markup.startswith("#")
            and token.map is not None
        ):
            drop.update(range(*token.map))
    return "".join(line for i, line in enumerate(lines) if i not in drop), len(drop)


def flatten_book(source: Path, target: Path) -> tuple[int, int]:
    """Copy `source` to `target` with every page's sub-headings removed: (pages, headings)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    pages = removed = 0
    for path in sorted(target.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in MARKDOWN_SUFFIXES:
            continue
        if path.name == TABLE_OF_CONTENTS:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        flat, count = strip_subheadings(text, mdx=path.suffix.lower() == ".mdx")
        if count:
            path.write_text(flat, encoding="utf-8")
            pages += 1
            removed += count
    return pages, removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, required=True, help="where the copies go")
    parser.add_argument("--json", type=Path, help="write eval_retrieval's figures here")
    args = parser.parse_args(argv)

    print(machine_line())
    books = [book for book in (TEXTBOOK_DIR, RUST_BOOK_DIR) if book.is_dir()]
    if not books:
        print(f"no books under {TEXTBOOK_DIR.parent}; nothing to measure", file=sys.stderr)
        return 2
    command = [sys.executable, str(REPO_DIR / "manage.py"), "eval_retrieval"]
    command += [str(QUESTION_SETS[book.name]) for book in books]
    for book in books:
        target = args.out_dir / book.name
        pages, removed = flatten_book(book, target)
        print(f"{book.name}: {removed} sub-headings removed from {pages} pages -> {target}")
        command += ["--book", str(target)]
    command.append("--baselines")
    if args.json:
        command += ["--json", str(args.json)]
    return subprocess.run(command, cwd=REPO_DIR, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
