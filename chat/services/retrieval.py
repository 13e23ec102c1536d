"""Retrieval: two channels fused in the service, exact repeats collapsed, doubt decided once.

`book_search` asks the store for two rankings of the same query: the dense embedding
(`mode="dense"`, cosine) and the BM25 sparse vector (`mode="sparse"`, BM25 score), each
`RETRIEVAL_POOL` deep. It fuses them here, not in the store, because the store's RRF
sees only ranks: a chunk that BM25 scores far above the rest and one that barely
matched get almost the same credit. Min-max score fusion (each channel's scores divided
by that channel's best, then a weighted sum) keeps those margins; weighted RRF is the
alternative (`RETRIEVAL_FUSION`). docs/retrieval-quality.md has the measurements.

Nothing the store found is thrown away for its score: the hits are the fused ranking
with only *the same text* removed (a paragraph repeated on two pages, a chunk the
chunker emitted twice). Neighbouring chunks of one section are different text and stay.
Whether the book supports an answer at all is a separate question, decided from all the
evidence (both channels) in one function, `book_supports`; docs/chat.md explains it.
The sources of an answer need distinct *sections*, which `Retrieval.sections` gives.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ragsite import observability as metrics
from ragsite.rag import interaction, providers
from ragsite.rag.batching import RecentlyUsed
from ragsite.rag.config import get_config
from ragsite.rag.sentences import TOKENS_KEY, chunk_sentence_keys, vectors_per_chunk
from ragsite.rag.sparse import fold, tokenize
from ragsite.rag.store_core import RRF_K as STORE_FUSION_RRF_K
from ragsite.rag.tokens import load_tokenizer
from ragsite.rag.types import Chunk, Embedder, Hit, VectorStore

logger = logging.getLogger(__name__)

# How many below-support hits to offer as "closest sections" for an uncertain answer,
# and how near the cosine floor they must be: questions from other domains ("capital
# of France": 0.16, "sourdough bread": 0.18) land on unrelated sections, which would
# only mislead.
CLOSEST_COUNT = 3
CLOSEST_FLOOR_RATIO = 0.8
RRF_K = 60  # the usual reciprocal-rank constant
STORE_RRF_K = STORE_FUSION_RRF_K  # the store's fusion's constant (qdrant-client local mode's)
# The blend's rank half: reciprocal-rank fusion with this constant, scaled so that a
# chunk first in both channels gets 1 (for k = 2 it is the store's own fusion). With 1
# the channels' first few ranks count most; with the store's 2 (or any k from 3 up)
# `book_search` fell below the store's fusion at some cutoff on some question set, with
# the packaged model or its int8 graph. docs/retrieval-quality.md has the sweep.
BLEND_RRF_K = 1
# Two chunks are the same text when nearly all word 5-grams of the shorter one are in
# the other. Neighbours of one section share only the chunk overlap (~32 tokens).
SAME_TEXT_SHINGLE = 5
SAME_TEXT_OVERLAP = 0.9
# Two sources say the same thing when their word 3-grams overlap this much (of the
# smaller set): the second one adds nothing for the reader.
SAME_CLAIM_SHINGLE = 3
SAME_CLAIM_OVERLAP = 0.6
# How deep the fused ranking is searched for repeats and distinct sections.
COLLAPSE_DEPTH_FACTOR = 4
COLLAPSE_DEPTH_MIN = 20
# The evidence looks at the best few fused hits, not only the first.
EVIDENCE_DEPTH = 3
# Per-text analyses (shingles, vocabularies) kept: the same chunks come back again and
# again, and each costs ~0.1-0.5 ms of Python to recompute (~10 KB each, ~60 MB at most).
TEXT_MEMO_SIZE = 2048
# A name the question gives (a capitalised word: "Python", "TypeScript", "C#") that at
# most this many candidates hold, none of them among the best EVIDENCE_DEPTH hits, is
# one the book only mentions in passing: the question is about something else. The
# sparse channel ranks the chunks holding a rare term first, so a name in a handful of
# the book's chunks is in the pool with all of them: the count is the book's own.
STRAY_NAME_HITS = 8
# Below this cosine a stray name alone means doubt. At or above it the best passage
# nearly restates the question, and a stray name may be a comparison ("How is a Rust
# trait different from an interface in Java?": 0.70): then the question's words decide,
# as between the floor and the confident score. Near-domain questions about another
# language stay below it ("What is the difference between a struct and a class in C#?"
# of the Rust book: 0.55).
STRAY_NAME_MAX_SCORE = 0.6
# A missing term that is no ordinary English word (`_ordinary_word`: the embedding
# model's own WordPiece vocabulary cuts it into sub-word pieces, not a word and an
# ending) is a technical term: "calloc", "argparse", "backpressure", "microtasks". The
# book lacks the very thing the question asks about, which a cosine of 0.45-0.6 (the
# passages on allocation, arguments, streams) does not outweigh: it counts as a stray
# name does. A common word the book lacks is the reader's own wording ("sketching",
# "mistype", "redeclaring"). The endings and prefixes a word may carry and still be one:
WORD_ENDINGS = frozenset("s es d ed ing er ers est st r ly y able ness ment ful less".split())
WORD_PREFIXES = ("un", "re", "dis", "mis", "non")
_VOWELS = frozenset("aeiou")
# British and American spellings of one word ("optimisation", "optimization"): a book
# in one holds the question's word in the other.
SPELLINGS = (
    ("isation", "ization"),
    ("ise", "ize"),
    ("yse", "yze"),
    ("our", "or"),
    ("lled", "led"),
    ("lling", "ling"),
    ("tre", "ter"),
)
# The word after "like" or "such as" is an example the reader compares with ("an
# ignore file, like .gitignore"), not what the question asks for.
_EXAMPLE_RE = re.compile(r"\b(?:like|such\s+as)\s+\W*([^\W_]+)", re.IGNORECASE)
# Just above the floor the passages hardly touch the question, so its words must carry
# it: below this cosine a question missing one term in five ("What traits make a good
# team leader?" of the Rust book, 0.25, "leader" missing) is not supported; one in six
# or fewer still is (the docs' paraphrased questions sit at 0.23-0.26).
NEAR_FLOOR_SCORE = 0.3
# A missing word in these endings is a verb form, the reader's own wording ("keep
# jumping around"), not the thing the question asks about ("an elevator controller").
VERB_ENDINGS = ("ing", "ed")
_WORD_RE = re.compile(r"\w+")
_NAME_RE = re.compile(r"[^\W_]+(?:\+\+|#)?")
_SENTENCE_END = frozenset(".!?:;")
_NAME_WORDS = r"((?:[^\W_]+(?:\+\+|#)?\s+)*[^\W_]+(?:\+\+|#)?)"
_OPENING_SCOPE_RE = re.compile(r"^\s*In\s+" + _NAME_WORDS + r"\s*,")
_CODE_RE = re.compile(r"^(```|~~~).*?^\1|`[^`\n]+`", re.MULTILINE | re.DOTALL)
_POSSESSIVE_RE = re.compile(r"([^\W_]+(?:\+\+|#)?)['\u2019]s\b")
# Words that say how a question is asked, not what it is about: a book need not hold
# them ("Why can't a robot *ever* know *exactly* where it is?"), so they are never
# counted as missing. Sparse tokens (stemmed plurals).
GENERIC_TERMS = frozenset(
    """ever exactly always never often usually really actually also still even just
    already later alone kind type sort thing way main mainly happen mean work use used
    using get make need want give show tell say explain describe call called find know
    like better best good bad right wrong possible instead rather mix several many much
    one two first last new old able""".split()
)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What both channels say about a query (the input of `book_supports`).

    `cosine`: the best dense cosine among the top fused hits (comparable across queries).
    `missing`: the share of the query's terms (sparse tokens) that none of the
    candidates of either channel contains (GENERIC_TERMS never count as missing);
    `missing_terms` names them. BM25 ranks the chunks holding a query's rarest terms
    first, so a term absent from its whole pool is, in practice, absent from the book.
    `stray_names`: the names the query gives (`query_names`) that no candidate holds,
    or at most STRAY_NAME_HITS candidates do and none of the best EVIDENCE_DEPTH hits:
    the passages that answer the question's words do not speak of what it names.
    A name written with a capital is held only as a name or in code (`_holds_name`).
    `scope_names`: the names the query is asked within (`query_scopes`: "... in
    Haskell?") that at most STRAY_NAME_HITS candidates hold, best hits or not: the book
    mentions them in passing, the question is about them.
    `rare_terms`: the missing terms the question writes as no ordinary English word
    (`query_rare_terms`: "calloc", "argparse"): technical terms the book lacks.
    `unplaced_terms`: when a term is missing, the question's specific terms (held by
    at most STRAY_NAME_HITS candidates), if none of the best hits holds any of them:
    the best passages match only its common words.
    """

    cosine: float
    missing: float
    missing_terms: tuple[str, ...] = ()
    stray_names: tuple[str, ...] = ()
    scope_names: tuple[str, ...] = ()
    rare_terms: tuple[str, ...] = ()
    unplaced_terms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Retrieval:
    """What retrieval found for one query.

    `hits`: the fused ranking, exact repeats removed, best first, at most k.
    `sections`: the same ranking with one hit per section (page + heading) and without
    two that say the same thing, at most k: what the sources of an answer are made of.
    `supported`: whether the book supports an answer (`book_supports`).
    `closest`: when it does not, the best distinct sections near the cosine floor, so an
    uncertain answer can still point the reader at them.
    """

    query: str
    hits: list[Hit]
    supported: bool = False
    closest: list[Hit] = field(default_factory=list)
    sections: list[Hit] = field(default_factory=list)
    evidence: Evidence | None = None
    floor: float = 0.0


