"""The offline answerer: picks the sentences of the sources that state the answer.

No language model runs here. The answer is composed from the retrieved passages:

1. Each source's body is cut into *units*: prose sentences (a list item is one; a
   sentence never ends inside brackets or parentheses) and fenced code blocks, kept
   verbatim with the sentence that introduces them. Inline code keeps its backticks,
   so `Rc<T>` stays `Rc<T>`.
2. Each sentence is scored by the question's content words it contains, weighted by how
   rare each word is among the sources (a word every passage has says little), and by
   what kind of sentence it is: one that states something ("X is a ...", "X lets you
   ...") counts more; transitions ("Now that you know how to ..."), the book's own
   questions, captions and exercise prompts count much less.
3. The best sentence comes first (the answer is in the first sentence when the book
   has one), then up to four more that score at least half as well, each source's
   sentences in the book's order. When the question asks for code (a command, a
   listing, a config) and a code block of the sources matches it, the block is
   included as a fenced block, never run together as prose.
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
from collections.abc import AsyncIterator, Mapping, Sequence
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
# A sentence joins the answer when it scores at least this share of the best one.
KEEP_RATIO = 0.3
# Sentences of an exercise or "next steps" section weigh this much of their score.
EXERCISE_SECTION_WEIGHT = 0.3
# Later sources weigh a little less: retrieval ranked them lower.
SOURCE_RANK_DECAY = 0.4
# With sentence embeddings: the share of a sentence's score from shared words (the rest
# is its cosine with the question), and how many candidates are embedded at most.
LEXICAL_WEIGHT = 0.3
MAX_EMBEDDED_SENTENCES = 32
# How many sentence vectors each embedder's memo keeps (~1.5 KB each).
MEMO_SENTENCES = 20_000
# How many sentences' analyses (words, kind) are memoised; chunks' units an eighth of it.
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
_CAPTION = re.compile(r"^(?:figure|fig\.|listing|table|filename)\s*[A-Z]?[\d:-]", re.IGNORECASE)
_EXERCISE = re.compile(r"^(?:try (?:to|it|this)|exercise\b|quiz\b|challenge\b)", re.IGNORECASE)
_STATEMENT = re.compile(
    r"\b(?:is|are) (?:a|an|the|called|used|what|how)\b|\bmeans\b|\brefers? to\b|\blets? you\b|"
    r"\ballows?\b|\benables?\b|\bprovides?\b|\bconsists? of\b|\bdefined? as\b|\breturns?\b|"
    r"\bmeasures?\b|\bcontains?\b|\bmust\b|\bcan be\b|\bstores?\b",
    re.IGNORECASE,
)
# Questions that are answered by a code block: a command, a listing, a config.
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
    words: frozenset[str]
    kind: float  # multiplier from the kind of sentence (statement, transition...)


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
    # Memoised: the same sources' sentences are scored for answer after answer.
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
def _looks_like_prose(sentence: str) -> bool:
    """Reject headings, table rows, code-ish and very short fragments."""
    if len(sentence) < MIN_SENTENCE_CHARS or len(sentence.split()) < MIN_SENTENCE_WORDS:
        return False
    if sentence.startswith(("#", "|", ">")) or sentence.count("|") >= 2:
        return False
    if sentence.endswith(":"):  # introduces a list or code: quoted only with its code
        return False
    plain = re.sub(r"`[^`]*`", "x", sentence)
    letters = sum(ch.isalnum() or ch.isspace() for ch in plain)
    return letters / max(len(plain), 1) >= 0.85


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


def _prose_sentences(prose: str) -> list[str]:
    """Split Markdown prose into sentences (each list item and paragraph stands alone)."""
    sentences: list[str] = []
    for block in re.split(r"\n\s*\n", _clean_markdown(prose)):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        buffer: list[str] = []
        parts: list[str] = []
        for line in lines:
            if line.startswith(("#", "|")) or _LIST_MARKER.match(line):
                if buffer:
                    parts.append(" ".join(buffer))
                    buffer = []
                parts.append(_LIST_MARKER.sub("", line))
            else:
                buffer.append(line)
        if buffer:
            parts.append(" ".join(buffer))
        for part in parts:
            sentences.extend(_split_part(part))
    return [s for s in (" ".join(s.split()) for s in sentences) if s]


def split_sentences(text: str) -> list[str]:
    """Split a passage's prose into sentences (code blocks left out)."""
    text = _FRONT_MATTER.sub("", text)
    return _prose_sentences(_FENCE.sub("\n\n", text))


