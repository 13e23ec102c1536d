"""The composition root: which embedder, chat model and vector store this process uses.

Each getter builds its component lazily on first call and caches it, so importing
ragsite never opens the embedded Qdrant folder (it may be locked by another process)
or loads the ONNX model. Tests call `reset()` (wired to Django's `setting_changed`).
"""

from __future__ import annotations

import functools
import sys
import threading

from django.core.signals import setting_changed

from .config import get_config
from .sentences import NoSentenceVectors, SentenceVectors
from .types import ChatModel, Embedder, VectorStore

_lock = threading.Lock()


@functools.cache
def get_embedder() -> Embedder:
    """Return the configured embedder (`local` packaged ONNX model, or `openai`)."""
    config = get_config()
    if config.embedding_provider == "openai":
        from .embeddings import OpenAIEmbedder

        return OpenAIEmbedder.from_config(config)
    from .embeddings import LocalEmbedder

    return LocalEmbedder.default(config.local_embedding_graph)


def get_ingestion_embedder() -> Embedder:
    """Return the embedder for one ingestion run (not cached: the run drops it).

    For the packaged model, a session of its own with onnxruntime's memory arena: ~1.5x
    the serving session's throughput on full chunks, and the arena's peak is freed with
    the session when the run ends. Any other embedder is `get_embedder()` itself.
    """
    from .embeddings import LocalEmbedder

    serving = get_embedder()
    if type(serving) is LocalEmbedder:
        return LocalEmbedder(memory_arena=True, graph=serving.graph)
    return serving


@functools.cache
def get_chat_model() -> ChatModel:
    """Return the OpenAI-compatible chat model when configured, else the extractive one."""
    config = get_config()
    if config.llm_enabled:
        from .llm import OpenAIChatModel

        return OpenAIChatModel.from_config(config)
    from .extractive import ExtractiveChatModel

    return ExtractiveChatModel()


@functools.cache
def get_extractive_model() -> ChatModel:
    """Return the extractive model (the fallback when the LLM fails before its first token)."""
    from .extractive import ExtractiveChatModel

    return ExtractiveChatModel()


_sentence_vectors: SentenceVectors = NoSentenceVectors()


def get_sentence_vectors() -> SentenceVectors:
    """Return where answering looks up the sentence vectors stored at ingestion.

    The ingestion app registers its database-backed lookup when Django starts
    (`ingestion.apps`); without it, sentences are embedded when an answer needs them.
    """
    return _sentence_vectors


def set_sentence_vectors(source: SentenceVectors) -> SentenceVectors:
    """Make `source` the sentence-vector lookup; return the previous one (to restore)."""
    global _sentence_vectors
    previous, _sentence_vectors = _sentence_vectors, source
    return previous


_stores: dict[str, VectorStore] = {}


def get_store(collection: str | None = None) -> VectorStore:
    """Return the store for a collection (default: the book's), sharing one client.

    In embedded mode the first call claims the data folder (`datafolder.claim`: one
    process, one engine) and opens the store; a second process gets
    `VectorStoreLocked`, whatever its VECTOR_ENGINE. VECTOR_ENGINE=qdrant-edge swaps the embedded
    engine for qdrant-edge (`EdgeStore`); server mode always uses qdrant-client.
    """
    config = get_config()
    name = collection or config.qdrant_collection
    with _lock:
        store = _stores.get(name)
        if store is None:
            if config.store_mode == "embedded" and config.vector_engine == "qdrant-edge":
                from .edgestore import EdgeStore, get_engine

                store = EdgeStore(get_engine(config), name)
            else:
                from .vectorstore import QdrantOptions, QdrantStore, get_client

                store = QdrantStore(
                    get_client(config), name, options=QdrantOptions.from_config(config)
                )
            _stores[name] = store
        return store


def embedder_ready() -> bool:
    """True once the embedder is built: getting it is then a cache hit, fine on the
    event loop (building it loads the model: a worker thread's job)."""
    return get_embedder.cache_info().currsize > 0


def serving_ready() -> bool:
    """True once the embedder and the book's store are built: getting them is then a
    cache hit, fine on the event loop."""
    return embedder_ready() and get_config().qdrant_collection in _stores


def reset() -> None:
    """Forget every cached component and the config (tests, settings changes)."""
    from . import config as config_module

    with _lock:
        _stores.clear()
        get_embedder.cache_clear()
        get_chat_model.cache_clear()
        get_extractive_model.cache_clear()
        config_module.get_config.cache_clear()
        edgestore = sys.modules.get(f"{__package__}.edgestore")
        if edgestore is not None:  # only if the edge engine was ever used
            edgestore.close_engine()
        vectorstore = sys.modules.get(f"{__package__}.vectorstore")
        if vectorstore is not None:  # only if qdrant-client was ever used
            vectorstore.close_client()
        datafolder = sys.modules.get(f"{__package__}.datafolder")
        if datafolder is not None:  # after the engines: they hold files in the folder
            datafolder.release()


def _on_setting_changed(**kwargs) -> None:
    reset()


setting_changed.connect(_on_setting_changed, dispatch_uid="ragsite_providers_reset")
