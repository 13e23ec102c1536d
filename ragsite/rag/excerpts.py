"""The line of a code block that answers a question, with what the book says it does.

Books answer many questions in their listings, not their prose: the command under
"# Set maximum performance mode", the default in `def __init__(self, tracker_type='csrt')`,
the `if peak_mb > 100:  # More than 100MB` of a monitoring node. A block is cut into
groups (`_groups`): a run of comment lines (`#`, `//`, `--`, a docstring) and the code
lines under it, up to a blank line or the next comment. Each code line is read with what
says what it does (`_Line.comment`): its group's comment, else its own trailing comment,
else, for a `def`/`class` line, its docstring. `best_excerpt` finds the line that holds
most of the question's word weight; the answer quotes it inline, after that comment
("Set maximum performance mode: `sudo nvpmodel -m 0` [1]."), and shows the block from
its group on.

Shell sessions (`$ cargo new hello`) are read as their commands: the prompt is dropped
and the program's output is not a candidate.
"""

from __future__ import annotations

import functools
import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .passages import (
    TEXT_MEMO_SIZE,
    _content_words,
    inline_quotable,
    shell_command,
    shell_session,
)

# Later sources' lines weigh less: retrieval ranked them lower (as for whole blocks).
SOURCE_RANK_DECAY = 0.2
# The line's own words (and its trailing comment's) count this much again beside its
# group's comment, so that of a group's lines the one that names the question's words
# wins; and a line that sets a value gains VALUE_WEIGHT for a question asking for one.
# Set on the even rows of the question sets (benchmarks/answer_quality.py): 0 to 0.5 and
# 0 to 0.4 moved one or two answers each.
OWN_WEIGHT = 0.25
VALUE_WEIGHT = 0.2

# "Which tracker ...?", "What gain ...?", "How many threads ...?" (not "What is X?").
_VALUE_QUESTION = re.compile(
    r"^\W*(?:what(?! (?:is|are|was|were|does|do)\b)|which|"
    r"how (?:many|much|long|often|fast|big|far|high|large|small))\b",
    re.IGNORECASE,
)
# A value set or passed: `gain=0.1`, `tracker_type='csrt'` (not a comparison, `==`).
_SETS = re.compile(r"(?<![=!<>])=(?!=)\s*(?:-?\d|[\"'])")
_LITERAL = re.compile(r"(?<![\w.])\d|[\"'][^\"']+[\"']")
_COMMENT = re.compile(r"^\s*(?:#(?![!\[{(])|//+|--\s|/\*+|\*+/?\s|<!--|\"\"\"|''')")
_COMMENT_MARK = re.compile(
    r"^\s*(?:#+|//+|--|/\*+|\*+/?|<!--|\"\"\"|''')\s*|\s*(?:\*/|-->|\"\"\"|''')\s*$"
)
# A trailing comment: `x = 1  # the default`, `let x = 5; // five`.
_TRAILING = re.compile(r"\s(?:#|//)\s+(.+)$")
_DOCSTRING_QUOTES = ('"""', "'''")


@dataclass(frozen=True, slots=True)
class _Line:
    """A code line that may answer."""

    index: int  # its line number in the block
    code: str  # as written, without a shell prompt or its trailing comment
    comment: str  # what says what it does (see the module), unmarked ("" when none)
    words: frozenset[str]  # of the line, its trailing comment and its group's comment
    own: frozenset[str]  # of the line and its trailing comment
    literal: bool  # it sets or passes a value: a number or a string outside its comment
    start: int  # the first line of its group (or of its `def`), where the block shown starts


@dataclass(frozen=True, slots=True)
class Excerpt:
    """The answering line of one of the candidate code blocks."""

    block: int  # index into the blocks given to `best_excerpt`
    line: _Line
    coverage: float  # the share of the question's word weight it holds (with its comment)
    distinct: bool  # it scores above every other line of its block
    alone: bool  # it is its block's only line of code (comments and output aside)

    def inline(self) -> str | None:
        """The line to quote inline in a sentence: one short line that scores above
        the rest of its block, and states something (not a header, `def f():`, unless
        it sets values: `def __init__(self, tracker_type='csrt'):`)."""
        text = self.line.code.strip()
        if not self.distinct or not inline_quotable(text):
            return None  # (a line too long or holding backticks is shown in the block only)
        if text.endswith(("(", "[", ",", "\\")):
            return None  # the line goes on
        if text.endswith((":", "{")) and _SETS.search(text) is None:
            return None  # `def f():` says nothing; `def __init__(self, gain=0.1):` does
        return text

    def window(self, code: str, *, at_most: int) -> str:
        """The block as shown with it, dedented: all of it when it has `at_most` lines,
        else `at_most` lines from the line's group on."""
        lines = code.splitlines()
        start = 0 if len(lines) <= at_most else self.line.start
        return textwrap.dedent("\n".join(lines[start : start + at_most])).strip("\n")


def asks_for_value(question: str) -> bool:
    """'Which tracker ...?', 'What gain ...?', 'How many threads ...?': a value a listing
    may set (not 'What is X?', which a definition answers)."""
    return _VALUE_QUESTION.search(question) is not None