@functools.lru_cache(maxsize=TEXT_MEMO_SIZE // 8)
def _units(body: str) -> tuple[tuple[str, str, str], ...]:
    """Cut a body into ("prose", sentence, "") and ("code", code, info) units, in order
    (memoised: a book's chunks come back as sources again and again)."""
    body = _FRONT_MATTER.sub("", body)
    units: list[tuple[str, str, str]] = []
    start = 0
    for match in _FENCE.finditer(body):
        units.extend(("prose", s, "") for s in _prose_sentences(body[start : match.start()]))
        code = match.group("code").rstrip("\n")
        if code.strip():
            units.append(("code", code, match.group("info").strip()))
        start = match.end()
    units.extend(("prose", s, "") for s in _prose_sentences(body[start:]))
    return tuple(units)


@functools.lru_cache(maxsize=TEXT_MEMO_SIZE)
def _kind(sentence: str) -> float:
    """How much a sentence's form says it states something (1.0 neutral)."""
    if _CAPTION.match(sentence):
        return 0.05
    if sentence.rstrip().endswith("?"):
        return 0.15  # the book's own (rhetorical or exercise) question
    if _TRANSITION.match(sentence):
        return 0.25
    if _EXERCISE.match(sentence):
        return 0.4
    weight = 1.0
    if _FORWARD_REFERENCE.search(sentence):
        weight *= 0.6
    if _STATEMENT.search(sentence):
        weight *= 1.3
    return weight


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
    match = re.search(r"([.!?…:]+[\"')\]]*)$", sentence)
    if match and not sentence.endswith("`"):
        return f"{sentence[: match.start()]} [{n}]{match.group(1)}"
    return f"{sentence.rstrip(',;')} [{n}]."


def quotable_sentences(body: str) -> list[str]:
    """The prose sentences of a chunk body an answer may quote, as `_gather` gives them
    (ingestion stores a vector for each: ragsite/rag/sentences.py)."""
    return [
        _shorten(text)
        for kind, text, _ in _units(body)
        if kind == "prose" and _looks_like_prose(text)
    ]


def _gather(sources: Sequence[Source]) -> tuple[list[_Sentence], list[_Code]]:
    seen: set[str] = set()
    sentences: list[_Sentence] = []
    codes: list[_Code] = []
    for source_index, source in enumerate(sources):
        body = source.chunk.body or source.chunk.text
        last_heading = source.chunk.heading.split(" > ")[-1]
        section_weight = EXERCISE_SECTION_WEIGHT if _EXERCISE_SECTION.search(last_heading) else 1.0
        previous = ""
        for position, (kind, text, info) in enumerate(_units(body)):
            if kind == "code":
                key = " ".join(text.split())
                if key not in seen:
                    seen.add(key)
                    words = frozenset(content_words(text) | content_words(previous))
                    codes.append(
                        _Code(source_index, position, source.n, info, text, previous, words)
                    )
                previous = ""
                continue
            previous = text
            if not _looks_like_prose(text):
                continue
            key = " ".join(_WORD.findall(text.lower()))
            if key in seen:  # neighbouring chunks overlap: quote a sentence once
                continue
            seen.add(key)
            sentences.append(
                _Sentence(
                    source_index,
                    position,
                    source.n,
                    _shorten(text),
                    frozenset(content_words(text)),
                    _kind(text) * section_weight,
                )
            )
    return sentences, codes


def _weights(question_words: set[str], units: Sequence[frozenset[str]]) -> dict[str, float]:
    """Inverse document frequency of each question word among the candidate units."""
    counts: Counter[str] = Counter()
    for words in units:
        counts.update(question_words & words)
    total = max(len(units), 1)
    return {word: math.log(1 + total / (1 + counts[word])) for word in question_words}


def _score(words: frozenset[str], weights: dict[str, float]) -> float:
    return sum(weight for word, weight in weights.items() if word in words)


def _sentence_score(
    sentence: _Sentence,
    weights: dict[str, float],
    top_lexical: float,
    similarities: Mapping[str, float] | None,
) -> float:
    lexical = _score(sentence.words, weights) / top_lexical if top_lexical > 0 else 0.0
    if similarities is not None:
        similarity = similarities.get(sentence.text, 0.0)
        value = LEXICAL_WEIGHT * lexical + (1 - LEXICAL_WEIGHT) * similarity
    else:
        value = lexical
    return value * sentence.kind / (1 + SOURCE_RANK_DECAY * sentence.source_index)


def _select(
    sentences: list[_Sentence],
    weights: dict[str, float],
    similarities: Mapping[str, float] | None = None,
) -> list[tuple[float, _Sentence]]:
    """The best sentence first, then the others worth quoting (2-5 in all)."""
    top_lexical = max((_score(s.words, weights) for s in sentences), default=0.0)
    scored = sorted(
        ((_sentence_score(s, weights, top_lexical, similarities), s) for s in sentences),
        key=lambda pair: (-pair[0], pair[1].source_index, pair[1].position),
    )
    if not scored:
        return []
    best = scored[0][0]
    chosen = [scored[0]]
    for score, sentence in scored[1:]:
        if len(chosen) >= MAX_SENTENCES:
            break
        if best > 0 and score >= KEEP_RATIO * best:
            chosen.append((score, sentence))
    if len(chosen) < MIN_SENTENCES:
        # Too little on its own: the sentence that follows the best one in its source
        # usually continues it (the next step, the consequence); else the next best.
        lead = chosen[0][1]
        following = [
            pair
            for pair in scored
            if pair[1].source_index == lead.source_index
            and pair[1].position > lead.position
            and pair[1].kind >= 0.5
        ]
        following.sort(key=lambda pair: pair[1].position)
        extra = following[:1] or [pair for pair in scored if pair not in chosen][:1]
        chosen.extend(extra)
    return chosen


def _code_block(
    question: str, codes: list[_Code], weights: dict[str, float], chosen: list[_Sentence]
) -> _Code | None:
    """The code block to show, when the question asks for code and one matches it."""
    if not codes or not _CODE_INTENT.search(question):
        return None
    chosen_sources = {s.source_index for s in chosen}
    best: tuple[float, _Code] | None = None
    for code in codes:
        score = _score(code.words, weights) / (1 + SOURCE_RANK_DECAY * code.source_index)
        if code.source_index in chosen_sources:
            score *= 1.2
        if score > 0 and (best is None or score > best[0]):
            best = (score, code)
    return best[1] if best else None


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


def _render_code(code: _Code, weights: dict[str, float]) -> str:
    intro = code.intro if code.intro and len(code.intro) <= MAX_SENTENCE_CHARS else ""
    lead = _with_citation(intro, code.n) if intro else f"[{code.n}]:"
    fence = "~~~" if "```" in code.code else "```"
    return f"{lead}\n\n{fence}{code.info}\n{_trim_code(code.code, weights)}\n{fence}"


def _prepare(
    question: str, sources: Sequence[Source]
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
    ranked = sorted(
        sentences,
        key=lambda s: -_score(s.words, weights) * s.kind / (1 + SOURCE_RANK_DECAY * s.source_index),
    )
    return [s.text for s in ranked[:MAX_EMBEDDED_SENTENCES]]


def extractive_answer(
    *,
    question: str,
    sources: Sequence[Source],
    similarities: Mapping[str, float] | None = None,
) -> str:
    """Compose an answer from the sources' sentences that state the answer.

    `similarities` maps candidate sentences (`candidate_sentences`) to their cosine
    with the question; with it, meaning counts beside shared words. Deterministic:
    same inputs, same answer. Cites only the given sources' numbers. Without quotable
    sources, returns NO_SOURCES_MESSAGE.
    """
    sentences, codes, weights = _prepare(question, sources)
    chosen = _select(sentences, weights, similarities)
    code = _code_block(question, codes, weights, [s for _, s in chosen])
    if not chosen and code is None:
        return NO_SOURCES_MESSAGE
    # The best sentence opens the answer; each source's sentences then follow in the
    # book's order, one paragraph per source, best source first.
    paragraphs: dict[int, list[_Sentence]] = {}
    for _, sentence in chosen:
        paragraphs.setdefault(sentence.source_index, []).append(sentence)
    rendered: list[str] = []
    lead = chosen[0][1] if chosen else None
    for source_index, group in paragraphs.items():
        ordered = sorted(group, key=lambda s: s.position)
        if lead is not None and source_index == lead.source_index:
            ordered = [lead] + [s for s in ordered if s is not lead]
        cited = [_with_citation(s.text, s.n) for s in ordered]
        if code is not None and code.source_index == source_index:
            # The block right after the sentence that states the answer.
            rendered.append(cited[0])
            rendered.append(_render_code(code, weights))
            if cited[1:]:
                rendered.append(" ".join(cited[1:]))
        else:
            rendered.append(" ".join(cited))
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
