"""The qdrant-edge adapter: the only module that imports `qdrant_edge`.

`qdrant-edge-py` is Qdrant's own search engine (Rust) running inside this process, an
optional faster engine for embedded mode (`VECTOR_ENGINE=qdrant-edge`). `EdgeStore`
implements the `VectorStore` Protocol with `store_core.StoreCore`, the same code as
`vectorstore.QdrantStore` (layout, search modes, RRF fusion, scores, paging), so
callers and results do not depend on the engine. This module holds only the engine
calls and the locking.

Layout: one engine "shard" per collection, in its own folder
`QDRANT_PATH/edge/<collection>/` (`edge_config.json`, `segments/`, `wal/`). Every write
goes to the write-ahead log first, so it survives a crash (even `kill -9`) without any
explicit `flush()`; the engine trims its WAL itself.

One process at a time: `datafolder.claim()` locks the data folder before the engine
opens, and the engine also locks each shard's WAL (a second opener gets
`VectorStoreLocked`). Within the process, all stores of a collection share one open
shard (`EdgeEngine`), which we never close while a call is using it.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import json
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
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

from . import datafolder, store_core
from .config import RagConfig
from .exceptions import (
    STORE_LOCKED_MESSAGE,
    ConfigurationError,
    RagError,
    VectorStoreError,
    VectorStoreLocked,
)
from .store_core import (
    DENSE,
    PAGE_SIZE,
    SPARSE,
    ChannelQuery,
    Layout,
    StoreCore,
    StoredPoint,
    batches,
    open_failed,
    stored_point,
)
from .types import Chunk, SparseVector, Vector

logger = logging.getLogger(__name__)

ENGINE = "qdrant-edge"
EDGE_DIR = "edge"  # the engine's folder inside QDRANT_PATH (datafolder.ENGINE_FILES too)
WARM_PAGE = 256  # points per engine call when `warm` reads the collection
CONFIG_FILE = "edge_config.json"  # written by the engine when it creates a shard

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
        self.points = _Points()


_SERIALS = itertools.count(1)


class _Points:
    """What searches read of the collection's points, by id: payload and dense vector.

    The engine turns each payload and vector of a result into Python objects while it
    holds the GIL: a hybrid search of two channels of 50 spent ~1.5 of its ~1.9 ms on
    that. Searches ask it for ids and scores only and take the rest from here, reading
    the points not seen yet in one more call. This process is the shard's only writer
    (the engine locks the folder), so every change passes `changed()`, which forgets
    everything; a read that overlapped a change does not store what it read.
    """

    LIMIT = 10_000  # points (~3 KB payload + 1.5 KB float32 vector); past it, start again

    def __init__(self) -> None:
        self._by_id: dict[str, StoredPoint] = {}
        self.generation = 0
        self.serial = next(_SERIALS)  # this memory's own, never reused in the process
        # Once a read of the whole collection is kept (`warm` to its end), the points by
        # (path, position): `chunks_at` needs no engine call. One attribute, swapped
        # whole, so a reader in another thread sees all of it or None.
        self.places: dict[tuple[str, int], tuple[StoredPoint, ...]] | None = None

    def known(self, ids: Iterable[str]) -> dict[str, StoredPoint]:
        by_id = self._by_id
        return {key: by_id[key] for key in ids if key in by_id}

    def remember(
        self, points: dict[str, StoredPoint], *, generation: int, whole: bool = False
    ) -> None:
        """Keep `points`, read since `generation`; `whole`: they are every point there is."""
        if generation != self.generation:  # written meanwhile: what was read may be old
            return
        if len(self._by_id) + len(points) > self.LIMIT:
            self._by_id, self.places = {}, None
        self._by_id.update(points)
        if whole and len(points) <= self.LIMIT:
            places: dict[tuple[str, int], list[StoredPoint]] = {}
            for point in points.values():
                if point.chunk is not None:
                    places.setdefault((point.chunk.path, point.chunk.position), []).append(point)
            if generation == self.generation:  # not written while this was built
                self.places = {place: tuple(found) for place, found in places.items()}

    def changed(self) -> None:
        self.generation += 1
        self._by_id, self.places = {}, None


def _kept(point: StoredPoint) -> StoredPoint:
    """A point read with payload and vector, as `_Points` keeps it: its dense vector as
    float32 and its `Chunk` built once."""
    payload = point.payload or {}
    return StoredPoint(
        id=point.id,
        payload=payload,
        dense=np.asarray(point.dense, dtype=np.float32) if point.dense else None,
        chunk=Chunk.from_payload(point.id, payload),
    )


def _scroll_page(shard: EdgeShard, *, request: ScrollRequest) -> tuple[list[Any], Any]:
    return shard.scroll(request)


def _open_shard(path: Path) -> EdgeShard:
    """Load an existing shard, translating the engine's lock error into ours."""
    try:
        return EdgeShard.load(str(path))
    except Exception as exc:
        if "WouldBlock" in str(exc):
            # The engine says "failed to open WAL ...: Can't init WAL: Kind(WouldBlock)";
            # the user gets one sentence that says what to do, no traceback.
            raise VectorStoreLocked(STORE_LOCKED_MESSAGE.format(path=path)) from None
        raise open_failed(path, exc) from exc


