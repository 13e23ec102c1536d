"""The `openai` SDK: the only module that imports it.

`OpenAIClients` holds the clients shared by the OpenAI embedder and chat model. httpx
connection pools belong to the event loop that opened them, so each running loop
(uvicorn's, a test's, an `asyncio.run` in a command) gets its own async client; sync
callers (ingestion in a worker thread) share one sync client. `sdk_errors()` turns
every SDK failure, raised after the SDK's own retries, into our exceptions through one
function, `translate_error()`, so the adapters never name an `openai` type.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from .exceptions import (
    LLM_UNAVAILABLE_MESSAGE,
    EmbeddingError,
    LLMError,
    LLMTimeout,
    RagError,
)

if TYPE_CHECKING:
    import openai

logger = logging.getLogger(__name__)

# The SDK insists on a key even for local servers (Ollama, vLLM) that ignore it.
PLACEHOLDER_API_KEY = "not-needed"  # noqa: S105
LLM_TIMEOUT_MESSAGE = "The language model did not answer in time."
OPENAI_EMBEDDING_FAILED_MESSAGE = "The OpenAI-compatible embedding API failed: {error}"

Purpose = Literal["chat", "embeddings"]


def translate_error(exc: BaseException, *, purpose: Purpose, model: str) -> RagError:
    """Translate an SDK failure (raised after its own retries) into our exception.

    Embeddings give `EmbeddingError`; chat gives `LLMTimeout` for a timeout, else
    `LLMError`, with the upstream HTTP status in `details` when there was one.
    """
    import openai

    if purpose == "embeddings":
        logger.warning("embedding request to model %s failed: %s", model, exc)
        return EmbeddingError(OPENAI_EMBEDDING_FAILED_MESSAGE.format(error=exc))
    logger.warning("chat model %s failed: %s: %s", model, type(exc).__name__, exc)
    details: dict[str, Any] = {}
    status = getattr(exc, "status_code", None)
    if status is not None:
        details["upstream_status"] = status
    if isinstance(exc, openai.APITimeoutError):
        return LLMTimeout(LLM_TIMEOUT_MESSAGE, details=details)
    return LLMError(LLM_UNAVAILABLE_MESSAGE, details=details)


@contextlib.contextmanager
def sdk_errors(*, purpose: Purpose, model: str) -> Iterator[None]:
    """Raise `translate_error(...)` for an SDK failure inside the block (sync or async code).

    For embeddings a `ValueError` counts too: the SDK raises it for an answer without
    embedding data.
    """
    import openai

    caught: tuple[type[BaseException], ...] = (openai.OpenAIError,)
    if purpose == "embeddings":
        caught = (openai.OpenAIError, ValueError)
    try:
        yield
    except caught as exc:
        raise translate_error(exc, purpose=purpose, model=model) from exc


class OpenAIClients:
    """Lazily built `openai` clients with one set of options (key, base URL, timeouts)."""

    def __init__(self, *, api_key: str, base_url: str, timeout: float, max_retries: int) -> None:
        """Keep the options; nothing is built or sent until a client is asked for."""
        self.options: dict[str, Any] = {
            "api_key": api_key or PLACEHOLDER_API_KEY,
            "base_url": base_url or None,  # None: the SDK's default (api.openai.com)
            "timeout": timeout,
            "max_retries": max_retries,  # the SDK backs off exponentially on 5xx/timeouts
        }
        self._sync_client: openai.OpenAI | None = None
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def sync_client(self) -> openai.OpenAI:
        """Return the process's synchronous client."""
        import openai

        with self._lock:
            if self._sync_client is None:
                self._sync_client = openai.OpenAI(**self.options)
            return self._sync_client

    def async_client(self) -> openai.AsyncOpenAI:
        """Return the async client of the running event loop."""
        import openai

        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async_clients.get(loop)
            if client is None:
                client = openai.AsyncOpenAI(**self.options)
                self._async_clients[loop] = client
            return client

    def close(self) -> None:
        """Close the synchronous client's connections."""
        with self._lock:
            client, self._sync_client = self._sync_client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the running loop's async client and the sync client.

        A long-lived server never needs this; scripts and tests that run several
        event loops call it before their loop ends.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async_clients.pop(loop, None)
        if client is not None:
            await client.close()
        await asyncio.to_thread(self.close)
