"""The offline answerer: picks the sentences of the sources that state the answer.

No language model runs here. The answer is composed from the retrieved passages:

1. Each source's body is cut into quotable units (passages.py): prose sentences, list
   items, table rows and fenced code blocks.
2. Each sentence is scored by a small logistic model (scoring.py): by its cosine with
   the question (when `similarities` has it), the question's words and word pairs it
   shares, its section's title, the rank and cosine of its source and its form.
3. The best sentence comes first (the answer is in the first sentence when the book
   has one), then up to four more that score at least KEEP_RATIO of it, from any
   source, each source's sentences one paragraph in the book's order. A
   code block of the sources is included as a fenced block, never run together as
   prose, when the question asks for code (a command, a listing, a config, "How do I
   ...?"), when a chosen sentence announces it, or when it holds more of the question
   than the prose; for a code question, a chosen sentence that announces the block opens
   the answer with it. A lead-in to a one-line block quotes the line inline instead
   ("... enter the following: `cargo fmt` [1].", passages.with_inline_code). For a
   question for code or for a value, the block's line that answers (excerpts.py) opens
   the answer after its comment when it holds as much of the question as the best
   sentence: "Set maximum performance mode: `sudo nvpmodel -m 0` [1]."
4. Every sentence carries the `[n]` of its source; nothing else is cited.

This module owns the composition (`extractive_answer`, from step 3 on), the sentence
vectors the model scores with (`sentence_similarities`, which remembers them per
embedder in a `RecentVectors`) and `ExtractiveChatModel`.

The reader is told once that no model wrote the answer: the `mode: "extractive"` of
the `done` event, which the widget shows as a note. The answer text carries no notice.

With a highlighted passage (a source whose chunk id is `SELECTION_ID`), the answer
explains it from the passages around it: the selection's words join the question's,
and the selection itself is not quoted back unless nothing else is there.
"""

from __future__ import annotations

import functools
import re
import threading
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import numpy as np

from .batching import RecentlyUsed, RecentVectors
from .exceptions import LLMError
from .excerpts import Excerpt, asks_for_value, best_excerpt
from .passages import (
    MAX_SENTENCE_CHARS,
    MIN_SENTENCE_CHARS,
    _depth_change,
    content_words,
    lead_in_statement,
)
from .scoring import (
    _CODE_INTENT,
    _HOW_TO,
    _IDENTIFIER,
    MAX_SENTENCES,
    _Code,
    _context,
    _gather,
    _score,
    _select,
    _Sentence,
    _sentence_score,
    _weights,
)
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

MAX_CODE_LINES = 20
# Without a code question, a block is shown when it holds this share of the question's
# word weight, and more of it than the chosen sentences do.
CODE_ALONE_COVERAGE = 0.6
# A block's score shrinks by this share per line: a command beats a whole program.
CODE_LENGTH_DECAY = 0.05
SOURCE_RANK_DECAY = 0.2  # later sources' code blocks weigh less: retrieval ranked them lower
# How many candidates are embedded at most, when sentence vectors are computed per answer.
MAX_EMBEDDED_SENTENCES = 32
# How many sentence vectors each embedder's memo keeps (~1.5 KB each).
MEMO_SENTENCES = 20_000

# "Listing 2-6: " or "Figure 3: " before what a caption says.
_CAPTION_LABEL = re.compile(
    r"^(?:figure|fig\.|listing|table)\s*[\w.-]*\d[\w.-]*:\s*", re.IGNORECASE
)


def _with_citation(sentence: str, n: int) -> str:
    """Put `[n]` before the sentence's closing punctuation: 'Lidar measures depth [2].'"""
    sentence = sentence.rstrip()
    if sentence.startswith("(") and sentence.endswith(")") and _depth_change(sentence[1:-1]) == 0:
        return f"{sentence} [{n}]"  # a sentence in parentheses: cited after them
    if sentence.endswith("”"):
        return f"{sentence} [{n}]"  # a quotation: cited after its closing mark
    match = re.search(r"([.!?…:]+[\"')\]]*)$", sentence)
    if match and not sentence.endswith("`"):
        return f"{sentence[: match.start()]} [{n}]{match.group(1)}"
    return f"{sentence.rstrip(',;')} [{n}]."


