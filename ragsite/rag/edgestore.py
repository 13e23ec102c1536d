"""The qdrant-edge adapter: the only module that imports `qdrant_edge`.

`qdrant-edge-py` is Qdrant's own search engine (Rust) running inside this process, an
optional faster engine for embedded mode (`VECTOR_ENGINE=qdrant-edge`). `EdgeStore`
implements the `VectorStore` Protocol exactly like `vectorstore.QdrantStore`: the same
named vectors ("dense" cosine + "sparse" BM25 term frequencies with `Modifier.Idf`,
from `sparse.encode_document`), the same payload, the same hybrid RRF fusion and the
same scores, so callers and results do not depend on the engine.

Layout: one engine "shard" per collection, in its own folder
`QDRANT_PATH/edge/<collection>/` (`edge_config.json`, `segments/`, `wal/`). Every write
goes to the write-ahead log first, so it survives a crash (even `kill -9`) without any
explicit `flush()`; the engine trims its WAL itself.

One process at a time: the engine locks each shard's WAL, and a second opener (another
process, e.g. `ingest_book` while the server runs) gets `VectorStoreLocked` with the
same sentence as local mode. Within the process, all stores of a collection share one
open shard (`EdgeEngine`), which we never close while a call is using it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from qdrant_edge import (
    CountRequest,
    Distance,
    EdgeConfig,
    EdgeShard,
    EdgeSparseVectorParams,
    EdgeVectorParams,
    FieldCondition,
    Filter,
    MatchAny,
    MatchValue,
    Modifier,
    PayloadSchemaType,
    Point,
    Query,
    QueryBatchRequest,
    QueryRequest,
    ScrollRequest,
    UpdateOperation,
)
from qdrant_edge import SparseVector as EdgeSparseVector

from .config import RagConfig
from .exceptions import (
    STORE_LOCKED_MESSAGE,
    ConfigurationError,
    DimensionMismatch,
    RagError,
    VectorStoreError,
    VectorStoreLocked,
)
from .sparse import encode_document, encode_query
from .types import Chunk, Hit, SearchMode, SparseVector, Vector

logger = logging.getLogger(__name__)

ENGINE = "qdrant-edge"
EDGE_DIR = "edge"  # the engine's folder inside QDRANT_PATH, one sub-folder per collection
CONFIG_FILE = "edge_config.json"  # written by the engine when it creates a shard

# The same names and sizes as vectorstore.py (tests/rag/test_edgestore.py checks they
# stay equal); copied rather than imported so that edge mode never imports qdrant_client.
DENSE = "dense"
SPARSE = "sparse"
UPSERT_BATCH_SIZE = 256
PAGE_SIZE = 1000  # scroll and retrieve page size
PREFETCH_FACTOR = 4
PREFETCH_MIN = 20
# qdrant-client's local mode and the Qdrant server both fuse with 1 / (k + rank), k = 2
# (rank counted from 0); the same constant gives the same `rank_score` here (see _rrf).
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
COLLECTION_NAME_MESSAGE = (
    "The collection name {collection!r} cannot be a folder name: use letters, digits, "
    "'-', '_' and '.' (QDRANT_COLLECTION)."
)
NO_COLLECTION_ERROR = "the collection does not exist"
ENGINE_CLOSED_ERROR = "the store was closed"

# A collection is a folder that drop() deletes: its name must never reach outside EDGE_DIR.
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,254}")

T = TypeVar("T")
_RAISE: Any = object()  # sentinel: no fallback value for a missing collection


# --- locking -----------------------------------------------------------------------------


class _SharedLock:
    """A readers-writer lock: many shared holders, or one exclusive holder.

    The engine is thread-safe and releases the GIL while it searches, so searches
    (asyncio.to_thread workers) and the ingestion thread's writes share the shard and
    run concurrently. Only what replaces the shard itself (create, close, drop) takes
    it exclusively, so no call ever runs on a shard being closed. A waiting exclusive
    holder keeps new shared holders out, so a steady stream of searches cannot starve
    a drop.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive and not self._waiting)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                if not self._shared:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            try:
                self._cond.wait_for(lambda: not self._exclusive and not self._shared)
            finally:
                self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


# --- the engine: open shards of one folder ---------------------------------------------------


