"""Health checks for `GET /api/health`: each component is really exercised.

The embedded components (SQLite, local Qdrant, the packaged model) are checked on
every call; they cost milliseconds. Remote ones (an OpenAI-compatible server) are
checked at most once a minute so a load balancer polling health costs no tokens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from django.db import connection

import ragsite
from ingestion.selectors import index_summary

from .rag import providers
from .rag.config import get_config

logger = logging.getLogger(__name__)

REMOTE_CHECK_TTL_S = 60.0
_remote_cache: dict[str, tuple[float, dict[str, Any]]] = {}


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


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


def check_vector_store() -> dict[str, Any]:
    """Ask the store for its point count."""
    config = get_config()
    started = time.perf_counter()
    try:
        result = providers.get_store().health()
    except Exception as exc:
        logger.warning("health: vector store check failed: %s", exc)
        return {"status": "down", "mode": config.store_mode, "error": str(exc)}
    return {**result, "latency_ms": _elapsed_ms(started)}


async def check_embedder() -> dict[str, Any]:
    """Embed one short text (cached for remote embedders)."""
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
        return await probe()
    return await _cached("embedder", probe)


async def check_llm() -> dict[str, Any]:
    """Report the chat model; an unreachable LLM is `degraded` (extractive answers go on)."""
    config = get_config()
    if not config.llm_enabled:
        return {"status": "ok", "provider": "extractive", "model": "extractive"}

    async def probe() -> dict[str, Any]:
        from .rag.llm import OpenAIChatModel

        model = providers.get_chat_model()
        try:
            assert isinstance(model, OpenAIChatModel)  # noqa: S101 - llm_enabled guarantees it
            await model.ping()
        except Exception as exc:
            logger.warning("health: LLM check failed: %s", exc)
            return {
                "status": "degraded",
                "provider": "openai",
                "model": config.openai_chat_model,
                "error": str(exc),
            }
        return {"status": "ok", "provider": "openai", "model": config.openai_chat_model}

    return await _cached("llm", probe)


async def _cached(key: str, probe) -> dict[str, Any]:
    now = time.monotonic()
    hit = _remote_cache.get(key)
    if hit and now - hit[0] < REMOTE_CHECK_TTL_S:
        return hit[1]
    result = await probe()
    _remote_cache[key] = (now, result)
    return result


def clear_cache() -> None:
    """Forget cached remote checks (tests)."""
    _remote_cache.clear()


async def health_report() -> tuple[dict[str, Any], int]:
    """Return the health document of API.md and its HTTP status."""
    database, store, embedder, llm = await asyncio.gather(
        asyncio.to_thread(check_database),
        asyncio.to_thread(check_vector_store),
        check_embedder(),
        check_llm(),
    )
    checks = {"database": database, "vector_store": store, "embedder": embedder, "llm": llm}
    try:
        index = await asyncio.to_thread(index_summary)
    except Exception as exc:  # the database check above reports the cause
        logger.warning("health: index summary failed: %s", exc)
        index = {"documents": 0, "chunks": 0, "last_ingested_at": None}
    if any(checks[name]["status"] == "down" for name in ("database", "vector_store", "embedder")):
        status, code = "down", 503
    elif llm["status"] != "ok":
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    return {
        "status": status,
        "version": ragsite.__version__,
        "checks": checks,
        "index": index,
    }, code