def _code_block(
    question: str, codes: list[_Code], weights: dict[str, float], chosen: list[_Sentence]
) -> _Code | None:
    """The code block to show: when the question asks for code (or names an identifier,
    or asks how to do something) and a block matches it, or when a block holds more of
    the question than the prose."""
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
    if not chosen or _asks_for_code(question):
        return best[2]  # a question for code, or for a way of doing something
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
    if code.inlined and intro:
        return lead  # "To format any Cargo project, enter the following: `cargo fmt` [1]."
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
        # What it introduced is not quoted: it ends as a statement, without its pointer
        # ("..., and it looks like this:").
        text = lead_in_statement(text) or text[:-1].rstrip() + "."
    return _with_citation(text, sentence.n)


def _prepare(
    question: str, sources: Sequence[Source]
) -> tuple[list[_Sentence], list[_Code], dict[str, float]]:
    # candidate_sentences and extractive_answer cut the same sources for one answer.
    return _prepared(question, tuple(sources))


# Deep enough for every answer in flight: `sentence_similarities` cuts the sources, awaits
# the embedder while other answers run, then `extractive_answer` needs the same cut (at
# 16, 50 concurrent answers evicted it in between: ~8 % of the server's CPU).
@functools.lru_cache(maxsize=256)
def _prepared(
    question: str, sources: tuple[Source, ...]
) -> tuple[list[_Sentence], list[_Code], dict[str, float]]:
    question_words = content_words(question)
    quoted = _quoted(sources)
    if len(quoted) < len(sources):
        # Explain the highlighted passage from its surroundings, not by echoing it.
        selection = next(s for s in sources if s.chunk.id == SELECTION_ID)
        question_words |= content_words(selection.chunk.body)
    sentences, codes = _gather(quoted)
    weights = _weights(question_words, [s.words for s in sentences] + [c.words for c in codes])
    return sentences, codes, weights


def _quoted(sources: Sequence[Source]) -> Sequence[Source]:
    """The sources the answer quotes (their order is the sentences' `source_index`):
    with a highlighted passage and others, the others."""
    others = [s for s in sources if s.chunk.id != SELECTION_ID]
    return others if others and len(others) < len(sources) else sources


def candidate_sentences(*, question: str, sources: Sequence[Source]) -> list[str]:
    """The sentences `extractive_answer` chooses from, best lexical matches first
    (at most MAX_EMBEDDED_SENTENCES): what is worth embedding for `similarities`."""
    sentences, _, weights = _prepare(question, sources)
    context = _context(sentences, weights, None, question)
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
    chosen = _select(sentences, _context(sentences, weights, similarities, question))
    code = _code_block(question, codes, weights, [s for _, s in chosen])
    if code is not None and code.inlined:
        quoting = [
            pair
            for pair in chosen
            if pair[1].text == code.intro and pair[1].source_index == code.source_index
        ]
        if quoting:
            # A chosen sentence quotes the block's one line: no block; for a question
            # for code, the sentence opens the answer (as a block it announces would).
            code = None
            if _asks_for_code(question):
                chosen = [*quoting, *(pair for pair in chosen if pair not in quoting)]
    if not chosen and code is None:
        return NO_SOURCES_MESSAGE
    found = _leading_excerpt(question, codes, code, weights, chosen)
    if found is not None:
        excerpt, block = found
        # The line leads and its block follows, unless the lead shows the block, or the
        # line is all the block has (quoted in its introduction, which is then not
        # quoted again, or after its comment).
        follows = None
        if excerpt.inline() is not None and not excerpt.alone:
            follows = block
        rest = [pair for pair in chosen if not (block.inlined and pair[1].text == block.intro)]
        return "\n\n".join(
            [
                _render_excerpt(excerpt, block),
                *_paragraphs(rest[: MAX_SENTENCES - 1], sentences, follows, weights),
            ]
        )
    if code is not None and code.intro and _asks_for_code(question):
        intro = [
            pair
            for pair in chosen
            if pair[1].text == code.intro and pair[1].source_index == code.source_index
        ]
        if intro:
            # "What command ...?" and a chosen sentence announces the block: the command
            # opens the answer, the other sentences follow. (Not when the announcing line
            # says nothing alone, "enter the following:": then a sentence naming the
            # command in inline code more often states the answer, and opens it.)
            rest = [pair for pair in chosen if pair not in intro][: MAX_SENTENCES - 1]
            return "\n\n".join(
                [_render_code(code, weights), *_paragraphs(rest, sentences, None, weights)]
            )
    return "\n\n".join(_paragraphs(chosen, sentences, code, weights))


