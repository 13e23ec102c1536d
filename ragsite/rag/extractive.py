"""The offline answerer: picks the sentences of the sources that state the answer.

No language model runs here. The answer is composed from the retrieved passages:

1. Each source's body is cut into *units*: prose sentences (a sentence never ends inside
   brackets or parentheses), list items, table rows (one statement each, the cells named
   by the header) and fenced code blocks, kept verbatim with the sentence that
   introduces them. A sentence ending in a colon is one unit with the list it
   introduces. Title-like lines and lead-ins that say nothing without their block
   ("... by running:") are left out. Inline code keeps its backticks, so `Rc<T>` stays
   `Rc<T>`.
2. Each sentence is scored by a small logistic model (`_sentence_score`) whose weights
   were fitted on half of the project's question sets: its cosine with the question
   (when `similarities` has it), the share of the question's words it holds, weighted
   by how rare each word is among the sources, the share its section's title holds, the
   rank of its source, and its form: definitions and statements count more;
   transitions ("Now that you know how to ..."), exercise prompts and exercise
   sections count much less (captions and the book's own questions are never quoted).
3. The best sentence comes first (the answer is in the first sentence when the book
   has one), then up to four more that score at least KEEP_RATIO of it, another
   source's sentences counting less, each source's sentences in the book's order. A
   code block of the sources is included as a fenced block, never run together as
   prose, when the question asks for code (a command, a listing, a config), when a
   chosen sentence announces it, or when it holds more of the question than the prose.
4. Every sentence carries the `[n]` of its source; nothing else is cited.

The reader is told once that no model wrote the answer: the `mode: "extractive"` of
the `done` event, which the widget shows as a note. The answer text carries no notice.

With a highlighted passage (a source whose chunk id is `SELECTION_ID`), the answer
explains it from the passages around it: the selection's words join the question's,
and the selection itself is not quoted back unless nothing else is there.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import weakref
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .exceptions import LLMError
from .sentences import sentence_key
from .types import AnswerRequest, ChatMessage, Embedder, Source

NO_SOURCES_MESSAGE = (
    "The book does not seem to cover this. Try rephrasing the question, or ask about "
    "a topic from the book's table of contents."
)
EXTRACTIVE_CANNOT_COMPLETE_MESSAGE = (
    "No language model is configured: the extractive answerer can only quote the book."
)
SELECTION_ID = "selection"  # the chunk id answering gives a highlighted passage

MIN_SENTENCES = 2
MAX_SENTENCES = 5
MIN_SENTENCE_CHARS = 25
MIN_SENTENCE_WORDS = 4
MAX_SENTENCE_CHARS = 400
MAX_CODE_LINES = 20
# Without a code question, a block is shown when it holds this share of the question's
# word weight, and more of it than the chosen sentences do.
CODE_ALONE_COVERAGE = 0.6
# A block's score shrinks by this share per line: a command beats a whole program.
CODE_LENGTH_DECAY = 0.05
MAX_LIST_ITEMS = 8
# A sentence joins the answer when it scores at least this share of the best one; one
# from another source than the best one's weighs OTHER_SOURCE_WEIGHT of its score.
KEEP_RATIO = 0.3
OTHER_SOURCE_WEIGHT = 0.7
SOURCE_RANK_DECAY = 0.2  # later sources' code blocks weigh less: retrieval ranked them lower
# How likely a sentence states the answer: a logistic model whose weights were fitted on
# half of the project's question sets (benchmarks/questions/, the even rows) and checked
# on the other half. MEANING_WEIGHTS: bias, then cosine with the question, share of the
# question's word weight the sentence has, its lexical score over the best one's, share
# its section title has. WORD_WEIGHTS: the same without sentence vectors (cosine unused).
MEANING_WEIGHTS = (-3.0, 2.4, 1.0, 1.6, 1.3)
WORD_WEIGHTS = (-3.0, 0.0, 1.2, 2.0, 1.3)
# Form: book question, transition, caption/exercise prompt, forward reference, leans on
# the sentence before ("This ..."), definition, statement, list item, table row, lead-in,
# first of its passage, log(length/100), in an exercise or "next steps" section, source 1,
# source 2. Fitted too, except the first three, the forward reference and the exercise
# section, set by hand: a reader must not get transitions and exercise prompts however
# many words they share with the question (the fit, on few such sentences, gave ~-0.3).
FORM_WEIGHTS = (-2.0, -3.0, -2.0, 0.0, -0.45, 0.5, 0.6, -0.1, 0.5, 0.0, 0.25, 0.1, -2.5, 1.6, 0.2)
# How many candidates are embedded at most, when sentence vectors are computed per answer.
MAX_EMBEDDED_SENTENCES = 32
# How many sentence vectors each embedder's memo keeps (~1.5 KB each).
MEMO_SENTENCES = 20_000
# How many sentences' analyses (words, form) are memoised; chunks' units an eighth of it.
TEXT_MEMO_SIZE = 16_384

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your
    yours yourself yourselves explain tell describe please mean means meaning use used using
    book chapter""".split()
)
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "fig.", "eq.", "dr.", "mr.", "ms.", "no.")

