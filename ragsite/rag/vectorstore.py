"""The qdrant-client adapter: the only module that imports `qdrant_client`.

Embedded mode (no QDRANT_URL) is qdrant-client's pure-Python local mode on a folder
that one process at a time may open; server mode talks to a Qdrant server or cluster.
Either way callers see only `QdrantStore`, which implements the `VectorStore` Protocol
with `store_core.StoreCore` (layout, search, fusion, paging: the same code as the
qdrant-edge engine), and our exceptions. This module holds only the SDK calls, the
client's lock, and server mode's retries and collection options.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from qdrant_client import QdrantClient, models

from . import datafolder
from .config import RagConfig
from .exceptions import STORE_LOCKED_MESSAGE, RagError, VectorStoreLocked
from .store_core import DENSE, SPARSE, ChannelQuery, Layout, StoreCore, open_failed, stored_point
from .types import Chunk, SparseVector, Vector

logger = logging.getLogger(__name__)

ENGINE = "qdrant-local"  # the embedded engine of this module (datafolder records it)
RETRY_BACKOFF_S = 0.5  # first pause between server retries; doubles each time

T = TypeVar("T")
_RAISE: Any = object()  # sentinel: no fallback value for a missing collection


@dataclass(frozen=True, slots=True)
class QdrantOptions:
    """How collections are created and calls retried (server mode; local mode ignores them)."""

    shards: int = 1
    replicas: int = 1
    on_disk_payload: bool = False
    retries: int = 0  # further tries of a call that failed on the network or with a 5xx

    @classmethod
    def from_config(cls, config: RagConfig) -> QdrantOptions:
        """Build the options from QDRANT_* settings."""
        return cls(
            shards=config.qdrant_shards,
            replicas=config.qdrant_replicas,
            on_disk_payload=config.qdrant_on_disk_payload,
            retries=config.qdrant_retries,
        )


def collection_args(dimension: int, options: QdrantOptions) -> dict[str, Any]:
    """Return the keyword arguments of `create_collection` for ragsite's layout.

    The same in both modes: local mode accepts shard_number, replication_factor and
    on_disk_payload and ignores them, so there is one code path to test here.
    """
    return {
        "vectors_config": {
            DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)
        },
        "sparse_vectors_config": {SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        "shard_number": options.shards,
        "replication_factor": options.replicas,
        "on_disk_payload": options.on_disk_payload,
    }


def client_args(config: RagConfig) -> dict[str, Any]:
    """Return the keyword arguments of `QdrantClient` for this configuration."""
    if not config.qdrant_url:
        return {"path": str(config.qdrant_path)}
    # check_compatibility=False: no version request at construction, so building the
    # client never blocks; an unreachable server fails on the first real call.
    return {
        "url": config.qdrant_url,
        "api_key": config.qdrant_api_key or None,
        "timeout": config.qdrant_timeout,
        "prefer_grpc": config.qdrant_prefer_grpc,
        "check_compatibility": False,
    }


def transient(exc: BaseException) -> bool:
    """True for a failure worth retrying: network, timeout, 429 or 5xx (REST or gRPC)."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(exc, ResponseHandlingException):  # httpx connect/read errors, wrapped
        return True
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code == 429 or exc.status_code >= 500
    code = getattr(exc, "code", None)  # grpc.RpcError, without importing grpc here
    if callable(code):
        with contextlib.suppress(Exception):
            return getattr(code(), "name", "") in {
                "UNAVAILABLE",
                "DEADLINE_EXCEEDED",
                "RESOURCE_EXHAUSTED",
            }
    return False


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
        return QdrantClient(**client_args(config))
    path = config.qdrant_path
    # One ragsite process per data folder, whatever the engine; a folder last used by
    # qdrant-edge has its stale local-mode files removed first (see datafolder).
    datafolder.claim(config, engine=ENGINE)
    try:
        return QdrantClient(**client_args(config))
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            # One sentence for the user; the qdrant traceback would only add noise.
            raise VectorStoreLocked(STORE_LOCKED_MESSAGE.format(path=path)) from None
        raise open_failed(path, exc) from exc
    except Exception as exc:  # permissions, a corrupt meta.json, a full disk...
        raise open_failed(path, exc) from exc