def _leading_excerpt(
    question: str,
    codes: list[_Code],
    code: _Code | None,
    weights: dict[str, float],
    chosen: list[tuple[float, _Sentence]],
) -> tuple[Excerpt, _Code] | None:
    """The code line that opens the answer, with its block: for a question for code or
    for a value ("Which tracker ...?"), the line of the block to show (else of any
    block) that holds at least as much of the question's words as the best sentence,
    in a source retrieval ranked no lower (a tie goes to the code: set on the even rows,
    it gained a question on each half)."""
    if not (_asks_for_code(question) or asks_for_value(question)):
        return None
    blocks = [code] if code is not None else codes
    excerpt = best_excerpt([(c.code, c.info, c.source_index) for c in blocks], weights, question)
    if excerpt is None:
        return None
    block = blocks[excerpt.block]
    if chosen:
        lead = chosen[0][1]
        total = sum(weights.values()) or 1.0
        if block.source_index > lead.source_index:
            return None
        if excerpt.coverage < _score(lead.words, weights) / total:
            return None
    return excerpt, block


def _render_excerpt(excerpt: Excerpt, code: _Code) -> str:
    """The answering line after what says what it does, "Set maximum performance mode:
    `sudo nvpmodel -m 0` [1].", the block following; or, when the line is no statement
    alone, what says what it does and the block from the line's group on."""
    if code.inlined:
        return _with_citation(code.intro, code.n)  # "... enter the following: `cargo fmt` [1]."
    label = excerpt.line.comment
    if not label and code.intro.endswith(":") and len(code.intro) <= MAX_SENTENCE_CHARS:
        # A sentence that announces the block ("Connect to the instance:"), not one
        # that merely precedes it.
        label = _CAPTION_LABEL.sub("", code.intro)
    label = label.rstrip(" .:;")
    if re.match(r"[a-z]+\b(?![_.(])", label):
        label = label[0].upper() + label[1:]  # "# with an explicit annotation" opens a sentence
    inline = excerpt.inline()
    if inline is not None:
        return f"{label}: `{inline}` [{code.n}]." if label else f"`{inline}` [{code.n}]."
    lines = excerpt.window(code.code, at_most=MAX_CODE_LINES)
    fence = "~~~" if "```" in lines else "```"
    lead = f"{label} [{code.n}]:" if label else f"[{code.n}]:"
    return f"{lead}\n\n{fence}{code.info}\n{lines}\n{fence}"


def _asks_for_code(question: str) -> bool:
    """A question for code: a command, a listing, a config, an identifier it names, or a
    way of doing something."""
    return any(p.search(question) for p in (_CODE_INTENT, _IDENTIFIER, _HOW_TO))


def _paragraphs(
    chosen: list[tuple[float, _Sentence]],
    sentences: list[_Sentence],
    code: _Code | None,
    weights: dict[str, float],
) -> list[str]:
    """The chosen sentences (and the block) rendered: the best sentence opens the
    answer, the block and the sentence that introduces it follow; each source's
    sentences then follow in the book's order, one paragraph per source, best first."""
    lead = chosen[0][1] if chosen else None
    intro = None
    if code is not None:
        # The sentence that introduces the block is quoted with it, right before it.
        intro = next(
            (s for s in sentences if s.source_index == code.source_index and s.text == code.intro),
            None,
        )
        holder = next((s for _, s in chosen if intro is not None and intro.text in s.items), None)
        if holder is not None:
            intro = holder  # the last item of a chosen list: the block follows the list
        elif intro is not None and all(s is not intro for _, s in chosen):
            if lead is None or lead.source_index != code.source_index:
                intro = None  # the block keeps its introduction in its own paragraph
            else:
                chosen = [*chosen[: MAX_SENTENCES - 1], (0.0, intro)]
                if code.inlined:
                    code = None  # the introduction quotes the block's one line
        if intro is None:
            # The block comes with a cited line of its own (its introduction, or "[n]:"):
            # with it the answer still quotes at most MAX_SENTENCES.
            chosen = chosen[: MAX_SENTENCES - 1]
    paragraphs: dict[int, list[_Sentence]] = {}
    for _, sentence in chosen:
        paragraphs.setdefault(sentence.source_index, []).append(sentence)
    rendered: list[str] = []
    for source_index, group in paragraphs.items():
        ordered = sorted(group, key=lambda s: s.position)
        if lead is not None and source_index == lead.source_index:
            ordered = [lead] + [s for s in ordered if s is not lead]
        if intro is not None and intro is not lead and intro in ordered:
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
    return rendered


