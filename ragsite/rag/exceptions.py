"""The failures a caller can act on, one class each.

Each class carries the HTTP status and the error `code` the API answers with; the
mapping to a response lives in `ragsite.http.error_response`. Messages that tests
assert on are module constants.
"""

from __future__ import annotations

from typing import Any

STORE_LOCKED_MESSAGE = (
    "The embedded vector store in {path} is in use by another ragsite process "
    "(probably the running server). Stop the server first, or ingest through the "
    'admin\'s "Ingest now" action or POST /api/ingest.'
)
LLM_UNAVAILABLE_MESSAGE = "The language model could not be reached."
EMBEDDER_FAILED_MESSAGE = "The embedding model failed."


class RagError(Exception):
    """Base class of every ragsite failure; carries an API status and code."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str = "", *, details: dict[str, Any] | None = None):
        super().__init__(message or self.__doc__ or self.code)
        self.message = message or (self.__doc__ or self.code).strip()
        self.details = details or {}


class ConfigurationError(RagError):
    """A setting is missing or has a value ragsite cannot use."""

    code = "configuration_error"


class VectorStoreError(RagError):
    """The vector store failed or could not be reached."""

    status = 503
    code = "vector_store_unavailable"


class VectorStoreLocked(VectorStoreError):
    """The embedded store's folder is held by another process."""

    code = "vector_store_locked"


class DimensionMismatch(VectorStoreError):
    """The collection was built with an embedder of another dimension."""

    code = "dimension_mismatch"


class EmbeddingError(RagError):
    """The embedder failed to produce vectors."""

    status = 503
    code = "embedder_unavailable"


class LLMError(RagError):
    """The chat model failed (after retries) or returned something unusable."""

    status = 502
    code = "llm_unavailable"


class LLMTimeout(LLMError):
    """The chat model did not answer in time (after retries)."""

    code = "llm_timeout"


class BadRequest(RagError):
    """The request is malformed or fails validation."""

    status = 400
    code = "bad_request"


class NotFound(RagError):
    """The requested object does not exist."""

    status = 404
    code = "not_found"


class Unauthorized(RagError):
    """The request carries no credentials."""

    status = 401
    code = "unauthorized"


class Forbidden(RagError):
    """The credentials are wrong, or the endpoint is disabled."""

    status = 403
    code = "forbidden"


class RateLimited(RagError):
    """The caller is over its rate limit."""

    status = 429
    code = "rate_limited"


class IngestionRunning(RagError):
    """An ingestion is already running; only one may run at a time."""

    status = 409
    code = "ingestion_running"


class IngestionQueueUnavailable(RagError):
    """The ingestion queue (the Celery broker) cannot be reached."""

    status = 503
    code = "ingestion_queue_unavailable"


class PayloadTooLarge(RagError):
    """The request body is larger than API_MAX_BODY_BYTES."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(RagError):
    """The request body is not sent as application/json."""

    status = 415
    code = "unsupported_media_type"


class TooManyParameters(BadRequest):
    """The query string has more parameters than Django parses."""

    code = "too_many_parameters"


class PathOutsideBook(BadRequest):
    """The requested path escapes BOOK_DIR."""

    code = "path_outside_book"
