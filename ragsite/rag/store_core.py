"""The SDK-free half of every vector store: one collection layout, one search, one fusion.

Both engines, `vectorstore.QdrantStore` (qdrant-client: local mode or a server) and
`edgestore.EdgeStore` (qdrant-edge), subclass `StoreCore`. It owns what does not
depend on the SDK: the collection layout and its checks, the search-mode dispatch,
the reciprocal rank fusion and the order of hits, the paging of large reads and the
messages. An engine supplies only its SDK calls (the `_`-prefixed hooks below, which
speak `StoredPoint` and `ChannelQuery`) and its locking, so the two engines answer
alike by construction.

One collection per book, each point one chunk:

- a named dense vector "dense" (the embedder's dimension, cosine distance);
- a named sparse vector "sparse" with the IDF modifier: we store BM25 term-frequency
  weights (`sparse.encode_document`) and the engine multiplies in the IDF;
- the chunk as payload (`Chunk.payload()`), rebuilt with `Chunk.from_payload`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from .exceptions import DimensionMismatch, VectorStoreError
from .sparse import encode_document, encode_query
from .types import Chunk, Hit, SearchMode, SparseVector, Vector

DENSE = "dense"
SPARSE = "sparse"
UPSERT_BATCH_SIZE = 256
PAGE_SIZE = 1000  # scroll and retrieve page size
# Each half of a hybrid search fetches more candidates than asked for, so a chunk
# ranked modestly by both halves can still win the fusion.
PREFETCH_FACTOR = 4
PREFETCH_MIN = 20
# qdrant-client's local mode and the Qdrant server both fuse with 1 / (k + rank), k = 2
# (rank counted from 0); we fuse with the same constant for every engine (see `rrf`).
RRF_K = 2

DIMENSION_MISMATCH_MESSAGE = (
    "The collection {collection!r} holds {existing}-dimensional vectors but the "
    "embedder makes {expected}-dimensional ones (it was built with another embedding "
    "model). Re-ingest with `python manage.py ingest_book --force`, which drops and "
    "rebuilds it, or drop the collection."
)
LAYOUT_MISMATCH_MESSAGE = (
    "The collection {collection!r} was not created by ragsite (it lacks the named "
    "'dense' and 'sparse' vectors). Re-ingest with `python manage.py ingest_book --force`, "
    "which drops and rebuilds it, or use another QDRANT_COLLECTION."
)
STORE_OPEN_FAILED_MESSAGE = "Could not open the embedded vector store in {path}: {error}"
STORE_CALL_FAILED_MESSAGE = (
    "The vector store could not {action} (collection {collection!r}): {error}"
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """One point as an engine returned it, already out of the SDK's types."""

    id: str
    score: float = 0.0
    payload: dict[str, Any] | None = None
    dense: Vector | np.ndarray | None = None  # the edge engine's memory keeps float32 arrays
    chunk: Chunk | None = None  # the payload as a Chunk, where a memory has built it already


@dataclass(frozen=True, slots=True)
class ChannelQuery:
    """One nearest-neighbour query on one named vector ("dense" or "sparse")."""

    using: str
    vector: Vector | SparseVector
    limit: int
    paths: Sequence[str] | None = None  # None: everything; else only chunks of these files
    with_payload: bool = True
    with_dense: bool = False


@dataclass(frozen=True, slots=True)
class Layout:
    """What an existing collection holds: its dense size (None: no "dense") and "sparse"."""

    dense_size: int | None
    has_sparse: bool


def stored_point(point: Any) -> StoredPoint:
    """Translate a point of either SDK (both have .id, .payload, .vector, maybe .score)."""
    vector = point.vector
    return StoredPoint(
        id=str(point.id),
        score=float(getattr(point, "score", 0.0) or 0.0),
        payload=point.payload,
        dense=vector.get(DENSE) if isinstance(vector, dict) else None,
    )