class _Collection:
    """One collection's folder and, once opened, its shard (None while it does not exist)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shard: EdgeShard | None = None
        self.lock = _SharedLock()
        self.closed = False


def _open_shard(path: Path) -> EdgeShard:
    """Load an existing shard, translating the engine's lock error into ours."""
    try:
        return EdgeShard.load(str(path))
    except Exception as exc:
        if "WouldBlock" in str(exc):
            # The engine says "failed to open WAL ...: Can't init WAL: Kind(WouldBlock)";
            # the user gets one sentence that says what to do, no traceback.
            raise VectorStoreLocked(STORE_LOCKED_MESSAGE.format(path=path)) from None
        raise VectorStoreError(STORE_OPEN_FAILED_MESSAGE.format(path=path, error=exc)) from exc


def _read_layout(path: Path) -> dict[str, Any] | None:
    """Return the shard's saved config, or None when the folder holds no shard."""
    try:
        return json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise VectorStoreError(STORE_OPEN_FAILED_MESSAGE.format(path=path, error=exc)) from exc


class EdgeEngine:
    """The qdrant-edge shards of one folder (`QDRANT_PATH/edge`), opened on first use.

    Shared by every `EdgeStore` of this process: the engine refuses a second opener of
    a shard even in the same process, so each collection is opened once, here.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._collections: dict[str, _Collection] = {}
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"EdgeEngine(root={str(self.root)!r})"

    def collection(self, name: str) -> _Collection:
        """Return the collection's handle, loading its shard if the folder holds one.

        Raises:
            VectorStoreLocked: another process holds the shard.
            VectorStoreError: the engine was closed, or the shard cannot be opened.
        """
        with self._lock:
            if self._closed:
                raise VectorStoreError(
                    STORE_CALL_FAILED_MESSAGE.format(
                        action="open the collection", collection=name, error=ENGINE_CLOSED_ERROR
                    )
                )
            handle = self._collections.get(name)
            if handle is None:
                if not _COLLECTION_NAME.fullmatch(name):
                    raise ConfigurationError(COLLECTION_NAME_MESSAGE.format(collection=name))
                handle = _Collection(self.root / name)
                if _read_layout(handle.path) is not None:
                    handle.shard = _open_shard(handle.path)
                    logger.info("vector store: opened edge shard %s", handle.path)
                self._collections[name] = handle
            return handle

    def close(self) -> None:
        """Close every open shard (releases their locks); later calls fail."""
        with self._lock:
            self._closed = True
            handles = list(self._collections.values())
            self._collections.clear()
        for handle in handles:
            with handle.lock.exclusive():  # let calls in flight finish first
                handle.closed = True
                _close_shard(handle)


def _close_shard(handle: _Collection) -> None:
    shard, handle.shard = handle.shard, None
    if shard is None:
        return
    try:
        # No flush() first: every update is already in the WAL (durable even after
        # kill -9), the engine trims the WAL itself, and close() persists the rest.
        shard.close()
    except Exception as exc:  # closing must not mask what the caller is doing
        logger.warning("vector store: error while closing %s: %s", handle.path, exc)


_engine: EdgeEngine | None = None
_engine_lock = threading.Lock()


def edge_root(config: RagConfig) -> Path:
    """Return the folder that holds the edge engine's collections."""
    return config.qdrant_path / EDGE_DIR


def get_engine(config: RagConfig) -> EdgeEngine:
    """Return this process's edge engine over `QDRANT_PATH/edge`, creating it on first use."""
    global _engine
    root = edge_root(config)
    with _engine_lock:
        if _engine is not None and _engine.root == root:
            return _engine
        if _engine is not None:  # settings changed under us: never keep two folders locked
            logger.info("vector store: switching edge engine from %s to %s", _engine.root, root)
            _engine.close()
        _engine = EdgeEngine(root)
        return _engine


def close_engine() -> None:
    """Close and forget this process's engine (releases every shard's lock)."""
    global _engine
    with _engine_lock:
        if _engine is not None:
            _engine.close()
        _engine = None


# Close before interpreter teardown, like vectorstore.close_client.
atexit.register(close_engine)


# --- the store ---------------------------------------------------------------------------


def _edge_sparse(vector: SparseVector) -> EdgeSparseVector:
    return EdgeSparseVector(list(vector.indices), list(vector.values))


def _point(chunk: Chunk, vector: Vector) -> Point:
    point_vectors: dict[str, Any] = {DENSE: [float(x) for x in vector]}
    sparse = encode_document(chunk.text)
    if sparse.indices:  # a chunk of stopwords only has no sparse vector at all
        point_vectors[SPARSE] = _edge_sparse(sparse)
    return Point(chunk.id, point_vectors, chunk.payload())


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return dot / norms if norms else 0.0


def _dense_of(point: Any) -> Vector | None:
    vector = point.vector
    if isinstance(vector, dict):
        return vector.get(DENSE)
    return None