# --- fusion ------------------------------------------------------------------------------


def _rank_value(hit: Hit) -> float:
    return hit.rank_score


def hits_fuse(
    dense: Sequence[Hit],
    sparse: Sequence[Hit],
    *,
    method: str = "blend",
    dense_weight: float = 0.45,
) -> list[Hit]:
    """Fuse a dense and a sparse ranking of the same query into one, best first.

    `minmax`: each channel's scores (`rank_score`: cosine, BM25) divided by that
    channel's best score, then `dense_weight * dense + (1 - dense_weight) * sparse`; a
    chunk one channel did not return gets 0 from it. `rrf`: weighted reciprocal rank
    fusion, `w / (RRF_K + rank)` summed over the channels. `blend` (the default): the
    `minmax` value plus a reciprocal-rank fusion (`hits_blend`: `0.5 / (BLEND_RRF_K +
    rank)` per channel, rank from 0): the margins of the scores and the agreement of
    the ranks, each worth at most 1. Each returned hit keeps its
    dense cosine as `score` and carries the fused value as `rank_score`. Ties keep the
    dense order, then the sparse order.
    """
    if method == "blend":
        return hits_blend(
            hits_fuse(dense, sparse, method="minmax", dense_weight=dense_weight), dense, sparse
        )
    weights = (dense_weight, 1.0 - dense_weight)
    fused: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for channel, weight in zip((dense, sparse), weights, strict=True):
        if not channel:
            continue
        best = max(_rank_value(hit) for hit in channel)
        for rank, hit in enumerate(channel, start=1):
            if method == "rrf":
                value = weight / (RRF_K + rank)
            else:
                value = weight * (_rank_value(hit) / best if best > 0 else 0.0)
            fused[hit.chunk.id] = fused.get(hit.chunk.id, 0.0) + value
            first.setdefault(hit.chunk.id, hit)
    order = sorted(fused, key=lambda chunk_id: -fused[chunk_id])  # stable: ties keep order
    return [Hit(first[i].chunk, first[i].score, fused[i]) for i in order]


