"""Check every question set in benchmarks/questions/ against the book it is asked of.

    uv run python benchmarks/questions/check.py            # every set whose book is here
    uv run python benchmarks/questions/check.py --books DIR

For each row: valid JSON, the fields of the question format (benchmarks/questions/README.md), an id
unique across all sets, and for in-book rows: `gold_file` exists inside the book,
`gold_text` occurs in it verbatim (whitespace-normalised, code fence lines left out, as
the evaluation harness reads pages) and holds 20-80 words, the
question is not itself a passage of the page, and each of its 1-3 answers is plain text
(no backticks, `**` or `_emphasis_`) that occurs in `gold_text` as the chunker renders it
(emphasis and link targets gone, code spans kept), so it never runs across the edge of a
code span: the harness looks for answers in chunk text and in answers, not in the source.
Out-of-book rows carry `out_of_book: true` and a boolean `near_domain`. Exits 1 and lists
the problems when any row fails; a set whose book folder is absent is reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

QUESTIONS_DIR = Path(__file__).resolve().parent
REPO_DIR = QUESTIONS_DIR.parent.parent
DEFAULT_BOOKS_DIR = REPO_DIR.parent / "shared" / "books"
KINDS = frozenset({"lookup", "paraphrase", "code", "definition", "howto", "factoid"})
GOLD_WORDS = (20, 80)  # the evaluation harness's passage length, in words (runs of \w)
MAX_ANSWERS = 3


@dataclass(frozen=True)
class QuestionSet:
    """One JSONL file of questions and the book folder it is asked of."""

    file: str
    book: str  # "docs" (the repo's own docs/) or a folder name under the books dir
    out_of_book: bool


SETS = (
    QuestionSet("docs.jsonl", "docs", out_of_book=False),
    QuestionSet("out-of-book-docs.jsonl", "docs", out_of_book=True),
    QuestionSet("textbook.jsonl", "physical-ai-humanoid-robotics", out_of_book=False),
    QuestionSet("out-of-book-textbook.jsonl", "physical-ai-humanoid-robotics", out_of_book=True),
    QuestionSet("rust-book.jsonl", "rust-book", out_of_book=False),
    QuestionSet("rust-book-factoid.jsonl", "rust-book", out_of_book=False),
    QuestionSet("textbook-factoid.jsonl", "physical-ai-humanoid-robotics", out_of_book=False),
    QuestionSet("out-of-book-rust.jsonl", "rust-book", out_of_book=True),
)
# The out-of-book questions doubt is tuned on (docs/chat.md); the sets above are held out.
TUNING_SETS = (
    QuestionSet("out-of-book-textbook-tuning.jsonl", "physical-ai-humanoid-robotics", True),
    QuestionSet("out-of-book-textbook-tuning-2.jsonl", "physical-ai-humanoid-robotics", True),
    QuestionSet("out-of-book-textbook-tuning-3.jsonl", "physical-ai-humanoid-robotics", True),
    QuestionSet("out-of-book-rust-tuning.jsonl", "rust-book", out_of_book=True),
    QuestionSet("out-of-book-rust-tuning-2.jsonl", "rust-book", out_of_book=True),
    QuestionSet("out-of-book-rust-tuning-3.jsonl", "rust-book", out_of_book=True),
)


def normalise(text: str) -> str:
    """Collapse every run of whitespace to one space (the rule gold_text is written in)."""
    return " ".join(text.split())


def words(text: str) -> list[str]:
    """The case-folded words of a text (runs of letters, digits and underscores)."""
    return _WORD_RE.findall(unicodedata.normalize("NFKC", text).casefold())


def copies_the_page(question: str, page: str) -> bool:
    """True when the question's words occur contiguously in the page: it is not a reader's."""
    needle = " ".join(words(question))
    return bool(needle) and f" {needle} " in f" {' '.join(words(page))} "


_WORD_RE = re.compile(r"\w+")
# A code fence line (```python, ~~~): left out of gold_text, as the harness leaves it out.
_FENCE_LINE_RE = re.compile(r"^[ \t]*(?:`{3,}|~{3,}).*$", re.MULTILINE)
_HTML_COMMENT_RE = re.compile(r"<!--.*?-->", re.DOTALL)
_REFERENCE_LINK_RE = re.compile(r"\[([^\]]*)\]\[[^\]]*\]")
_INLINE_LINK_RE = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_EMPHASIS_RE = re.compile(r"(?<!\w)_([^_]+?)_(?!\w)")


def rendered(text: str) -> str:
    """Markdown as the chunker renders it: no comments, link targets, `**` or `_emphasis_`
    markers; code spans keep their backticks."""
    text = _HTML_COMMENT_RE.sub("", text)
    text = _REFERENCE_LINK_RE.sub(r"\1", text)
    text = _INLINE_LINK_RE.sub(r"\1", text)
    return normalise(_EMPHASIS_RE.sub(r"\1", text.replace("**", "")))


def book_dir(question_set: QuestionSet, books_dir: Path = DEFAULT_BOOKS_DIR) -> Path:
    """The folder a set's gold files are relative to."""
    if question_set.book == "docs":
        return REPO_DIR / "docs"
    return books_dir / question_set.book


def load_rows(path: Path) -> tuple[list[dict], list[str]]:
    """Parse a JSONL file; return its rows and one problem per line that is not a JSON object."""
    rows, problems = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            problems.append(f"{path.name}:{number}: empty line")
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"{path.name}:{number}: invalid JSON ({error.msg})")
            continue
        if not isinstance(row, dict):
            problems.append(f"{path.name}:{number}: not a JSON object")
            continue
        rows.append(row)
    return rows, problems


