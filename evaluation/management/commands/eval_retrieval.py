"""`python manage.py eval_retrieval QUESTIONS.jsonl... --book DIR... [-k 10] [--baselines] [--json OUT]`.

Indexes each book into a temporary collection of the configured engine (the live index
and SQLite are untouched), asks every question through the real retrieval path and
prints Recall@1/5/10 and MRR@10, the out-of-book doubt, the chunk statistics and the
time taken. Several question files: one `--book` per file, in the same order (or one
`--book` for all). docs/retrieval-quality.md explains the figures.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from evaluation.metrics import DEFAULT_K
from evaluation.questions import EvaluationError
from evaluation.report import report_table
from evaluation.runner import question_files_evaluate
from ragsite.rag.exceptions import RagError

BOOK_NOT_A_FOLDER_MESSAGE = "--book must be a folder: {path} is not one."
BOOKS_MISMATCH_MESSAGE = (
    "Give one --book for all question files or one per file, in order: "
    "{files} question file(s), {books} --book."
)
K_INVALID_MESSAGE = "-k must be a positive number, not {k}."
JSON_UNWRITABLE_MESSAGE = "Could not write {path}: {error}"
EVAL_FAILED_MESSAGE = "The evaluation failed: {reason}"


class Command(BaseCommand):
    help = (
        "Measure retrieval quality on JSONL question sets: index each --book into a "
        "temporary collection and print Recall@1/5/10 and MRR@10 (with --baselines also "
        "BM25 alone, dense alone and the store's raw hybrid fusion), and the share of "
        "out-of-book questions retrieval flags as uncertain."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "questions",
            nargs="+",
            help="JSONL files, one {id, question, answers, gold_file, gold_text} or "
            "{id, question, out_of_book: true} per line",
        )
        parser.add_argument(
            "--book",
            action="append",
            required=True,
            help="the book folder the questions are about; repeat it, one per question file",
        )
        parser.add_argument(
            "-k", type=int, default=DEFAULT_K, help="chunks retrieved per question (default 10)"
        )
        parser.add_argument(
            "--baselines",
            action="store_true",
            help="also score BM25 alone, dense alone and hybrid without floor/dedup on the same chunks",
        )
        parser.add_argument(
            "--json",
            dest="json_out",
            metavar="OUT",
            help="write the figures to this JSON file (several books: {'reports': [...]})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        k = options["k"]
        if k <= 0:
            raise CommandError(K_INVALID_MESSAGE.format(k=k))
        files, books = options["questions"], [Path(b).expanduser() for b in options["book"]]
        if len(books) == 1:
            books = books * len(files)
        if len(books) != len(files):
            raise CommandError(
                BOOKS_MISMATCH_MESSAGE.format(files=len(files), books=len(options["book"]))
            )
        for book in books:
            if not book.is_dir():
                raise CommandError(BOOK_NOT_A_FOLDER_MESSAGE.format(path=book))
        try:
            reports = question_files_evaluate(
                list(zip(files, books, strict=True)),
                k=k,
                baselines=options["baselines"],
                on_progress=lambda line: self.stderr.write(line),
            )
        except EvaluationError as exc:
            raise CommandError(str(exc)) from exc
        except RagError as exc:
            raise CommandError(EVAL_FAILED_MESSAGE.format(reason=exc.message)) from exc

        self.stdout.write("\n\n".join(report_table(report) for report in reports))
        machine = (
            f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}"
        )
        self.stdout.write(f"machine: {machine}")
        if options["json_out"]:
            if len(reports) == 1:
                data = reports[0].as_dict()
            else:
                data = {"reports": [report.as_dict() for report in reports]}
            data["machine"] = machine
            out = Path(options["json_out"])
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            except OSError as exc:
                raise CommandError(JSON_UNWRITABLE_MESSAGE.format(path=out, error=exc)) from exc
            self.stdout.write(f"figures written to {out}")
