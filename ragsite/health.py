"""Health checks for `GET /api/health`, answered within about a second whatever fails.

The embedded components (SQLite, the vector store, the packaged model) are exercised
on every call under a short deadline; they cost milliseconds. Remote ones (an
OpenAI-compatible LLM or embedder) are probed in the background: a health request
waits at most `PROBE_WAIT_S` for a probe it started, then answers with the last known
result (or `degraded`, "not answered yet") while the probe goes on. Results are kept
`PROBE_OK_TTL_S` (a failure `PROBE_FAILED_TTL_S`), so a load balancer polling health
costs no tokens and a slow LLM never makes health slow.

Health also compares SQLite's chunk rows with the store's points (`degraded` on drift
outside an ingestion; `manage.py check_index --repair` fixes it), and this module's
`vector_store_gate` lets chat answer 503 at once when the store is unavailable.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.http import HttpResponse

import ragsite
from ingestion.overview import book_overview
from ingestion.selectors import index_summary

from .http import json_error
from .rag import providers
from .rag.config import get_config
from .rag.exceptions import IngestionRunning, RagError, VectorStoreError
from .rag.types import VectorStore

logger = logging.getLogger(__name__)

PROBE_WAIT_S = 0.7  # how long a health request waits for a probe it started
PROBE_TIMEOUT_S = 10.0  # a probe that takes longer reports `degraded`
PROBE_OK_TTL_S = 60.0
PROBE_FAILED_TTL_S = 10.0
LOCAL_CHECK_TIMEOUT_S = 0.8  # the store and the local embedder, per health request
STORE_GATE_OK_TTL_S = 2.0  # chat trusts a working store this long before asking again

STORE_UNAVAILABLE_MESSAGE = (
    "The book's search index is unavailable right now. Please try again in a minute."
)
PROBE_PENDING_MESSAGE = "No answer yet; the check goes on in the background."
PROBE_TIMEOUT_MESSAGE = "No answer within {seconds:g} s."
LOCAL_TIMEOUT_MESSAGE = "Busy: no answer within {seconds:g} s."
DRIFT_MESSAGE = (
    "SQLite lists {chunks} chunks but the vector store holds {points} points; "
    "run `python manage.py check_index --repair`."
)

Probe = Callable[[], Awaitable[dict[str, Any]]]


@dataclass
class _ProbeState:
    result: dict[str, Any] | None = None
    checked_at: float = 0.0
    task: asyncio.Task | None = None


_probes: dict[str, _ProbeState] = {}
_store_ok_at: float = 0.0


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def clear_cache() -> None:
    """Forget cached probe results and the store gate (tests)."""
    global _store_ok_at
    _probes.clear()
    _store_ok_at = 0.0


async def _run_probe(state: _ProbeState, probe: Probe, failed: dict[str, Any]) -> dict[str, Any]:
    try:
        result = await asyncio.wait_for(probe(), PROBE_TIMEOUT_S)
    except TimeoutError:
        result = {**failed, "error": PROBE_TIMEOUT_MESSAGE.format(seconds=PROBE_TIMEOUT_S)}
    state.result, state.checked_at = result, time.monotonic()
    return result


async def _background(key: str, probe: Probe, *, failed: dict[str, Any]) -> dict[str, Any]:
    """Return the probe's cached result, refreshing it in the background when stale.

    `failed` is the result shape (status, provider, model) to report while no probe
    has answered yet or when one times out.
    """
    state = _probes.setdefault(key, _ProbeState())
    now = time.monotonic()
    if state.result is not None:
        ttl = PROBE_OK_TTL_S if state.result.get("status") == "ok" else PROBE_FAILED_TTL_S
        if now - state.checked_at < ttl:
            return state.result
    loop = asyncio.get_running_loop()
    task = state.task
    # A task of another (finished) event loop, e.g. a test client's, is started afresh.
    started = task is None or task.done() or task.get_loop() is not loop
    if started:
        task = loop.create_task(_run_probe(state, probe, failed), name=f"health-{key}")
        state.task = task
    if state.result is not None:
        return state.result  # stale but known: the refresh goes on behind it
    if not started:  # an earlier request's probe is still out: do not wait for it again
        return {**failed, "error": PROBE_PENDING_MESSAGE}
    try:
        return await asyncio.wait_for(asyncio.shield(task), PROBE_WAIT_S)
    except TimeoutError:
        return {**failed, "error": PROBE_PENDING_MESSAGE}


async def _deadline(call: Callable[[], dict[str, Any]], *, busy: dict[str, Any]) -> dict[str, Any]:
    """Run a blocking check in a thread; `busy` if it has not answered in time."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(call), LOCAL_CHECK_TIMEOUT_S)
    except TimeoutError:
        return {**busy, "error": LOCAL_TIMEOUT_MESSAGE.format(seconds=LOCAL_CHECK_TIMEOUT_S)}


