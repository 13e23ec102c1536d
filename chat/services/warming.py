"""Start-up warming: what the first questions after a start would otherwise load one by one.

A server at rest has read nothing: the first questions after a start (a deploy, a Space
waking up) each load the embedding model's first run, the store's points (payload and
dense vector, `EdgeStore`'s search memory) and the chunks' stored sentence vectors
(`DatabaseSentenceVectors`' memo) from disk, at the same moment, while the questions
behind them wait. `caches_warm` does it once, before the first question needs it:
`manage.py serve` runs it before the server listens (~0.4 s for the textbook's 1,070
chunks). Run in the background instead, it held the GIL against the first searches.
An ingest in the serving process runs it again once it has written to the store (whose
search memory every write forgets), after the ingest's own much longer run.

What search and answers derive from each chunk's text is memoised per text. The part
that is dear to compute and cheap to keep is warmed too (`hits_memos_warm`,
`sources_memos_warm`): token counts, word 5-grams and sentence keys. The worker-thread
CPU of a fresh question went from 10.4 to 5.9 ms on the textbook; on the Rust book's
1,865 chunks it costs ~25 MB at rest (297 -> 322 MB) and ~1.4 s of start-up. The evidence's
vocabularies are not: warming every memo cost ~70 MB there (298 -> 369 MB, over the
350 MB the server should need at rest).

Bounded by what the memories keep: `WARM_CHUNKS` chunks (the sentence memo's size), so
a large book warms its first chunks only and costs the memory it would cost anyway.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Any

from django.db import connections

from chat.services.retrieval import hits_memos_warm
from chat.services.sources import sources_memos_warm
from ingestion.services.cache import SENTENCE_MEMO_CHUNKS
from ragsite.rag import providers
from ragsite.rag.store_core import batches

logger = logging.getLogger(__name__)

WARM_CHUNKS = SENTENCE_MEMO_CHUNKS
LOOKUP_BATCH = 500  # content hashes per sentence-vector read (one SQL query each)
WARM_QUESTION = "warm-up"


def caches_warm(*, chunks: int = WARM_CHUNKS) -> dict[str, Any]:
    """Load the embedding model (and run it once), read up to `chunks` points into the
    store's search memory and their sentence vectors into the memo, and derive what
    searches and sources read of them; say what was read.

    Warming only: a failure is logged and the server goes on cold. The calling thread's
    database connections are closed at the end.
    """
    started = time.perf_counter()
    read: dict[str, Any] = {"points": 0, "sentences": 0}
    try:
        embedder = providers.get_embedder()
        if embedder.provider == "local":  # an API embedder is not called for nothing
            embedder.embed_sync([WARM_QUESTION])
        warmed = providers.get_store().warm(chunks)
        read["points"] = len(warmed)
        hashes = [chunk.content_hash for chunk in warmed if chunk.content_hash]
        sentence_vectors = providers.get_sentence_vectors()
        for batch in batches(hashes, LOOKUP_BATCH):
            read["sentences"] += len(sentence_vectors.lookup(embedder=embedder, hashes=batch))
        hits_memos_warm(warmed)
        sources_memos_warm(warmed)
    except Exception:
        logger.exception("could not warm the caches; the first questions will load them")
        return {**read, "error": True}
    finally:
        connections.close_all()
    read["seconds"] = round(time.perf_counter() - started, 2)
    logger.info(
        "warmed: %d points and %d sentence vectors in %.2f s",
        read["points"],
        read["sentences"],
        read["seconds"],
    )
    return read


def heap_freeze() -> None:
    """Collect the garbage, then keep what is alive now (Django, the model, the warmed
    memos: ~90k objects the collector tracks) out of the collector's later passes.

    A full collection walks every tracked object: one stopped the server for ~70-100 ms
    every ~120 fresh answers, every stream with it. Frozen objects are still freed when
    nothing refers to them (an evicted memo entry); garbage in cycles among them would
    stay, so this runs once the start-up's (or an ingest's) garbage is collected.
    """
    gc.collect()
    gc.freeze()


# Set in a serving process (`manage.py serve`): its heap is frozen after every warming.
_SERVING = threading.Event()


def heap_freeze_serving(*, now: bool) -> None:
    """Mark this process as serving; freeze its heap now (`now`: no ingest is running in
    it, whose objects would be frozen half-way) and after every in-process ingest."""
    _SERVING.set()
    if now:
        heap_freeze()


def heap_refreeze() -> None:
    """After an in-process ingest: in a serving process, freeze what it holds now."""
    if _SERVING.is_set():
        heap_freeze()
