"""Which of the sources' sentences state the answer: the extractive answerer's model.

`_gather` turns the sources' quotable units (passages.py) into candidates: `_Sentence`s
and `_Code` blocks, each quoted once though neighbouring chunks overlap. Each sentence is
scored by a small logistic model (`_sentence_score`) whose weights were fitted on half of
the project's question sets: its cosine with the question (when `similarities` has it),
the share of the question's words it holds, weighted by how rare each word is among the
sources (`_weights`), the share its section's title holds, the rank of its source, and
its form (`_form`): definitions and statements count more; transitions ("Now that you
know how to ..."), exercise prompts and exercise sections count much less.

`_select` keeps the best sentence first, then up to four more that score at least
KEEP_RATIO of it, another source's sentences counting less.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .passages import (
    _CAPTION,
    _WORD,
    TEXT_MEMO_SIZE,
    _content_words,
    _prose_candidates,
    _shorten,
    _units,
)
from .types import Source

MIN_SENTENCES = 2
MAX_SENTENCES = 5
# A sentence joins the answer when it scores at least this share of the best one; one
# from another source than the best one's weighs OTHER_SOURCE_WEIGHT of its score.
KEEP_RATIO = 0.3
OTHER_SOURCE_WEIGHT = 0.7
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
_ANAPHORA = re.compile(r"^(?:this|that|these|those|it|they|such|here|there)\b", re.IGNORECASE)
_DEFINITION = re.compile(
    r"\b(?:is|are) (?:called|known as|defined as)\b|\bknown as\b|\brefers? to\b|\bmeans\b|"
    r"\bstands? for\b|^(?:an?|the) [^,;:]{2,60}? (?:is|are) (?:a|an|the)\b",
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