def check_database() -> dict[str, Any]:
    """Run a trivial query on the default database."""
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        logger.warning("health: database check failed: %s", exc)
        return {"status": "down", "error": str(exc)}
    finally:
        connection.close_if_unusable_or_obsolete()
    return {"status": "ok", "latency_ms": _elapsed_ms(started)}


def check_vector_store(store: VectorStore | None = None) -> dict[str, Any]:
    """Ask the store for its point count; `down` when it is unreachable or locked."""
    global _store_ok_at
    config = get_config()
    started = time.perf_counter()
    try:
        result = (store or providers.get_store()).health()
    except Exception as exc:
        logger.warning("health: vector store check failed: %s", exc)
        code = exc.code if isinstance(exc, RagError) else "vector_store_unavailable"
        return {"status": "down", "mode": config.store_mode, "code": code, "error": str(exc)}
    _store_ok_at = time.monotonic()
    return {**result, "latency_ms": _elapsed_ms(started)}


async def check_embedder() -> dict[str, Any]:
    """Embed one short text (in the background and cached for remote embedders)."""
    config = get_config()
    provider = config.embedding_provider
    model = (
        config.openai_embedding_model if provider == "openai" else "all-MiniLM-L6-v2 (int8 ONNX)"
    )

    async def probe() -> dict[str, Any]:
        started = time.perf_counter()
        try:
            embedder = await asyncio.to_thread(providers.get_embedder)
            vectors = await embedder.embed(["health check"])
            if len(vectors) != 1 or len(vectors[0]) != embedder.dimension:
                raise ValueError("unexpected vector shape")
        except Exception as exc:
            logger.warning("health: embedder check failed: %s", exc)
            return {"status": "down", "provider": provider, "model": model, "error": str(exc)}
        return {
            "status": "ok",
            "provider": provider,
            "model": embedder.model,
            "dimension": embedder.dimension,
            "latency_ms": _elapsed_ms(started),
        }

    if provider == "local":
        # Loading the model (once per process, ~2 s) is start-up, not slowness.
        loaded = providers.get_embedder.cache_info().currsize > 0
        try:
            return await asyncio.wait_for(
                probe(), LOCAL_CHECK_TIMEOUT_S if loaded else PROBE_TIMEOUT_S
            )
        except TimeoutError:  # the model is busy embedding an ingestion: slow, not broken
            return {
                "status": "degraded",
                "provider": provider,
                "model": model,
                "error": LOCAL_TIMEOUT_MESSAGE.format(seconds=LOCAL_CHECK_TIMEOUT_S),
            }
    return await _background(
        "embedder", probe, failed={"status": "down", "provider": provider, "model": model}
    )


_warmed: set[int] = set()


def _chat_model_warm() -> Any:
    model = providers.get_chat_model()
    clients = getattr(model, "_clients", None)  # OpenAIChatModel's OpenAIClients
    if clients is not None and id(model) not in _warmed:
        clients.sync_client().with_options(max_retries=0).models  # noqa: B018 - imports it
        _warmed.add(id(model))
    return model