def _is_text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def row_problems(row: dict, *, out_of_book: bool, book: Path, pages: dict[str, str]) -> list[str]:
    """Everything wrong with one row (empty when it is sound). `pages` caches normalised files."""
    problems = []
    if not _is_text(row.get("id")):
        problems.append("id missing")
    if not _is_text(row.get("question")):
        problems.append("question missing")
    if out_of_book:
        if row.get("out_of_book") is not True:
            problems.append("out_of_book must be true")
        if not isinstance(row.get("near_domain"), bool):
            problems.append("near_domain must be true or false")
        extra = {"answers", "gold_file", "gold_text"} & row.keys()
        if extra:
            problems.append(f"an out-of-book row has no {', '.join(sorted(extra))}")
        return problems

    if row.get("kind") not in KINDS:
        problems.append(f"kind {row.get('kind')!r} is not one of {sorted(KINDS)}")
    answers = row.get("answers")
    if not isinstance(answers, list) or not answers or not all(_is_text(a) for a in answers):
        problems.append("answers must be a non-empty list of non-empty strings")
        answers = []
    elif len(answers) > MAX_ANSWERS:
        problems.append(f"more than {MAX_ANSWERS} answers")
    gold_file, gold_text = row.get("gold_file"), row.get("gold_text")
    if not _is_text(gold_file) or not _is_text(gold_text):
        return [*problems, "gold_file and gold_text are required"]
    if gold_text != normalise(gold_text):
        problems.append("gold_text is not whitespace-normalised")
    if not GOLD_WORDS[0] <= len(words(gold_text)) <= GOLD_WORDS[1]:
        problems.append(
            f"gold_text has {len(words(gold_text))} words, not {GOLD_WORDS[0]}-{GOLD_WORDS[1]}"
        )
    path = (book / gold_file).resolve()
    if not path.is_relative_to(book.resolve()) or not path.is_file():
        return [*problems, f"gold_file {gold_file} does not exist in {book.name}/"]
    if gold_file not in pages:
        pages[gold_file] = normalise(_FENCE_LINE_RE.sub("", path.read_text(encoding="utf-8")))
    if "```" in gold_text or "~~~" in gold_text:
        problems.append("gold_text holds a code fence; fence lines are left out")
    if normalise(gold_text) not in pages[gold_file]:
        problems.append(f"gold_text does not occur in {gold_file}")
    if _is_text(row.get("question")) and copies_the_page(row["question"], pages[gold_file]):
        problems.append(f"the question is a passage of {gold_file}, not a reader's words")
    seen = rendered(gold_text)
    for answer in answers:
        if "`" in answer or answer != rendered(answer):
            problems.append(f"answer {answer!r} holds Markdown markup")
        elif answer not in seen:
            # Either absent, or it runs across the edge of a code span ("`vec!` macro").
            problems.append(f"answer {answer!r} does not occur in gold_text as rendered")
    return problems


def check_set(
    question_set: QuestionSet,
    books_dir: Path = DEFAULT_BOOKS_DIR,
    questions_dir: Path = QUESTIONS_DIR,
) -> list[str]:
    """All problems of one set, each prefixed with the file name and row id."""
    path = questions_dir / question_set.file
    if not path.is_file():
        return [f"{question_set.file}: missing"]
    rows, problems = load_rows(path)
    if not rows:
        problems.append(f"{question_set.file}: no questions")
    book, pages, seen = book_dir(question_set, books_dir), {}, set()
    for row in rows:
        label = f"{question_set.file}:{row.get('id', '?')}"
        if row.get("id") in seen:
            problems.append(f"{label}: duplicate id")
        seen.add(row.get("id"))
        for problem in row_problems(
            row, out_of_book=question_set.out_of_book, book=book, pages=pages
        ):
            problems.append(f"{label}: {problem}")
    return problems


def check_ids_unique_across_sets(
    sets=SETS + TUNING_SETS, questions_dir: Path = QUESTIONS_DIR
) -> list[str]:
    """Ids are unique over all sets, so a result row names its question unambiguously."""
    owner, problems = {}, []
    for question_set in sets:
        path = questions_dir / question_set.file
        if not path.is_file():
            continue
        for row in load_rows(path)[0]:
            row_id = row.get("id")
            if row_id in owner and owner[row_id] != question_set.file:
                problems.append(f"{question_set.file}:{row_id}: id also used in {owner[row_id]}")
            owner.setdefault(row_id, question_set.file)
    return problems


def summary(question_set: QuestionSet) -> str:
    """One line: how many questions, and by kind (in-book) or by domain (out-of-book)."""
    rows, _ = load_rows(QUESTIONS_DIR / question_set.file)
    if question_set.out_of_book:
        near = sum(1 for row in rows if row.get("near_domain") is True)
        return f"{len(rows)} out-of-book ({near} near the book's domain, {len(rows) - near} not)"
    kinds: dict[str, int] = {}
    for row in rows:
        kinds[row.get("kind")] = kinds.get(row.get("kind"), 0) + 1
    pages = len({row.get("gold_file") for row in rows})
    by_kind = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items(), key=str))
    return f"{len(rows)} in-book over {pages} pages ({by_kind})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=Path, default=DEFAULT_BOOKS_DIR, help="the books folder")
    args = parser.parse_args(argv)
    problems = check_ids_unique_across_sets()
    for question_set in SETS + TUNING_SETS:
        if not book_dir(question_set, args.books).is_dir():
            print(f"skipped  {question_set.file}: no book at {book_dir(question_set, args.books)}")
            continue
        found = check_set(question_set, args.books)
        problems += found
        status = "FAILED" if found else "ok"
        print(f"{status:8} {question_set.file}: {summary(question_set)}")
    for problem in problems:
        print(f"  {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
