"""Question sets: one JSON object per line (benchmarks/questions/*.jsonl).

An in-book row names the page and passage that answer it:
    {"id", "question", "answers": [...], "gold_file", "gold_text", "kind"?}
An out-of-book row is a question the book does not answer:
    {"id", "question", "out_of_book": true, "near_domain"?: true | false}
Pure: no Django, no I/O besides reading the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUESTIONS_MISSING_MESSAGE = "The question file {path} does not exist."
QUESTIONS_UNREADABLE_MESSAGE = "The question file {path} could not be read: {error}"
QUESTIONS_EMPTY_MESSAGE = "The question file {path} holds no questions."
LINE_NOT_JSON_MESSAGE = "{source}, line {line}: not valid JSON ({error})."
LINE_NOT_OBJECT_MESSAGE = "{source}, line {line}: expected a JSON object, got {kind}."
LINE_FIELD_MESSAGE = "{source}, line {line}: {problem}."
DUPLICATE_ID_MESSAGE = "{source}, line {line}: duplicate id {id!r} (first on line {first})."


class EvaluationError(Exception):
    """The evaluation cannot run: a bad question file or book folder (message says why)."""


@dataclass(frozen=True, slots=True)
class Question:
    """One question of a set, with what a correct retrieval must find.

    An out-of-book question (`out_of_book`) has no answers and no gold passage: what is
    measured is whether retrieval flags it as uncertain.
    """

    id: str
    question: str
    answers: tuple[str, ...] = ()  # short strings found verbatim in the gold passage
    gold_file: str = ""  # path of the page that answers it, relative to the book folder
    gold_text: str = ""  # the passage that answers it, verbatim (20-80 words)
    kind: str = ""  # lookup | paraphrase | code | definition | howto (free text)
    out_of_book: bool = False
    near_domain: bool | None = None  # out-of-book: about a neighbouring subject


def _non_empty(data: dict[str, Any], names: Iterable[str]) -> str | None:
    for name in names:
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            return f"field {name!r} must be a non-empty string"
    return None


def _field_problem(data: dict[str, Any]) -> str | None:
    """Return what is wrong with a question object, None when it is well formed."""
    out_of_book = data.get("out_of_book", False)
    if not isinstance(out_of_book, bool):
        return "field 'out_of_book' must be true or false"
    if out_of_book:
        near = data.get("near_domain")
        if near is not None and not isinstance(near, bool):
            return "field 'near_domain' must be true or false"
        return _non_empty(data, ("id", "question"))
    problem = _non_empty(data, ("id", "question", "gold_file", "gold_text"))
    if problem:
        return problem
    answers = data.get("answers")
    if (
        not isinstance(answers, list)
        or not answers
        or not all(isinstance(a, str) and a.strip() for a in answers)
    ):
        return "field 'answers' must be a non-empty list of non-empty strings"
    if not isinstance(data.get("kind", ""), str):
        return "field 'kind' must be a string"
    return None


def _question(data: dict[str, Any]) -> Question:
    if data.get("out_of_book", False):
        return Question(
            id=data["id"].strip(),
            question=data["question"].strip(),
            out_of_book=True,
            near_domain=data.get("near_domain"),
        )
    return Question(
        id=data["id"].strip(),
        question=data["question"].strip(),
        answers=tuple(a.strip() for a in data["answers"]),
        gold_file=data["gold_file"].strip(),
        gold_text=data["gold_text"].strip(),
        kind=data.get("kind", "").strip(),
    )


def questions_parse(lines: Iterable[str], *, source: str = "<questions>") -> list[Question]:
    """Parse JSONL question lines (blank lines skipped) into questions.

    Raises:
        EvaluationError: a line is not a JSON object with the expected fields, or an
            id repeats; the message names `source` and the 1-based line number.
    """
    questions: list[Question] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvaluationError(
                LINE_NOT_JSON_MESSAGE.format(source=source, line=number, error=exc.msg)
            ) from exc
        if not isinstance(data, dict):
            raise EvaluationError(
                LINE_NOT_OBJECT_MESSAGE.format(source=source, line=number, kind=type(data).__name__)
            )
        problem = _field_problem(data)
        if problem:
            raise EvaluationError(
                LINE_FIELD_MESSAGE.format(source=source, line=number, problem=problem)
            )
        qid = data["id"].strip()
        if qid in first_line:
            raise EvaluationError(
                DUPLICATE_ID_MESSAGE.format(
                    source=source, line=number, id=qid, first=first_line[qid]
                )
            )
        first_line[qid] = number
        questions.append(_question(data))
    return questions


def questions_load(path: Path | str) -> list[Question]:
    """Read a JSONL question file.

    Raises:
        EvaluationError: the file is missing, unreadable, empty or has a bad line.
    """
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(QUESTIONS_MISSING_MESSAGE.format(path=path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvaluationError(QUESTIONS_UNREADABLE_MESSAGE.format(path=path, error=exc)) from exc
    questions = questions_parse(text.splitlines(), source=str(path))
    if not questions:
        raise EvaluationError(QUESTIONS_EMPTY_MESSAGE.format(path=path))
    return questions
