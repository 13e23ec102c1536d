"""Chat models: an OpenAI-compatible API (the offline extractive answerer is extractive.py).

Both implement the `ChatModel` Protocol of types.py: `stream(request)` yields the
answer in pieces, `complete(messages)` returns a short non-streamed text. The `openai`
SDK itself, and the translation of its errors, stay in openai_clients.py.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from .exceptions import LLMError
from .openai_clients import OpenAIClients, sdk_errors
from .types import AnswerRequest, ChatMessage

if TYPE_CHECKING:
    from .config import RagConfig

logger = logging.getLogger(__name__)

LLM_EMPTY_MESSAGE = "The language model returned an empty answer."
# The extractive answer no longer starts with this (the `done` event's mode
# "extractive" is the one notice the reader gets); answering still strips it.
EXTRACTIVE_NOTICE = (
    "No language model is configured, so this answer quotes the most relevant passages of the book."
)
ANSWER_TEMPERATURE = 0.2
DEFAULT_MAX_TOKENS = 700  # LLM_MAX_TOKENS's default


# --- OpenAI-compatible chat model -------------------------------------------------


class OpenAIChatModel:
    """Chat completions from OpenAI or any OpenAI-compatible server (Ollama, vLLM, ...)."""

    provider = "openai"

    def __init__(
        self,
        *,
        model: str,
        api_key: str = "",
        base_url: str = "",
        timeout: float = 30.0,
        max_retries: int = 2,
        temperature: float = ANSWER_TEMPERATURE,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        """Configure the client; nothing is sent until the first call.

        `max_tokens` caps every call (answers and short completions alike).
        """
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._clients = OpenAIClients(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )

    @classmethod
    def from_config(cls, config: RagConfig) -> OpenAIChatModel:
        """Build the model from OPENAI_* settings."""
        return cls(
            model=config.openai_chat_model,
            api_key=config.openai_api_key,
            base_url=config.openai_base_url,
            timeout=config.openai_timeout,
            max_retries=config.openai_max_retries,
            max_tokens=config.llm_max_tokens,
        )

    async def stream(self, request: AnswerRequest) -> AsyncIterator[str]:
        """Yield the answer's text pieces as the model produces them; fill `request.usage`.

        Closing this generator (the reader left) closes the upstream HTTP stream.
        Raises LLMTimeout or LLMError once the SDK's retries are used up.
        """
        messages = _as_openai_messages(request.messages) or [
            {"role": "user", "content": request.question}
        ]
        client = self._clients.async_client()
        with sdk_errors(purpose="chat", model=self.model):
            stream = await client.chat.completions.create(
                model=self.model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                temperature=self.temperature,
                max_tokens=self.max_tokens,
            )
        # `async with` closes the response however we leave: done, error, or a
        # CancelledError/GeneratorExit thrown in at a `yield` when the reader leaves.
        async with stream:
            # Also a failure mid-stream (read timeout, reset).
            with sdk_errors(purpose="chat", model=self.model):
                async for chunk in stream:
                    if chunk.usage is not None:
                        request.usage.update(
                            prompt_tokens=chunk.usage.prompt_tokens,
                            completion_tokens=chunk.usage.completion_tokens,
                            total_tokens=chunk.usage.total_tokens,
                        )
                    for choice in chunk.choices:
                        if choice.delta is not None and choice.delta.content:
                            yield choice.delta.content

    async def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int = 256) -> str:
        """Return a short non-streamed completion; raises LLMTimeout or LLMError."""
        with sdk_errors(purpose="chat", model=self.model):
            response = await self._clients.async_client().chat.completions.create(
                model=self.model,
                messages=_as_openai_messages(messages),
                max_tokens=min(max_tokens, self.max_tokens),
                temperature=self.temperature,
            )
        if not response.choices or response.choices[0].message.content is None:
            raise LLMError(LLM_EMPTY_MESSAGE)
        return response.choices[0].message.content

    async def ping(self) -> None:
        """List the server's models (a real call that costs no tokens); raises LLMError."""
        with sdk_errors(purpose="chat", model=self.model):
            # No retries: health checks should report a dead server quickly.
            await self._clients.async_client().with_options(max_retries=0).models.list()

    async def aclose(self) -> None:
        """Close the HTTP connections opened from the running event loop (scripts, tests)."""
        await self._clients.aclose()


def _as_openai_messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": message.role, "content": message.content} for message in messages]


def stream_pieces(text: str) -> list[str]:
    """Split a text into word-sized pieces whose concatenation is the text."""
    return re.findall(r"\s*\S+\s*$|\s*\S+", text) or [text]
