"""A frozen view of the settings the service package needs, built once.

`settings.py` reads the environment; this module only copies and checks what the
adapters use, so they never import `django.conf` themselves.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from .exceptions import ConfigurationError


@dataclass(frozen=True, slots=True)
class RagConfig:
    """Everything the adapters and services read from settings."""

    data_dir: Path
    book_dir: Path
    site_url: str
    site_docs_prefix: str
    site_generator: str  # "auto" or a name from ingestion.sites.GENERATORS
    qdrant_url: str
    qdrant_api_key: str
    qdrant_path: Path
    qdrant_collection: str
    qdrant_timeout: float
    qdrant_prefer_grpc: bool
    qdrant_retries: int
    qdrant_shards: int
    qdrant_replicas: int
    qdrant_on_disk_payload: bool
    vector_engine: str  # embedded mode only: "qdrant-local" | "qdrant-edge"
    embedding_provider: str
    embedding_batch_size: int
    local_embedding_graph: str  # "int8" | "packaged" (embeddings.LOCAL_GRAPHS)
    openai_embedding_model: str
    openai_embedding_dimensions: int
    openai_api_key: str
    openai_base_url: str
    openai_chat_model: str
    openai_timeout: float
    openai_max_retries: int
    llm_provider: str
    llm_max_tokens: int
    llm_first_token_timeout_s: float
    llm_answer_timeout_s: float
    rewrite_timeout_s: float
    chunk_tokens: int
    chunk_overlap_tokens: int
    ingest_ignore: tuple[str, ...]
    retrieval_k: int
    retrieval_score_floor: float
    context_token_budget: int
    chat_history_turns: int
    chat_session_idle_minutes: int
    retrieval_pool: int = 50
    retrieval_fusion: str = "blend"
    retrieval_dense_weight: float = 0.45
    retrieval_sentence_weight: float = 0.5
    retrieval_token_weight: float = 1.5
    retrieval_confident_score: float = 0.45
    retrieval_missing_terms: float = 0.2

    @property
    def llm_enabled(self) -> bool:
        """True when answers come from an OpenAI-compatible model."""
        if self.llm_provider == "extractive":
            return False
        if self.llm_provider == "openai":
            return True
        return bool(self.openai_api_key or self.openai_base_url)

    @property
    def store_mode(self) -> str:
        """'server' with QDRANT_URL, else 'embedded'."""
        return "server" if self.qdrant_url else "embedded"


@functools.cache
def get_config() -> RagConfig:
    """Return the configuration, built from django.conf.settings on first use."""
    try:
        return RagConfig(
            data_dir=Path(settings.DATA_DIR),
            book_dir=Path(settings.BOOK_DIR),
            site_url=settings.SITE_URL,
            site_docs_prefix=settings.SITE_DOCS_PREFIX,
            site_generator=settings.SITE_GENERATOR,
            qdrant_url=settings.QDRANT_URL,
            qdrant_api_key=settings.QDRANT_API_KEY,
            qdrant_path=Path(settings.QDRANT_PATH),
            qdrant_collection=settings.QDRANT_COLLECTION,
            qdrant_timeout=settings.QDRANT_TIMEOUT,
            qdrant_prefer_grpc=settings.QDRANT_PREFER_GRPC,
            qdrant_retries=settings.QDRANT_RETRIES,
            qdrant_shards=settings.QDRANT_SHARDS,
            qdrant_replicas=settings.QDRANT_REPLICAS,
            qdrant_on_disk_payload=settings.QDRANT_ON_DISK_PAYLOAD,
            vector_engine=settings.VECTOR_ENGINE,
            embedding_provider=settings.EMBEDDING_PROVIDER,
            embedding_batch_size=settings.EMBEDDING_BATCH_SIZE,
            local_embedding_graph=settings.LOCAL_EMBEDDING_GRAPH,
            openai_embedding_model=settings.OPENAI_EMBEDDING_MODEL,
            openai_embedding_dimensions=settings.OPENAI_EMBEDDING_DIMENSIONS,
            openai_api_key=settings.OPENAI_API_KEY,
            openai_base_url=settings.OPENAI_BASE_URL,
            openai_chat_model=settings.OPENAI_CHAT_MODEL,
            openai_timeout=settings.OPENAI_TIMEOUT,
            openai_max_retries=settings.OPENAI_MAX_RETRIES,
            llm_provider=settings.LLM_PROVIDER,
            llm_max_tokens=settings.LLM_MAX_TOKENS,
            llm_first_token_timeout_s=settings.LLM_FIRST_TOKEN_TIMEOUT_S,
            llm_answer_timeout_s=settings.LLM_ANSWER_TIMEOUT_S,
            rewrite_timeout_s=settings.REWRITE_TIMEOUT_S,
            chunk_tokens=settings.CHUNK_TOKENS,
            chunk_overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
            ingest_ignore=tuple(settings.INGEST_IGNORE),
            retrieval_k=settings.RETRIEVAL_K,
            retrieval_score_floor=settings.RETRIEVAL_SCORE_FLOOR,
            context_token_budget=settings.CONTEXT_TOKEN_BUDGET,
            chat_history_turns=settings.CHAT_HISTORY_TURNS,
            chat_session_idle_minutes=settings.CHAT_SESSION_IDLE_MINUTES,
            retrieval_pool=settings.RETRIEVAL_POOL,
            retrieval_fusion=settings.RETRIEVAL_FUSION,
            retrieval_dense_weight=settings.RETRIEVAL_DENSE_WEIGHT,
            retrieval_sentence_weight=settings.RETRIEVAL_SENTENCE_WEIGHT,
            retrieval_token_weight=settings.RETRIEVAL_TOKEN_WEIGHT,
            retrieval_confident_score=settings.RETRIEVAL_CONFIDENT_SCORE,
            retrieval_missing_terms=settings.RETRIEVAL_MISSING_TERMS,
        )
    except AttributeError as exc:  # a settings module without a ragsite setting
        raise ConfigurationError(f"Missing ragsite setting: {exc}") from exc
