"""Retrieval: hybrid search over the book, a score floor, and near-duplicate collapsing.

The store fuses dense and sparse (BM25) rankings with RRF and returns hits in fused
order; each hit also carries its dense cosine similarity (`Hit.score`), which is
comparable across queries. The floor applies to that cosine: below it a chunk is not
evidence, however well it ranked (RRF always ranks *something* first, even for
"How do I bake sourdough bread?").
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ragsite.rag import providers
from ragsite.rag.config import get_config
from ragsite.rag.types import Embedder, Hit, VectorStore

logger = logging.getLogger(__name__)

# Ask the store for more than needed: the floor and the collapsing remove some.
FETCH_FACTOR = 4
FETCH_MIN = 20
FETCH_MAX = 100
# How many below-floor hits to keep as "closest sections" for an uncertain answer, and
# how near the floor they must be: on the test textbook, questions from other domains
# ("capital of France": 0.16, "sourdough bread": 0.18) land on unrelated sections,
# while questions near a covered topic score 0.25-0.30. Offering the former would
# only mislead.
CLOSEST_COUNT = 3
CLOSEST_FLOOR_RATIO = 0.8
# Two chunks whose word 3-gram sets overlap this much (Jaccard on the smaller set)
# say the same thing: the second one adds nothing as a source.
DUPLICATE_OVERLAP = 0.6
_WORD_RE = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Retrieval:
    """What retrieval found for one query.

    `hits`: distinct chunks at or above the floor, best first, at most k.
    `closest`: the best distinct chunks near the floor (above or below it), so an
    answer without support can still point the reader at the nearest sections.
    """

    query: str
    hits: list[Hit]
    closest: list[Hit] = field(default_factory=list)
    floor: float = 0.0

    @property
    def supported(self) -> bool:
        """True when at least one chunk passed the floor."""
        return bool(self.hits)


def _shingles(text: str, size: int = 3) -> set[tuple[str, ...]]:
    words = _WORD_RE.findall(text.lower())
    if len(words) < size:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


def _near_duplicate(hit: Hit, kept: Hit, shingles: dict[str, set[tuple[str, ...]]]) -> bool:
    a, b = hit.chunk, kept.chunk
    # Neighbouring pieces of one section overlap by CHUNK_OVERLAP_TOKENS: one is enough.
    if a.path == b.path and a.heading == b.heading and abs(a.position - b.position) <= 1:
        return True
    sa, sb = shingles[a.id], shingles[b.id]
    if not sa or not sb:
        return a.body.strip() == b.body.strip()
    return len(sa & sb) / min(len(sa), len(sb)) >= DUPLICATE_OVERLAP


def hits_collapse(hits: Sequence[Hit]) -> list[Hit]:
    """Drop hits that repeat a better-ranked one (same section neighbours, or same text)."""
    shingles = {hit.chunk.id: _shingles(hit.chunk.body or hit.chunk.text) for hit in hits}
    kept: list[Hit] = []
    seen_ids: set[str] = set()
    for hit in hits:
        if hit.chunk.id in seen_ids:
            continue
        if any(_near_duplicate(hit, other, shingles) for other in kept):
            continue
        kept.append(hit)
        seen_ids.add(hit.chunk.id)
    return kept


async def book_search(
    *,
    query: str,
    k: int,
    score_floor: float | None = None,
    paths: Sequence[str] | None = None,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
) -> Retrieval:
    """Search the book for `query`: hybrid search, floor, distinct chunks, top k.

    Args:
        query: the text to search for (already rewritten when it was a follow-up).
        k: how many distinct chunks to return at most.
        score_floor: minimum dense cosine similarity; default RETRIEVAL_SCORE_FLOOR.
        paths: restrict the search to these book paths.
        embedder, store: collaborators; default to the configured providers.

    Returns:
        A Retrieval with the supported hits and the closest ones.

    Raises:
        EmbeddingError, VectorStoreError: when a component fails.
    """
    floor = get_config().retrieval_score_floor if score_floor is None else score_floor
    if embedder is None:
        # Loading the ONNX model the first time takes a moment: keep it off the loop.
        embedder = await asyncio.to_thread(providers.get_embedder)
    if store is None:
        store = await asyncio.to_thread(providers.get_store)
    [vector] = await embedder.embed([query])
    fetch = min(FETCH_MAX, max(FETCH_MIN, k * FETCH_FACTOR))
    raw = await asyncio.to_thread(
        store.search, query_text=query, query_vector=vector, k=fetch, mode="hybrid", paths=paths
    )
    distinct = hits_collapse(raw)
    hits = [hit for hit in distinct if hit.score >= floor][:k]
    near = [hit for hit in distinct if hit.score >= floor * CLOSEST_FLOOR_RATIO]
    closest = sorted(near, key=lambda hit: hit.score, reverse=True)[:CLOSEST_COUNT]
    logger.debug(
        "search %r: %d raw, %d distinct, %d above floor %.2f (best cosine %.3f)",
        query[:80],
        len(raw),
        len(distinct),
        len(hits),
        floor,
        max((hit.score for hit in distinct), default=0.0),
    )
    return Retrieval(query=query, hits=hits, closest=closest, floor=floor)
