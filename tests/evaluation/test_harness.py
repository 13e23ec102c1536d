"""The harness's newer parts: out-of-book rows, doubt, several books, the four methods side by
side, the temporary store of each engine, and the BM25 group's absence (real components)."""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from chat.services import Retrieval
from evaluation.baselines import BM25_MISSING_MESSAGE, Bm25Baseline
from evaluation.questions import EvaluationError, Question, questions_parse
from evaluation.report import OutOfBookScores
from evaluation.runner import (
    BM25,
    DENSE,
    HYBRID,
    HYBRID_RAW,
    retrieval_doubts,
    retrieval_evaluate,
    store_temporary,
)
from ragsite.rag.config import get_config
from ragsite.rag.types import Hit

from .test_evaluation import make_chunk

TEXTBOOK_PAGES = ("intro.md", "lab-infrastructure/budget-calculator.mdx")
QUESTION_SET = Path(__file__).resolve().parents[2] / "benchmarks" / "questions" / "textbook.jsonl"

# A hand-written second book: one page about a programming language's ownership rules.
OWNERSHIP_PAGE = """# Ownership

## The rules

Each value has a single owner. When the owner goes out of scope, the value is dropped and
its memory is returned. A value can be moved to a new owner, after which the old binding
can no longer be used.

## Borrowing

A reference borrows a value without taking ownership. You may have many shared references
or exactly one mutable reference at a time, never both.
"""
OWNERSHIP_QUESTIONS = [
    {
        "id": "own-drop",
        "question": "What happens to a value when the variable that owns it leaves scope?",
        "answers": ["the value is dropped"],
        "gold_file": "ownership.md",
        "gold_text": "When the owner goes out of scope, the value is dropped and its memory is returned.",
        "kind": "paraphrase",
    },
    {"id": "oob-cake", "question": "How long should a chocolate sponge cake bake in the oven?",
     "out_of_book": True, "near_domain": False},
    {"id": "oob-gc", "question": "How does the Java garbage collector pick its generations?",
     "out_of_book": True, "near_domain": True},
]  # fmt: skip


def test_questions_parse_reads_out_of_book_rows_and_kinds():
    lines = [json.dumps(row) for row in OWNERSHIP_QUESTIONS]
    questions = questions_parse(lines)
    assert questions[0].kind == "paraphrase"
    assert not questions[0].out_of_book
    assert questions[1] == Question(
        "oob-cake", OWNERSHIP_QUESTIONS[1]["question"], out_of_book=True, near_domain=False
    )
    assert questions[2].near_domain is True
    assert questions[2].answers == ()
    with pytest.raises(EvaluationError, match="line 1: field 'out_of_book' must be true or false"):
        questions_parse(['{"id": "x", "question": "Q?", "out_of_book": "yes"}'], source="s")
    with pytest.raises(EvaluationError, match="line 1: field 'question' must be a non-empty"):
        questions_parse(['{"id": "x", "out_of_book": true}'], source="s")


def test_out_of_book_scores_split_near_and_far_questions():
    scores = OutOfBookScores(
        ids=("a", "b", "c", "d"), flagged=frozenset({"a", "c", "d"}), near=frozenset({"a", "b"})
    )
    data = scores.as_dict()
    assert data["flagged_share"] == 0.75
    assert data["near_domain"] == {"questions": 2, "flagged_share": 0.5}
    assert data["far"] == {"questions": 2, "flagged_share": 1.0}
    assert data["not_flagged"] == ["b"]
    assert scores.line() == (
        "out of book: 3 of 4 flagged as uncertain (75%; near-domain 50% of 2, far 100% of 2)"
    )


def test_doubt_is_what_chat_retrieval_reports():
    hit = Hit(chunk=make_chunk("Each value has a single owner."), score=0.8)
    unsure = Retrieval(query="q", hits=[hit], supported=False, closest=[hit], floor=0.3)
    assert retrieval_doubts(unsure) is True
    assert retrieval_doubts(Retrieval(query="q", hits=[hit], supported=True, floor=0.3)) is False


def test_bm25_baseline_without_its_group_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "rank_bm25", None)  # what a --no-dev install looks like
    with pytest.raises(EvaluationError) as caught:
        Bm25Baseline([make_chunk("lidar")])
    assert str(caught.value) == BM25_MISSING_MESSAGE


@pytest.mark.parametrize("engine", ["qdrant-local", "qdrant-edge"])
def test_the_temporary_store_follows_vector_engine_and_is_gone_afterwards(
    settings, engine, tmp_path, monkeypatch
):
    settings.VECTOR_ENGINE = engine
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where an edge folder would go
    chunk = dataclasses.replace(make_chunk("one value, one owner"), id=str(uuid.uuid4()))
    with store_temporary(get_config()) as store:
        assert type(store).__name__ == ("EdgeStore" if engine == "qdrant-edge" else "QdrantStore")
        store.ensure_collection(dimension=3)
        store.upsert([chunk], [[1.0, 0.0, 0.0]])
        assert store.count() == 1
        folders = list(tmp_path.glob("ragsite-eval-*"))
        assert len(folders) == (1 if engine == "qdrant-edge" else 0)
    assert not list(tmp_path.glob("ragsite-eval-*"))
    if engine == "qdrant-local":
        assert store.count() == 0  # the in-memory collection was dropped


