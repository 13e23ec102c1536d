"""The embedding cache: a chunk text's vector is computed once per embedder, then reused.

`CachedEmbedding` rows are keyed by the chunk's content hash and `embedder_key`, so a
page renamed, a chunk moved to another page or a re-run after a crash embeds nothing
again. Vectors are cached before the page that needs them is written (crash safety).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.db import connection
from django.db.models import Exists, OuterRef
from django.utils import timezone

from ragsite.rag import providers, sentences
from ragsite.rag.exceptions import EmbeddingError
from ragsite.rag.store_core import batches
from ragsite.rag.types import Chunk, Embedder, Vector, embedder_key

from ..models import CachedEmbedding, DocumentChunk
from .lifecycle import Run

# Cached vectors no chunk uses any more are kept this long: a page removed and later
# restored (or moved between runs) is still not embedded again.
CACHE_KEEP_DAYS = 30
# How many chunks' stored vectors answering keeps in memory (~12 KB each), and how long
# a chunk found without any is not asked for again.
SENTENCE_MEMO_CHUNKS = 2048
SENTENCE_MISS_TTL_S = 60.0


def embed_texts(embedder: Embedder, texts: list[str]) -> list[Vector]:
    """Embed `texts` in one call (synchronously when the embedder offers it); check the shape."""
    embed_sync = getattr(embedder, "embed_sync", None)
    vectors = embed_sync(texts) if embed_sync is not None else asyncio.run(embedder.embed(texts))
    vectors = [list(v) for v in vectors]
    if len(vectors) != len(texts) or any(len(v) != embedder.dimension for v in vectors):
        raise EmbeddingError("The embedder returned vectors of an unexpected shape.")
    return vectors


def embed_with_sentences(
    embedder: Embedder, texts: list[str], bodies: list[str]
) -> tuple[list[Vector], list[bytes | None]]:
    """Embed chunk texts; with the packaged model, also their sentences (same run).

    Returns the vectors and, per text, its packed sentence vectors and token signature
    (ragsite/rag/sentences.py), or None when the embedder gives no token outputs.
    """
    embed_spans = getattr(embedder, "embed_spans_sync", None)
    if embed_spans is None:
        return embed_texts(embedder, texts), [None] * len(texts)
    located = [sentences.sentence_spans(t, b) for t, b in zip(texts, bodies, strict=True)]
    vectors, pooled, signatures = embed_spans(
        texts, [[(a, b) for _, a, b in spans] for spans in located]
    )
    if len(vectors) != len(texts) or any(len(v) != embedder.dimension for v in vectors):
        raise EmbeddingError("The embedder returned vectors of an unexpected shape.")
    packed = [
        sentences.pack(zip((text for text, _, _ in spans), found, strict=True), tokens)
        for spans, found, tokens in zip(located, pooled, signatures, strict=True)
    ]
    return [list(v) for v in vectors], packed


def sentence_vectors_lookup(*, embedder: Embedder, hashes: Sequence[str]) -> dict[bytes, Any]:
    """The stored sentence vectors of these chunks, read from the embedding cache."""
    return sentences.merged(
        sentences.unpack(blob, embedder.dimension)
        for _, blob in _sentence_blobs(embedder_key(embedder), hashes)
    )


def _sentence_blobs(key: str, hashes: Sequence[str]) -> list[tuple[str, bytes]]:
    """Read the packed vectors (answering calls this from worker threads)."""
    try:
        rows = CachedEmbedding.objects.filter(
            embedder=key,
            content_hash__in=list(hashes),
            sentences_version=sentences.SENTENCES_VERSION,
        ).values_list("content_hash", "sentences")
        return [(content_hash, bytes(blob)) for content_hash, blob in rows if blob is not None]
    finally:
        # A worker thread's connection is not closed at the end of a request: close it
        # now (CONN_MAX_AGE=0), or each pool thread would keep a PostgreSQL connection
        # checked out of the pool for good. A SQLite file has no pool to drain, and a
        # new connection per read cost more than the read: the thread keeps it.
        if connection.vendor != "sqlite" and not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


class DatabaseSentenceVectors:
    """The sentence vectors of the embedding cache, for answering (registered at startup).

    The vectors of recently used chunks are kept in memory, as float16 views of the
    stored bytes (a chunk's vectors never change: they are keyed by its content hash), so
    the sources readers ask about again and again cost no query and no unpacking; ~8 KB
    a chunk, and ~4 KB of token signature (late interaction), `memo_chunks` chunks at most.
    """

    def __init__(
        self, memo_chunks: int = SENTENCE_MEMO_CHUNKS, miss_ttl_s: float = SENTENCE_MISS_TTL_S
    ) -> None:
        self._chunks: OrderedDict[tuple[str, str], dict[bytes, Any]] = OrderedDict()
        # Chunks found without stored vectors (an embedder that gives none, an index from
        # before them): not asked again for `miss_ttl_s` (a re-ingestion may add them).
        self._misses: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._memo_chunks = memo_chunks
        self._miss_ttl_s = miss_ttl_s
        self._lock = threading.Lock()

    def lookup(self, *, embedder: Embedder, hashes: Sequence[str]) -> dict[bytes, Any]:
        """Key -> vector for the sentences of these chunks (SentenceVectors.lookup)."""
        key = embedder_key(embedder)
        found: list[dict[bytes, Any]] = []
        missing: list[str] = []
        now = time.monotonic()
        with self._lock:
            for content_hash in dict.fromkeys(hashes):
                vectors = self._chunks.get((key, content_hash))
                if vectors is not None:
                    self._chunks.move_to_end((key, content_hash))
                    found.append(vectors)
                elif now - self._misses.get((key, content_hash), -1e9) >= self._miss_ttl_s:
                    missing.append(content_hash)
        if missing:
            read = {
                content_hash: sentences.unpack(blob, embedder.dimension)
                for content_hash, blob in _sentence_blobs(key, missing)
            }
            with self._lock:
                for content_hash, vectors in read.items():
                    self._chunks[(key, content_hash)] = vectors
                    self._misses.pop((key, content_hash), None)
                    found.append(vectors)
                for content_hash in missing:
                    if content_hash not in read:
                        self._misses[(key, content_hash)] = now
                        self._misses.move_to_end((key, content_hash))
                for memo in (self._chunks, self._misses):
                    while len(memo) > self._memo_chunks:
                        memo.popitem(last=False)
        return sentences.merged(found)

    def misses_forget(self) -> None:
        """Ask the database again for every chunk remembered as having no vectors."""
        with self._lock:
            self._misses.clear()


def sentence_misses_forget() -> None:
    """This process has just stored sentence vectors (an ingestion with embeddings): the
    lookup answering uses, when it is the database's, stops trusting the misses it
    remembers. Otherwise, for up to SENTENCE_MISS_TTL_S, a search would run its second
    stages with the vectors of some candidates and not of others (those it asked for
    while they were being written), which ranks the latter too low."""
    source = providers.get_sentence_vectors()
    if isinstance(source, DatabaseSentenceVectors):
        source.misses_forget()


class EmbeddingCache:
    """Gives each chunk a vector: from the cache when its text was embedded before, else computed."""

    def __init__(
        self, *, run: Run, embedder: Embedder, force: bool, dry_run: bool, batch_size: int
    ):
        self.run = run
        self.embedder = embedder
        self.key = embedder_key(embedder)
        self.force = force
        self.dry_run = dry_run
        self.batch_size = batch_size
        self.fresh: set[str] = set()  # hashes embedded during this run (trusted even with force)
        self.with_sentences = hasattr(embedder, "embed_spans_sync")

    def cached(self, hashes: Sequence[str]) -> dict[str, Vector]:
        """Return the cached vectors of these hashes (force: only those embedded in this run).

        With the packaged model a row whose sentences were cut otherwise (or before
        sentence vectors existed: SENTENCES_VERSION) is not a hit: embedding it again
        stores its sentences too (once).
        """
        wanted = [h for h in hashes if not self.force or h in self.fresh]
        found: dict[str, Vector] = {}
        for batch in batches(wanted, 500):
            rows = CachedEmbedding.objects.filter(embedder=self.key, content_hash__in=batch)
            if self.with_sentences:
                rows = rows.filter(sentences_version=sentences.SENTENCES_VERSION)
            for row in rows.only("content_hash", "vector"):
                found[row.content_hash] = row.unpack()
        return found

    def for_chunks(self, chunks: Sequence[Chunk]) -> tuple[list[Vector], int, int]:
        """Return (vectors in chunk order, embeddings computed, vectors reused)."""
        texts: dict[str, str] = {}
        bodies: dict[str, str] = {}
        tokens: dict[str, int] = {}
        for chunk in chunks:
            texts.setdefault(chunk.content_hash, chunk.text)
            bodies.setdefault(chunk.content_hash, chunk.body)
            tokens.setdefault(chunk.content_hash, chunk.token_count)
        if self.dry_run:  # count, do not compute
            known = set(self.cached(list(texts))) | (self.fresh & set(texts))
            todo = [h for h in texts if h not in known]
            self.fresh.update(todo)
            self.run.add(embeddings_computed=len(todo), embeddings_reused=len(texts) - len(todo))
            return [], len(todo), len(texts) - len(todo)
        vectors = self.cached(list(texts))
        reused = len(vectors)
        if reused and not self.force:
            CachedEmbedding.objects.filter(
                embedder=self.key, content_hash__in=list(vectors)
            ).update(last_used_at=timezone.now())
        # Length-bucketed batches: texts of similar token counts go together, so a batch
        # pads to a length near its own texts' (the vectors are keyed by hash: order is kept).
        todo = sorted((h for h in texts if h not in vectors), key=lambda h: tokens[h])
        done = 0
        for batch in batches(todo, self.batch_size):
            computed, packed = embed_with_sentences(
                self.embedder, [texts[h] for h in batch], [bodies[h] for h in batch]
            )
            now = timezone.now()
            CachedEmbedding.objects.bulk_create(
                [
                    CachedEmbedding(
                        content_hash=h,
                        embedder=self.key,
                        dimension=self.embedder.dimension,
                        vector=CachedEmbedding.pack(v),
                        sentences=blob,
                        sentences_version=sentences.SENTENCES_VERSION if blob is not None else 0,
                        created_at=now,
                        last_used_at=now,
                    )
                    for h, v, blob in zip(batch, computed, packed, strict=True)
                ],
                update_conflicts=True,
                unique_fields=["embedder", "content_hash"],
                update_fields=[
                    "vector",
                    "dimension",
                    "sentences",
                    "sentences_version",
                    "last_used_at",
                ],
            )
            vectors.update(zip(batch, computed, strict=True))
            self.fresh.update(batch)
            done += len(batch)
            self.run.add(
                embeddings_computed=len(batch), tokens_embedded=sum(tokens[h] for h in batch)
            )
            self.run.partial(done / len(todo))
        self.run.add(embeddings_reused=reused)
        return [vectors[c.content_hash] for c in chunks], len(todo), reused


def cache_prune() -> int:
    """Delete cached vectors that no chunk uses and nobody used for CACHE_KEEP_DAYS."""
    cutoff = timezone.now() - timedelta(days=CACHE_KEEP_DAYS)
    used = DocumentChunk.objects.filter(content_hash=OuterRef("content_hash"))
    deleted, _ = (
        CachedEmbedding.objects.filter(last_used_at__lt=cutoff).exclude(Exists(used)).delete()
    )
    return deleted
