"""Citation checking: `[n]` markers must point at a source the reader was shown.

Models sometimes cite a number that is not a source (`[9]` with five sources). The
filter removes such numbers while the answer streams, so the text the reader sees,
`done.answer` and `citations` all agree. It holds back a trailing `[` (and the blank
before it) until the bracket closes, which delays at most a few characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A citation group: [3] or [1, 4]. Not preceded by a word character, so code such as
# `items[9]` is left alone.
_CITATION_RE = re.compile(r"(\s*)(?<!\w)\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
# An unfinished group at the end of the text so far, or trailing blanks that an invalid
# citation would take with it: held back until the next piece decides.
_HOLD_RE = re.compile(r"(\s*\[[\d,\s]{0,15}|\s+)\Z")


class CitationFilter:
    """Streaming filter: feed answer pieces, get them back without invalid citations."""

    def __init__(self, valid: Iterable[int]) -> None:
        self.valid = frozenset(valid)
        self.cited: set[int] = set()
        self._held = ""
        self._last_char = ""  # the last character emitted, for the word-boundary rule

    def feed(self, piece: str) -> str:
        """Return the part of the text so far that can be shown now, cleaned."""
        text = self._held + piece
        hold = _HOLD_RE.search(text)
        cut = hold.start() if hold else len(text)
        self._held = text[cut:]
        return self._emit(text[:cut])

    def flush(self) -> str:
        """Return whatever is still held (the answer ended)."""
        text, self._held = self._held, ""
        return self._emit(text)

    @property
    def citations(self) -> list[int]:
        """The valid source numbers the answer used, ascending."""
        return sorted(self.cited)

    def _emit(self, text: str) -> str:
        if not text:
            return ""
        # After a word character, a "[" at the start of this text is not a citation
        # (`items[9]`): a stand-in letter lets the look-behind see across pieces. It
        # can never be part of a match, so slicing it off again is safe.
        prefix = "a" if self._last_char.isalnum() or self._last_char == "_" else ""
        cleaned = _CITATION_RE.sub(self._replace, prefix + text)[len(prefix) :]
        if cleaned:
            self._last_char = cleaned[-1]
        return cleaned

    def _replace(self, match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.findall(r"\d+", match.group(2))]
        kept = [n for n in numbers if n in self.valid]
        if not kept:
            return ""  # the blank before it goes too: "claim [9]." -> "claim."
        self.cited.update(kept)
        return f"{match.group(1)}[{', '.join(str(n) for n in kept)}]"


def citations_clean(text: str, valid: Iterable[int]) -> tuple[str, list[int]]:
    """Return `text` without citations outside `valid`, and the valid ones it uses."""
    citation_filter = CitationFilter(valid)
    cleaned = citation_filter.feed(text) + citation_filter.flush()
    return cleaned, citation_filter.citations
