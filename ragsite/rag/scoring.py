"""Which of the sources' sentences state the answer: the extractive answerer's model.

`_gather` turns the sources' quotable units (passages.py) into candidates: `_Sentence`s
and `_Code` blocks, each quoted once though neighbouring chunks overlap. Each sentence is
scored by a small logistic model (`_sentence_score`) whose weights were fitted on half of
the project's question sets (benchmarks/fit_sentence_model.py): its cosine with the
question (when `similarities` has it), the share of the question's words it holds,
weighted by how rare each word is among the sources (`_weights`), the question's word
pairs and identifiers it repeats, inline code for a question that asks for code, a
reason for a "why", a number for a "how many" or "when", a name for a "who", the share
its section's title holds, the rank and cosine of its source, and its form (`_form`):
statements count more; transitions ("Now that you know how to ..."), exercise prompts and
exercise sections count much less.

`_select` keeps the best sentence first, then up to four more that score at least
KEEP_RATIO of it, from any source.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .passages import (
    _CAPTION,
    _WORD,
    MAX_LIST_ITEMS,
    TEXT_MEMO_SIZE,
    _content_words,
    _prose_candidates,
    _shorten,
    _units,
    with_inline_code,
)
from .sparse import fold
from .types import Source

# A source's parts (the text before its chunk, the chunk, the text after) number their
# units apart, in page order: part i's units from i * PART_POSITIONS.
PART_POSITIONS = 100_000
# A sentence of the text read around a source's chunk (`Source.before`/`after`: the
# chunks next to the one retrieval found) is scored without its source's rank prior
# (AROUND_INDEX: neither "source 1" nor "source 2") and loses AROUND_WEIGHT log-odds:
# it is quoted when it states the answer clearly better. Set on the even rows of the
# three question sets: 0 to -1 gave the same answers within a question or two.
AROUND_INDEX = -1
AROUND_WEIGHT = -0.5
MIN_SENTENCES = 2
MAX_SENTENCES = 5
# A sentence joins the answer when it scores at least this share of the best one,
# whichever source it is in (the score already counts its source's rank and cosine).
KEEP_RATIO = 0.1
# How likely a sentence states the answer: a conditional logistic model (one softmax
# over each question's sentences, the answer-holding ones the positives) fitted by
# benchmarks/fit_sentence_model.py on the even rows of the project's question sets
# (benchmarks/questions/) and checked on the odd rows. MEANING_WEIGHTS: the bias, then
# one weight per feature of `_features` (cosine with the question, share of the
# question's word weight, lexical score over the best one's, share its section title
# has, code question x inline code, share of the question's identifiers, share of its
# word pairs, log(1 + new words), "why" x a reason, the kind of answer asked for x it has
# one ("how many" or "when" x a number, "who" x a name the question does not give), its
# source's cosine, "What is X?" x it says what X is). The kind's weight is the one fitted
# for "how many" alone; "when" and "who" use it unfitted: the sets have few such questions
# (benchmarks/questions/*-factoid.jsonl are 30), and 1.5 or 2.5 moved nothing there and
# gave any sentence with a digit to "how many" questions on the Rust book. WORD_WEIGHTS: the same without sentence
# vectors (the cosine unused). The bias only sets how far below the best sentence another
# may be (KEEP_RATIO). Rounded to one decimal: the second would be noise on ~190 fitting
# questions.
# The last weight of both: the sentence says what the question's "What is X?" asks
# (`_defines`). Set by hand on all rows, not by the fit: on the Rust book 0 / 2 / 3 give a
# first sentence that holds an answer 0.359 / 0.391 / 0.391 (odd rows 0.370 / 0.424 /
# 0.424); the textbook and the docs do not move (their "What is" answers already open with
# the definition, or hold it in a sentence that does not name X).
DEFINES_WEIGHT = 2.0
MEANING_WEIGHTS = (-7.3, 2.7, 1.2, 1.8, 1.2, 0.7, 0.6, 1.4, 0.6, 0.7, 0.6, 1.0, DEFINES_WEIGHT)
WORD_WEIGHTS = (-6.5, 0.0, 1.3, 2.0, 1.3, 0.6, 0.6, 1.7, 0.5, 0.6, 0.6, 1.6, DEFINES_WEIGHT)
# Form: book question, transition, caption/exercise prompt, forward reference, leans on
# the sentence before ("This ..."), definition, statement, list item, table row, lead-in,
# first of its passage, log(length/100), in an exercise or "next steps" section, source 1,
# source 2. Fitted too, except the first three, the forward reference and the exercise
# section, set by hand: a reader must not get transitions and exercise prompts however
# many words they share with the question (a fit, on few such sentences, gives ~-0.3).
FORM_WEIGHTS = (-2.0, -3.0, -2.0, 0.0, -0.3, -0.1, 0.7, 0.2, 0.4, -0.2, 0.2, -0.3, -2.5, 1.5, 0.5)
# The form weights the fit leaves alone (their index in FORM_WEIGHTS).
FIXED_FORM = (0, 1, 2, 3, 12)

# Sentences that lead somewhere else rather than say something.
_TRANSITION = re.compile(
    r"^(?:now that\b|now,? let'?s\b|now we\b|next,|let'?s\b|let’s\b|we'?ll\b|we’ll\b|"
    r"in this (?:chapter|section|part|lesson|module|guide|tutorial|page|document|appendix)\b|"
    r"in the (?:next|previous|last|following) (?:chapter|section)\b|"
    r"this (?:chapter|section|guide|tutorial|lesson|module|page|document|appendix) "
    r"(?:(?:has|will) )?(?:covers?|covered|explains?|explained|introduces?|introduced|shows?|"
    r"showed|provides?|provided|explores?|explored|describes?|described|presents?|presented|"
    r"discusse[sd]|discuss|walks?|walked|gives?|gave|looks?|looked)\b|"
    r"as (?:you|we) (?:saw|learned|mentioned|discussed)\b|recall (?:that|from)\b|so far\b|"
    r"before we\b|up to now\b|first,? let'?s\b|here,? we\b|we (?:will|are going to)\b|"
    r"you(?:'ll| will) (?:learn|see)\b|you’ll (?:learn|see)\b|to recap\b|in summary\b|"
    r"next steps?\b|by the end of this (?:chapter|section|part|lesson|module|guide|tutorial)\b)",
    re.IGNORECASE,
)
# ... or that lead on in their main clause: "Other languages don't have the same
# distinctions, so let's look at what statements and expressions are".
_LEADS_ON = re.compile(
    r"\blet'?s (?:now )?(?:look|explore|see|take a look|start|discuss|examine|dive|walk|turn|"
    r"consider|review|go over|get started)\b|\bwe'?ll (?:now )?(?:look|explore|discuss|examine|"
    r"walk|turn|cover|go over)\b",
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
# An identifier in a question (`snake_case`, CamelCase, `a::b`, `f()`, `#[attr]`) asks
# about code.
_IDENTIFIER = re.compile(r"`|\b[a-z]+_[a-z_]+\b|\b[a-z]+[A-Z]\w*|\b[A-Z][a-z]+[A-Z]\w*|::|\w\(|#\[")
# The identifiers themselves, to look for in a sentence: `code`, snake_case, camelCase,
# CamelCase, a::b, macro!, .method().
_IDENTIFIERS = re.compile(
    r"`([^`]+)`|\b([a-z]+_[a-z_]+|[a-z]+[A-Z]\w*|[A-Z][a-z]+[A-Z]\w*|\w+::\w+|\w+!|\.\w+\(\))"
)
# Questions that are answered by a code block or inline code: a command, a listing, a config.
_CODE_INTENT = re.compile(
    r"\b(?:command|commands|run|install|compile|build|code|example|listing|syntax|snippet|"
    r"config|configure|configuration|flag|option|cargo|terminal|shell|script|launch|"
    r"declare|define|write|annotate|signature|macro|import)\b",
    re.IGNORECASE,
)
# A question for a way of doing something: most often answered by a command or a call.
_HOW_TO = re.compile(r"\bhow (?:do|can|should|would) (?:i|you|we)\b|\bhow to\b", re.IGNORECASE)
_WHY = re.compile(
    r"^\W*why\b|\bwhat (?:is|are) the (?:point|benefit|reason|advantage)", re.IGNORECASE
)
_REASON = re.compile(
    r"\bbecause\b|\bso that\b|\bto (?:avoid|prevent|ensure)\b|\bbenefit\b|\breason\b|"
    r"\bthat way\b|\botherwise\b",
    re.IGNORECASE,
)
_QUANTITY = re.compile(
    r"\bhow (?:many|much|long|fast|big|often|far|old)\b|\bwhat (?:is the )?(?:size|range|number|"
    r"cost|price|rate|frequency|resolution|limit|default)\b|"
    # ... or a date, which is a number too: "When was ...?", "In what year ...?"
    r"^\W*when (?:did|was|were)\b|\b(?:what|which) (?:year|decade|century|date)\b",
    re.IGNORECASE,
)
# Questions for a name: "Who coined ...?", "By whom ...?"
_PERSON = re.compile(r"(?:^|[,;]\s*)\W*(?:who|whom|whose)\b|\bby whom\b", re.IGNORECASE)
# A name in a sentence: a capitalised word that does not open the sentence ("Tony Hoare",
# "Simula"; not "The" at its start).
_NAME = re.compile(r"(?<=\S\s)[A-Z][a-z]+(?:[ -][A-Z][a-z]*\.?)*")
# The file a listing is in, put between the sentence that introduces it and the block.
_FILE_LABEL = re.compile(r"^file ?name:\s*\S+$", re.IGNORECASE)
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
    source_score: float = 0.0  # its source's cosine with the question (retrieval's)
    around: bool = False  # read around the chunk retrieval found (Source.before/after)


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
    inlined: bool = False  # one line, no output, quoted in its intro (`with_inline_code`)


def _gather(sources: Sequence[Source]) -> tuple[list[_Sentence], list[_Code]]:
    seen: set[str] = set()
    sentences: list[_Sentence] = []
    codes: list[_Code] = []
    for source_index, source in enumerate(sources):
        # The chunk retrieval found first, so a sentence it shares with the text around
        # it is quoted as its own; each part's units numbered in page order. The text
        # around is scored below the chunk (no rank prior, AROUND_WEIGHT), unless
        # retrieval found that text too (the section's other hits, `Source.found_around`):
        # then it is scored with the rank prior of that hit, and its introduced blocks
        # may be quoted.
        own = source.chunk.body or source.chunk.text
        found = _found_keys(source)
        for order, part in ((1, own), (0, source.before), (2, source.after)):
            if not part:
                continue
            cut = _cut(part, _section(source))
            at = order * PART_POSITIONS
            for position, info, text, intro, words, key, inlined in cut.codes:
                # A block of the text around the chunk is left out: in the books it is
                # most often the rest of a listing the chunk shows. So is one of found
                # text without a sentence of its own that introduces it (the rest of a
                # listing again, measured on the textbook's long programs).
                if key not in seen and (order == 1 or (key in found and intro)):
                    seen.add(key)
                    codes.append(
                        _Code(
                            source_index, at + position, source.n, info, text, intro, words, inlined
                        )
                    )
            first = order == 1
            for position, kind, text, items, words, key, shortened in cut.prose:
                if key in seen:  # neighbouring chunks overlap: quote a sentence once
                    continue
                seen.add(key)
                # The rank prior: the source's for its own chunk, that hit's own rank
                # for text read from another hit, none for the rest.
                around = order != 1 and key not in found
                rank = source_index if order == 1 else found.get(key, AROUND_INDEX)
                sentences.append(
                    _Sentence(
                        source_index,
                        at + position,
                        source.n,
                        shortened,
                        words,
                        kind,
                        items,
                        cut.heading_words,
                        _form(
                            text,
                            kind,
                            first,
                            rank,
                            cut.exercises,
                        ),
                        source.score,
                        around,
                    )
                )
                first = False
    return sentences, codes


def _section(source: Source) -> str:
    """The title of a source's section: its heading path, or for the text before a
    page's first heading, the page's title."""
    return source.chunk.heading or source.chunk.title


def _found_keys(source: Source) -> dict[str, int]:
    """The units (sentences, blocks) of the text around a source that was read from one
    of retrieval's hits (`Source.found_around`): key -> that hit's rank."""
    keys: dict[str, int] = {}
    for part, rank in source.found_around:
        cut = _cut(part, _section(source))
        for *_, key, _last in (*cut.codes, *cut.prose):  # both end in (..., key, one more)
            keys.setdefault(key, rank)
    return keys


@dataclass(frozen=True, slots=True)
class _Cut:
    """A passage's quotable units, as far as they do not depend on the question or on the
    other sources: cut once per passage text (the same chunks come back as sources)."""

    exercises: bool  # its section is a list of exercises
    heading_words: frozenset[str]  # the content words of its section's title (and parent's)
    codes: tuple[tuple[int, str, str, str, frozenset[str], str, bool], ...]
    prose: tuple[tuple[int, str, str, tuple[str, ...], frozenset[str], str, str], ...]


@functools.lru_cache(maxsize=TEXT_MEMO_SIZE // 8)
def _cut(body: str, heading: str) -> _Cut:
    heading_parts = heading.split(" > ")
    units = _units(body)
    codes = []
    for position, (kind, text, info) in enumerate(units):
        if kind != "code":
            continue
        at = position - 1
        if at > 0 and units[at][0] != "code" and _FILE_LABEL.match(units[at][1]):
            at -= 1  # "Filename: src/lib.rs" labels the block the sentence before introduces
        before = units[at] if at >= 0 else ("code", "", "")
        intro = with_inline_code(before[1], units, at) if before[0] != "code" else ""
        words = _content_words(text) | _content_words(intro)
        inlined = bool(intro) and intro != before[1]  # it quotes the block's one line
        codes.append((position, info, text, intro, words, " ".join(text.split()), inlined))
    prose = []
    for position, kind, text, items in _prose_candidates(units):
        if text.endswith(":") and not items:
            # A lead-in to a table: quoted with its rows, as a lead-in with its list.
            rows = itertools.takewhile(lambda unit: unit[0] == "row", units[position + 1 :])
            items = tuple(row for _, row, _ in itertools.islice(rows, MAX_LIST_ITEMS))
        words = _content_words(text).union(*map(_content_words, items))
        key = " ".join(_WORD.findall(text.lower()))
        prose.append((position, kind, text, items, words, key, _shorten(text)))
    return _Cut(
        exercises=bool(_EXERCISE_SECTION.search(heading_parts[-1])),
        # The section's own title (and its parent's) says what its sentences are about.
        heading_words=_content_words(" ".join(heading_parts[-2:])),
        codes=tuple(codes),
        prose=tuple(prose),
    )


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
    sentence = sentence.replace("\u2019", "'")  # the books write "let’s" as often as "let's"
    return (
        float(sentence.rstrip().endswith("?")),  # the book's own (rhetorical or exercise) question
        float(bool(_TRANSITION.match(sentence) or _LEADS_ON.search(sentence))),
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


# "What is X?", "What are Xs?", "What does X mean?": the question asks what X is, and a
# sentence that says what X is ("A workspace is a set of packages ...", "We call the action
# of creating a reference borrowing") states the answer.
_WHAT_IS = re.compile(
    r"^\W*(?:what\s+(?:is|are)\s+(?:an?\s+|the\s+)?(?P<a>[^?,;]+?)|what\s+does\s+"
    r"(?:an?\s+|the\s+)?(?P<b>[^?,;]+?)\s+mean|define\s+(?P<c>[^?,;]+?)|what\s+(?:does|do)\s+"
    r"(?:an?\s+|the\s+)?(?P<does>[^?,;]+?)\s+do)"
    r"(?:\s+(?:in|within)\s+[^?,;]+|\s+(?:exactly|for short))?\s*(?:,[^?]*)?\??\s*$",
    re.IGNORECASE,
)
# Where a sentence says what its subject is: the copula after the subject, or the name
# a sentence gives ("... is called a supertrait", "we call ... borrowing", "this is X").
_COPULA = re.compile(r"\s(?:is|are|refers? to|means)\s", re.IGNORECASE)
_NAMING = re.compile(
    r"\b(?:(?:is|are) (?:called|known as|named|termed)|we call\b.*\b|this is)\s+(?P<name>[^,;:.]+)",
    re.IGNORECASE,
)
_SETTING = re.compile(r"^(?:in|for|with|on) [^,]{1,40},\s*", re.IGNORECASE)
_ASIDE = re.compile(r",[^,]*,")
_PREPOSITION = re.compile(r"\b(?:of|for|in|on|with|about|from|to|by|between)\b", re.IGNORECASE)
MAX_SUBJECT_EXTRA_WORDS = 3
# A longer "What is ...?" asks about something else than a term ("What is the widest object
# the planner will grip?").
MAX_SUBJECT_WORDS = 3


def _defines(text: str, subject: tuple[str, ...], *, does: bool = False) -> bool:
    """Whether the sentence says what `subject` (a question's content words, its head
    noun last) is: the head noun before the copula, with few other words, or named; for
    "What does X do?" (`does`), also a sentence that opens with X ("The `loop` keyword
    tells Rust to ...")."""
    if not subject:
        return False
    noun = subject[-1]
    copula = _COPULA.search(text)
    if copula is not None or does:
        # The subject before the copula, a setting ("In Rust, ") or an aside ("..., on the
        # other hand,") left out.
        head = _ASIDE.sub(" ", _SETTING.sub("", text[: copula.start()] if copula else text))
        words = _content_words(head)
        # The noun heads the subject ("Rust's closures are"), not a phrase in it ("One
        # downside of the pattern is", "The implementation using the pattern is").
        lead = [
            (stem, token.endswith(("'s", "\u2019s")))  # "Rust's closures are"
            for token in _PREPOSITION.split(head, maxsplit=1)[0].split()
            for stem in _ordered_words(token)
        ]
        stems = [stem for stem, _ in lead]
        if (
            noun in stems
            and all(stem in subject or owner for stem, owner in lead[: stems.index(noun)])
            and (does or len(words - set(subject)) <= MAX_SUBJECT_EXTRA_WORDS)
        ):
            return True
    return any(noun in _content_words(m.group("name")) for m in _NAMING.finditer(text))


@dataclass(frozen=True, slots=True)
class _Question:
    """What the features need to know about the question, read once per answer."""

    words: frozenset[str]  # its content words
    pairs: frozenset[tuple[str, str]]  # its consecutive words, stopwords included
    identifiers: tuple[str, ...]  # the code it names, lowercased
    code: bool  # it asks for code (a command, a listing, a way to do something), names one
    why: bool  # it asks for a reason
    quantity: bool  # it asks for a number (or a date)
    person: bool  # it asks who
    subject: tuple[str, ...]  # what it asks the meaning of ("What is X?"): content words
    does: bool  # it asks what X does ("What does X do?")


@functools.lru_cache(maxsize=64)
def _question(question: str) -> _Question:
    words = _WORD.findall(fold(question))
    identifiers = {(m.group(1) or m.group(2)).lower() for m in _IDENTIFIERS.finditer(question)}
    return _Question(
        _content_words(question),
        frozenset(zip(words, words[1:], strict=False)),
        tuple(sorted(identifiers)),
        any(p.search(question) for p in (_CODE_INTENT, _IDENTIFIER, _HOW_TO)),
        bool(_WHY.search(question)),
        bool(_QUANTITY.search(question)),
        bool(_PERSON.search(question)),
        *_subject(question),
    )


def _subject(question: str) -> tuple[tuple[str, ...], bool]:
    """What a "What is X?" question asks about (X's content words, in order) and whether
    it asks what X does ("What does X do?"); ((), False) for any other question."""
    match = _WHAT_IS.match(question.strip())
    if match is None:
        return (), False
    phrase = next(group for group in match.groups() if group)
    does = bool(match.group("does"))
    if does:
        phrase = _PREPOSITION.split(phrase, maxsplit=1)[0]  # "#[cfg(test)] on the module"
    words = tuple(dict.fromkeys(_ordered_words(phrase)))
    return (words, does) if len(words) <= MAX_SUBJECT_WORDS else ((), False)


def _ordered_words(text: str) -> list[str]:
    """The content words of a text in their order (`_content_words` is a set)."""
    return [stem for word in _WORD.findall(fold(text)) for stem in _content_words(word)]


@functools.lru_cache(maxsize=TEXT_MEMO_SIZE)
def _traits(
    text: str,
) -> tuple[frozenset[tuple[str, str]], bool, bool, bool, tuple[frozenset[str], ...]]:
    """A sentence's word pairs, whether it has inline code, a reason, a number, and the
    content words of each name in it."""
    words = _WORD.findall(fold(text))
    return (
        frozenset(zip(words, words[1:], strict=False)),
        "`" in text,
        bool(_REASON.search(text)),
        any(c.isdigit() for c in text),
        tuple(filter(None, (_content_words(name) for name in _NAME.findall(text)))),
    )


@dataclass(frozen=True, slots=True)
class _Context:
    """What scoring a sentence needs besides the sentence: the question's word weights."""

    weights: dict[str, float]
    total: float  # the weight of all the question's words
    top: float  # the best lexical score of any sentence
    similarities: Mapping[str, float] | None
    floor: float  # the similarity assumed for a sentence the mapping does not cover
    question: _Question


def _context(
    sentences: Sequence[_Sentence],
    weights: dict[str, float],
    similarities: Mapping[str, float] | None,
    question: str = "",
) -> _Context:
    top = max((_score(s.words, weights) for s in sentences), default=0.0)
    known = [similarities[s.text] for s in sentences if similarities and s.text in similarities]
    if not known:
        similarities = None
    # A sentence left out of a partial mapping ranked low by its words: assume it is as
    # far from the question as the farthest one that was embedded.
    floor = min(known, default=0.0)
    return _Context(weights, sum(weights.values()), top, similarities, floor, _question(question))


def _features(sentence: _Sentence, context: _Context) -> tuple[float, ...]:
    """The question-dependent features of a sentence (see MEANING_WEIGHTS)."""
    lexical = _score(sentence.words, context.weights)
    heading = _score(sentence.heading_words, context.weights)
    total = context.total or 1.0
    similarity = 0.0
    if context.similarities is not None:
        similarity = context.similarities.get(sentence.text, context.floor)
    question = context.question
    full = " ".join((sentence.text, *sentence.items))
    pairs, inline_code, reason, number, names = _traits(full)
    # The kind of answer asked for: a number (or a date) for "how many" and "when", a
    # name the question does not already give for "who".
    answer_kind = (question.quantity and number) or (
        question.person and any(not name <= question.words for name in names)
    )
    lowered = full.lower()
    named = sum(1 for name in question.identifiers if name in lowered)
    return (
        similarity,
        lexical / total,  # the share of the question's words it has
        lexical / context.top if context.top > 0 else 0.0,
        heading / total,  # the share its section's title has
        float(question.code and inline_code),  # "What command ...": `cargo new`
        named / len(question.identifiers) if question.identifiers else 0.0,
        len(question.pairs & pairs) / len(question.pairs) if question.pairs else 0.0,
        math.log1p(len(sentence.words - question.words)),  # what it says besides the question
        float(question.why and reason),
        float(answer_kind),
        sentence.source_score,
        float(_defines(sentence.text, question.subject, does=question.does)),
    )


def _sentence_score(sentence: _Sentence, context: _Context) -> float:
    """How likely the sentence states the answer, from 0 to 1."""
    weights = MEANING_WEIGHTS if context.similarities is not None else WORD_WEIGHTS
    value = weights[0] + sum(
        w * f for w, f in zip(weights[1:], _features(sentence, context), strict=True)
    )
    value += sum(w * f for w, f in zip(FORM_WEIGHTS, sentence.form, strict=True))
    if sentence.around:
        value += AROUND_WEIGHT
    return 1 / (1 + math.exp(-value))


def _select(sentences: list[_Sentence], context: _Context) -> list[tuple[float, _Sentence]]:
    """The best sentence first, then the others worth quoting (2-5 in all), best first.

    Every source competes on its score alone: the score counts its source's rank and
    cosine, so an answer draws on source 2 or 3 when they state the answer better.
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
    for pair in scored[1:]:
        if len(chosen) >= MAX_SENTENCES:
            break
        if pair[1].text in quoted:
            continue  # already shown as an item of a chosen list
        if pair[0] >= KEEP_RATIO * best or len(chosen) < MIN_SENTENCES:
            if pair[0] <= 0:
                break
            quoted.update(pair[1].items)
            if lead.text in pair[1].items:
                # The best sentence is an item of this list: the list, with its lead-in,
                # opens the answer in its place (quoting the item once).
                chosen = [(best, pair[1]), *(c for c in chosen[1:] if c[1].text not in quoted)]
                continue
            if pair[1].items:  # a list's lead-in: its items are quoted with it
                chosen = [c for c in chosen if c is chosen[0] or c[1].text not in pair[1].items]
            chosen.append(pair)
    return chosen
