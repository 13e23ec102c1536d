"""Request bodies of the chat API (API.md), validated with pydantic before any work starts.

Strict mode: a number where a string belongs, or `"stream": "yes"`, is a 400, never
silently coerced.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MESSAGE_MAX_CHARS = 2000
SELECTION_MAX_CHARS = 5000
COMMENT_MAX_CHARS = 2000
SEARCH_K_DEFAULT = 5
SEARCH_K_MAX = 50

EMPTY_MESSAGE_MESSAGE = "The message is empty."


class ChatRequest(BaseModel):
    """POST /api/chat."""

    model_config = ConfigDict(strict=True, extra="ignore", str_strip_whitespace=True)

    message: str = Field(max_length=MESSAGE_MAX_CHARS)
    session_id: str | None = None
    selection: str | None = Field(default=None, max_length=SELECTION_MAX_CHARS)
    stream: bool = True

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value:
            raise ValueError(EMPTY_MESSAGE_MESSAGE)
        return value

    @field_validator("selection", "session_id")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class FeedbackRequest(BaseModel):
    """POST /api/feedback."""

    model_config = ConfigDict(strict=True, extra="ignore", str_strip_whitespace=True)

    message_id: str = Field(min_length=1, max_length=100)
    rating: Literal["up", "down"]
    comment: str = Field(default="", max_length=COMMENT_MAX_CHARS)

    @field_validator("comment", mode="before")
    @classmethod
    def _null_comment(cls, value: object) -> object:
        return "" if value is None else value


class SearchParams(BaseModel):
    """GET /api/search query parameters (strings from the URL, so not strict)."""

    model_config = ConfigDict(str_strip_whitespace=True)

    q: str = Field(min_length=1, max_length=MESSAGE_MAX_CHARS)
    k: int = Field(default=SEARCH_K_DEFAULT, ge=1, le=SEARCH_K_MAX)