def best_excerpt(
    blocks: Sequence[tuple[str, str, int]], weights: dict[str, float], question: str
) -> Excerpt | None:
    """The code line of `blocks` ((code, fence info, source index) each) that holds most
    of the question's word `weights`; ties go to the earlier block, then line."""
    total = sum(weights.values())
    if not total:
        return None
    value = asks_for_value(question)
    scored: list[tuple[float, int, _Line, float]] = []
    counts: list[int] = []  # each block's lines
    for index, (code, info, source_index) in enumerate(blocks):
        lines = _lines(code, info)
        counts.append(len(lines))
        for line in lines:
            coverage = sum(w for word, w in weights.items() if word in line.words) / total
            if coverage <= 0:
                continue
            own = sum(w for word, w in weights.items() if word in line.own) / total
            score = coverage + OWN_WEIGHT * own + (VALUE_WEIGHT if value and line.literal else 0)
            scored.append((score / (1 + SOURCE_RANK_DECAY * source_index), index, line, coverage))
    if not scored:
        return None
    score, block, line, coverage = max(scored, key=lambda item: item[0])
    others = (s for s, b, other, _ in scored if b == block and other is not line)
    return Excerpt(
        block,
        line,
        coverage,
        distinct=score > max(others, default=0.0),
        alone=counts[block] == 1,
    )


@functools.lru_cache(maxsize=TEXT_MEMO_SIZE // 8)
def _lines(code: str, info: str) -> tuple[_Line, ...]:
    raw = code.splitlines()
    shell = shell_session(code, info)
    docstrings = _docstrings(raw)
    lines: list[_Line] = []
    for start, end, comment_end in _groups(raw):
        comment = _joined(_COMMENT_MARK.sub("", line) for line in raw[start:comment_end])
        for index in range(comment_end, end):
            text = raw[index]
            if shell:
                command = shell_command(text)
                if command is None:
                    continue  # the program's output
                text = command
            trailing = _TRAILING.search(text)
            own = _content_words(text)
            if trailing:
                own |= _content_words(trailing.group(1))
            if not own:
                continue
            said, first = comment, start
            if index in docstrings:
                said, first = docstrings[index], index  # `def f():` and what its docstring says
            elif not said and trailing and len(trailing.group(1).split()) > 1:
                said = trailing.group(1).strip()  # "# Control gain" (not "# pixels")
            code_part = text[: trailing.start()].rstrip() if trailing else text
            lines.append(
                _Line(
                    index,
                    code_part,
                    said,
                    own | _content_words(said),
                    own,
                    _LITERAL.search(code_part) is not None,
                    first,
                )
            )
    return tuple(lines)


def _joined(lines: Iterable[str]) -> str:
    """Comment lines as one text: a line that ends without punctuation before one that
    starts a sentence ends one ("Detect waving (simplified). This needs temporal ...")."""
    text = ""
    for line in lines:
        line = " ".join(line.split())
        if not line:
            continue
        if text and text[-1] not in ".!?:;,([-" and line[0].isupper():
            text += "."
        text = f"{text} {line}" if text else line
    return text


def _docstrings(lines: Sequence[str]) -> dict[int, str]:
    """Python's `def`/`class` lines followed by a docstring: index -> its text."""
    found: dict[int, str] = {}
    for index, line in enumerate(lines[:-1]):
        first = lines[index + 1].lstrip()
        if not line.rstrip().endswith(":") or not first.startswith(_DOCSTRING_QUOTES):
            continue
        quote = first[:3]
        end = index + 1
        if first.count(quote) < 2:
            end = next((i for i in range(index + 2, len(lines)) if quote in lines[i]), end)
        found[index] = _joined(line.replace(quote, "") for line in lines[index + 1 : end + 1])
    return found


def _comments(lines: Sequence[str]) -> list[bool]:
    """Which lines are comments: marked ones, and the lines of a docstring."""
    flags: list[bool] = []
    in_docstring = False
    for line in lines:
        flags.append(in_docstring or _COMMENT.match(line) is not None)
        if in_docstring or line.lstrip().startswith(_DOCSTRING_QUOTES):
            quotes = line.count('"""') + line.count("'''")
            in_docstring = in_docstring != (quotes % 2 == 1)
    return flags


def _groups(lines: Sequence[str]) -> list[tuple[int, int, int]]:
    """(start, end, end of its comment) of each run of comment lines and the code under
    it, cut at blank lines and where a comment starts after code."""
    groups: list[tuple[int, int, int]] = []
    comments = _comments(lines)
    start = comment_end = 0
    in_group = has_code = False
    for index, line in enumerate([*lines, ""]):
        blank = not line.strip()
        comment = not blank and index < len(lines) and comments[index]
        if in_group and (blank or (comment and has_code)):
            groups.append((start, index, comment_end))
            in_group = False
        if blank:
            continue
        if not in_group:
            start, comment_end, in_group, has_code = index, index, True, False
        if comment and not has_code:
            comment_end = index + 1  # the comment goes on
        else:
            has_code = True
    return groups
