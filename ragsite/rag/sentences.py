"""Sentence vectors computed with their chunk, so answering never runs the model on them.

The extractive answerer scores each quotable sentence of the sources by its cosine with
the question. Embedding those sentences when a question arrives cost ~60 ms of both
cores per answer (up to 32 sentences): the chat path's largest cost. Instead, when a
chunk is embedded at ingestion, the same model run also gives a vector per sentence:
the mean of the model's output over the sentence's tokens, read in its passage's
context ("late chunking", `LocalEmbedder.embed_spans_sync`). On our question sets these
vectors choose answer sentences as well as separately embedded ones (textbook 0.472
answer / 0.268 first sentence, against 0.463 / 0.236; Rust book 0.543 / 0.255 against
0.554 / 0.266; docs/chat.md).

This module is the shared part, free of Django and of any engine:

- `sentence_spans(text, body)`: the quotable sentences of a chunk (exactly the texts
  the answerer quotes) and where each lies in the embedded text;
- `sentence_key`: an 8-byte key of a sentence's words, how vectors are found again;
- `pack` / `unpack`: the stored form (key + float16 vector per sentence, and the
  chunk's token signature for late interaction, ragsite/rag/interaction.py);
- `SentenceVectors`: where answering looks vectors up, by chunk content hash
  (`vectors_per_chunk` keeps each chunk's apart). The
  ingestion app registers the database-backed one (its embedding cache holds the
  vectors beside each chunk's); evaluation harnesses use `MemorySentenceVectors`.

A sentence without a stored vector (an OpenAI embedder gives no token outputs, a
sentence past the 256-token truncation, an index built before this existed) is
embedded at answer time as before.
"""

from __future__ import annotations

import functools
import hashlib
import re
import struct
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import numpy as np

from .passages import quotable_sentences  # what a sentence is, as the answerer quotes it
from .types import Embedder, embedder_key

# Bump when what `quotable_sentences` returns changes (the answerer's sentence cutting):
# every page is then re-chunked and embedded again with its sentences (once).
# 4: the stored form also holds the chunk's token signature (late interaction).
# 5: a lead-in to a one-line block quotes the line (`passages.with_inline_code`).
# 6: a lead-in that states something before pointing at its block is quotable
#    (`passages.lead_in_statement`).
# 7: lines that open with a label ("Prerequisites: ...") are one statement each; a task
#    list item is quoted without its box ("[ ]").
# 8: a block quote is its own unit ("quote"); a lead-in to a quotation quotes its first
#    sentence, and the quotation is quoted in quotation marks.
SENTENCES_VERSION = 8
KEY_BYTES = 8
# Where `unpack` puts a chunk's token signature: no sentence key is empty.
TOKENS_KEY = b""
_HEADER = "<HH"  # sentences, tokens
_HEADER_BYTES = struct.calcsize(_HEADER)
_WORD = re.compile(r"[a-z0-9]+")
# A sentence is found in its chunk by its first and last words (at most this many).
_ANCHOR_WORDS = 3


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def sentence_key(text: str) -> bytes:
    """The lookup key of a sentence: a hash of its lowercased words (markup ignored)."""
    return hashlib.blake2b(" ".join(_words(text)).encode(), digest_size=KEY_BYTES).digest()


def sentence_spans(text: str, body: str) -> list[tuple[str, int, int]]:
    """The quotable sentences of a chunk and their (start, end) character span in `text`.

    `text` is what is embedded (breadcrumb + body), `body` the section text the answerer
    quotes. The answerer's sentences are cleaned of Markdown, so each is found in `text`
    by its words: the first words from where the previous sentence ended, then its last
    words. A sentence that cannot be found is left out (it is embedded at answer time).
    """
    words = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text.lower())]
    tokens = [word for word, _, _ in words]
    found: list[tuple[str, int, int]] = []
    cursor = len(_words(text[: max(len(text) - len(body), 0)]))  # skip the breadcrumb
    for sentence in quotable_sentences(body):
        wanted = _words(sentence)
        if not wanted:
            continue
        span = _locate(tokens, wanted, cursor)
        if span is None:
            continue
        first, last = span
        found.append((sentence, words[first][1], words[last - 1][2]))
        cursor = last
    return found


def _locate(tokens: list[str], wanted: list[str], cursor: int) -> tuple[int, int] | None:
    """Token indexes [first, last) of `wanted` in `tokens`, searching from `cursor`."""
    size = min(_ANCHOR_WORDS, len(wanted))
    head, tail = wanted[:size], wanted[-size:]
    first = next(
        (i for i in range(cursor, len(tokens) - size + 1) if tokens[i : i + size] == head), None
    )
    if first is None:
        return None
    # A shortened sentence ends early ("…"); a cleaned one may have lost a few words.
    limit = min(len(tokens), first + 2 * len(wanted) + 5)
    for j in range(max(first, first + len(wanted) - size), limit - size + 1):
        if tokens[j : j + size] == tail:
            return first, j + size
    return first, min(first + len(wanted), len(tokens))


