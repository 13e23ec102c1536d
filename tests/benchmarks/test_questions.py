"""The question sets of benchmarks/questions/ stay true to their books.

The docs/ sets are checked always (docs/ is in the repository); the sets over the two
shared books run in the whole-book tier, when ../shared/books is beside the clone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import import_script

QUESTIONS_DIR = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "questions"


@pytest.fixture(scope="module")
def check():
    """benchmarks/questions/check.py, imported (it is a script, not a package)."""
    return import_script(QUESTIONS_DIR, "check")


def sets_of(check, book: str) -> list:
    return [question_set for question_set in check.SETS if question_set.book == book]


def test_docs_sets_are_sound(check):
    for question_set in sets_of(check, "docs"):
        assert check.check_set(question_set) == [], question_set.file


def test_textbook_sets_are_sound(check, textbook_dir):
    for question_set in sets_of(check, textbook_dir.name):
        assert check.check_set(question_set, textbook_dir.parent) == [], question_set.file


def test_rust_book_sets_are_sound(check, rust_book_dir):
    for question_set in sets_of(check, rust_book_dir.name):
        assert check.check_set(question_set, rust_book_dir.parent) == [], question_set.file


def test_ids_are_unique_across_all_sets(check):
    assert check.check_ids_unique_across_sets() == []


def test_sets_are_as_large_and_as_mixed_as_issue_10_asks(check):
    in_book, out_of_book = [], {}
    for question_set in check.SETS:
        rows, problems = check.load_rows(QUESTIONS_DIR / question_set.file)
        assert problems == [], question_set.file
        if question_set.out_of_book:
            out_of_book[question_set.book] = rows
        else:
            in_book += rows
    assert len(in_book) >= 300
    assert sum(len(rows) for rows in out_of_book.values()) >= 100
    for book in ("rust-book", "physical-ai-humanoid-robotics"):
        near = sum(row["near_domain"] for row in out_of_book[book])
        assert 0.4 <= near / len(out_of_book[book]) <= 0.6, book
    kinds = {row["kind"] for row in in_book}
    assert kinds == set(check.KINDS)
    paraphrases = sum(row["kind"] == "paraphrase" for row in in_book)
    assert paraphrases >= 0.25 * len(in_book)


def write_set(folder: Path, name: str, rows: list[dict]) -> None:
    (folder / name).write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def test_the_checker_names_every_kind_of_bad_row(check, tmp_path):
    page = (check.REPO_DIR / "docs" / "intro.md").read_text(encoding="utf-8")
    passage = (
        "Setting `OPENAI_API_KEY` (and optionally `OPENAI_BASE_URL`, for Ollama, vLLM or any "
        "OpenAI-compatible server) turns on written answers from a language model."
    )
    assert passage in " ".join(page.split())  # the passage the good row quotes
    good = {
        "id": "good",
        "question": "How do I get answers written by a model?",
        "answers": ["OPENAI_API_KEY"],
        "gold_file": "intro.md",
        "gold_text": passage,
        "kind": "howto",
    }
    rows = [
        good,
        {**good},  # the same id again
        {**good, "id": "not-in-file", "gold_text": "Setting the moon to cheese"},
        {**good, "id": "missing-file", "gold_file": "no-such-page.md"},
        {**good, "id": "escapes", "gold_file": "../README.md"},
        {**good, "id": "answer-absent", "answers": ["QDRANT_URL"]},
        {**good, "id": "answer-markup", "answers": ["`OPENAI_API_KEY`"]},
        {**good, "id": "answer-straddles", "answers": ["Setting OPENAI_API_KEY"]},
        {**good, "id": "bad-kind", "kind": "trivia"},
        {**good, "id": "no-answers", "answers": []},
        {**good, "id": "too-many", "answers": ["Ollama", "vLLM", "OPENAI_API_KEY", "language"]},
        {**good, "id": "too-short", "gold_text": "Setting `OPENAI_API_KEY` (and optionally"},
        {**good, "id": "copies", "question": "turns on written answers from a language model"},
    ]
    write_set(tmp_path, "docs.jsonl", rows)
    (tmp_path / "docs.jsonl").write_text(
        (tmp_path / "docs.jsonl").read_text() + "{not json\n", encoding="utf-8"
    )
    problems = check.check_set(check.SETS[0], questions_dir=tmp_path)
    assert check.SETS[0].file == "docs.jsonl"
    about_good = [problem for problem in problems if problem.startswith("docs.jsonl:good:")]
    assert about_good == ["docs.jsonl:good: duplicate id"]  # the sound row passes
    expected = {
        "docs.jsonl:not-in-file: gold_text does not occur in intro.md",
        "docs.jsonl:missing-file: gold_file no-such-page.md does not exist in docs/",
        "docs.jsonl:escapes: gold_file ../README.md does not exist in docs/",
        "docs.jsonl:answer-absent: answer 'QDRANT_URL' does not occur in gold_text as rendered",
        "docs.jsonl:answer-markup: answer '`OPENAI_API_KEY`' holds Markdown markup",
        "docs.jsonl:answer-straddles: answer 'Setting OPENAI_API_KEY' does not occur in "
        "gold_text as rendered",
        "docs.jsonl:no-answers: answers must be a non-empty list of non-empty strings",
        "docs.jsonl:too-many: more than 3 answers",
        "docs.jsonl:too-short: gold_text has 4 words, not 20-80",
        "docs.jsonl:copies: the question is a passage of intro.md, not a reader's words",
        "docs.jsonl:14: invalid JSON (Expecting property name enclosed in double quotes)",
    }
    assert expected <= set(problems)
    assert any(p.startswith("docs.jsonl:bad-kind: kind 'trivia'") for p in problems)


def test_the_checker_holds_out_of_book_rows_to_their_shape(check, tmp_path):
    rows = [
        {"id": "ok", "question": "How tall is Everest?", "out_of_book": True, "near_domain": False},
        {"id": "no-flag", "question": "What is a goroutine?", "near_domain": True},
        {"id": "no-domain", "question": "What is a monad?", "out_of_book": True},
        {
            "id": "has-gold",
            "question": "What is a decorator?",
            "out_of_book": True,
            "near_domain": True,
            "gold_file": "intro.md",
        },
    ]
    write_set(tmp_path, "out-of-book-docs.jsonl", rows)
    problems = check.check_set(check.SETS[1], questions_dir=tmp_path)
    assert set(problems) == {
        "out-of-book-docs.jsonl:no-flag: out_of_book must be true",
        "out-of-book-docs.jsonl:no-domain: near_domain must be true or false",
        "out-of-book-docs.jsonl:has-gold: an out-of-book row has no gold_file",
    }


def test_the_command_line_reports_and_fails(check, tmp_path, capsys):
    assert check.main(["--books", str(tmp_path / "absent")]) == 0
    out = capsys.readouterr().out
    assert "ok       docs.jsonl: " in out
    assert "skipped  rust-book.jsonl: no book at " in out