async def check_llm() -> dict[str, Any]:
    """Report the chat model; a slow or unreachable LLM is `degraded` (extractive answers go on)."""
    config = get_config()
    if not config.llm_enabled:
        return {"status": "ok", "provider": "extractive", "model": "extractive"}
    failed = {"status": "degraded", "provider": "openai", "model": config.openai_chat_model}

    # Built, and the SDK's lazily imported modules loaded (~1 s once per process), in a
    # thread before the probe's wait starts: start-up is not slowness.
    model = await asyncio.to_thread(_chat_model_warm)

    async def probe() -> dict[str, Any]:
        from .rag.llm import OpenAIChatModel

        try:
            assert isinstance(model, OpenAIChatModel)  # noqa: S101 - llm_enabled guarantees it
            await model.ping()
        except Exception as exc:
            logger.warning("health: LLM check failed: %s", exc)
            message = exc.message if isinstance(exc, RagError) else str(exc)
            return {**failed, "error": message}
        return {"status": "ok", "provider": "openai", "model": config.openai_chat_model}

    return await _background("llm", probe, failed=failed)


def check_index(*, chunks: int, store: dict[str, Any]) -> dict[str, Any]:
    """Compare SQLite's chunk rows with the store's points (equal outside an ingestion)."""
    from ingestion.models import IngestionTask

    points = store.get("points")
    if store.get("status") != "ok" or points is None:
        return {"status": "unknown", "chunks": chunks, "points": None}
    ingesting = IngestionTask.objects.filter(status__in=IngestionTask.ACTIVE).exists()
    result: dict[str, Any] = {"status": "ok", "chunks": chunks, "points": points}
    if ingesting:
        result["ingesting"] = True  # the two move one page at a time: drift is expected
    elif chunks != points:
        result.update(status="degraded", error=DRIFT_MESSAGE.format(chunks=chunks, points=points))
    return result


def _index_document() -> dict[str, Any]:
    try:
        return index_summary()
    except Exception as exc:  # the database check reports the cause
        logger.warning("health: index summary failed: %s", exc)
        return {"documents": 0, "chunks": 0, "last_ingested_at": None}
    finally:
        connection.close_if_unusable_or_obsolete()


def _consistency(index: dict[str, Any], store: dict[str, Any]) -> dict[str, Any]:
    try:
        return check_index(chunks=index["chunks"], store=store)
    finally:
        connection.close_if_unusable_or_obsolete()


async def _store_checked() -> dict[str, Any]:
    try:
        # Opening the store (once per process; seconds for a big local one) is start-up,
        # not slowness: only the call to it runs under the deadline.
        store = await asyncio.to_thread(providers.get_store)
    except Exception:
        return await asyncio.to_thread(check_vector_store)  # reports why it cannot open
    return await _deadline(
        functools.partial(check_vector_store, store),
        busy={"status": "degraded", "mode": get_config().store_mode},
    )


async def health_report() -> tuple[dict[str, Any], int]:
    """Return the health document of API.md and its HTTP status (200, or 503 when down)."""
    database, store, embedder, llm, index = await asyncio.gather(
        _deadline(check_database, busy={"status": "degraded"}),
        _store_checked(),
        check_embedder(),
        check_llm(),
        asyncio.to_thread(_index_document),
    )
    consistency = await asyncio.to_thread(_consistency, index, store)
    checks = {
        "database": database,
        "vector_store": store,
        "embedder": embedder,
        "llm": llm,
        "index": consistency,
    }
    try:
        overview = await asyncio.to_thread(book_overview, questions=False)
        book = {k: getattr(overview, k) for k in ("title", "generator", "detected_from")}
    except Exception as exc:  # additive field: never what makes health fail
        logger.warning("health: book overview failed: %s", exc)
        book = {"title": "", "generator": "", "detected_from": ""}
    if any(checks[name]["status"] == "down" for name in ("database", "vector_store", "embedder")):
        status, code = "down", 503
    elif any(check["status"] not in {"ok", "unknown"} for check in checks.values()):
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    return {
        "status": status,
        "version": ragsite.__version__,
        "checks": checks,
        "index": index,
        "book": book,  # additive: the book's title and site generator (SITE_GENERATOR)
    }, code


