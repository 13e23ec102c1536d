"""The hit rule: does a retrieved chunk hold the passage that answers a question?

A chunk answers a question when:
- it comes from the question's `gold_file` (suffix match on its path), and
- it contains one of the `answers` (NFKC, case-folded, whitespace-collapsed, on word
  boundaries), or at least half of the 5-word shingles of `gold_text` are in the
  chunk, or at least half of the chunk's own 5-word shingles are in `gold_text`
  (a short chunk lying wholly inside the gold passage).
Pure functions.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from pathlib import PurePosixPath

from ragsite.rag.types import Chunk

from .questions import Question

SHINGLE_SIZE = 5
SHINGLE_SHARE = 0.5  # "at least half of the shingles"


_WHITESPACE_RE = re.compile(r"\s+")
_WORD_RE = re.compile(r"\w+")
_FENCE_LINE_RE = re.compile(r"^[ \t]*(?:`{3,}|~{3,}).*$", re.MULTILINE)


def normalise(text: str) -> str:
    """Return `text` NFKC-normalised, case-folded, with whitespace runs collapsed to one space."""
    return _WHITESPACE_RE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def words(text: str) -> list[str]:
    """Return the normalised words of `text` (runs of letters, digits and underscores)."""
    return _WORD_RE.findall(normalise(text))


def shingles(text: str, size: int = SHINGLE_SIZE) -> set[tuple[str, ...]]:
    """Return the set of `size`-word shingles of `text` (one shingle if it is shorter)."""
    ws = words(text)
    if len(ws) < size:
        return {tuple(ws)} if ws else set()
    return {tuple(ws[i : i + size]) for i in range(len(ws) - size + 1)}


def contains_answer(text: str, answer: str) -> bool:
    """True when the normalised `answer` occurs in the normalised `text` on word boundaries.

    A boundary is the edge of the text or a non-word character next to the match, so
    "ZMP" matches "(ZMP)" but not "ZMPs", and "$700" matches "~$700".
    """
    needle = normalise(answer)
    if not needle:
        return False
    pattern = r"(?<!\w)" + re.escape(needle) + r"(?!\w)"
    return re.search(pattern, normalise(text)) is not None


def passage_occurs(passage: str, document: str) -> bool:
    """True when the words of `passage` occur contiguously in `document`.

    Punctuation, whitespace and Markdown markup (code fence lines with their language
    included) are ignored, so a passage copied from a rendered page matches its source.
    """
    needle = " ".join(words(_FENCE_LINE_RE.sub("", passage)))
    haystack = " ".join(words(_FENCE_LINE_RE.sub("", document)))
    return bool(needle) and f" {needle} " in f" {haystack} "


def _path_parts(path: str) -> tuple[str, ...]:
    parts = PurePosixPath(path.replace("\\", "/")).parts
    return tuple(part for part in parts if part not in ("", ".", "/"))


def path_matches(chunk_path: str, gold_file: str) -> bool:
    """True when `chunk_path` ends with `gold_file`, compared whole path component by component."""
    gold = _path_parts(gold_file)
    chunk = _path_parts(chunk_path)
    return bool(gold) and len(chunk) >= len(gold) and chunk[-len(gold) :] == gold


def shingle_overlap(text: str, gold_text: str) -> bool:
    """True when `text` holds at least half of the gold shingles, or half of its own are gold."""
    own, gold = shingles(text), shingles(gold_text)
    if not own or not gold:
        return False
    shared = len(own & gold)
    return shared > 0 and (
        shared >= SHINGLE_SHARE * len(gold) or shared >= SHINGLE_SHARE * len(own)
    )


def is_hit(*, path: str, text: str, question: Question) -> bool:
    """Apply the hit rule to one retrieved chunk (its path and its text)."""
    if not path_matches(path, question.gold_file):
        return False
    if any(contains_answer(text, answer) for answer in question.answers):
        return True
    return shingle_overlap(text, question.gold_text)


def first_hit_rank(chunks: Sequence[Chunk], question: Question) -> int | None:
    """Return the 1-based rank of the first chunk that is a hit, None when none is."""
    for rank, chunk in enumerate(chunks, start=1):
        if is_hit(path=chunk.path, text=chunk.text, question=question):
            return rank
    return None
