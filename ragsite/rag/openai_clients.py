"""The `openai` SDK clients shared by the OpenAI embedder and chat model.

httpx connection pools belong to the event loop that opened them, so each running
loop (uvicorn's, a test's, an `asyncio.run` in a command) gets its own async client;
sync callers (ingestion in a worker thread) share one sync client.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import openai

# The SDK insists on a key even for local servers (Ollama, vLLM) that ignore it.
PLACEHOLDER_API_KEY = "not-needed"  # noqa: S105


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
