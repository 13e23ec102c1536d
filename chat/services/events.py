"""The chat stream's typed events (API.md's `meta`, `sources`, `token`, `done`, `error`)
and the typed outcome an answer leaves on its message row.

`answer_stream` yields these; the SSE view encodes each with `chat.sse.sse_event(
event.name, event.data())`, and `answer_collect` merges them for `stream: false`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from chat.models import Message
from ragsite.rag.exceptions import LLMError, RagError

ANSWER_FAILED_MESSAGE = "The answer could not be completed. Please try again."
INTERNAL_ERROR_MESSAGE = "Something went wrong on our side while answering."


@dataclass(frozen=True, slots=True)
class Meta:
    """First, always: the session and message the answer belongs to."""

    name: ClassVar[str] = "meta"
    session_id: str
    message_id: str

    def data(self) -> dict[str, Any]:
        """The event's JSON payload."""
        return {"session_id": self.session_id, "message_id": self.message_id}


@dataclass(frozen=True, slots=True)
class Sources:
    """Once, before any token: the numbered sources (`Source.as_dict()` each)."""

    name: ClassVar[str] = "sources"
    sources: list[dict[str, Any]]

    def data(self) -> dict[str, Any]:
        """The event's JSON payload."""
        return {"sources": self.sources}


@dataclass(frozen=True, slots=True)
class Token:
    """The next piece of the answer's text."""

    name: ClassVar[str] = "token"
    text: str

    def data(self) -> dict[str, Any]:
        """The event's JSON payload."""
        return {"text": self.text}


@dataclass(frozen=True, slots=True)
class Done:
    """Last, on success: the whole answer and what the reader needs around it."""

    name: ClassVar[str] = "done"
    answer: str
    citations: list[int]
    uncertain: bool
    follow_ups: list[str]
    mode: str
    usage: dict[str, Any]

    def data(self) -> dict[str, Any]:
        """The event's JSON payload."""
        return {
            "answer": self.answer,
            "citations": self.citations,
            "uncertain": self.uncertain,
            "follow_ups": self.follow_ups,
            "mode": self.mode,
            "usage": self.usage,
        }


@dataclass(frozen=True, slots=True)
class Failed:
    """Last, instead of `done`: the failure itself; the reader sees its code and a sentence."""

    name: ClassVar[str] = "error"
    error: RagError

    @property
    def message(self) -> str:
        """What the reader is told: the component's message for infrastructure failures,
        a generic one for the model (its details may name internal hosts)."""
        if isinstance(self.error, LLMError):
            return ANSWER_FAILED_MESSAGE
        if type(self.error) is RagError:
            return INTERNAL_ERROR_MESSAGE
        return self.error.message

    def data(self) -> dict[str, Any]:
        """The event's JSON payload."""
        return {"code": self.error.code, "message": self.message}


ChatEvent = Meta | Sources | Token | Done | Failed


@dataclass(slots=True)
class AnswerOutcome:
    """What one answer leaves on its message row (`message_store` stores it)."""

    status: str = Message.Status.PARTIAL
    mode: str = Message.Mode.EXTRACTIVE
    answer: str = ""
    rewritten_query: str = ""
    sources: list[dict[str, Any]] = field(default_factory=list)
    citations: list[int] = field(default_factory=list)
    uncertain: bool = False
    follow_ups: list[str] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    latency_ms: int | None = None
    ttft_ms: int | None = None