def _read_layout(path: Path) -> dict[str, Any] | None:
    """Return the shard's saved config, or None when the folder holds no shard."""
    try:
        return json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise open_failed(path, exc) from exc


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
                    store_core.STORE_CALL_FAILED_MESSAGE.format(
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
    """Return this process's edge engine over `QDRANT_PATH/edge`, creating it on first use.

    Raises:
        VectorStoreLocked: another process holds the data folder.
    """
    global _engine
    root = edge_root(config)
    with _engine_lock:
        if _engine is not None and _engine.root == root:
            return _engine
        if _engine is not None:  # settings changed under us: never keep two folders locked
            logger.info("vector store: switching edge engine from %s to %s", _engine.root, root)
            _engine.close()
        # One ragsite process per data folder, whatever the engine; a folder last used
        # by local mode has its stale edge files removed first (see datafolder).
        datafolder.claim(config, engine=ENGINE)
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


def _vector(vector: Vector | SparseVector) -> Any:
    if isinstance(vector, SparseVector):
        return EdgeSparseVector(list(vector.indices), list(vector.values))
    return [float(x) for x in vector]


def _paths_filter(paths: Sequence[str] | None) -> Filter | None:
    if paths is None:
        return None
    return Filter(must=[FieldCondition(key="path", match=MatchAny(list(paths)))])


class EdgeStore(StoreCore):
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
    def version(self) -> tuple[int, int]:
        """Changes whenever the collection may have changed: every write of this process
        (the shard's only writer: the engine locks the folder), a drop, a reopening.
        What a search found is still what it would find while this is the same."""
        points = self._handle.points
        return (points.serial, points.generation)

    @property
    def path(self) -> Path:
        """The collection's folder."""
        return self._handle.path

    # -- plumbing -----------------------------------------------------------------------

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

    # -- StoreCore hooks ----------------------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._handle.lock.exclusive():
            if self._handle.closed:
                raise self._failed("check the collection", ENGINE_CLOSED_ERROR)
            yield

    def _layout(self) -> Layout | None:
        handle = self._handle
        layout = _read_layout(handle.path)
        if layout is None:
            if handle.path.exists() and any(handle.path.iterdir()):
                # Something else lives in the folder: never write into it.
                return Layout(dense_size=None, has_sparse=False)
            return None
        dense = (layout.get("vectors") or {}).get(DENSE)
        sparse = layout.get("sparse_vectors") or {}
        if handle.shard is None:  # created meanwhile by another store object
            handle.shard = _open_shard(handle.path)
        return Layout(
            dense_size=dense.get("size") if isinstance(dense, dict) else None,
            has_sparse=SPARSE in sparse,
        )

    def _create(self, dimension: int) -> None:
        path = self._handle.path
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
        self._handle.shard = shard
        self._handle.points.changed()
        logger.info(
            "vector store: created edge collection %r in %s (%d-d dense + sparse IDF)",
            self.collection,
            path,
            dimension,
        )

    def _upsert_points(self, points: Sequence[tuple[Chunk, Vector, SparseVector | None]]) -> None:
        batch = [
            Point(
                chunk.id,
                {DENSE: dense, **({SPARSE: _vector(sparse)} if sparse else {})},
                chunk.payload(),
            )
            for chunk, dense, sparse in points
        ]
        with self._changing():
            self._call(
                "store chunks", lambda shard: shard.update(UpdateOperation.upsert_points(batch))
            )

    def _delete_ids(self, ids: Sequence[str]) -> None:
        with self._changing():
            self._call(
                "delete chunks",
                lambda shard: shard.update(UpdateOperation.delete_points(list(ids))),
                missing=None,
            )

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Forget the remembered points before and after a write (see `_Points`)."""
        points = self._handle.points
        points.changed()
        try:
            yield
        finally:
            points.changed()

    def _query(self, queries: Sequence[ChannelQuery]) -> list[list[StoredPoint]]:
        # Ids and scores from the engine; payloads and vectors from `_Points`.
        requests = [
            QueryRequest(
                limit=q.limit,
                query=Query.Nearest(_vector(q.vector), using=q.using),
                filter=_paths_filter(q.paths),
                with_payload=False,
                with_vector=False,
            )
            for q in queries
        ]
        generation = self._handle.points.generation
        # Several channels (a hybrid search's two halves) in one engine call.
        results = self._call(
            "search",
            lambda shard: shard.query_batch(QueryBatchRequest(requests)),
            missing=None,
        )
        if results is None:
            return [[] for _ in queries]
        ranked = [[(str(point.id), point.score) for point in points] for points in results]
        wanted = {
            key
            for q, points in zip(queries, ranked, strict=True)
            if q.with_payload or q.with_dense
            for key, _ in points
        }
        found = self._remembered(wanted, generation=generation)
        channels: list[list[StoredPoint]] = []
        for q, points in zip(queries, ranked, strict=True):
            if not (q.with_payload or q.with_dense):
                channels.append([StoredPoint(id=key, score=float(score)) for key, score in points])
                continue
            channels.append(
                [
                    StoredPoint(
                        id=key,
                        score=float(score),
                        payload=found[key].payload if q.with_payload else None,
                        dense=found[key].dense if q.with_dense else None,
                        chunk=found[key].chunk if q.with_payload else None,
                    )
                    for key, score in points
                    if key in found  # else deleted since the query
                ]
            )
        return channels

    def _remembered(self, ids: Iterable[str], *, generation: int) -> dict[str, StoredPoint]:
        """The points of `ids` from `_Points`; those not there yet are read (payload and
        vector) and kept, unless the collection changed since `generation` (taken before
        the engine call that found the ids). Deleted points are left out."""
        memory = self._handle.points
        found = memory.known(ids)
        if missing := [key for key in dict.fromkeys(ids) if key not in found]:
            read = {
                p.id: _kept(p)
                for batch in batches(missing, PAGE_SIZE)
                for p in self._retrieve(batch, with_payload=True, with_dense=True)
            }
            memory.remember(read, generation=generation)
            found.update(read)
        return found

    def _retrieve(self, ids: Sequence[str], *, with_payload: bool, with_dense: bool) -> list[Any]:
        records = self._call(
            "read vectors" if not with_payload else "read chunks",
            lambda shard: shard.retrieve(
                list(ids), with_payload=with_payload, with_vector=[DENSE] if with_dense else False
            ),
            missing=[],
        )
        return [stored_point(record) for record in records]

    def _scroll(self, path: str | None, offset: Any, limit: int) -> tuple[list[Any], Any]:
        flt = None
        if path is not None:
            flt = Filter(must=[FieldCondition(key="path", match=MatchValue(path))])
        request = ScrollRequest(
            offset=offset, limit=limit, filter=flt, with_payload=["path"], with_vector=False
        )
        records, offset = self._call(
            "list chunks", lambda shard: shard.scroll(request), missing=([], None)
        )
        return [stored_point(record) for record in records], offset

    def _placed(self, paths: Sequence[str], positions: Sequence[int], limit: int) -> list[Any]:
        # From `_Points` alone when it holds the whole collection. Else the pages' ids
        # from the engine (the path index; a filter on the position costs ~4x as much),
        # their chunks from `_Points` (read and kept when not there yet), the positions
        # picked here.
        places = self._handle.points.places
        if places is not None:
            found = (places.get((path, position), ()) for path in paths for position in positions)
            return [point for points in found for point in points][:limit]
        flt = Filter(must=[FieldCondition(key="path", match=MatchAny(list(paths)))])
        generation = self._handle.points.generation
        ids: list[str] = []
        offset: Any = None
        while True:
            request = ScrollRequest(
                offset=offset, limit=PAGE_SIZE, filter=flt, with_payload=False, with_vector=False
            )
            records, offset = self._call(
                "read chunks", functools.partial(_scroll_page, request=request), missing=([], None)
            )
            ids.extend(str(record.id) for record in records)
            if offset is None or not records:
                break
        found = self._remembered(ids, generation=generation)
        wanted = set(positions)
        points = (found[key] for key in ids if key in found)
        return [p for p in points if p.chunk is not None and p.chunk.position in wanted][:limit]

    # -- VectorStore (engine calls) -----------------------------------------------------

    def warm(self, limit: int) -> list[Chunk]:
        """Read up to `limit` points (payload and dense vector) into `_Points`, as searches
        would one by one, so the first questions after a start find them there."""
        memory = self._handle.points
        generation = memory.generation
        read: dict[str, StoredPoint] = {}
        offset: Any = None
        while len(read) < limit:
            request = ScrollRequest(
                offset=offset,
                limit=min(WARM_PAGE, limit - len(read)),
                with_payload=True,
                with_vector=[DENSE],
            )
            records, offset = self._call(
                "read chunks", functools.partial(_scroll_page, request=request), missing=([], None)
            )
            read.update((point.id, _kept(point)) for point in map(stored_point, records))
            if offset is None or not records:
                break
        memory.remember(read, generation=generation, whole=offset is None)
        return [point.chunk for point in read.values() if point.chunk is not None]

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
            handle.points.changed()
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
        return {**super().health(), "engine": ENGINE}

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