async def vector_store_gate() -> HttpResponse | None:
    """Return a 503 JSON error when the vector store is unavailable, else None.

    Chat calls it before opening a stream, so a locked or unreachable store is a clear
    `vector_store_unavailable`/`vector_store_locked` 503 rather than a stream that ends
    in an error. A working store is trusted for STORE_GATE_OK_TTL_S; a failing one is
    asked again on every request, so the service recovers as soon as the store does.
    """
    if time.monotonic() - _store_ok_at < STORE_GATE_OK_TTL_S:
        return None
    result = await asyncio.to_thread(check_vector_store)
    if result["status"] == "ok":
        return None
    code = result.get("code") or VectorStoreError.code
    return json_error(code, STORE_UNAVAILABLE_MESSAGE, VectorStoreError.status)


# --- consistency of SQLite and the store (`manage.py check_index`) -------------------------


@dataclass
class IndexDrift:
    """What SQLite's chunk rows and the store's points disagree on, by page path."""

    chunks: int
    points: int
    missing: dict[str, set[str]]  # chunks without a point
    orphans: dict[str, set[str]]  # points without a chunk row

    @property
    def in_sync(self) -> bool:
        """True when every chunk has its point and every point its chunk."""
        return not self.missing and not self.orphans


def index_drift(*, store: VectorStore | None = None) -> IndexDrift:
    """Compare every DocumentChunk id with every point id of the book's collection.

    Raises:
        VectorStoreError: the store cannot be read (VectorStoreLocked: another process).
    """
    from ingestion.models import DocumentChunk

    store = store or providers.get_store()
    point_paths = store.ids_by_path()
    points = {pid: path for path, ids in point_paths.items() for pid in ids}
    chunks = dict(DocumentChunk.objects.values_list("id", "document__path"))
    missing: dict[str, set[str]] = {}
    for chunk_id, path in chunks.items():
        if chunk_id not in points:
            missing.setdefault(path, set()).add(chunk_id)
    orphans: dict[str, set[str]] = {}
    for point_id, path in points.items():
        if point_id not in chunks:
            orphans.setdefault(path, set()).add(point_id)
    return IndexDrift(chunks=len(chunks), points=len(points), missing=missing, orphans=orphans)


def index_repair(*, drift: IndexDrift, store: VectorStore | None = None) -> dict[str, int]:
    """Delete orphan points and rebuild the pages whose points are missing.

    Each page is re-ingested on its own (`book_ingest(path=...)`): an unchanged page is
    rebuilt from its file with the vectors of the embedding cache, so nothing is
    embedded again. Returns {"orphans_deleted", "pages_repaired", "pages_failed" (paths),
    "embeddings_computed"}.

    Raises:
        IngestionRunning: an ingestion is active (it would race the repair).
    """
    from django.conf import settings

    from ingestion.models import IngestionTask
    from ingestion.services import book_ingest

    store = store or providers.get_store()
    active = IngestionTask.objects.filter(status__in=IngestionTask.ACTIVE).first()
    if active is not None:
        raise IngestionRunning(details={"task_id": str(active.pk)})
    orphan_ids = sorted(set().union(*drift.orphans.values())) if drift.orphans else []
    if orphan_ids:
        store.delete(orphan_ids)
    computed, repaired, failed = 0, 0, []
    for path in sorted(drift.missing):
        try:
            task = book_ingest(
                book_dir=settings.BOOK_DIR, path=path, source="manage.py", store=store
            )
        except RagError as exc:  # e.g. the page's file is gone: a full ingest removes it
            logger.warning("check_index: could not rebuild %s: %s", path, exc.message)
            failed.append(path)
            continue
        if task.status != IngestionTask.Status.SUCCEEDED or task.files_failed:
            failed.append(path)
        else:
            repaired += 1
        computed += task.embeddings_computed
    return {
        "orphans_deleted": len(orphan_ids),
        "pages_repaired": repaired,
        "pages_failed": failed,
        "embeddings_computed": computed,
    }