@pytest.fixture
def two_books(tmp_path, textbook_dir) -> dict[str, Path]:
    textbook = tmp_path / "textbook"
    for page in TEXTBOOK_PAGES:
        (textbook / page).parent.mkdir(parents=True, exist_ok=True)
        (textbook / page).write_bytes((textbook_dir / page).read_bytes())
    ownership = tmp_path / "ownership"
    ownership.mkdir()
    (ownership / "ownership.md").write_text(OWNERSHIP_PAGE, encoding="utf-8")
    textbook_questions = tmp_path / "textbook.jsonl"
    textbook_questions.write_text(
        "\n".join(
            line
            for line in QUESTION_SET.read_text().splitlines()[:48]  # the first set's rows
            if json.loads(line)["gold_file"] in TEXTBOOK_PAGES
        )
        + "\n"
    )
    ownership_questions = tmp_path / "ownership.jsonl"
    ownership_questions.write_text("\n".join(json.dumps(r) for r in OWNERSHIP_QUESTIONS) + "\n")
    return {
        "textbook": textbook,
        "ownership": ownership,
        "textbook_questions": textbook_questions,
        "ownership_questions": ownership_questions,
    }


def test_several_books_report_four_methods_side_by_side_and_out_of_book_doubt(
    two_books, tmp_path, capsys, settings
):
    settings.VECTOR_ENGINE = "qdrant-edge"
    out = tmp_path / "figures.json"
    call_command(
        "eval_retrieval",
        str(two_books["textbook_questions"]),
        str(two_books["ownership_questions"]),
        "--book", str(two_books["textbook"]),
        "--book", str(two_books["ownership"]),
        "--baselines",
        "--json", str(out),
    )  # fmt: skip

    printed = capsys.readouterr().out
    assert f"Retrieval quality on {two_books['textbook'].resolve()}" in printed
    assert f"Retrieval quality on {two_books['ownership'].resolve()}" in printed
    assert "out of book: " in printed
    assert "of 2 flagged as uncertain" in printed
    figures = json.loads(out.read_text())
    textbook, ownership = figures["reports"]
    for report in (textbook, ownership):
        assert [m["method"] for m in report["methods"]] == [BM25, DENSE, HYBRID_RAW, HYBRID]
        assert {"recall@1", "recall@5", "recall@10", "mrr@10"} <= set(report["methods"][0])
        assert report["vector_engine"] == "qdrant-edge"
    assert textbook["questions"] == 2
    assert textbook["out_of_book"] is None
    assert ownership["questions"] == 1  # out-of-book rows are not scored by rank
    assert ownership["question_files"] == [str(two_books["ownership_questions"])]
    # The one in-book question's page is the whole book: the vector methods find it first.
    # (BM25's IDF over a two-chunk corpus is zero or below for every term: it finds nothing.)
    ranks = {m["method"]: m["ranks"] for m in ownership["methods"]}
    assert ranks == {
        BM25: {"own-drop": None},
        DENSE: {"own-drop": 1},
        HYBRID_RAW: {"own-drop": 1},
        HYBRID: {"own-drop": 1},
    }
    doubt = ownership["out_of_book"]
    assert doubt["questions"] == 2
    assert doubt["near_domain"]["questions"] == doubt["far"]["questions"] == 1
    assert doubt["far"]["flagged_share"] == 1.0, "a cake recipe is nothing like this book"
    assert doubt["flagged"] + len(doubt["not_flagged"]) == 2


def test_retrieval_evaluate_keeps_out_of_book_questions_out_of_the_metrics(two_books):
    questions = questions_parse(json.dumps(r) for r in OWNERSHIP_QUESTIONS)
    report = retrieval_evaluate(questions=questions, book_dir=two_books["ownership"], k=5)
    assert report.questions == 1
    assert report.method(HYBRID).ranks == {"own-drop": 1}
    assert report.out_of_book is not None
    assert report.out_of_book.ids == ("oob-cake", "oob-gc")
    assert "oob-cake" in report.out_of_book.flagged


def test_command_wants_one_book_for_all_files_or_one_per_file(two_books):
    with pytest.raises(CommandError, match="2 question file\\(s\\), 3 --book"):
        call_command(
            "eval_retrieval",
            str(two_books["textbook_questions"]),
            str(two_books["ownership_questions"]),
            *("--book", str(two_books["textbook"])) * 3,
        )