def pack(pairs: Iterable[tuple[str, np.ndarray | None]], tokens: np.ndarray | None = None) -> bytes:
    """The stored form of a chunk's vectors: a header (sentence and token counts), then
    key + float16 vector per sentence, then the chunk's token signature
    (`interaction.signature`: sign bits, dimension / 8 bytes a token)."""
    parts: list[bytes] = []
    for sentence, vector in pairs:
        if vector is not None:
            parts.append(sentence_key(sentence) + np.asarray(vector, dtype="<f2").tobytes())
    rows = np.empty((0, 0), dtype=np.uint8) if tokens is None else np.asarray(tokens, np.uint8)
    header = struct.pack(_HEADER, len(parts), rows.shape[0])
    return header + b"".join(parts) + rows.tobytes()


def unpack(blob: bytes, dimension: int) -> dict[bytes, np.ndarray]:
    """Key -> float16 vector, from `pack`'s bytes (read-only views of them, no copy); the
    token signature, when there is one, under TOKENS_KEY. {} for bytes of another form."""
    data = bytes(blob)
    if len(data) < _HEADER_BYTES:
        return {}
    sentences, tokens = struct.unpack_from(_HEADER, data)
    record, row = KEY_BYTES + 2 * dimension, dimension // 8
    if len(data) != _HEADER_BYTES + sentences * record + tokens * row:
        return {}
    found = {
        data[at : at + KEY_BYTES]: np.frombuffer(
            data, dtype="<f2", count=dimension, offset=at + KEY_BYTES
        )
        for at in range(_HEADER_BYTES, _HEADER_BYTES + sentences * record, record)
    }
    if tokens:
        start = _HEADER_BYTES + sentences * record
        found[TOKENS_KEY] = np.frombuffer(
            data, dtype=np.uint8, count=tokens * row, offset=start
        ).reshape(tokens, row)
    return found


@functools.lru_cache(maxsize=4096)
def chunk_sentence_keys(body: str) -> tuple[bytes, ...]:
    """The keys of a chunk body's quotable sentences (memoised: chunks come back often)."""
    return tuple(sentence_key(text) for text in quotable_sentences(body))


class SentenceVectors(Protocol):
    """Where answering finds the sentence vectors stored with the chunks."""

    def lookup(self, *, embedder: Embedder, hashes: Sequence[str]) -> dict[bytes, np.ndarray]:
        """Key -> vector for the sentences of the chunks with these content hashes, as
        `embedder` computed them. A chunk with none stored simply contributes nothing.
        Asked for one chunk, its token signature too, under TOKENS_KEY (`merged`)."""
        ...


def merged(chunks: Iterable[Mapping[bytes, np.ndarray]]) -> dict[bytes, np.ndarray]:
    """Several chunks' stored vectors in one mapping (a sentence two chunks share: the
    last one's). A token signature is one chunk's: kept only when there is one chunk."""
    found: dict[bytes, np.ndarray] = {}
    count = 0
    for vectors in chunks:
        found.update(vectors)
        count += 1
    if count > 1:
        found.pop(TOKENS_KEY, None)
    return found


def vectors_per_chunk(
    source: SentenceVectors, *, embedder: Embedder, hashes: Sequence[str]
) -> dict[str, dict[bytes, np.ndarray]]:
    """Content hash -> that chunk's own sentence vectors, for the chunks that have some.

    A sentence two overlapping chunks share has a vector in each, from each chunk's own
    model run: one merged lookup would keep either. One read for all the chunks (which
    the source memoises), then each chunk's own.
    """
    hashes = list(dict.fromkeys(h for h in hashes if h))
    if not hashes:
        return {}
    source.lookup(embedder=embedder, hashes=hashes)  # one read; the source remembers it
    found = {h: source.lookup(embedder=embedder, hashes=[h]) for h in hashes}
    return {h: vectors for h, vectors in found.items() if vectors}


class MemorySentenceVectors:
    """Sentence vectors in a dict: for evaluation harnesses and tests (no database)."""

    def __init__(self) -> None:
        self._chunks: dict[tuple[str, str], dict[bytes, np.ndarray]] = {}
        self._lock = threading.Lock()

    def put(
        self, *, embedder: Embedder, content_hash: str, vectors: Mapping[bytes, np.ndarray]
    ) -> None:
        """Remember one chunk's sentence vectors."""
        with self._lock:
            self._chunks[(embedder_key(embedder), content_hash)] = dict(vectors)

    def lookup(self, *, embedder: Embedder, hashes: Sequence[str]) -> dict[bytes, np.ndarray]:
        """Key -> vector for the known chunks among `hashes` (SentenceVectors.lookup)."""
        key = embedder_key(embedder)
        with self._lock:
            return merged(
                self._chunks[(key, h)] for h in dict.fromkeys(hashes) if (key, h) in self._chunks
            )


class NoSentenceVectors:
    """No stored sentence vectors: every sentence is embedded when it is needed."""

    def lookup(self, *, embedder: Embedder, hashes: Sequence[str]) -> dict[bytes, np.ndarray]:
        """Nothing is stored."""
        return {}
