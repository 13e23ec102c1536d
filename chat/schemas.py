"""Request and response models of the chat API (API.md).

Requests are validated with these models before any work starts (`ragsite.http`);
the OpenAPI document at /api/openapi.json is generated from all of them
(`ragsite.openapi`). Strict mode: a number where a string belongs, or
`"stream": "yes"`, is a 400, never silently coerced. Response models describe what the
views send; they ignore nothing and forbid nothing, so fields can be added.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MESSAGE_MAX_CHARS = 2000
SELECTION_MAX_CHARS = 5000
COMMENT_MAX_CHARS = 2000
SEARCH_K_DEFAULT = 5
SEARCH_K_MAX = 50

EMPTY_MESSAGE_MESSAGE = "The message is empty."


class ChatRequest(BaseModel):
    """POST /api/chat."""

    model_config = ConfigDict(
        strict=True,
        extra="ignore",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {"message": "How does LiDAR measure distance?"},
                {"message": "What is an IMU?", "stream": False},
            ]
        },
    )

    # minLength for the schema only: a blank message gets EMPTY_MESSAGE_MESSAGE below.
    message: str = Field(
        max_length=MESSAGE_MAX_CHARS,
        examples=["How does LiDAR measure distance?"],
        json_schema_extra={"minLength": 1},
    )
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

    q: str = Field(min_length=1, max_length=MESSAGE_MAX_CHARS, examples=["What is an IMU?"])
    k: int = Field(default=SEARCH_K_DEFAULT, ge=1, le=SEARCH_K_MAX)


# --- responses (documentation and the schemathesis contract test) -------------------------


class SearchResult(BaseModel):
    """One chunk of GET /api/search."""

    id: str = Field(description="Stable chunk id.")
    score: float
    text: str = Field(description="The chunk's text as embedded.")
    title: str = Field(description="The page title.")
    heading: str = Field(description='The heading breadcrumb, e.g. "Chapter 2 > Sensors".')
    path: str = Field(description="The page, relative to BOOK_DIR.")
    url: str | None = Field(description="The published page plus anchor (null: no SITE_URL).")


class SearchResponse(BaseModel):
    """GET /api/search."""

    query: str
    results: list[SearchResult]
    supported: bool = Field(
        description="Whether the book supports an answer (the chat's doubt, inverted): "
        "false when the results are only the closest the book has."
    )


class Source(BaseModel):
    """One source the answer may cite as [n]."""

    n: int = Field(ge=1)
    title: str
    heading: str
    url: str | None
    path: str | None
    score: float | None
    snippet: str


class MetaEvent(BaseModel):
    """Data of the `meta` event (first, always)."""

    session_id: str
    message_id: str
    request_id: str | None = Field(
        default=None, description="The X-Request-ID of this request, as in the access log."
    )


class SourcesEvent(BaseModel):
    """Data of the `sources` event (once, before any token)."""

    sources: list[Source]


class TokenEvent(BaseModel):
    """Data of a `token` event: the next piece of the answer."""

    text: str


class DoneEvent(BaseModel):
    """Data of the `done` event (last, on success)."""

    answer: str
    citations: list[int]
    uncertain: bool
    follow_ups: list[str]
    mode: Literal["llm", "extractive"]
    usage: dict[str, Any]


class ErrorEvent(BaseModel):
    """Data of the `error` event (last, instead of `done`)."""

    code: str
    message: str


class ChatResult(MetaEvent, SourcesEvent, DoneEvent):
    """POST /api/chat with `stream: false`: meta, sources and done merged."""