def hits_blend(
    by_score: Sequence[Hit],
    dense: Sequence[Hit],
    sparse: Sequence[Hit],
    *,
    k: int = BLEND_RRF_K,
) -> list[Hit]:
    """Add a rank fusion of the channels to a score fusion of them
    (`hits_fuse(method="minmax")`), best first.

    The rank fusion gives each chunk `(k / 2) / (k + rank)` per channel (rank from 0):
    1 for a chunk first in both channels, whatever `k`; `k` = STORE_RRF_K is the store's
    own equal-weight fusion.
    """
    values = {hit.chunk.id: hit.rank_score for hit in by_score}
    for channel in (dense, sparse):
        for rank, hit in enumerate(channel):
            values[hit.chunk.id] += (k / 2) / (k + rank)
    first = {hit.chunk.id: hit for hit in by_score}
    order = sorted(values, key=lambda chunk_id: -values[chunk_id])  # stable: ties keep order
    return [Hit(first[i].chunk, first[i].score, values[i]) for i in order]


# --- repeats -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=TEXT_MEMO_SIZE)
def _shingles(text: str, size: int) -> frozenset[int]:
    """The word `size`-grams of a text, as hashes (memoised: the same chunks come back
    again and again; hashes keep the memo small)."""
    words = _WORD_RE.findall(text.lower())
    if len(words) < size:
        return frozenset({hash(tuple(words))}) if words else frozenset()
    return frozenset(hash(tuple(words[i : i + size])) for i in range(len(words) - size + 1))


