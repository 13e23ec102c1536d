"""The Qdrant adapter: the only module that imports `qdrant_client`.

One collection per book, each point one chunk:

- a named dense vector "dense" (the embedder's dimension, cosine distance);
- a named sparse vector "sparse" with `Modifier.IDF`: we store BM25 term-frequency
  weights (`sparse.encode_document`) and Qdrant multiplies in the IDF;
- the chunk as payload (`Chunk.payload()`), rebuilt with `Chunk.from_payload`.

Embedded mode (no QDRANT_URL) is qdrant-client's pure-Python local mode on a folder
that one process at a time may open; server mode talks to a Qdrant server. Either way
callers see only `QdrantStore`, which implements the `VectorStore` Protocol, and our
exceptions. Another embedded engine (e.g. qdrant-edge-py) can replace it behind the
same Protocol without touching any caller.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import math
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from qdrant_client import QdrantClient, models

from .config import RagConfig
from .exceptions import (
    STORE_LOCKED_MESSAGE,
    DimensionMismatch,
    RagError,
    VectorStoreError,
    VectorStoreLocked,
)
from .sparse import encode_document, encode_query
from .types import Chunk, Hit, SearchMode, SparseVector, Vector

logger = logging.getLogger(__name__)

DENSE = "dense"
SPARSE = "sparse"
UPSERT_BATCH_SIZE = 256
PAGE_SIZE = 1000  # scroll and retrieve page size
# Each half of a hybrid search fetches more candidates than asked for, so a chunk
# ranked modestly by both halves can still win the fusion.
PREFETCH_FACTOR = 4
PREFETCH_MIN = 20

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
_RAISE: Any = object()  # sentinel: no fallback value for a missing collection

# --- clients -----------------------------------------------------------------------------

# Every call to a local-mode client goes through this client's lock. QdrantLocal keeps
# each collection in plain Python/numpy structures that upsert and delete resize and
# rewrite without any locking, and persistent mode shares one sqlite3 connection
# between threads; we call it from asyncio.to_thread workers (searches) while the
# background ingestion thread writes. Without the lock, searches running during an
# upsert failed with numpy "operands could not be broadcast together with shapes
# (1996,) (1995,)" (measured: 1,843 failed searches over 40 upserts). A server client
# (httpx) is thread-safe, so it gets a no-op context and concurrent calls stay
# concurrent. The lock costs nothing in throughput: local mode is pure Python and
# holds the GIL anyway.
_call_locks: weakref.WeakKeyDictionary[QdrantClient, contextlib.AbstractContextManager[Any]] = (
    weakref.WeakKeyDictionary()
)
_registry_lock = threading.Lock()

_client: QdrantClient | None = None
_client_key: str | None = None
_client_lock = threading.Lock()


def _is_local(client: QdrantClient) -> bool:
    options = client.init_options
    return bool(options.get("path")) or options.get("location") == ":memory:"


def _call_lock(client: QdrantClient) -> contextlib.AbstractContextManager[Any]:
    """Return the lock every call to this client takes (shared by all its stores)."""
    with _registry_lock:
        lock = _call_locks.get(client)
        if lock is None:
            lock = threading.RLock() if _is_local(client) else contextlib.nullcontext()
            _call_locks[client] = lock
        return lock


def _open(config: RagConfig) -> QdrantClient:
    if config.qdrant_url:
        # check_compatibility=False: no version request at construction, so building
        # the client never blocks; an unreachable server fails on the first real call.
        return QdrantClient(
            url=config.qdrant_url,
            api_key=config.qdrant_api_key or None,
            timeout=config.qdrant_timeout,
            check_compatibility=False,
        )
    path = config.qdrant_path
    if _held_elsewhere(path):
        raise VectorStoreLocked(STORE_LOCKED_MESSAGE.format(path=path))
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            # One sentence for the user; the qdrant traceback would only add noise.
            raise VectorStoreLocked(STORE_LOCKED_MESSAGE.format(path=path)) from None
        raise VectorStoreError(STORE_OPEN_FAILED_MESSAGE.format(path=path, error=exc)) from exc
    except Exception as exc:  # permissions, a corrupt meta.json, a full disk...
        raise VectorStoreError(STORE_OPEN_FAILED_MESSAGE.format(path=path, error=exc)) from exc


def _held_elsewhere(path: Path) -> bool:
    """Return True when another client holds the embedded folder's lock.

    QdrantLocal loads every collection into memory *before* it tries the lock (3.2 s
    for 3k chunks), so a refused opener would pay that on every retry, e.g. each
    request of a server started while `ingest_book` runs. This tries the same
    non-blocking exclusive lock on the same `.lock` file first, and lets go at once.
    It is an flock, tied to our own file handle: closing it never releases the lock
    of the client that holds the folder, even in this process.
    """
    lock_file = path / ".lock"
    if not lock_file.is_file():
        return False
    try:
        import portalocker  # qdrant-client's own locking dependency
    except ImportError:
        return False
    try:
        with lock_file.open("r+") as handle:
            try:
                portalocker.lock(
                    handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING
                )
            except portalocker.exceptions.LockException:
                return True
            portalocker.unlock(handle)
    except OSError:  # unreadable: let QdrantClient report the real problem
        return False
    return False


def get_client(config: RagConfig) -> QdrantClient:
    """Return this process's Qdrant client, opening it on first use.

    Embedded mode (empty QDRANT_URL) opens `config.qdrant_path` and holds its lock
    until `close_client()` or exit.

    Raises:
        VectorStoreLocked: another process holds the embedded store's folder.
        VectorStoreError: the folder cannot be opened.
    """
    global _client, _client_key
    key = f"url:{config.qdrant_url}" if config.qdrant_url else f"path:{config.qdrant_path}"
    with _client_lock:
        if _client is not None and _client_key == key:
            return _client
        if _client is not None:  # settings changed under us: never keep two folders locked
            logger.info("vector store: switching from %s to %s", _client_key, key)
            _close(_client)
            _client, _client_key = None, None
        _client = _open(config)
        _client_key = key
        logger.info(
            "vector store: opened %s",
            config.qdrant_url or f"embedded store in {config.qdrant_path}",
        )
        return _client


def _close(client: QdrantClient) -> None:
    with _call_lock(client):  # let a call in flight finish first
        try:
            client.close()
        except Exception as exc:  # closing must not mask what the caller is doing
            logger.warning("vector store: error while closing the client: %s", exc)


def close_client() -> None:
    """Close and forget this process's client (releases the embedded folder's lock)."""
    global _client, _client_key
    with _client_lock:
        if _client is not None:
            _close(_client)
        _client, _client_key = None, None


# Close before interpreter teardown: otherwise QdrantClient.__del__ closes it while
# modules are being torn down and prints "Exception ignored ... sys.meta_path is None"
# at the end of every management command.
atexit.register(close_client)


def memory_client() -> QdrantClient:
    """Return a fresh in-memory local client (tests, temporary evaluation collections)."""
    return QdrantClient(location=":memory:")


# --- the store ---------------------------------------------------------------------------


def _sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return dot / norms if norms else 0.0


def _dense_of(point: Any) -> Vector | None:
    vector = point.vector
    if isinstance(vector, dict):
        return vector.get(DENSE)
    return None


def _paths_filter(paths: Sequence[str] | None) -> models.Filter | None:
    if paths is None:
        return None
    return models.Filter(
        must=[models.FieldCondition(key="path", match=models.MatchAny(any=list(paths)))]
    )


def _batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class QdrantStore:
    """A `VectorStore` over one Qdrant collection with named dense and IDF-sparse vectors."""

    def __init__(self, client: QdrantClient, collection: str) -> None:
        self._client = client
        self._lock = _call_lock(client)
        self.collection = collection
        self.mode = "embedded" if _is_local(client) else "server"

    def __repr__(self) -> str:
        return f"QdrantStore(mode={self.mode!r}, collection={self.collection!r})"

    # -- plumbing -----------------------------------------------------------------------

    def _call(self, action: str, fn: Callable[[], T], *, missing: T = _RAISE) -> T:
        """Run one client call under the client's lock, translating its failures.

        With `missing`, a failure caused by the collection not existing returns
        `missing` instead (reads of a store nothing was ingested into yet).
        """
        with self._lock:
            try:
                return fn()
            except RagError:
                raise
            except Exception as exc:
                if missing is not _RAISE and not self._exists_or_unknown():
                    return missing
                logger.warning("vector store: could not %s: %s", action, exc)
                raise VectorStoreError(
                    STORE_CALL_FAILED_MESSAGE.format(
                        action=action, collection=self.collection, error=exc
                    )
                ) from exc

    def _exists_or_unknown(self) -> bool:
        try:
            return bool(self._client.collection_exists(self.collection))
        except Exception:  # the store itself is broken: report the original error
            return True

    # -- VectorStore ----------------------------------------------------------------------

    def ensure_collection(self, *, dimension: int) -> None:
        """Create the collection if missing; raise if it exists with another dimension.

        Raises:
            DimensionMismatch: the collection's dense vectors have another size, or it
                lacks the named "dense"/"sparse" vectors (not made by ragsite).
            VectorStoreError: the store failed.
        """
        with self._lock:
            exists = self._call(
                "check the collection", lambda: self._client.collection_exists(self.collection)
            )
            if not exists:
                self._create(dimension)
                return
            info = self._call(
                "read the collection", lambda: self._client.get_collection(self.collection)
            )
            self._check_layout(info, dimension)

    def _create(self, dimension: int) -> None:
        self._call(
            "create the collection",
            lambda: self._client.create_collection(
                self.collection,
                vectors_config={
                    DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)
                },
                sparse_vectors_config={
                    SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)
                },
            ),
        )
        if self.mode == "server":
            # Filtering by path is what ingestion and scoped searches do; local mode
            # ignores payload indexes (and warns), so only the server gets one.
            self._call(
                "index the path field",
                lambda: self._client.create_payload_index(
                    self.collection,
                    field_name="path",
                    field_schema=models.PayloadSchemaType.KEYWORD,
                    wait=True,
                ),
            )
        logger.info(
            "vector store: created collection %r (%d-d dense + sparse IDF)",
            self.collection,
            dimension,
        )

    def _check_layout(self, info: Any, dimension: int) -> None:
        vectors = info.config.params.vectors
        dense = vectors.get(DENSE) if isinstance(vectors, dict) else None
        sparse = info.config.params.sparse_vectors or {}
        if dense is None or SPARSE not in sparse:
            # A DimensionMismatch too, so `ingest_book --force` rebuilds it the same way.
            raise DimensionMismatch(
                LAYOUT_MISMATCH_MESSAGE.format(collection=self.collection),
                details={"collection": self.collection, "existing": None, "expected": dimension},
            )
        if dense.size != dimension:
            raise DimensionMismatch(
                DIMENSION_MISMATCH_MESSAGE.format(
                    collection=self.collection, existing=dense.size, expected=dimension
                ),
                details={
                    "collection": self.collection,
                    "existing": dense.size,
                    "expected": dimension,
                },
            )

    def upsert(self, chunks: Sequence[Chunk], vectors: Sequence[Vector]) -> None:
        """Insert or replace chunks (dense vector given, sparse computed from text)."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        points = []
        for chunk, vector in zip(chunks, vectors, strict=True):
            point_vectors: dict[str, Any] = {DENSE: list(vector)}
            sparse = encode_document(chunk.text)
            if sparse.indices:  # a chunk of stopwords only has no sparse vector at all
                point_vectors[SPARSE] = _sparse(sparse)
            points.append(
                models.PointStruct(id=chunk.id, vector=point_vectors, payload=chunk.payload())
            )
        for batch in _batches(points, UPSERT_BATCH_SIZE):
            self._call(
                "store chunks",
                functools.partial(
                    self._client.upsert, self.collection, points=list(batch), wait=True
                ),
            )

    def delete(self, ids: Sequence[str]) -> None:
        """Remove points by id; unknown ids (or a missing collection) are ignored."""
        for batch in _batches(list(ids), PAGE_SIZE):
            self._call(
                "delete chunks",
                functools.partial(
                    self._client.delete,
                    self.collection,
                    points_selector=models.PointIdsList(points=list(batch)),
                    wait=True,
                ),
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
        if mode == "hybrid" and query_vector is not None and has_sparse:
            return self._search_hybrid(sparse_query, query_vector, k, paths)
        if mode in ("hybrid", "dense") and query_vector is not None:
            # Hybrid degrades to dense for a query of stopwords only ("what is this?").
            return self._search_dense(query_vector, k, paths)
        if mode in ("hybrid", "sparse") and has_sparse:
            return self._search_sparse(sparse_query, query_vector, k, paths)
        if mode == "dense":
            raise ValueError("dense search needs a query_vector")
        return []

    def _query(self, action: str, **kwargs: Any) -> list[Any]:
        response = self._call(
            action,
            functools.partial(
                self._client.query_points, self.collection, with_payload=True, **kwargs
            ),
            missing=None,
        )
        return response.points if response is not None else []

    def _search_hybrid(
        self,
        sparse_query: SparseVector,
        query_vector: Vector,
        k: int,
        paths: Sequence[str] | None,
    ) -> list[Hit]:
        flt = _paths_filter(paths)
        limit = max(PREFETCH_FACTOR * k, PREFETCH_MIN)
        points = self._query(
            "search",
            # The top-level filter reaches the prefetches too (server and local mode
            # propagate it), so each half ranks only candidates from `paths`.
            prefetch=[
                models.Prefetch(query=list(query_vector), using=DENSE, limit=limit),
                models.Prefetch(query=_sparse(sparse_query), using=SPARSE, limit=limit),
            ],
            query=models.FusionQuery(fusion=models.Fusion.RRF),
            query_filter=flt,
            limit=k,
            with_vectors=[DENSE],
        )
        return [
            Hit(
                chunk=Chunk.from_payload(point.id, point.payload or {}),
                score=self._cosine_or(query_vector, point, 0.0),
                rank_score=point.score,
            )
            for point in points
        ]

    def _search_dense(self, query_vector: Vector, k: int, paths: Sequence[str] | None) -> list[Hit]:
        points = self._query(
            "search",
            query=list(query_vector),
            using=DENSE,
            query_filter=_paths_filter(paths),
            limit=k,
        )
        return [
            Hit(
                chunk=Chunk.from_payload(point.id, point.payload or {}),
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
            "search",
            query=_sparse(sparse_query),
            using=SPARSE,
            query_filter=_paths_filter(paths),
            limit=k,
            with_vectors=[DENSE] if query_vector is not None else False,
        )
        return [
            Hit(
                chunk=Chunk.from_payload(point.id, point.payload or {}),
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
            flt = models.Filter(
                must=[models.FieldCondition(key="path", match=models.MatchValue(value=path))]
            )
        result: dict[str, set[str]] = {}
        offset: Any = None
        while True:
            records, offset = self._call(
                "list chunks",
                functools.partial(
                    self._client.scroll,
                    self.collection,
                    scroll_filter=flt,
                    limit=PAGE_SIZE,
                    offset=offset,
                    with_payload=["path"],
                    with_vectors=False,
                ),
                missing=([], None),
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
                functools.partial(
                    self._client.retrieve,
                    self.collection,
                    ids=list(batch),
                    with_payload=False,
                    with_vectors=[DENSE],
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
        response = self._call(
            "count chunks",
            lambda: self._client.count(self.collection, exact=True),
            missing=None,
        )
        return response.count if response is not None else 0

    def drop(self) -> None:
        """Delete the whole collection (no error if it does not exist)."""
        self._call("drop the collection", lambda: self._client.delete_collection(self.collection))
        logger.info("vector store: dropped collection %r", self.collection)

    def health(self) -> dict[str, Any]:
        """Return {"status", "mode", "points"}; raise VectorStoreError when broken."""
        return {"status": "ok", "mode": self.mode, "points": self.count()}