def get_client(config: RagConfig) -> QdrantClient:
    """Return this process's Qdrant client, opening it on first use.

    Embedded mode (empty QDRANT_URL) claims the data folder and opens
    `config.qdrant_path`, holding both locks until `providers.reset()` or exit.

    Raises:
        VectorStoreLocked: another process holds the data folder or the store's folder.
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
    """Close and forget this process's client (releases the store folder's own lock)."""
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


def _vector(vector: Vector | SparseVector) -> Any:
    if isinstance(vector, SparseVector):
        return models.SparseVector(indices=list(vector.indices), values=list(vector.values))
    return list(vector)


def _paths_filter(paths: Sequence[str] | None) -> models.Filter | None:
    if paths is None:
        return None
    return models.Filter(
        must=[models.FieldCondition(key="path", match=models.MatchAny(any=list(paths)))]
    )


class QdrantStore(StoreCore):
    """A `VectorStore` over one Qdrant collection with named dense and IDF-sparse vectors."""

    def __init__(
        self, client: QdrantClient, collection: str, *, options: QdrantOptions | None = None
    ) -> None:
        self._client = client
        self._lock = _call_lock(client)
        self.collection = collection
        self.mode = "embedded" if _is_local(client) else "server"
        self.options = options or QdrantOptions()

    def __repr__(self) -> str:
        return f"QdrantStore(mode={self.mode!r}, collection={self.collection!r})"

    # -- plumbing -----------------------------------------------------------------------

    def _call(
        self,
        action: str,
        fn: Callable[[], T],
        *,
        missing: T = _RAISE,
        retries: int | None = None,
    ) -> T:
        """Run one client call under the client's lock, translating its failures.

        In server mode a transient failure (network, timeout, 429, 5xx) is tried again
        `options.retries` times with a doubling pause: every call is idempotent (point
        ids are stable). With `missing`, a failure caused by the collection not
        existing returns `missing` instead (reads of a store nothing was ingested into).
        `retries` overrides `options.retries` (health checks pass 0).
        """
        if retries is None:
            retries = self.options.retries if self.mode == "server" else 0
        for attempt in range(retries + 1):
            with self._lock:
                try:
                    return fn()
                except RagError:
                    raise
                except Exception as exc:
                    if missing is not _RAISE and not self._exists_or_unknown():
                        return missing
                    if attempt < retries and transient(exc):
                        logger.info("vector store: %s failed (%s), retrying", action, exc)
                    else:
                        logger.warning("vector store: could not %s: %s", action, exc)
                        raise self._failed(action, exc) from exc
            time.sleep(RETRY_BACKOFF_S * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _exists_or_unknown(self) -> bool:
        try:
            return bool(self._client.collection_exists(self.collection))
        except Exception:  # the store itself is broken: report the original error
            return True

    # -- StoreCore hooks ----------------------------------------------------------------

    def _exclusive(self) -> contextlib.AbstractContextManager[Any]:
        return self._lock

    def _layout(self) -> Layout | None:
        name = self.collection
        if not self._call("check the collection", lambda: self._client.collection_exists(name)):
            return None
        info = self._call("read the collection", lambda: self._client.get_collection(name))
        vectors = info.config.params.vectors
        dense = vectors.get(DENSE) if isinstance(vectors, dict) else None
        sparse = info.config.params.sparse_vectors or {}
        return Layout(dense_size=dense.size if dense else None, has_sparse=SPARSE in sparse)

    def _create(self, dimension: int) -> None:
        args = collection_args(dimension, self.options)
        self._call(
            "create the collection", lambda: self._client.create_collection(self.collection, **args)
        )
        # Ingestion and scoped searches filter by path. Local mode ignores payload
        # indexes (and warns); creating it there too keeps one code path.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
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

    def _upsert_points(self, points: Sequence[tuple[Chunk, Vector, SparseVector | None]]) -> None:
        structs = [
            models.PointStruct(
                id=chunk.id,
                vector={DENSE: dense, **({SPARSE: _vector(sparse)} if sparse else {})},
                payload=chunk.payload(),
            )
            for chunk, dense, sparse in points
        ]
        self._call(
            "store chunks",
            lambda: self._client.upsert(self.collection, points=structs, wait=True),
        )

    def _delete_ids(self, ids: Sequence[str]) -> None:
        selector = models.PointIdsList(points=list(ids))
        self._call(
            "delete chunks",
            lambda: self._client.delete(self.collection, points_selector=selector, wait=True),
            missing=None,
        )

    def _query(self, queries: Sequence[ChannelQuery]) -> list[list[Any]]:
        requests = [
            models.QueryRequest(
                query=_vector(q.vector),
                using=q.using,
                filter=_paths_filter(q.paths),
                limit=q.limit,
                with_payload=q.with_payload,
                with_vector=[DENSE] if q.with_dense else False,
            )
            for q in queries
        ]
        responses = self._call(
            "search",
            lambda: self._client.query_batch_points(self.collection, requests=requests),
            missing=None,
        )
        if responses is None:
            return [[] for _ in queries]
        return [[stored_point(point) for point in response.points] for response in responses]

    def _retrieve(self, ids: Sequence[str], *, with_payload: bool, with_dense: bool) -> list[Any]:
        records = self._call(
            "read vectors" if not with_payload else "read chunks",
            lambda: self._client.retrieve(
                self.collection,
                ids=list(ids),
                with_payload=with_payload,
                with_vectors=[DENSE] if with_dense else False,
            ),
            missing=[],
        )
        return [stored_point(record) for record in records]

    def _scroll(self, path: str | None, offset: Any, limit: int) -> tuple[list[Any], Any]:
        flt = None
        if path is not None:
            flt = models.Filter(
                must=[models.FieldCondition(key="path", match=models.MatchValue(value=path))]
            )
        records, offset = self._call(
            "list chunks",
            lambda: self._client.scroll(
                self.collection,
                scroll_filter=flt,
                limit=limit,
                offset=offset,
                with_payload=["path"],
                with_vectors=False,
            ),
            missing=([], None),
        )
        return [stored_point(record) for record in records], offset

    def _placed(self, paths: Sequence[str], positions: Sequence[int], limit: int) -> list[Any]:
        flt = models.Filter(
            must=[
                models.FieldCondition(key="path", match=models.MatchAny(any=list(paths))),
                models.FieldCondition(key="position", match=models.MatchAny(any=list(positions))),
            ]
        )
        records, _ = self._call(
            "read chunks",
            lambda: self._client.scroll(
                self.collection,
                scroll_filter=flt,
                limit=limit,
                with_payload=True,
                with_vectors=False,
            ),
            missing=([], None),
        )
        return [stored_point(record) for record in records]

    # -- VectorStore (engine calls) -----------------------------------------------------

    def count(self) -> int:
        """Return the number of points in the collection (0 if it does not exist)."""
        return self._count(retries=None)

    def health(self) -> dict[str, Any]:
        """Return {"status", "mode", "points"}; raise VectorStoreError when broken.

        Never retried: a health check reports a dead server at once, not after the backoff.
        """
        return {"status": "ok", "mode": self.mode, "points": self._count(retries=0)}

    def _count(self, *, retries: int | None) -> int:
        response = self._call(
            "count chunks",
            lambda: self._client.count(self.collection, exact=True),
            missing=None,
            retries=retries,
        )
        return response.count if response is not None else 0

    def drop(self) -> None:
        """Delete the whole collection (no error if it does not exist)."""
        self._call("drop the collection", lambda: self._client.delete_collection(self.collection))
        logger.info("vector store: dropped collection %r", self.collection)
