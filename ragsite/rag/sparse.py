"""BM25-style sparse vectors for Qdrant's IDF modifier.

BM25 is IDF x saturated term frequency. The collection's sparse vector is created with
`Modifier.IDF`, so Qdrant multiplies in the inverse document frequency itself (from
the live collection, always up to date); we only supply the term-frequency half:

- a document's weight for term t is `tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))`
  with k1 = 1.2, b = 0.75 and a fixed `AVG_DOC_LENGTH` (a running average would make
  a chunk's vector depend on what was ingested before it, breaking idempotent upserts);
- a query's weight is 1.0 for each distinct term, so a chunk's score is the sum of
  IDF x saturated tf over the query terms it contains: plain BM25.

Term ids are a stable 32-bit hash of the term (blake2b), identical in every process
and on every machine; Python's `hash()` is salted per process and would scramble a
persisted index. A collision merely merges two rare terms.

Tokens: folded (`fold`: compatibility forms, case, and the accents of Latin, Greek and
Cyrillic letters, so "Beyonce" finds "Beyoncé" and "Frederic" "Frédéric", as a reader
types them), runs of letters and digits ("ros2", "3d", "β"), with "++" and
"#" kept on a token ("c++", "c#") because programming books need them; underscores and
punctuation split ("read_file" -> "read", "file"). English stopwords are dropped, and
a light plural rule (below) makes "sensors" match "sensor". A full stemmer
(snowballstemmer's Porter2) was measured: it lifts BM25 alone, but the final ranking only
by about a point, and it costs out-of-book doubt a few questions, which reads this
channel's candidates ("exchanger" finds "data exchange"); docs/retrieval-quality.md.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections import Counter

from .types import SparseVector

K1 = 1.2
B = 0.75
# Chunks are ~100-250 model tokens. Cut into ~190-token pieces, the two books in
# ../shared/books gave a mean of 72 terms per piece (stopwords and punctuation
# dropped), so a typical chunk's length normalisation stays near 1.
AVG_DOC_LENGTH = 70.0

_TOKEN_RE = re.compile(r"[^\W_]+(?:\+\+|#)?")
# Bump when `tokenize` changes: ingestion then encodes every chunk's sparse vector again
# (a query's terms must be a document's). 2: accents folded.
SPARSE_VERSION = 2
# Accents are dropped from letters below this code point (Latin, Greek, Cyrillic), not
# from scripts whose marks make the word (Devanagari's vowel signs).
_FOLDED_SCRIPTS_END = 0x0530
# Latin letters with no decomposition to drop an accent from.
_LETTERS = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe"})

# NLTK's English list (the one Qdrant's and fastembed's BM25 use), plus the pieces
# contractions split into ("don't" -> "don", "t").
STOPWORDS = frozenset(
    """
    a about above after again against ain all am an and any are aren arent as at be
    because been before being below between both but by can couldn couldnt d did didn
    didnt do does doesn doesnt doing don dont down during each few for from further had
    hadn hadnt has hasn hasnt have haven havent having he her here hers herself him
    himself his how i if in into is isn isnt it its itself just ll m ma me mightn mightnt
    more most mustn mustnt my myself needn neednt no nor not now o of off on once only or
    other our ours ourselves out over own re s same shan shant she should shouldn shouldnt
    so some such t than that thatll the their theirs them themselves then there these
    they this those through to too under until up ve very was wasn wasnt we were weren
    werent what when where which while who whom why will with won wont wouldn wouldnt y
    you youd youll your youre yours yourself yourselves youve
    """.split()
)


def _stem(token: str) -> str:
    """Strip an English plural ending (Harman's S-stemmer, slightly tightened).

    "ies" -> "y" (policies -> policy), "es" after s/x/z/ch/sh -> "" (boxes -> box,
    patches -> patch), other "s" -> "" unless the word ends in "ss", "us" or "is"
    (class, status, analysis stay). Words of four letters or fewer, and tokens with
    digits or symbols, are left alone ("gps", "ros2", "bus", "c++").
    """
    if len(token) <= 4 or not token.isalpha():
        return token
    if token.endswith("ies") and not token.endswith(("eies", "aies")):
        return token[:-3] + "y"
    if token.endswith(("sses", "xes", "zes", "ches", "shes")):
        return token[:-2]
    if token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


# Chunk texts are folded for every search (the doubt's name checks): as many as the
# answerer's text memo holds (passages.TEXT_MEMO_SIZE).
FOLD_MEMO_SIZE = 16_384


@functools.lru_cache(maxsize=FOLD_MEMO_SIZE)
def fold(text: str) -> str:
    """A text in the form words are compared in: NFKD, case-folded, without the accents of
    Latin, Greek and Cyrillic letters ("Frédéric Chopin" -> "frederic chopin")."""
    if text.isascii():
        return text.lower()
    kept: list[str] = []
    base = 0
    for char in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(char):
            if base >= _FOLDED_SCRIPTS_END:
                kept.append(char)
            continue
        base = ord(char)
        kept.append(char)
    return unicodedata.normalize("NFC", "".join(kept)).casefold().translate(_LETTERS)


def tokenize(text: str) -> list[str]:
    """Split a text into normalised, stemmed terms without stopwords, in order."""
    return [_stem(token) for token in _TOKEN_RE.findall(fold(text)) if token not in STOPWORDS]


def term_id(term: str) -> int:
    """Return the stable unsigned 32-bit id of a term."""
    digest = hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def _term_counts(terms: list[str]) -> Counter[int]:
    # Counted by id so that a hash collision yields one (merged) index, never a
    # duplicate index, which Qdrant rejects.
    return Counter(term_id(term) for term in terms)


def encode_document(text: str) -> SparseVector:
    """Return the BM25 term-frequency weights of a chunk (Qdrant applies the IDF)."""
    terms = tokenize(text)
    if not terms:
        return SparseVector(indices=[], values=[])
    norm = K1 * (1 - B + B * len(terms) / AVG_DOC_LENGTH)
    counts = sorted(_term_counts(terms).items())
    return SparseVector(
        indices=[index for index, _ in counts],
        values=[tf * (K1 + 1) / (tf + norm) for _, tf in counts],
    )


def encode_query(text: str) -> SparseVector:
    """Return the query vector: weight 1.0 for each distinct term."""
    indices = sorted(_term_counts(tokenize(text)))
    return SparseVector(indices=indices, values=[1.0] * len(indices))