def _overlap(a: frozenset[int], b: frozenset[int]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def _body(chunk: Chunk) -> str:
    return chunk.body or chunk.text


def hits_collapse(hits: Sequence[Hit], *, limit: int | None = None) -> list[Hit]:
    """Drop hits whose text repeats a better-ranked hit's (exact or near-exact copies).

    Only the same text counts: the same paragraph on two pages, or a chunk lying
    wholly inside another. Neighbouring chunks of a section are kept, however similar
    their topic: each holds text the other does not. Stops after `limit` kept hits.
    """
    kept: list[Hit] = []
    kept_shingles: list[frozenset[int]] = []
    seen: set[str] = set()
    for hit in hits:
        if limit is not None and len(kept) >= limit:
            break
        if hit.chunk.id in seen:
            continue
        shingles = _shingles(_body(hit.chunk), SAME_TEXT_SHINGLE)
        if any(_overlap(shingles, other) >= SAME_TEXT_OVERLAP for other in kept_shingles):
            continue
        kept.append(hit)
        kept_shingles.append(shingles)
        seen.add(hit.chunk.id)
    return kept


def hits_distinct_sections(hits: Sequence[Hit], *, limit: int | None = None) -> list[Hit]:
    """Keep the best hit of each section (page + heading), and none that says what a
    better-ranked one already says (word 3-gram overlap of SAME_CLAIM_OVERLAP)."""
    kept: list[Hit] = []
    kept_shingles: list[frozenset[int]] = []
    sections: set[tuple[str, str]] = set()
    for hit in hits:
        if limit is not None and len(kept) >= limit:
            break
        section = (hit.chunk.path, hit.chunk.heading)
        if section in sections:
            continue
        shingles = _shingles(_body(hit.chunk), SAME_CLAIM_SHINGLE)
        if any(_overlap(shingles, other) >= SAME_CLAIM_OVERLAP for other in kept_shingles):
            continue
        kept.append(hit)
        kept_shingles.append(shingles)
        sections.add(section)
    return kept


def hits_memos_warm(chunks: Iterable[Chunk]) -> None:
    """Derive what every search reads of its candidates, for these chunks, ahead of time.

    Each candidate's word 5-grams (`hits_collapse`) and the keys of its quotable
    sentences (`hits_by_best_sentence`) cost a fresh question ~2 ms of Python for the
    chunks it meets for the first time; both are memoised per text, and small to keep
    (~18 MB for the Rust book's 1,865 chunks). The vocabularies of the evidence are not
    warmed: they are larger and read for the best few hits only.
    """
    for chunk in chunks:
        _shingles(_body(chunk), SAME_TEXT_SHINGLE)
        chunk_sentence_keys(chunk.body)


# --- the second stage: the best sentence ------------------------------------------------------


def _stored_per_chunk(hits: Sequence[Hit], embedder: Embedder) -> dict[str, dict[bytes, Any]]:
    """What ingestion stored with each hit's chunk (its sentence vectors and token
    signature), per chunk: a sentence two chunks share (their overlap) has a vector in
    each, from each chunk's own model run."""
    return vectors_per_chunk(
        providers.get_sentence_vectors(),
        embedder=embedder,
        hashes=[hit.chunk.content_hash for hit in hits],
    )


def hits_by_best_sentence(
    hits: Sequence[Hit], query_vector: Sequence[float], *, embedder: Embedder, weight: float
) -> list[Hit]:
    """Re-order fused hits by `fused / best fused + weight * best sentence cosine`.

    A chunk's best sentence is its quotable sentence closest to the question, from the
    vectors stored with it at ingestion (ragsite/rag/sentences.py): a question usually
    asks what one sentence says, which the whole chunk's vector dilutes. A chunk with no
    stored sentence counts its own cosine. Without any stored vector (an OpenAI
    embedder, an index built before them) or with `weight` 0 the order is unchanged.
    The re-ordered hits carry the new value as `rank_score`.
    """
    if weight <= 0 or not hits:
        return list(hits)
    try:
        stored = _stored_per_chunk(hits, embedder)
    except Exception:  # a second stage only: the first stage's order stands
        logger.exception("could not read the candidates' sentence vectors")
        return list(hits)
    if not stored:
        return list(hits)
    query = np.asarray(query_vector, dtype=np.float32)
    best = max(hit.rank_score for hit in hits) or 1.0
    scored: list[tuple[float, int]] = []
    for index, hit in enumerate(hits):
        own = stored.get(hit.chunk.content_hash, {})
        vectors = [own[key] for key in chunk_sentence_keys(hit.chunk.body) if key in own]
        similarity = float(np.max(np.stack(vectors) @ query)) if vectors else hit.score
        scored.append((hit.rank_score / best + weight * similarity, index))
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    return [Hit(hits[i].chunk, hits[i].score, value) for value, i in scored]


# How many of the candidates, in the order so far, late interaction re-orders.
INTERACTION_DEPTH = 20


def hits_by_interaction(
    hits: Sequence[Hit], query: str, *, embedder: Embedder, weight: float
) -> list[Hit]:
    """Re-order the best INTERACTION_DEPTH hits by `rank_score + weight x MaxSim`, MaxSim
    scaled to 0..1 over them (ragsite/rag/interaction.py).

    Each of the question's content tokens finds its closest token in the chunk: a
    question that says in other words what one sentence of the chunk says is matched
    word by word, where the chunk's one vector dilutes it. The chunks' token signatures
    are stored with their sentence vectors; the question's tokens come from its own
    embedding (remembered by the local embedder). A chunk without a signature scores the
    lowest MaxSim; with fewer than two signatures, an embedder without token outputs or
    `weight` 0 the order is unchanged. The re-ordered hits carry the new value as
    `rank_score`.
    """
    head, tail = list(hits[:INTERACTION_DEPTH]), list(hits[INTERACTION_DEPTH:])
    token_rows = getattr(embedder, "token_rows_sync", None)
    if weight <= 0 or len(head) < 2 or token_rows is None:
        return list(hits)
    try:
        stored = _stored_per_chunk(head, embedder)
        signatures = [stored.get(hit.chunk.content_hash, {}).get(TOKENS_KEY) for hit in head]
        if sum(bits is not None for bits in signatures) < 2:
            return list(hits)
        question = token_rows(query)
    except Exception:  # a last stage only: the order so far stands
        logger.exception("could not read the candidates' token signatures")
        return list(hits)
    scores = iter(
        interaction.maxsim_many(question, [bits for bits in signatures if bits is not None])
    )
    matched = [None if bits is None else next(scores) for bits in signatures]
    known = [value for value in matched if value is not None]
    low, spread = min(known), (max(known) - min(known)) or 1.0
    scored = [
        (hit.rank_score + weight * ((low if value is None else value) - low) / spread, index)
        for index, (hit, value) in enumerate(zip(head, matched, strict=True))
    ]
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    return [Hit(head[i].chunk, head[i].score, value) for value, i in scored] + tail


# --- relevance and doubt --------------------------------------------------------------------


def _term_in(term: str, vocabulary: frozenset[str]) -> bool:
    """True when the vocabulary holds the term or a form of it ("weigh" in "weighted").

    The sparse tokens only fold plurals, so forms are matched by a shared prefix of at
    least five letters that leaves at most two letters of the shorter word over
    ("measuring" ~ "measure"), which keeps "type" from passing for "typescript".
    """
    if term in vocabulary:
        return True
    if len(term) < 5 or not term.isalpha():
        return False
    for word in vocabulary:
        shorter = min(len(term), len(word))
        if shorter >= 5 and word[:5] == term[:5]:
            common = 5
            while common < shorter and word[common] == term[common]:
                common += 1
            if common >= shorter - 2:
                return True
    return False


@functools.lru_cache(maxsize=TEXT_MEMO_SIZE)
def _vocabulary(text: str) -> frozenset[str]:
    return frozenset(tokenize(text))


def _words_opening(query: str) -> list[tuple[str, bool]]:
    """The question's words, in order, each with whether it opens a sentence."""
    words: list[tuple[str, bool]] = []
    previous_end = 0
    for match in _NAME_RE.finditer(query):
        gap = query[previous_end : match.start()]
        words.append((match.group(), previous_end == 0 or not _SENTENCE_END.isdisjoint(gap)))
        previous_end = match.end()
    return words


def query_in_lower_case(query: str) -> bool:
    """True when no word of the question but a sentence's first has a capital: then its
    capitals say nothing of its names ("what does self mean in python classes")."""
    return not any(
        not opens and not word.islower() for word, opens in _words_opening(query) if word.isalpha()
    )


def _name_words(query: str) -> list[tuple[str, bool]]:
    """The question's words, in order, each with whether it is a name.

    A name is a word written with a capital where English does not need one (not the
    first word of a sentence, or a capital after its first letter), or a word ending in
    "++" or "#". A question in capitals or title case says nothing by its capitals: then
    no word is a name.
    """
    words = _words_opening(query)
    inner = [word for word, opens in words if not opens]
    if 2 * sum(1 for word in inner if any(c.isupper() for c in word)) > len(inner):
        return [(word, False) for word, _ in words]  # capitals or title case
    return [
        (
            word,
            (word[0].isupper() and not opens)
            or any(c.isupper() for c in word[1:])
            or word.endswith(("++", "#")),
        )
        for word, opens in words
    ]


def _name_tokens(words: Sequence[str]) -> set[str]:
    return {token for word in words for token in tokenize(word)} - GENERIC_TERMS


def query_names(query: str) -> set[str]:
    """The names a question gives, as sparse tokens: "What is a monad in Haskell?" -> {"haskell"}.

    A name is a word written with a capital where English does not need one (not the
    first word of a sentence, or a capital after its first letter: "TypeScript",
    "CPython"), or a word ending in "++" or "#" ("C++", "C#"). A question in capitals or
    title case says nothing by its capitals, so it has none. Stopwords and GENERIC_TERMS
    are no names.
    """
    return _name_tokens([word for word, named in _name_words(query) if named])


def query_capitalised_names(query: str) -> set[str]:
    """The names of `query_names` written with a capital first letter ("Go", not "macOS")."""
    return _name_tokens([word for word, named in _name_words(query) if named and word[0].isupper()])


def query_scopes(query: str) -> set[str]:
    """The names a question is asked *within*, as sparse tokens: what it is about.

    "What is lazy evaluation in Haskell?", "In Haskell, what is a monad?" and "What
    are Haskell's type classes?" are asked within Haskell: the question ends with "in"
    and names, opens with "In", names and a comma, or gives a name the possessive.
    "Coming from JavaScript, can I write `if x`?" is not: it compares.
    """
    words = _name_words(query)
    named = {word for word, is_name in words if is_name}
    scoped: list[str] = []
    tail = len(words)  # the closing run of names, after an "in"
    while tail > 0 and words[tail - 1][1]:
        tail -= 1
    if 0 < tail < len(words) and words[tail - 1][0].casefold() == "in":
        scoped.extend(word for word, _ in words[tail:])
    opening = _OPENING_SCOPE_RE.match(query)
    if opening and all(word in named for word in opening.group(1).split()):
        scoped.extend(opening.group(1).split())
    scoped.extend(m.group(1) for m in _POSSESSIVE_RE.finditer(query) if m.group(1) in named)
    return _name_tokens(scoped)


@functools.lru_cache(maxsize=TEXT_MEMO_SIZE)
def _ordinary_word(word: str) -> bool:
    """True when a (case-folded) word is an ordinary English word to the embedding model.

    The model's WordPiece vocabulary holds ~20,000 common English words whole; it cuts a
    rarer word into pieces ("calloc" -> "call", "##oc"). A word is ordinary when it is
    one piece, or a piece followed by English endings (WORD_ENDINGS: "cheap" "##est";
    "clip" "##ping", the consonant doubled), or one of WORD_PREFIXES before an ordinary
    word of four letters or more ("mis" + "type", "re" + "declaring").
    """
    pieces = load_tokenizer(truncate=True).encode(word, add_special_tokens=False).tokens
    if pieces and not pieces[0].startswith("##"):
        if all(
            piece[2:] in WORD_ENDINGS
            or (piece[2] == before[-1] and piece[2] not in _VOWELS and piece[3:] in WORD_ENDINGS)
            for before, piece in zip(pieces, pieces[1:], strict=False)
        ):
            return True
    return any(
        word.startswith(prefix)
        and len(word) - len(prefix) >= 4
        and _ordinary_word(word[len(prefix) :])
        for prefix in WORD_PREFIXES
    )


def _unprefixed(term: str) -> str | None:
    """The term without one of WORD_PREFIXES, when a word of four letters or more is left."""
    for prefix in WORD_PREFIXES:
        if term.startswith(prefix) and len(term) - len(prefix) >= 4 and term.isalpha():
            return term[len(prefix) :]
    return None


def _spellings(term: str) -> set[str]:
    """The term's other English spellings, British to American and back (SPELLINGS:
    "optimisation" -> "optimization", "colour" -> "color", "modelled" -> "modeled")."""
    forms = set()
    for ours, theirs in SPELLINGS:
        for old, new in ((ours, theirs), (theirs, ours)):
            at = term.find(old, 2)
            if at > 0:
                forms.add(term[:at] + new + term[at + len(old) :])
    return forms


def query_rare_terms(query: str, terms: Sequence[str]) -> tuple[str, ...]:
    """Those of `terms` (sparse tokens of the query) that the query writes as no ordinary
    English word (`_ordinary_word`), leaving out an example after "like" or "such as":
    "How do I allocate memory with calloc in C?" -> ("calloc",)."""
    if not terms:
        return ()
    wanted = set(terms)
    examples = {t for match in _EXAMPLE_RE.finditer(query) for t in tokenize(match.group(1))}
    rare: set[str] = set()
    for word in _NAME_RE.findall(fold(query)):
        term = tokenize(word)
        if term and term[0] in wanted and term[0] not in examples and not _ordinary_word(word):
            rare.add(term[0])
    return tuple(sorted(rare))


def _holds(hit: Hit, term: str) -> bool:
    """True when the hit's text holds the term or a form of it (`_term_in`)."""
    # Tokenising is the slow part: only a text that holds a term's first letters can
    # hold the term (or a form of it).
    if term[:5] not in fold(hit.chunk.text):
        return False
    return _term_in(term, _vocabulary(hit.chunk.text))


@functools.lru_cache(maxsize=TEXT_MEMO_SIZE)
def _name_vocabulary(text: str) -> frozenset[str]:
    """The sparse tokens of the words a text may write a name as: those with a capital
    first letter, and every word of its code, where names are written in lower case."""
    capitalised = " ".join(w for w in _NAME_RE.findall(text) if w[0].isupper())
    code = " ".join(match.group() for match in _CODE_RE.finditer(text))
    return frozenset(tokenize(capitalised + " " + code))


def _holds_name(hit: Hit, name: str, *, capital: bool) -> bool:
    """True when the hit holds the name; when the question writes it with a capital,
    only as a name (`_name_vocabulary`): the book's "go" (a verb) is not the question's
    "Go" (a language), but `opencv` in its code is the question's "OpenCV"."""
    if not _holds(hit, name):
        return False
    return not capital or _term_in(name, _name_vocabulary(hit.chunk.text))


@functools.lru_cache(maxsize=TEXT_MEMO_SIZE)
def _cased_vocabularies(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """The sparse tokens of the words a text writes outside its code as names (line by
    line, as `query_names` reads a question: a title-case heading has none), and of
    those it writes in lower case."""
    prose = _CODE_RE.sub(" ", text)
    named = " ".join(w for line in prose.splitlines() for w, name in _name_words(line) if name)
    lower = " ".join(w for w in _NAME_RE.findall(prose) if w.islower())
    return frozenset(tokenize(named)), frozenset(tokenize(lower))


def _book_name(term: str, pool: Sequence[Hit]) -> bool:
    """True when a term is one of the book's names: at most STRAY_NAME_HITS candidates
    hold it, and every one writes it as a name, never in lower case or in code
    ("python" of the Rust book, which writes "Python")."""
    holders = []
    for hit in pool:
        if _holds(hit, term):
            holders.append(hit)
            if len(holders) > STRAY_NAME_HITS:
                return False
    for hit in holders:
        upper, lower = _cased_vocabularies(hit.chunk.text)
        if term not in upper or term in lower:
            return False
    return bool(holders)


def _holders(name: str, pool: Sequence[Hit], *, capital: bool) -> int:
    """How many candidates hold the name, counted up to STRAY_NAME_HITS + 1."""
    holding = 0
    for hit in pool:
        if _holds_name(hit, name, capital=capital):
            holding += 1
            if holding > STRAY_NAME_HITS:
                break
    return holding


def _unplaced_terms(held: set[str], top: Sequence[Hit], pool: Sequence[Hit]) -> tuple[str, ...]:
    """The specific terms of `held` (one to STRAY_NAME_HITS candidates hold each), when
    none of the best hits holds any of them; else ()."""
    placed = {term for term in held if any(_holds(hit, term) for hit in top)}
    if any(_holders(term, pool, capital=False) <= STRAY_NAME_HITS for term in placed):
        return ()
    return tuple(
        sorted(t for t in held - placed if 0 < _holders(t, pool, capital=False) <= STRAY_NAME_HITS)
    )


def evidence_gather(
    *, query: str, fused: Sequence[Hit], dense: Sequence[Hit], sparse: Sequence[Hit]
) -> Evidence:
    """Summarise what both channels found for `query` (see `Evidence`)."""
    top = list(fused[:EVIDENCE_DEPTH])
    cosine = max((hit.score for hit in top), default=0.0)
    pool = list({hit.chunk.id: hit for hit in (*sparse, *dense)}.values())
    terms = set(tokenize(query))
    unseen = terms - GENERIC_TERMS
    for hit in pool:  # BM25's best first: most terms are found in the first few
        if not unseen:
            break
        unseen -= {term for term in unseen if _holds(hit, term)}
    for term in sorted(unseen):  # a prefixed form ("mis-type"), another spelling
        forms = _spellings(term) | ({stem} if (stem := _unprefixed(term)) else set())
        if any(_holds(hit, form) for form in forms for hit in pool):
            unseen.discard(term)
    missing = tuple(sorted(unseen))
    capitals, scopes = query_capitalised_names(query), query_scopes(query)
    names = query_names(query)
    stray: list[str] = []
    if query_in_lower_case(query):  # the book's own names, written in lower case
        stray = [
            term
            for term in sorted(terms - names - GENERIC_TERMS - unseen)
            if not any(_holds(hit, term) for hit in top) and _book_name(term, pool)
        ]
    scoped: list[str] = []
    for name in sorted(names):
        capital = name in capitals
        held = any(_holds_name(hit, name, capital=capital) for hit in top)
        if held and name not in scopes:
            continue  # neither can it stray nor is the question asked within it
        if _holders(name, pool, capital=capital) > STRAY_NAME_HITS:
            continue  # the book speaks of it, not only in passing
        if not held:
            stray.append(name)
        if name in scopes:
            scoped.append(name)
    unplaced = _unplaced_terms(terms - GENERIC_TERMS - unseen, top, pool) if missing else ()
    return Evidence(
        cosine=cosine,
        missing=len(missing) / len(terms) if terms else 0.0,
        missing_terms=missing,
        stray_names=tuple(sorted(stray)),
        scope_names=tuple(scoped),
        rare_terms=query_rare_terms(query, missing),
        unplaced_terms=unplaced,
    )


def book_supports(evidence: Evidence, *, floor: float | None = None) -> bool:
    """Decide whether the book supports an answer: the one place doubt is decided.

    - Below the cosine floor (RETRIEVAL_SCORE_FLOOR) the passages are not about the
      question, whatever words they share.
    - A name the question gives that the best passages do not hold, and the book at
      most in passing (`Evidence.stray_names`), means the question is about something
      else, below STRAY_NAME_MAX_SCORE: "What is the difference between a struct and a
      class in C#?" of the Rust book finds its structs at 0.55, but C# only in one
      unrelated passage. So does a name the question is asked within that the book
      mentions only in passing (`Evidence.scope_names`), even in the best passages:
      "What is lazy evaluation in Haskell?" finds the one passage that compares Rust's
      iterators with Haskell. Above it (a comparison, maybe) the question's words decide.
    - Otherwise, at or above RETRIEVAL_CONFIDENT_SCORE the embedding alone is enough.
    - In between, the book must also hold the question's words: at most
      RETRIEVAL_MISSING_TERMS of its terms may be absent from every candidate. A
      near-domain question ("How do I write a decorator in Python?" of the Rust book)
      finds passages about programming, but none that names what it asks about.
    """
    config = get_config()
    floor = config.retrieval_score_floor if floor is None else floor
    if evidence.cosine < floor:
        return False
    foreign = evidence.stray_names or evidence.scope_names or evidence.rare_terms
    if foreign and evidence.cosine < STRAY_NAME_MAX_SCORE:
        return False
    if evidence.cosine >= config.retrieval_confident_score and not foreign:
        return True
    things = [term for term in evidence.missing_terms if not term.endswith(VERB_ENDINGS)]
    if things and evidence.unplaced_terms:
        return False
    if evidence.cosine < NEAR_FLOOR_SCORE:
        return evidence.missing < config.retrieval_missing_terms
    return evidence.missing <= config.retrieval_missing_terms


# --- the service -----------------------------------------------------------------------------


async def book_search(
    *,
    query: str,
    k: int,
    score_floor: float | None = None,
    paths: Sequence[str] | None = None,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
) -> Retrieval:
    """Search the book for `query`: dense and sparse rankings, fused, repeats removed, top k.

    Args:
        query: the text to search for (already rewritten when it was a follow-up).
        k: how many hits (and sections) to return at most.
        score_floor: the cosine floor of `book_supports`; default RETRIEVAL_SCORE_FLOOR.
        paths: restrict the search to these book paths.
        embedder, store: collaborators; default to the configured providers.

    Returns:
        A Retrieval: the hits, the distinct sections, whether the book supports an
        answer, and the closest sections when it does not.

    Raises:
        EmbeddingError, VectorStoreError: when a component fails.
    """
    search = await book_search_embedded(
        query=query, k=k, score_floor=score_floor, paths=paths, embedder=embedder, store=store
    )
    return await asyncio.to_thread(search)


async def book_search_embedded(
    *,
    query: str,
    k: int,
    score_floor: float | None = None,
    paths: Sequence[str] | None = None,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
) -> Callable[[], Retrieval]:
    """`book_search` as far as the query's embedding; returns the rest, to call in a
    worker thread.

    The store calls and the Python after them (fusion, repeats, doubt) are one sync
    call: whoever needs more CPU work after the search (packing an answer's sources)
    does it in the same thread, one hop for both, and the event loop stays free for
    other streams. Arguments and errors as `book_search`'s.
    """
    started = time.perf_counter()
    config = get_config()
    floor = config.retrieval_score_floor if score_floor is None else score_floor
    if embedder is None or store is None:
        embedder, store = await _providers(embedder, store)
    key = _search_key(store, query, k=k, floor=floor, paths=paths, embedder=embedder)
    if key is not None and (known := _searches.get([key])):
        return functools.partial(_remembered, known[key], started)  # no embedding either
    [vector] = await embedder.embed([query])
    search = functools.partial(
        _search_sync,
        store,
        query,
        vector,
        k=k,
        floor=floor,
        paths=paths,
        started=started,
        embedder=embedder,
    )
    return search if key is None else functools.partial(_remembering, key, store, search)


def _search_key(
    store: VectorStore,
    query: str,
    *,
    k: int,
    floor: float,
    paths: Sequence[str] | None,
    embedder: Embedder,
) -> tuple[Any, ...] | None:
    """What a search is a function of: the query, the index, the embedder's model and
    the settings. None for a store that does not say when it changes (`version`: the
    embedded engine, the index's only writer, has one; a Qdrant server has not)."""
    version = getattr(store, "version", None)
    if version is None:
        return None
    where = None if paths is None else tuple(paths)
    model = (getattr(embedder, "provider", None), getattr(embedder, "model", None))
    return (store.collection, version, query, k, floor, where, model, get_config())


def _remembered(retrieval: Retrieval, started: float) -> Retrieval:
    metrics.RETRIEVAL_LATENCY.observe(time.perf_counter() - started)
    return retrieval


def _remembering(
    key: tuple[Any, ...], store: VectorStore, search: Callable[[], Retrieval]
) -> Retrieval:
    """Run the search and remember what it found: not when the index changed meanwhile
    (the key holds the version it was asked with), nor nothing (a collection not there
    yet). The `Retrieval` is shared: its readers do not change it."""
    retrieval = search()
    if retrieval.hits and getattr(store, "version", None) == key[1]:
        _searches.put([key], [retrieval])
    return retrieval


async def _providers(
    embedder: Embedder | None, store: VectorStore | None
) -> tuple[Embedder, VectorStore]:
    """The configured embedder and store for those not given: looked up on the event loop
    once both are built (a cache hit), else built in a worker thread (loading the ONNX
    model and opening the store take a moment)."""

    def parts() -> tuple[Embedder, VectorStore]:
        return embedder or providers.get_embedder(), store or providers.get_store()

    return parts() if providers.serving_ready() else await asyncio.to_thread(parts)


# Searches remembered while the index is the same: readers ask the same questions again,
# and a search is ~2.5-3.5 ms of the server's CPU (the store, fusion, repeats, doubt).
MEMO_SEARCHES = 512
_searches: RecentlyUsed[tuple[Any, ...], Retrieval] = RecentlyUsed(MEMO_SEARCHES)


def _search_sync(
    store: VectorStore,
    query: str,
    vector: list[float],
    *,
    k: int,
    floor: float,
    paths: Sequence[str] | None,
    started: float,
    embedder: Embedder,
) -> Retrieval:
    """`book_search` after the query embedding: both channels, fused, judged (sync)."""
    config = get_config()
    pool = max(config.retrieval_pool, k)
    dense, sparse = store.search_channels(
        query_text=query, query_vector=vector, k=pool, paths=paths
    )  # one engine call for both channels
    method, weight = config.retrieval_fusion, config.retrieval_dense_weight
    by_score = hits_fuse(
        dense, sparse, method="minmax" if method == "blend" else method, dense_weight=weight
    )
    fused = hits_blend(by_score, dense, sparse) if method == "blend" else by_score
    # Deep enough for k hits and k distinct sections (several hits may share one).
    distinct = hits_collapse(fused, limit=max(COLLAPSE_DEPTH_FACTOR * k, COLLAPSE_DEPTH_MIN))
    # Doubt is judged on the score fusion's order, before the second stage: what
    # `book_supports` was tuned on (the blend's rank half moves the top three).
    judged = hits_collapse(by_score, limit=EVIDENCE_DEPTH) if method == "blend" else distinct
    evidence = evidence_gather(query=query, fused=judged, dense=dense, sparse=sparse)
    supported = book_supports(evidence, floor=floor)
    distinct = hits_by_best_sentence(
        distinct, vector, embedder=embedder, weight=config.retrieval_sentence_weight
    )
    distinct = hits_by_interaction(
        distinct, query, embedder=embedder, weight=config.retrieval_token_weight
    )
    sections = hits_distinct_sections(distinct, limit=k)
    closest: list[Hit] = []
    if not supported:
        near = [hit for hit in sections if hit.score >= floor * CLOSEST_FLOOR_RATIO]
        closest = sorted(near, key=lambda hit: hit.score, reverse=True)[:CLOSEST_COUNT]
    logger.debug(
        "search %r: %d dense + %d sparse, %d distinct; cosine %.3f, missing %s, stray %s: %s",
        query[:80],
        len(dense),
        len(sparse),
        len(distinct),
        evidence.cosine,
        evidence.missing_terms,
        evidence.stray_names,
        "supported" if supported else "uncertain",
    )
    metrics.RETRIEVAL_LATENCY.observe(time.perf_counter() - started)
    return Retrieval(
        query=query,
        hits=distinct[:k],
        supported=supported,
        closest=closest,
        sections=sections,
        evidence=evidence,
        floor=floor,
    )