def _paths_filter(paths: Sequence[str] | None) -> Filter | None:
    if paths is None:
        return None
    return Filter(must=[FieldCondition(key="path", match=MatchAny(list(paths)))])


def _rrf(rankings: Sequence[Sequence[Any]], limit: int) -> list[tuple[str, float]]:
    """Fuse ranked lists by reciprocal rank: [(point id, sum of 1 / (RRF_K + rank))].

    The same arithmetic and tie order as qdrant-client's local mode (rank from 0;
    equal scores keep the order in which points were first seen, the dense list first).
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, point in enumerate(ranking):
            key = str(point.id)
            scores[key] = scores.get(key, 0.0) + 1.0 / (rank + RRF_K)
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)[:limit]


def _batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class EdgeStore:
    """A `VectorStore` over one qdrant-edge shard with named dense and IDF-sparse vectors."""

    mode = "embedded"

    def __init__(self, engine: EdgeEngine, collection: str) -> None:
        self._engine = engine
        self.collection = collection
        # Opened now, like local mode's client in get_store(): a folder held by another
        # process is refused here, before the caller starts any work.
        self._handle = engine.collection(collection)

    def __repr__(self) -> str:
        return f"EdgeStore(engine={ENGINE!r}, collection={self.collection!r})"

    @property
    def path(self) -> Path:
        """The collection's folder."""
        return self._handle.path

    # -- plumbing -----------------------------------------------------------------------

    def _failed(self, action: str, error: object) -> VectorStoreError:
        return VectorStoreError(
            STORE_CALL_FAILED_MESSAGE.format(action=action, collection=self.collection, error=error)
        )

    def _call(self, action: str, fn: Callable[[EdgeShard], T], *, missing: T = _RAISE) -> T:
        """Run one engine call on the open shard, translating its failures.

        With `missing`, a collection that does not exist returns `missing` instead
        (reads of a store nothing was ingested into yet).
        """
        handle = self._handle
        with handle.lock.shared():
            if handle.closed:
                raise self._failed(action, ENGINE_CLOSED_ERROR)
            if handle.shard is None:
                if missing is not _RAISE:
                    return missing
                raise self._failed(action, NO_COLLECTION_ERROR)
            try:
                return fn(handle.shard)
            except RagError:
                raise
            except Exception as exc:
                logger.warning("vector store: could not %s: %s", action, exc)
                raise self._failed(action, exc) from exc

    # -- VectorStore ----------------------------------------------------------------------

    def ensure_collection(self, *, dimension: int) -> None:
        """Create the collection if missing; raise if it exists with another dimension.

        Raises:
            DimensionMismatch: the collection's dense vectors have another size, or it
                lacks the named "dense"/"sparse" vectors (not made by ragsite).
            VectorStoreError: the store failed.
        """
        handle = self._handle
        with handle.lock.exclusive():
            if handle.closed:
                raise self._failed("check the collection", ENGINE_CLOSED_ERROR)
            layout = _read_layout(handle.path)
            if layout is not None:
                self._check_layout(layout, dimension)
                if handle.shard is None:  # created meanwhile by another store object
                    handle.shard = _open_shard(handle.path)
                return
            if handle.path.exists() and any(handle.path.iterdir()):
                # Something else lives in the folder: never write into it.
                self._check_layout({}, dimension)
            handle.shard = self._create(handle.path, dimension)

    def _create(self, path: Path, dimension: int) -> EdgeShard:
        config = EdgeConfig(
            vectors={DENSE: EdgeVectorParams(size=dimension, distance=Distance.Cosine)},
            sparse_vectors={SPARSE: EdgeSparseVectorParams(modifier=Modifier.Idf)},
        )
        try:
            path.mkdir(parents=True, exist_ok=True)
            shard = EdgeShard.create(str(path), config)
            # Ingestion and scoped searches filter on `path`; unlike local mode, the
            # engine uses payload indexes.
            shard.update(UpdateOperation.create_field_index("path", PayloadSchemaType.Keyword))
        except Exception as exc:
            if "WouldBlock" in str(exc):
                raise VectorStoreLocked(STORE_LOCKED_MESSAGE.format(path=path)) from None
            raise self._failed("create the collection", exc) from exc
        logger.info(
            "vector store: created edge collection %r in %s (%d-d dense + sparse IDF)",
            self.collection,
            path,
            dimension,
        )
        return shard

    def _check_layout(self, layout: dict[str, Any], dimension: int) -> None:
        dense = (layout.get("vectors") or {}).get(DENSE)
        sparse = layout.get("sparse_vectors") or {}
        if not isinstance(dense, dict) or SPARSE not in sparse:
            # A DimensionMismatch too, so `ingest_book --force` rebuilds it the same way.
            raise DimensionMismatch(
                LAYOUT_MISMATCH_MESSAGE.format(collection=self.collection),
                details={"collection": self.collection, "existing": None, "expected": dimension},
            )
        existing = dense.get("size")
        if existing != dimension:
            raise DimensionMismatch(
                DIMENSION_MISMATCH_MESSAGE.format(
                    collection=self.collection, existing=existing, expected=dimension
                ),
                details={
                    "collection": self.collection,
                    "existing": existing,
                    "expected": dimension,
                },
            )

    def upsert(self, chunks: Sequence[Chunk], vectors: Sequence[Vector]) -> None:
        """Insert or replace chunks (dense vector given, sparse computed from text)."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        # Points are built one batch at a time: a 100k-chunk load would otherwise hold
        # a second Python copy of every vector and payload at once.
        for start in range(0, len(chunks), UPSERT_BATCH_SIZE):
            batch = [
                _point(chunk, vector)
                for chunk, vector in zip(
                    chunks[start : start + UPSERT_BATCH_SIZE],
                    vectors[start : start + UPSERT_BATCH_SIZE],
                    strict=True,
                )
            ]
            self._call(
                "store chunks",
                lambda shard, batch=batch: shard.update(UpdateOperation.upsert_points(batch)),
            )

    def delete(self, ids: Sequence[str]) -> None:
        """Remove points by id; unknown ids (or a missing collection) are ignored."""
        for batch in _batches(list(ids), PAGE_SIZE):
            self._call(
                "delete chunks",
                lambda shard, batch=batch: shard.update(UpdateOperation.delete_points(list(batch))),
                missing=None,
            )

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

        `Hit.score` is the dense cosine to `query_vector` in every mode (the raw sparse
        score only in sparse mode without a vector); `Hit.rank_score` is what ordered
        the hits (the RRF score in hybrid mode). `paths=None` searches everything,
        `paths=[...]` only chunks of those files (an empty list matches nothing).
        A missing or empty collection gives [].
        """
        if k <= 0:
            return []
        sparse_query = encode_query(query_text) if mode != "dense" else None
        has_sparse = bool(sparse_query and sparse_query.indices)
        if mode == "dense" and query_vector is None:
            raise ValueError("dense search needs a query_vector")
        if paths is not None and not paths:
            return []  # the engine cannot type an empty MatchAny; nothing matches anyway
        if mode == "hybrid" and query_vector is not None and has_sparse:
            return self._search_hybrid(sparse_query, query_vector, k, paths)
        if mode in ("hybrid", "dense") and query_vector is not None:
            # Hybrid degrades to dense for a query of stopwords only ("what is this?").
            return self._search_dense(query_vector, k, paths)
        if mode in ("hybrid", "sparse") and has_sparse:
            return self._search_sparse(sparse_query, query_vector, k, paths)
        return []

    def _query(self, request: QueryRequest) -> list[Any]:
        return self._call("search", lambda shard: shard.query(request), missing=[])

    def _search_hybrid(
        self,
        sparse_query: SparseVector,
        query_vector: Vector,
        k: int,
        paths: Sequence[str] | None,
    ) -> list[Hit]:
        limit = max(PREFETCH_FACTOR * k, PREFETCH_MIN)
        flt = _paths_filter(paths)
        halves = QueryBatchRequest(
            [
                QueryRequest(
                    limit=limit,
                    query=Query.Nearest([float(x) for x in query_vector], using=DENSE),
                    filter=flt,
                ),
                QueryRequest(
                    limit=limit,
                    query=Query.Nearest(_edge_sparse(sparse_query), using=SPARSE),
                    filter=flt,
                ),
            ]
        )

        def run(shard: EdgeShard) -> tuple[list[tuple[str, float]], dict[str, Any]]:
            # Both halves in one engine call, fused here rather than by `Fusion.Rrf`:
            # the engine breaks RRF ties (one chunk 1st in one list, another 1st in the
            # other) in a different order on every call, so the same question could
            # show other sources. `_rrf` is local mode's fusion, ties included. Only
            # the k winners' payloads and vectors cross into Python.
            dense_points, sparse_points = shard.query_batch(halves)
            fused = _rrf([dense_points, sparse_points], k)
            records = shard.retrieve(
                [point_id for point_id, _ in fused], with_payload=True, with_vector=[DENSE]
            )
            return fused, {str(record.id): record for record in records}

        fused, records = self._call("search", run, missing=([], {}))
        return [
            Hit(
                chunk=Chunk.from_payload(point_id, records[point_id].payload or {}),
                score=self._cosine_or(query_vector, records[point_id], 0.0),
                rank_score=score,
            )
            for point_id, score in fused
            if point_id in records  # deleted between the two calls
        ]

    def _search_dense(self, query_vector: Vector, k: int, paths: Sequence[str] | None) -> list[Hit]:
        points = self._query(
            QueryRequest(
                limit=k,
                query=Query.Nearest([float(x) for x in query_vector], using=DENSE),
                filter=_paths_filter(paths),
                with_payload=True,
            )
        )
        return [
            Hit(
                chunk=Chunk.from_payload(str(point.id), point.payload or {}),
                score=point.score,
                rank_score=point.score,
            )
            for point in points
        ]

    def _search_sparse(
        self,
        sparse_query: SparseVector,
        query_vector: Vector | None,
        k: int,
        paths: Sequence[str] | None,
    ) -> list[Hit]:
        points = self._query(
            QueryRequest(
                limit=k,
                query=Query.Nearest(_edge_sparse(sparse_query), using=SPARSE),
                filter=_paths_filter(paths),
                with_payload=True,
                with_vector=[DENSE] if query_vector is not None else False,
            )
        )
        return [
            Hit(
                chunk=Chunk.from_payload(str(point.id), point.payload or {}),
                score=(
                    self._cosine_or(query_vector, point, 0.0)
                    if query_vector is not None
                    else point.score
                ),
                rank_score=point.score,
            )
            for point in points
        ]

    @staticmethod
    def _cosine_or(query_vector: Vector, point: Any, default: float) -> float:
        dense = _dense_of(point)
        return _cosine(query_vector, dense) if dense else default

    def ids_by_path(self, path: str | None = None) -> dict[str, set[str]]:
        """Return {path: {point ids}} for one path or the whole collection."""
        flt = None
        if path is not None:
            flt = Filter(must=[FieldCondition(key="path", match=MatchValue(path))])
        result: dict[str, set[str]] = {}
        offset: Any = None
        while True:
            request = ScrollRequest(
                offset=offset, limit=PAGE_SIZE, filter=flt, with_payload=["path"], with_vector=False
            )
            records, offset = self._call(
                "list chunks", lambda shard, r=request: shard.scroll(r), missing=([], None)
            )
            for record in records:
                result.setdefault((record.payload or {}).get("path", ""), set()).add(str(record.id))
            if offset is None:
                return result

    def get_vectors(self, ids: Sequence[str]) -> dict[str, Vector]:
        """Return the dense vectors of the given ids that exist."""
        result: dict[str, Vector] = {}
        for batch in _batches(list(ids), PAGE_SIZE):
            records = self._call(
                "read vectors",
                lambda shard, batch=batch: shard.retrieve(
                    list(batch), with_payload=False, with_vector=[DENSE]
                ),
                missing=[],
            )
            for record in records:
                dense = _dense_of(record)
                if dense is not None:
                    result[str(record.id)] = list(dense)
        return result

    def count(self) -> int:
        """Return the number of points in the collection (0 if it does not exist)."""
        return self._call(
            "count chunks", lambda shard: shard.count(CountRequest(exact=True)), missing=0
        )

    def drop(self) -> None:
        """Delete the whole collection, folder included (no error if it does not exist)."""
        handle = self._handle
        with handle.lock.exclusive():
            if handle.closed:
                raise self._failed("drop the collection", ENGINE_CLOSED_ERROR)
            shard, handle.shard = handle.shard, None
            try:
                if shard is not None:
                    shard.close()  # releases the WAL lock before the folder goes
                shutil.rmtree(handle.path, ignore_errors=False)
            except FileNotFoundError:
                pass
            except Exception as exc:
                raise self._failed("drop the collection", exc) from exc
        logger.info("vector store: dropped edge collection %r", self.collection)

    def health(self) -> dict[str, Any]:
        """Return {"status", "mode", "points", "engine"}; raise VectorStoreError when broken."""
        return {"status": "ok", "mode": self.mode, "points": self.count(), "engine": ENGINE}

    # -- edge only (not part of the Protocol) ----------------------------------------------

    def optimize(self) -> bool:
        """Merge segments and build the HNSW index; True if anything was optimized.

        Blocking, and it holds the GIL throughout (the whole process pauses): call it
        after a bulk load, not from a serving process. See docs/vector-store.md.
        """
        started = time.perf_counter()
        changed = self._call(
            "optimize the collection", lambda shard: shard.optimize(), missing=False
        )
        logger.info(
            "vector store: optimized edge collection %r in %.1f s (changed: %s)",
            self.collection,
            time.perf_counter() - started,
            changed,
        )
        return bool(changed)