_FRONT_MATTER = re.compile(r"\A\s*---\n.*?\n---[ \t]*(\n|\Z)", re.DOTALL)
_FENCE = re.compile(
    r"^[ \t]*(?P<marker>```+|~~~+)[ \t]*(?P<info>[^\n]*)\n(?P<code>.*?)^[ \t]*(?P=marker)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
# An HTML/MDX tag stands on its own ("<Tabs>", "</div>"); "Vec<String>" and "Rc<T>"
# follow an identifier and are generic types, not tags.
_HTML_TAG = re.compile(r"(?<![\w:])</?[A-Za-z][\w.-]*(?:\s[^<>\n]*)?/?>")
_MDX_LINE = re.compile(r"^\s*(import|export)\s.*$", re.MULTILINE)
_ADMONITION = re.compile(r"^\s*:::\s*\w*.*$", re.MULTILINE)
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_LINK_DEFINITION = re.compile(r"^\s*\[[^\]]+\]:\s*\S+.*$", re.MULTILINE)
# Underscores only emphasise at word edges (CommonMark), so snake_case identifiers survive.
_EMPHASIS = re.compile(r"(\*\*|\*)(?=\S)(.+?)(?<=\S)\1|(?<!\w)(__|_)(?=\S)(.+?)(?<=\S)\3(?!\w)")
_INLINE_CODE = re.compile(r"`+([^`\n]+?)`+")
_PLACEHOLDER = re.compile(r"\x00(\d+)\x00")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[`\x00]?[A-Z0-9\x00`])")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_CITATION = re.compile(r"\[\d+\]")
_CODE_SPAN = re.compile(r"`[^`]*`")
_NOT_LETTER = re.compile(r"[^\w\s]|_")