def open_failed(path: object, error: object) -> VectorStoreError:
    """Return the error for an embedded store folder that cannot be opened."""
    return VectorStoreError(STORE_OPEN_FAILED_MESSAGE.format(path=path, error=error))


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Yield consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def rrf(rankings: Sequence[Sequence[str]], limit: int) -> list[tuple[str, float]]:
    """Fuse ranked id lists by reciprocal rank: [(id, sum of 1 / (RRF_K + rank))], best first.

    The arithmetic and tie order of qdrant-client's local mode: rank from 0, and equal
    scores keep the order in which ids were first seen (the first list first). The
    engines' own fusions break ties differently from call to call, so the same question
    could cite other sources from one request to the next.
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking):
            scores[key] = scores.get(key, 0.0) + 1.0 / (rank + RRF_K)
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)[:limit]


def fuse_hits(rankings: Sequence[Sequence[Hit]], k: int) -> list[Hit]:
    """Fuse per-channel hit lists (e.g. `search(mode="dense")` and `mode="sparse"`) by RRF.

    Each fused hit keeps the `score` of its first appearance (the dense cosine when the
    channels were searched with a query vector) and gets the RRF score as `rank_score`;
    the order is `rrf`'s, so the fusion matches the stores' own hybrid mode.
    """
    first: dict[str, Hit] = {}
    for ranking in rankings:
        for hit in ranking:
            first.setdefault(hit.chunk.id, hit)
    fused = rrf([[hit.chunk.id for hit in ranking] for ranking in rankings], k)
    return [
        Hit(chunk=first[key].chunk, score=first[key].score, rank_score=score)
        for key, score in fused
    ]


def _chunk_of(point: StoredPoint) -> Chunk:
    """The point's chunk: the one a memory built already, else built from its payload."""
    return point.chunk or Chunk.from_payload(point.id, point.payload or {})


def _hit(point: StoredPoint, *, score: float, rank_score: float) -> Hit:
    return Hit(chunk=_chunk_of(point), score=score, rank_score=rank_score)


