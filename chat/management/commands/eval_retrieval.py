"""`python manage.py eval_retrieval QUESTIONS.jsonl --book DIR [-k 10] [--baselines] [--json OUT]`.

Indexes the book into a temporary in-memory collection (the live index and SQLite are
untouched), asks every question through the real retrieval path and prints Recall@1/5/10
and MRR@10, the chunk statistics and the time taken. docs/retrieval-quality.md explains
the figures.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.evaluation import (
    DEFAULT_K,
    EvaluationError,
    questions_load,
    report_table,
    retrieval_evaluate,
)
from ragsite.rag.exceptions import RagError

BOOK_NOT_A_FOLDER_MESSAGE = "--book must be a folder: {path} is not one."
K_INVALID_MESSAGE = "-k must be a positive number, not {k}."
JSON_UNWRITABLE_MESSAGE = "Could not write {path}: {error}"
EVAL_FAILED_MESSAGE = "The evaluation failed: {reason}"


class Command(BaseCommand):
    help = (
        "Measure retrieval quality on a JSONL question set: index --book into a temporary "
        "collection and print Recall@1/5/10 and MRR@10 (with --baselines also BM25 alone "
        "and the dense vector alone)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "questions",
            help="JSONL file, one {id, question, answers, gold_file, gold_text} per line",
        )
        parser.add_argument("--book", required=True, help="the book folder the questions are about")
        parser.add_argument(
            "-k", type=int, default=DEFAULT_K, help="chunks retrieved per question (default 10)"
        )
        parser.add_argument(
            "--baselines",
            action="store_true",
            help="also score BM25 alone, dense alone and hybrid without floor/dedup on the same chunks",
        )
        parser.add_argument(
            "--json", dest="json_out", metavar="OUT", help="write the figures to this JSON file"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        k = options["k"]
        if k <= 0:
            raise CommandError(K_INVALID_MESSAGE.format(k=k))
        book = Path(options["book"]).expanduser()
        if not book.is_dir():
            raise CommandError(BOOK_NOT_A_FOLDER_MESSAGE.format(path=book))
        try:
            questions = questions_load(options["questions"])
            report = retrieval_evaluate(
                questions=questions,
                book_dir=book,
                k=k,
                baselines=options["baselines"],
                on_progress=lambda line: self.stderr.write(line),
            )
        except EvaluationError as exc:
            raise CommandError(str(exc)) from exc
        except RagError as exc:
            raise CommandError(EVAL_FAILED_MESSAGE.format(reason=exc.message)) from exc

        self.stdout.write(report_table(report))
        machine = (
            f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}"
        )
        self.stdout.write(f"machine: {machine}")
        if options["json_out"]:
            data = report.as_dict()
            data["machine"] = machine
            out = Path(options["json_out"])
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            except OSError as exc:
                raise CommandError(JSON_UNWRITABLE_MESSAGE.format(path=out, error=exc)) from exc
            self.stdout.write(f"figures written to {out}")