# Sentences that lead somewhere else rather than say something.
_TRANSITION = re.compile(
    r"^(?:now that\b|now,? let'?s\b|now we\b|next,|let'?s\b|let’s\b|we'?ll\b|we’ll\b|"
    r"in this (?:chapter|section|part|lesson|module)\b|in the (?:next|previous|last|following) "
    r"(?:chapter|section)\b|this (?:chapter|section) (?:covers|explains|introduces|shows)\b|"
    r"as (?:you|we) (?:saw|learned|mentioned|discussed)\b|recall (?:that|from)\b|so far\b|"
    r"before we\b|up to now\b|first,? let'?s\b|here,? we\b|we (?:will|are going to)\b|"
    r"you(?:'ll| will) (?:learn|see)\b|you’ll (?:learn|see)\b|to recap\b|in summary\b|"
    r"next steps?\b)",
    re.IGNORECASE,
)
_FORWARD_REFERENCE = re.compile(
    r"\b(?:in|see) (?:the )?(?:next|following|previous) (?:chapter|section)\b|\bchapter \d+\b",
    re.IGNORECASE,
)
# Sections that ask the reader things or point onwards rather than state the answer.
_EXERCISE_SECTION = re.compile(
    r"\b(?:exercises?|knowledge check|review questions|quiz|practical application|"
    r"critical thinking|conceptual questions|next steps|further reading|assignments?|"
    r"learning objectives|what you(?:'ll| will) learn)\b",
    re.IGNORECASE,
)
_CAPTION_LABEL = re.compile(
    r"^(?:figure|fig\.|listing|table)\s*[\w.-]*\d[\w.-]*:\s*", re.IGNORECASE
)
_CAPTION = re.compile(r"^(?:figure|fig\.|listing|table|filename)\s*[A-Z]?[\d:-]", re.IGNORECASE)
_EXERCISE = re.compile(
    r"^(?:try (?:to|it|this)|exercise\b|quiz\b|challenge\b|(?:explain|describe|implement|compare|"
    r"design|discuss|calculate|derive|identify|evaluate|analy[sz]e|propose|sketch|justify|"
    r"research|investigate) (?:the|a|an|how|why|what|your|each|two|three)\b)",
    re.IGNORECASE,
)
_STATEMENT = re.compile(
    r"\b(?:is|are) (?:a|an|the|called|used|what|how)\b|\bmeans\b|\brefers? to\b|\blets? you\b|"
    r"\ballows?\b|\benables?\b|\bprovides?\b|\bconsists? of\b|\bdefined? as\b|\breturns?\b|"
    r"\bmeasures?\b|\bcontains?\b|\bmust\b|\bcan be\b|\bstores?\b",
    re.IGNORECASE,
)
# Questions that are answered by a code block: a command, a listing, a config.
_ANAPHORA = re.compile(r"^(?:this|that|these|those|it|they|such|here|there)\b", re.IGNORECASE)
_DEFINITION = re.compile(
    r"\b(?:is|are) (?:called|known as|defined as)\b|\bknown as\b|\brefers? to\b|\bmeans\b|"
    r"\bstands? for\b|^(?:an?|the) [^,;:]{2,60}? (?:is|are) (?:a|an|the)\b",
    re.IGNORECASE,
)
# A lead-in that is no sentence without what follows it ("enter the following command:").
_INCOMPLETE = re.compile(
    r"\b(?:following|follows|this|these|here|below|like|as|by|with|to|run|running|is|are|"
    r"command|commands|code|output|example|listing|shown|see|type|enter|appears?|prints?|"
    r"shows?|looks?|get|gives?|produces?|says?)\s*:$",
    re.IGNORECASE,
)
# An identifier in a question (`snake_case`, CamelCase, `a::b`, `f()`, `#[attr]`) asks
# about code.
_IDENTIFIER = re.compile(r"`|\b[a-z]+_[a-z_]+\b|\b[a-z]+[A-Z]\w*|\b[A-Z][a-z]+[A-Z]\w*|::|\w\(|#\[")
_CODE_INTENT = re.compile(
    r"\b(?:command|commands|run|install|compile|build|code|example|listing|syntax|snippet|"
    r"config|configure|configuration|flag|option|cargo|terminal|shell|script|launch|"
    r"declare|define|write|annotate|signature|macro|import)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Sentence:
    """A sentence of a source that may be quoted."""

    source_index: int  # order of the source as given (retrieval rank)
    position: int  # order of the unit within its source
    n: int  # the source's citation number
    text: str
    words: frozenset[str]  # its content words (a lead-in's include its list's)
    unit: str  # "text" (of a paragraph), "item" (of a list) or "row" (of a table)
    items: tuple[str, ...]  # the list a lead-in ("... as follows:") introduces
    heading_words: frozenset[str]  # the content words of its section's title
    form: tuple[float, ...]  # the features of its form (see FORM_WEIGHTS)


@dataclass(frozen=True, slots=True)
class _Code:
    """A fenced code block of a source, with the sentence that introduces it."""

    source_index: int
    position: int
    n: int
    info: str  # the fence's info string ("rust", "console")
    code: str
    intro: str  # the sentence before the block ("" when none)
    words: frozenset[str]


def _stem(word: str) -> str:
    """Fold common endings so 'measure', 'measures', 'measured' and 'measuring' match."""
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if suffix == "s" and word.endswith("ss"):  # "class", not a plural
            break
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    if word.endswith("e") and len(word) > 3:  # "measure" -> "measur", like "measures"
        word = word[:-1]
    return word


def content_words(text: str) -> set[str]:
    """Return the stemmed, lowercased words of a text that carry meaning."""
    return set(_content_words(text))


@functools.lru_cache(maxsize=TEXT_MEMO_SIZE)
def _content_words(text: str) -> frozenset[str]:
    return frozenset(
        _stem(word)
        for word in _WORD.findall(text.lower())
        if word not in STOPWORDS and (len(word) > 2 or word.isdigit())
    )


# --- cutting a source into units ------------------------------------------------------------


def _clean_markdown(text: str) -> str:
    """Drop MDX/HTML and Markdown markup from prose, keeping inline code in backticks."""
    spans: list[str] = []

    def hide(match: re.Match[str]) -> str:
        spans.append(match.group(1).strip())
        return f"\x00{len(spans) - 1}\x00"

    text = _INLINE_CODE.sub(hide, text)  # nothing below may touch code
    text = _MDX_LINE.sub("", text)
    text = _ADMONITION.sub("", text)
    text = _IMAGE.sub("", text)
    text = _LINK_DEFINITION.sub("", text)
    text = _HTML_TAG.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _EMPHASIS.sub(lambda m: m.group(2) or m.group(4), text)
    text = _CITATION.sub("", text)  # a quoted "[2]" from the book would pose as our citation
    return _PLACEHOLDER.sub(lambda m: f"`{spans[int(m.group(1))]}`", text)


@functools.lru_cache(maxsize=TEXT_MEMO_SIZE)
def _looks_like_prose(sentence: str, unit: str = "text") -> bool:
    """Reject headings, table rules, code-ish and very short fragments."""
    if len(sentence) < MIN_SENTENCE_CHARS or len(sentence.split()) < MIN_SENTENCE_WORDS:
        return False
    if unit != "row" and (sentence.startswith(("#", "|", ">")) or sentence.count("|") >= 2):
        return False
    plain = _CODE_SPAN.sub("x", sentence)
    symbols = len(_NOT_LETTER.findall(plain))
    return 1 - symbols / max(len(plain), 1) >= (0.7 if unit == "row" else 0.85)


def _depth_change(text: str) -> int:
    return (
        text.count("(") - text.count(")") + text.count("[") - text.count("]") + text.count("`") % 2
    )


def _split_part(part: str) -> list[str]:
    """Split one paragraph or list item into sentences, never inside brackets."""
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(part):
        candidate = part[start : match.start()].rstrip()
        last_word = candidate.rsplit(maxsplit=1)[-1].lower() if candidate else ""
        if last_word in _ABBREVIATIONS or re.fullmatch(r"[a-z]\.", last_word):
            continue  # "e.g. The" or an initial: not a sentence end
        if _depth_change(part[start : match.end()].rstrip()) > 0:
            continue  # inside "( ... )", "[ ... ]" or a code span
        pieces.append(part[start : match.end()].strip())
        start = match.end()
    pieces.append(part[start:].strip())
    return [piece for piece in pieces if piece]


def _table_row(cells: list[str], header: list[str]) -> str:
    """A table row as one statement: 'Depth Range: 0.2m - 10m' or 'USB: Symptoms: ...; Fix: ...'."""
    cells = [cell.strip() for cell in cells]
    if not cells or not cells[0]:
        return ""
    rest = [
        f"{name}: {cell}" if name and len(cells) > 2 else cell
        for name, cell in zip(header[1:] or [""] * (len(cells) - 1), cells[1:], strict=False)
        if cell
    ]
    if not rest:
        return ""
    text = f"{cells[0]}: {'; '.join(rest)}"
    return text if text.endswith((".", "!", "?")) else text + "."


def _table_cells(line: str) -> list[str]:
    return line.strip().strip("|").split("|")


def _heading_like(part: str) -> bool:
    """A bold line or title standing alone ("Install Latest Production Driver")."""
    if part.rstrip().endswith((".", "!", "?", ":", ";", ")", "`", '"', "”", "…")):
        return False
    words = [w for w in part.split() if w[:1].isalpha()]
    capitalised = sum(1 for w in words if w[0].isupper())
    return not words or capitalised / len(words) >= 0.6


def _prose_units(prose: str) -> list[tuple[str, str]]:
    """Split Markdown prose into ("text" | "item" | "row", sentence) units, in order.

    A paragraph's sentences are "text"; each sentence of a list item is an "item"; a
    table row is one "row", its cells named by the header ("Range: 0.2-10 m.").
    Headings and title-like lines are left out.
    """
    units: list[tuple[str, str]] = []
    for block in re.split(r"\n\s*\n", _clean_markdown(prose)):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        buffer: list[str] = []
        parts: list[tuple[str, str]] = []
        header: list[str] = []
        for index, line in enumerate(lines):
            if line.startswith("|"):
                if buffer:
                    parts.append(("text", " ".join(buffer)))
                    buffer = []
                if re.fullmatch(r"[|:\-\s]+", line):
                    continue  # the separator under the header
                following = lines[index + 1] if index + 1 < len(lines) else ""
                if re.fullmatch(r"\|?[|:\-\s]+", following) and "-" in following:
                    header = [cell.strip() for cell in _table_cells(line)]
                    continue
                parts.append(("row", _table_row(_table_cells(line), header)))
            elif line.startswith("#"):
                if buffer:
                    parts.append(("text", " ".join(buffer)))
                    buffer = []
            elif _LIST_MARKER.match(line):
                if buffer:
                    parts.append(("text", " ".join(buffer)))
                    buffer = []
                parts.append(("item", _LIST_MARKER.sub("", line)))
            elif parts and parts[-1][0] == "item" and not buffer:
                parts[-1] = ("item", f"{parts[-1][1]} {line}")  # a list item's wrapped line
            else:
                buffer.append(line)
        if buffer:
            parts.append(("text", " ".join(buffer)))
        for kind, part in parts:
            part = " ".join(part.split())
            if not part:
                continue
            if kind == "row":
                units.append((kind, part))
            elif _heading_like(part):
                continue
            else:
                units.extend((kind, sentence) for sentence in _split_part(part))
    return units


def _prose_sentences(prose: str) -> list[str]:
    """Split Markdown prose into sentences (each list item and paragraph stands alone)."""
    return [text for _, text in _prose_units(prose)]


def split_sentences(text: str) -> list[str]:
    """Split a passage's prose into sentences (code blocks left out)."""
    text = _FRONT_MATTER.sub("", text)
    return _prose_sentences(_FENCE.sub("\n\n", text))


@functools.lru_cache(maxsize=TEXT_MEMO_SIZE // 8)  # the same chunks come back as sources
def _units(body: str) -> tuple[tuple[str, str, str], ...]:
    """Cut a body into (kind, text, info) units in order: "text", "item" and "row" prose
    sentences, and ("code", code, fence info) blocks."""
    body = _FRONT_MATTER.sub("", body)
    units: list[tuple[str, str, str]] = []
    start = 0
    for match in _FENCE.finditer(body):
        units.extend((k, s, "") for k, s in _prose_units(body[start : match.start()]))
        code = match.group("code").rstrip("\n")
        if code.strip():
            units.append(("code", code, match.group("info").strip()))
        start = match.end()
    units.extend((k, s, "") for k, s in _prose_units(body[start:]))
    return tuple(units)


def _shorten(sentence: str) -> str:
    """Cut an over-long sentence at a clause boundary outside brackets and code."""
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return sentence
    best = -1
    for match in re.finditer(r"[,;:] ", sentence[:MAX_SENTENCE_CHARS]):
        if _depth_change(sentence[: match.start()]) == 0:
            best = match.start()
    if best < MAX_SENTENCE_CHARS // 3:
        best = -1
        for match in re.finditer(r" ", sentence[:MAX_SENTENCE_CHARS]):
            if _depth_change(sentence[: match.start()]) == 0:
                best = match.start()
    if best <= 0:
        return sentence  # no safe place to cut: whole is better than broken
    return sentence[:best].rstrip(",;: ") + "…"


def _with_citation(sentence: str, n: int) -> str:
    """Put `[n]` before the sentence's closing punctuation: 'Lidar measures depth [2].'"""
    sentence = sentence.rstrip()
    if sentence.startswith("(") and sentence.endswith(")") and _depth_change(sentence[1:-1]) == 0:
        return f"{sentence} [{n}]"  # a sentence in parentheses: cited after them
    match = re.search(r"([.!?…:]+[\"')\]]*)$", sentence)
    if match and not sentence.endswith("`"):
        return f"{sentence[: match.start()]} [{n}]{match.group(1)}"
    return f"{sentence.rstrip(',;')} [{n}]."


def _prose_candidates(
    units: Sequence[tuple[str, str, str]],
) -> Iterator[tuple[int, str, str, tuple[str, ...]]]:
    """The prose units an answer may quote: (position, kind, text, the items a lead-in
    introduces)."""
    for position, (kind, text, _) in enumerate(units):
        if kind == "code":
            continue
        items: tuple[str, ...] = ()
        if text.endswith(":"):
            # A lead-in: it is quoted with the list it introduces, or alone (a block it
            # introduces is shown with it when the block is chosen).
            for later_kind, later_text, _ in units[position + 1 :]:
                if later_kind != "item" or len(items) >= MAX_LIST_ITEMS:
                    break
                items += (later_text,)
        if not _looks_like_prose(text, kind) or (not items and _INCOMPLETE.search(text)):
            continue  # "... by running:" says nothing without its block
        if _CAPTION.match(text) or text.endswith("?"):
            continue  # a caption, or the book's own (rhetorical or exercise) question
        yield position, kind, text, items


def quotable_sentences(body: str) -> list[str]:
    """The prose sentences of a chunk body an answer may quote, as `_gather` gives them
    (ingestion stores a vector for each: ragsite/rag/sentences.py)."""
    return [_shorten(text) for _, _, text, _ in _prose_candidates(_units(body))]


def _gather(sources: Sequence[Source]) -> tuple[list[_Sentence], list[_Code]]:
    seen: set[str] = set()
    sentences: list[_Sentence] = []
    codes: list[_Code] = []
    for source_index, source in enumerate(sources):
        body = source.chunk.body or source.chunk.text
        heading_parts = source.chunk.heading.split(" > ")
        exercises = bool(_EXERCISE_SECTION.search(heading_parts[-1]))
        # The section's own title (and its parent's) says what its sentences are about.
        heading_words = _content_words(" ".join(heading_parts[-2:]))
        units = _units(body)
        for position, (kind, text, info) in enumerate(units):
            if kind != "code":
                continue
            key = " ".join(text.split())
            if key not in seen:
                seen.add(key)
                before = units[position - 1] if position else ("code", "", "")
                intro = before[1] if before[0] != "code" else ""
                words = _content_words(text) | _content_words(intro)
                codes.append(_Code(source_index, position, source.n, info, text, intro, words))
        first = True
        for position, kind, text, items in _prose_candidates(units):
            key = " ".join(_WORD.findall(text.lower()))
            if key in seen:  # neighbouring chunks overlap: quote a sentence once
                continue
            seen.add(key)
            words = _content_words(text).union(*map(_content_words, items))
            sentences.append(
                _Sentence(
                    source_index,
                    position,
                    source.n,
                    _shorten(text),
                    words,
                    kind,
                    items,
                    heading_words,
                    _form(text, kind, first, source_index, exercises),
                )
            )
            first = False
    return sentences, codes


def _form(
    sentence: str, kind: str, first: bool, source_index: int, exercises: bool
) -> tuple[float, ...]:
    """The features of a sentence that do not depend on the question (see FORM_WEIGHTS)."""
    return (
        *_wording(sentence),
        float(kind == "item"),
        float(kind == "row"),
        float(sentence.endswith(":")),
        float(first),  # the first sentence of its passage, where a section states its topic
        math.log(len(sentence) / 100),
        float(exercises),
        float(source_index == 0),
        float(source_index == 1),
    )


@functools.lru_cache(maxsize=TEXT_MEMO_SIZE)
def _wording(sentence: str) -> tuple[float, ...]:
    return (
        float(sentence.rstrip().endswith("?")),  # the book's own (rhetorical or exercise) question
        float(bool(_TRANSITION.match(sentence))),
        float(bool(_CAPTION.match(sentence) or _EXERCISE.match(sentence))),
        float(bool(_FORWARD_REFERENCE.search(sentence))),
        float(bool(_ANAPHORA.match(sentence))),  # "This lets you ...": leans on the one before
        float(bool(_DEFINITION.search(sentence))),
        float(bool(_STATEMENT.search(sentence))),
    )


def _weights(question_words: set[str], units: Sequence[frozenset[str]]) -> dict[str, float]:
    """Inverse document frequency of each question word among the candidate units."""
    counts: Counter[str] = Counter()
    for words in units:
        counts.update(question_words & words)
    total = max(len(units), 1)
    return {word: math.log(1 + total / (1 + counts[word])) for word in question_words}


def _score(words: frozenset[str], weights: dict[str, float]) -> float:
    return sum(weight for word, weight in weights.items() if word in words)


@dataclass(frozen=True, slots=True)
class _Context:
    """What scoring a sentence needs besides the sentence: the question's word weights."""

    weights: dict[str, float]
    total: float  # the weight of all the question's words
    top: float  # the best lexical score of any sentence
    similarities: Mapping[str, float] | None
    floor: float  # the similarity assumed for a sentence the mapping does not cover


def _context(
    sentences: Sequence[_Sentence],
    weights: dict[str, float],
    similarities: Mapping[str, float] | None,
) -> _Context:
    top = max((_score(s.words, weights) for s in sentences), default=0.0)
    known = [similarities[s.text] for s in sentences if similarities and s.text in similarities]
    if not known:
        similarities = None
    # A sentence left out of a partial mapping ranked low by its words: assume it is as
    # far from the question as the farthest one that was embedded.
    return _Context(weights, sum(weights.values()), top, similarities, min(known, default=0.0))


def _features(sentence: _Sentence, context: _Context) -> tuple[float, ...]:
    """The question-dependent features of a sentence (see MEANING_WEIGHTS)."""
    lexical = _score(sentence.words, context.weights)
    heading = _score(sentence.heading_words, context.weights)
    total = context.total or 1.0
    similarity = 0.0
    if context.similarities is not None:
        similarity = context.similarities.get(sentence.text, context.floor)
    return (
        similarity,
        lexical / total,  # the share of the question's words it has
        lexical / context.top if context.top > 0 else 0.0,
        heading / total,  # the share its section's title has
    )


def _sentence_score(sentence: _Sentence, context: _Context) -> float:
    """How likely the sentence states the answer, from 0 to 1."""
    weights = MEANING_WEIGHTS if context.similarities is not None else WORD_WEIGHTS
    value = weights[0] + sum(
        w * f for w, f in zip(weights[1:], _features(sentence, context), strict=True)
    )
    value += sum(w * f for w, f in zip(FORM_WEIGHTS, sentence.form, strict=True))
    return 1 / (1 + math.exp(-value))


def _select(sentences: list[_Sentence], context: _Context) -> list[tuple[float, _Sentence]]:
    """The best sentence first, then the others worth quoting (2-5 in all).

    The others come from the lead's passage first: an answer that reads as one passage
    beats one stitched from four; another source's sentence needs a higher score.
    """
    scored = sorted(
        ((_sentence_score(s, context), s) for s in sentences),
        key=lambda pair: (-pair[0], pair[1].source_index, pair[1].position),
    )
    if not scored:
        return []
    best, lead = scored[0]
    chosen = [scored[0]]
    quoted = set(lead.items)

    def affinity(pair: tuple[float, _Sentence]) -> float:
        score, sentence = pair
        return score * (OTHER_SOURCE_WEIGHT if sentence.source_index != lead.source_index else 1)

    rest = sorted(scored[1:], key=lambda pair: -affinity(pair))
    for pair in rest:
        if len(chosen) >= MAX_SENTENCES:
            break
        if pair[1].text in quoted:
            continue  # already shown as an item of a chosen list
        if affinity(pair) >= KEEP_RATIO * best or len(chosen) < MIN_SENTENCES:
            if affinity(pair) <= 0:
                break
            if pair[1].items:  # a list's lead-in: its items are quoted with it
                chosen = [c for c in chosen if c is chosen[0] or c[1].text not in pair[1].items]
            chosen.append(pair)
            quoted.update(pair[1].items)
    return chosen


def _code_block(
    question: str, codes: list[_Code], weights: dict[str, float], chosen: list[_Sentence]
) -> _Code | None:
    """The code block to show: when the question asks for code (or names an identifier)
    and a block matches it, or when a block holds more of the question than the prose."""
    if not codes:
        return None
    total = sum(weights.values()) or 1.0
    chosen_sources = {s.source_index for s in chosen}
    introduced = {s.text for s in chosen[:2] if s.text.endswith(":")}
    best: tuple[float, float, _Code] | None = None
    for code in codes:
        coverage = _score(code.words, weights) / total
        score = coverage / (1 + SOURCE_RANK_DECAY * code.source_index)
        score /= 1 + CODE_LENGTH_DECAY * len(code.code.splitlines())  # a command beats a program
        if code.source_index in chosen_sources:
            score *= 1.2
        if code.intro in introduced:
            score *= 1.5  # the block a quoted "... as follows:" introduces
        if score > 0 and (best is None or score > best[0]):
            best = (score, coverage, code)
    if best is None:
        return None
    if best[2].intro in introduced:
        return best[2]  # the answer's first sentences announce it
    if not chosen or _CODE_INTENT.search(question) or _IDENTIFIER.search(question):
        return best[2]
    prose = max((_score(s.words, weights) / total for s in chosen), default=0.0)
    return best[2] if best[1] >= CODE_ALONE_COVERAGE and best[1] > prose else None


def _trim_code(code: str, weights: dict[str, float]) -> str:
    lines = code.splitlines()
    if len(lines) <= MAX_CODE_LINES:
        return code
    scores = [_score(frozenset(content_words(line)), weights) for line in lines]
    start = max(
        range(len(lines) - MAX_CODE_LINES + 1),
        key=lambda i: (sum(scores[i : i + MAX_CODE_LINES]), -i),
    )
    return "\n".join(lines[start : start + MAX_CODE_LINES])


def _render_code(code: _Code, weights: dict[str, float], *, with_intro: bool = True) -> str:
    """The block fenced as in the book, after its introduction (or its citation)."""
    fence = "~~~" if "```" in code.code else "```"
    block = f"{fence}{code.info}\n{_trim_code(code.code, weights)}\n{fence}"
    if not with_intro:
        return block
    intro = code.intro if code.intro and len(code.intro) <= MAX_SENTENCE_CHARS else ""
    intro = _CAPTION_LABEL.sub("", intro)  # "Listing 2-6: Complete game code" says what it is
    if len(intro) < MIN_SENTENCE_CHARS:
        intro = ""
    lead = _with_citation(intro, code.n) if intro else f"[{code.n}]:"
    return f"{lead}\n\n{block}"


def _render(sentence: _Sentence, *, before_code: bool = False) -> str:
    """The sentence with its citation; a lead-in with its list, else ending in a full stop."""
    text = sentence.text
    if sentence.items:
        # One sentence: the lead-in and its items, cited at the end of the last one.
        items = [*sentence.items[:-1], _with_citation(sentence.items[-1], sentence.n)]
        lines = "\n".join(f"- {item}" for item in items)
        return f"{text}\n\n{lines}"
    if text.endswith(":") and not before_code:
        text = text[:-1].rstrip() + "."  # what it introduced is not quoted
    return _with_citation(text, sentence.n)


def _prepare(
    question: str, sources: Sequence[Source]
) -> tuple[list[_Sentence], list[_Code], dict[str, float]]:
    # candidate_sentences and extractive_answer cut the same sources for one answer.
    return _prepared(question, tuple(sources))


@functools.lru_cache(maxsize=16)
def _prepared(
    question: str, sources: tuple[Source, ...]
) -> tuple[list[_Sentence], list[_Code], dict[str, float]]:
    selection = [s for s in sources if s.chunk.id == SELECTION_ID]
    others = [s for s in sources if s.chunk.id != SELECTION_ID]
    question_words = content_words(question)
    if selection and others:
        # Explain the highlighted passage from its surroundings, not by echoing it.
        question_words |= content_words(selection[0].chunk.body)
        sources = others
    sentences, codes = _gather(sources)
    weights = _weights(question_words, [s.words for s in sentences] + [c.words for c in codes])
    return sentences, codes, weights


def candidate_sentences(*, question: str, sources: Sequence[Source]) -> list[str]:
    """The sentences `extractive_answer` chooses from, best lexical matches first
    (at most MAX_EMBEDDED_SENTENCES): what is worth embedding for `similarities`."""
    sentences, _, weights = _prepare(question, sources)
    context = _context(sentences, weights, None)
    ranked = sorted(sentences, key=lambda s: -_sentence_score(s, context))
    return [s.text for s in ranked[:MAX_EMBEDDED_SENTENCES]]


def extractive_answer(
    *,
    question: str,
    sources: Sequence[Source],
    similarities: Mapping[str, float] | None = None,
) -> str:
    """Compose an answer from the sources' sentences that state the answer.

    `similarities` maps sentences (all of them, or the `candidate_sentences`) to their
    cosine with the question; with it, meaning counts beside shared words. Deterministic:
    same inputs, same answer. Cites only the given sources' numbers. Without quotable
    sources, returns NO_SOURCES_MESSAGE.
    """
    sentences, codes, weights = _prepare(question, sources)
    chosen = _select(sentences, _context(sentences, weights, similarities))
    code = _code_block(question, codes, weights, [s for _, s in chosen])
    if not chosen and code is None:
        return NO_SOURCES_MESSAGE
    lead = chosen[0][1] if chosen else None
    intro = None
    if code is not None:
        # The sentence that introduces the block is quoted with it, right before it.
        intro = next(
            (s for s in sentences if s.source_index == code.source_index and s.text == code.intro),
            None,
        )
        if intro is not None and all(s is not intro for _, s in chosen):
            if lead is None or lead.source_index != code.source_index:
                intro = None  # the block keeps its introduction in its own paragraph
            else:
                chosen = [*chosen[: MAX_SENTENCES - 1], (0.0, intro)]
    # The best sentence opens the answer, the block and the sentence that introduces it
    # follow; each source's sentences then follow in the book's order, one paragraph
    # per source, best source first.
    paragraphs: dict[int, list[_Sentence]] = {}
    for _, sentence in chosen:
        paragraphs.setdefault(sentence.source_index, []).append(sentence)
    rendered: list[str] = []
    for source_index, group in paragraphs.items():
        ordered = sorted(group, key=lambda s: s.position)
        if lead is not None and source_index == lead.source_index:
            ordered = [lead] + [s for s in ordered if s is not lead]
        if intro is not None and intro in ordered:
            ordered.remove(intro)
            ordered.insert(1, intro)
        here = code is not None and code.source_index == source_index
        sentences_text: list[str] = []
        for position, sentence in enumerate(ordered):
            if sentence.items:
                rendered.extend(filter(None, [" ".join(sentences_text)]))
                sentences_text = []
                rendered.append(_render(sentence))
            else:
                sentences_text.append(_render(sentence, before_code=sentence is intro))
            if here and (sentence is intro or (intro is None and position == 0)):
                rendered.extend(filter(None, [" ".join(sentences_text)]))
                sentences_text = []
                rendered.append(_render_code(code, weights, with_intro=intro is None))
        rendered.extend(filter(None, [" ".join(sentences_text)]))
    if code is not None and code.source_index not in paragraphs:
        rendered.insert(1 if rendered else 0, _render_code(code, weights))
    return "\n\n".join(rendered)


class _VectorMemo:
    """The vectors of sentences already embedded, per embedder, most recent kept.

    A book has a few thousand sentences and readers ask about the same sections again and
    again, so after the first answers nearly every candidate sentence is a lookup instead
    of a model run (which would cost ~0.2 s of CPU per answer on 2 cores).
    """

    def __init__(self, max_entries: int = MEMO_SENTENCES) -> None:
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        with self._lock:
            found = {text: self._vectors[text] for text in texts if text in self._vectors}
            for text in found:
                self._vectors.move_to_end(text)
        return found

    def put(self, texts: Sequence[str], vectors: Sequence[Sequence[float]]) -> None:
        with self._lock:
            for text, vector in zip(texts, vectors, strict=True):
                self._vectors[text] = np.asarray(vector, dtype=np.float32)
            while len(self._vectors) > self._max:
                self._vectors.popitem(last=False)


_MEMOS: weakref.WeakKeyDictionary[Any, _VectorMemo] = weakref.WeakKeyDictionary()
_MEMOS_LOCK = threading.Lock()


def _memo_for(embedder: Embedder) -> _VectorMemo:
    with _MEMOS_LOCK:
        memo = _MEMOS.get(embedder)
        if memo is None:
            memo = _MEMOS[embedder] = _VectorMemo()
        return memo


async def sentence_similarities(
    *,
    question: str,
    sources: Sequence[Source],
    embedder: Embedder | None = None,
    stored: Mapping[bytes, np.ndarray] | None = None,
) -> dict[str, float]:
    """Return sentence -> cosine with the question, for the sources' quotable sentences.

    `stored`: sentence vectors computed at ingestion with their chunk (sentence_key ->
    vector, ragsite/rag/sentences.py); every sentence found there is scored. Of the
    others, the best lexical candidates (at most MAX_EMBEDDED_SENTENCES) are embedded
    now; sentences (and questions) embedded before are looked up, not embedded again.

    Raises:
        EmbeddingError: the embedder failed.
    """
    sentences, _, _ = _prepare(question, sources)
    if not sentences:
        return {}
    if embedder is None:
        import asyncio

        from . import providers

        embedder = await asyncio.to_thread(providers.get_embedder)
    memo = _memo_for(embedder)
    vectors: dict[str, np.ndarray] = {}
    if stored:
        for sentence in sentences:
            vector = stored.get(sentence_key(sentence.text))
            if vector is not None:
                vectors[sentence.text] = vector
    candidates = [
        text
        for text in candidate_sentences(question=question, sources=sources)
        if text not in vectors
    ]
    wanted = list(dict.fromkeys([question, *candidates]))
    known = memo.get(wanted)
    missing = [text for text in wanted if text not in known]
    if missing:
        computed = await embedder.embed(missing)
        memo.put(missing, computed)
        known.update(zip(missing, (np.asarray(v, dtype=np.float32) for v in computed), strict=True))
    vectors.update((text, known[text]) for text in candidates)
    query = np.asarray(known[question], dtype=np.float32)
    return {text: float(np.dot(query, vector)) for text, vector in vectors.items()}


class ExtractiveChatModel:
    """The offline answerer: quotes the retrieved passages, cites them, invents nothing."""

    provider = "extractive"
    model = "extractive"

    def __init__(self, *, embedder: Embedder | None = None) -> None:
        """`embedder` scores sentences by meaning; default: the configured one."""
        self._embedder = embedder

    async def answer(self, request: AnswerRequest) -> str:
        """Return the whole extractive answer (sentences scored by words and meaning)."""
        similarities = await sentence_similarities(
            question=request.question,
            sources=request.sources,
            embedder=self._embedder,
            stored=request.sentence_vectors,
        )
        return extractive_answer(
            question=request.question, sources=request.sources, similarities=similarities
        )

    async def stream(self, request: AnswerRequest) -> AsyncIterator[str]:
        """Yield the extractive answer word by word (no artificial delay)."""
        from .llm import stream_pieces  # llm.py owns the piece splitting of every model

        for piece in stream_pieces(await self.answer(request)):
            yield piece

    async def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int = 256) -> str:
        """Always raises LLMError: there is no language model to write free text."""
        raise LLMError(EXTRACTIVE_CANNOT_COMPLETE_MESSAGE)