def cosines(
    query: Sequence[float], vectors: Sequence[Sequence[float] | np.ndarray | None]
) -> list[float]:
    """The cosine of `query` with each vector, in one numpy product (0.0 for a missing or
    all-zero vector): 50 hits in ~0.1 ms instead of ~5 ms of Python sums."""
    present = [i for i, vector in enumerate(vectors) if vector is not None and len(vector)]
    found = [0.0] * len(vectors)
    if not present:
        return found
    matrix = np.asarray([vectors[i] for i in present], dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(q)
    values = np.divide(matrix @ q, norms, out=np.zeros(len(present)), where=norms > 0)
    for i, value in zip(present, values.tolist(), strict=True):
        found[i] = value
    return found


class StoreCore:
    """A `VectorStore` over one collection, less the engine's SDK calls and locking.

    Subclasses set `collection` and `mode` and implement the hooks: `_exclusive`,
    `_layout`, `_create`, `_upsert_points`, `_delete_ids`, `_query`, `_retrieve`,
    `_scroll`, `_placed`, plus `count` and `drop`. Reads of a collection that does not exist
    return nothing (no error); writes to it raise `VectorStoreError`.
    """

    collection: str
    mode: str  # "embedded" | "server"

    def _failed(self, action: str, error: object) -> VectorStoreError:
        """Return the error for an engine call that failed (or cannot run)."""
        return VectorStoreError(
            STORE_CALL_FAILED_MESSAGE.format(action=action, collection=self.collection, error=error)
        )

    def warm(self, limit: int) -> list[Chunk]:
        """Read up to `limit` points into the search memory; this store keeps none."""
        return []

    # -- engine hooks -----------------------------------------------------------------------

    def _exclusive(self) -> contextlib.AbstractContextManager[Any]:
        """A context in which no other call replaces the collection (create, drop)."""
        raise NotImplementedError

    def _layout(self) -> Layout | None:
        """Return the existing collection's layout, or None when it does not exist."""
        raise NotImplementedError

    def _create(self, dimension: int) -> None:
        """Create the collection: "dense" (cosine, `dimension`) and "sparse" (IDF)."""
        raise NotImplementedError

    def _upsert_points(self, points: Sequence[tuple[Chunk, Vector, SparseVector | None]]) -> None:
        """Write one batch of (chunk, dense vector, sparse vector or None) as points."""
        raise NotImplementedError

    def _delete_ids(self, ids: Sequence[str]) -> None:
        """Delete one batch of points by id (a missing collection: nothing to do)."""
        raise NotImplementedError

    def _query(self, queries: Sequence[ChannelQuery]) -> list[list[StoredPoint]]:
        """Run the channel queries (in one engine call where it can); [] each if missing."""
        raise NotImplementedError

    def _retrieve(
        self, ids: Sequence[str], *, with_payload: bool, with_dense: bool
    ) -> list[StoredPoint]:
        """Return the points of these ids that exist."""
        raise NotImplementedError

    def _scroll(self, path: str | None, offset: Any, limit: int) -> tuple[list[StoredPoint], Any]:
        """Return one page of points (payload "path" only) and the next offset (None: done)."""
        raise NotImplementedError

    def _placed(
        self, paths: Sequence[str], positions: Sequence[int], limit: int
    ) -> list[StoredPoint]:
        """Return up to `limit` points (with payload) of these paths at these positions."""
        raise NotImplementedError

    def count(self) -> int:
        """Return the number of points in the collection (0 if it does not exist)."""
        raise NotImplementedError

    def drop(self) -> None:
        """Delete the whole collection (no error if it does not exist)."""
        raise NotImplementedError

    # -- VectorStore ------------------------------------------------------------------------

    def ensure_collection(self, *, dimension: int) -> None:
        """Create the collection if missing; raise if it exists with another dimension.

        Raises:
            DimensionMismatch: the collection's dense vectors have another size, or it
                lacks the named "dense"/"sparse" vectors (not made by ragsite).
            VectorStoreError: the store failed.
        """
        with self._exclusive():
            layout = self._layout()
            if layout is None:
                self._create(dimension)
            else:
                self._check_layout(layout, dimension)

    def _check_layout(self, layout: Layout, dimension: int) -> None:
        if layout.dense_size is None or not layout.has_sparse:
            # A DimensionMismatch too, so `ingest_book --force` rebuilds it the same way.
            raise DimensionMismatch(
                LAYOUT_MISMATCH_MESSAGE.format(collection=self.collection),
                details={"collection": self.collection, "existing": None, "expected": dimension},
            )
        if layout.dense_size != dimension:
            raise DimensionMismatch(
                DIMENSION_MISMATCH_MESSAGE.format(
                    collection=self.collection, existing=layout.dense_size, expected=dimension
                ),
                details={
                    "collection": self.collection,
                    "existing": layout.dense_size,
                    "expected": dimension,
                },
            )

    def upsert(self, chunks: Sequence[Chunk], vectors: Sequence[Vector]) -> None:
        """Insert or replace chunks (dense vector given, sparse computed from text)."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        # Points are built one batch at a time: a 100k-chunk load would otherwise hold
        # a second Python copy of every vector and payload at once.
        size = UPSERT_BATCH_SIZE
        for start in range(0, len(chunks), size):
            points = []
            for chunk, vector in zip(
                chunks[start : start + size], vectors[start : start + size], strict=True
            ):
                sparse = encode_document(chunk.text)
                # A chunk of stopwords only has no sparse vector at all.
                points.append(
                    (chunk, [float(x) for x in vector], sparse if sparse.indices else None)
                )
            self._upsert_points(points)

    def delete(self, ids: Sequence[str]) -> None:
        """Remove points by id; unknown ids (or a missing collection) are ignored."""
        for batch in batches(list(ids), PAGE_SIZE):
            self._delete_ids(list(batch))

    def search(
        self,
        *,
        query_text: str,
        query_vector: Vector | None,
        k: int,
        mode: SearchMode = "hybrid",
        paths: Sequence[str] | None = None,
    ) -> list[Hit]:
        """Return the best k chunks, best first.

        `mode="dense"` and `mode="sparse"` search one channel each: there `rank_score`
        is the channel's raw score (the cosine, or the BM25 score with the IDF). `Hit.score`
        is the dense cosine to `query_vector` in every mode (the raw sparse score only in
        sparse mode without a vector); in hybrid mode `rank_score` is the RRF score that
        ordered the hits. `paths=None` searches everything, `paths=[...]` only chunks
        of those files (an empty list matches nothing). A missing or empty collection
        gives [].
        """
        if k <= 0:
            return []
        if mode == "dense" and query_vector is None:
            raise ValueError("dense search needs a query_vector")
        if paths is not None and not paths:
            return []  # nothing matches (and qdrant-edge cannot type an empty MatchAny)
        sparse_query = encode_query(query_text) if mode != "dense" else None
        has_sparse = bool(sparse_query and sparse_query.indices)
        if mode == "hybrid" and query_vector is not None and has_sparse:
            return self._search_hybrid(sparse_query, query_vector, k, paths)
        if mode in ("hybrid", "dense") and query_vector is not None:
            # Hybrid degrades to dense for a query of stopwords only ("what is this?").
            (points,) = self._query([ChannelQuery(DENSE, list(query_vector), k, paths)])
            return [_hit(p, score=p.score, rank_score=p.score) for p in points]
        if mode in ("hybrid", "sparse") and has_sparse:
            with_dense = query_vector is not None
            (points,) = self._query(
                [ChannelQuery(SPARSE, sparse_query, k, paths, with_dense=with_dense)]
            )
            scores = (
                cosines(query_vector, [p.dense for p in points])
                if query_vector is not None
                else [p.score for p in points]
            )
            return [
                _hit(p, score=score, rank_score=p.score)
                for p, score in zip(points, scores, strict=True)
            ]
        return []

    def search_channels(
        self,
        *,
        query_text: str,
        query_vector: Vector,
        k: int,
        paths: Sequence[str] | None = None,
    ) -> tuple[list[Hit], list[Hit]]:
        """The dense and the sparse ranking of one query, k deep each, in one engine call.

        The same hits as `search(mode="dense")` and `search(mode="sparse")`: the dense
        channel's `score` and `rank_score` are its cosine; the sparse channel's
        `rank_score` is its BM25 score and `score` the hit's dense cosine.
        """
        sparse_query = encode_query(query_text)
        if k <= 0 or (paths is not None and not paths):
            return [], []
        if not sparse_query.indices:  # a query of stopwords only: the dense channel alone
            return self.search(
                query_text=query_text, query_vector=query_vector, k=k, mode="dense", paths=paths
            ), []
        dense, sparse = self._query(
            [
                ChannelQuery(DENSE, list(query_vector), k, paths),
                ChannelQuery(SPARSE, sparse_query, k, paths, with_dense=True),
            ]
        )
        similarities = cosines(query_vector, [p.dense for p in sparse])
        return (
            [_hit(p, score=p.score, rank_score=p.score) for p in dense],
            [
                _hit(p, score=score, rank_score=p.score)
                for p, score in zip(sparse, similarities, strict=True)
            ],
        )

    def _search_hybrid(
        self,
        sparse_query: SparseVector,
        query_vector: Vector,
        k: int,
        paths: Sequence[str] | None,
    ) -> list[Hit]:
        limit = max(PREFETCH_FACTOR * k, PREFETCH_MIN)
        # Both halves rank ids only (one engine call where the engine batches); only
        # the k winners' payloads and vectors are then read.
        dense, sparse = self._query(
            [
                ChannelQuery(DENSE, list(query_vector), limit, paths, with_payload=False),
                ChannelQuery(SPARSE, sparse_query, limit, paths, with_payload=False),
            ]
        )
        fused = rrf([[p.id for p in dense], [p.id for p in sparse]], k)
        if not fused:
            return []
        records = {
            p.id: p
            for p in self._retrieve([key for key, _ in fused], with_payload=True, with_dense=True)
        }
        kept = [(key, score) for key, score in fused if key in records]  # deleted meanwhile?
        similarities = cosines(query_vector, [records[key].dense for key, _ in kept])
        return [
            _hit(records[key], score=similarity, rank_score=score)
            for (key, score), similarity in zip(kept, similarities, strict=True)
        ]

    def ids_by_path(self, path: str | None = None) -> dict[str, set[str]]:
        """Return {path: {point ids}} for one path or the whole collection."""
        result: dict[str, set[str]] = {}
        offset: Any = None
        while True:
            records, offset = self._scroll(path, offset, PAGE_SIZE)
            for record in records:
                result.setdefault((record.payload or {}).get("path", ""), set()).add(record.id)
            if offset is None:
                return result

    def get_vectors(self, ids: Sequence[str]) -> dict[str, Vector]:
        """Return the dense vectors of the given ids that exist."""
        result: dict[str, Vector] = {}
        for batch in batches(list(ids), PAGE_SIZE):
            for record in self._retrieve(list(batch), with_payload=False, with_dense=True):
                if record.dense is not None:
                    result[record.id] = list(record.dense)
        return result

    def chunks_at(self, places: Sequence[tuple[str, int]]) -> list[Chunk]:
        """Return the chunks at these (path, position) places that exist, in one engine
        call (the pages' chunks before and after a hit, for the sources around it)."""
        wanted = set(places)
        if not wanted:
            return []
        paths = sorted({path for path, _ in wanted})
        positions = sorted({position for _, position in wanted})
        points = self._placed(paths, positions, len(paths) * len(positions))
        chunks = (_chunk_of(point) for point in points)
        return [chunk for chunk in chunks if (chunk.path, chunk.position) in wanted]

    def health(self) -> dict[str, Any]:
        """Return {"status", "mode", "points"}; raise VectorStoreError when broken."""
        return {"status": "ok", "mode": self.mode, "points": self.count()}