# The vectors of sentences already embedded, per embedder, most recent kept: readers ask
# about the same sections again and again, so a sentence without a stored vector is
# embedded once, then looked up (one implementation with the embedder's query memory).
_MEMOS: weakref.WeakKeyDictionary[Any, RecentVectors] = weakref.WeakKeyDictionary()
_MEMOS_LOCK = threading.Lock()


def _memo_for(embedder: Embedder) -> RecentVectors:
    with _MEMOS_LOCK:
        memo = _MEMOS.get(embedder)
        if memo is None:
            memo = _MEMOS[embedder] = RecentVectors(max_entries=MEMO_SENTENCES)
        return memo


async def sentence_similarities(
    *,
    question: str,
    sources: Sequence[Source],
    embedder: Embedder | None = None,
    stored: Mapping[str, Mapping[bytes, np.ndarray]] | None = None,
) -> dict[str, float]:
    """Return sentence -> cosine with the question, for the sources' quotable sentences.

    `stored`: per chunk (its content hash), the sentence vectors computed at ingestion
    with it (sentence_key -> vector, ragsite/rag/sentences.py); every sentence found
    there is scored, with the vector of the chunk it is quoted from (a sentence two
    overlapping chunks share was read in each one's context). Of the others, the best
    lexical candidates (at most MAX_EMBEDDED_SENTENCES) are embedded now; sentences
    (and questions) embedded before are looked up, not embedded again.

    Raises:
        EmbeddingError: the embedder failed.
    """
    sentences, _, _ = _prepare(question, sources)
    if not sentences:
        return {}
    if embedder is None:
        import asyncio

        from . import providers

        # Read on the event loop once built (a thread hop per answer was ~0.1-0.2 ms
        # of the server's CPU); the first build loads the model, in a worker thread.
        embedder = (
            providers.get_embedder()
            if providers.embedder_ready()
            else await asyncio.to_thread(providers.get_embedder)
        )
    memo = _memo_for(embedder)
    vectors: dict[str, np.ndarray] = {}
    if stored:
        chunks = [stored.get(s.chunk.content_hash) or {} for s in _quoted(sources)]
        for sentence in sentences:
            # A sentence is quoted from the first source that holds it (`_gather`): its
            # own chunk's vector, else any other source's that has one.
            key = sentence_key(sentence.text)
            own = chunks[sentence.source_index]
            vector = own.get(key)
            if vector is None:
                vector = next((c[key] for c in chunks if key in c), None)
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
        computed = [np.asarray(v, dtype=np.float32) for v in await embedder.embed(missing)]
        memo.put(missing, computed)
        known.update(zip(missing, computed, strict=True))
    vectors.update((text, known[text]) for text in candidates)
    query = np.asarray(known[question], dtype=np.float32)
    return {text: float(np.dot(query, vector)) for text, vector in vectors.items()}


class ExtractiveChatModel:
    """The offline answerer: quotes the retrieved passages, cites them, invents nothing."""

    provider = "extractive"
    model = "extractive"

    # Answers remembered (question and sources -> text): readers ask the same questions
    # again, and composing one is a few ms of the event loop's CPU.
    MEMO_ANSWERS = 512

    def __init__(self, *, embedder: Embedder | None = None) -> None:
        """`embedder` scores sentences by meaning; default: the configured one."""
        self._embedder = embedder
        self._answers: RecentlyUsed[tuple[str, tuple[Source, ...]], str] = RecentlyUsed(
            self.MEMO_ANSWERS
        )

    async def answer(self, request: AnswerRequest) -> str:
        """Return the whole extractive answer (sentences scored by words and meaning).

        The answer is a function of the question and the sources (their chunks, order
        and scores; the sentence vectors follow from the chunks), so the same question
        over the same sources is answered from memory.
        """
        key = (request.question, tuple(request.sources))
        if known := self._answers.get([key]):
            return known[key]
        similarities = await sentence_similarities(
            question=request.question,
            sources=request.sources,
            embedder=self._embedder,
            stored=request.sentence_vectors,
        )
        text = extractive_answer(
            question=request.question, sources=request.sources, similarities=similarities
        )
        self._answers.put([key], [text])
        return text

    async def stream(self, request: AnswerRequest) -> AsyncIterator[str]:
        """Yield the extractive answer word by word (no artificial delay)."""
        from .llm import stream_pieces  # llm.py owns the piece splitting of every model

        for piece in stream_pieces(await self.answer(request)):
            yield piece

    async def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int = 256) -> str:
        """Always raises LLMError: there is no language model to write free text."""
        raise LLMError(EXTRACTIVE_CANNOT_COMPLETE_MESSAGE)
