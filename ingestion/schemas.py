"""Request and response models of the ingestion API (API.md).

`IngestRequest` validates the body of POST /api/ingest before any file is touched;
the others describe the answers for the OpenAPI document (`ragsite.openapi`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

PATH_MAX_BYTES = 1024
PATH_PART_MAX_BYTES = 255  # NAME_MAX: a longer component makes the OS raise, not answer

PATH_TOO_LONG_MESSAGE = f"The path is longer than {PATH_MAX_BYTES} bytes."
PATH_PART_TOO_LONG_MESSAGE = f"A path component is longer than {PATH_PART_MAX_BYTES} bytes."

TaskStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class IngestRequest(BaseModel):
    """The optional JSON body of POST /api/ingest."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        default=None,
        max_length=PATH_MAX_BYTES,
        description="A folder or file inside BOOK_DIR, relative to it (default: the whole book).",
    )
    force: StrictBool = Field(default=False, description="Re-embed unchanged pages too.")

    @field_validator("path")
    @classmethod
    def _fits_the_filesystem(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value.encode("utf-8", "surrogatepass")) > PATH_MAX_BYTES:
            raise ValueError(PATH_TOO_LONG_MESSAGE)
        parts = value.replace("\\", "/").split("/")
        if any(len(part.encode("utf-8", "surrogatepass")) > PATH_PART_MAX_BYTES for part in parts):
            raise ValueError(PATH_PART_TOO_LONG_MESSAGE)
        return value


class IngestAccepted(BaseModel):
    """202 from POST /api/ingest."""

    task_id: str
    status: TaskStatus


class IngestFileError(BaseModel):
    """One file an ingestion could not index."""

    path: str
    message: str


class IngestStatus(BaseModel):
    """GET /api/ingest/status[/<task_id>]: one ingestion task."""

    task_id: str
    status: TaskStatus
    source: Literal["manage.py", "api", "admin"]
    book_dir: str
    files_total: int
    files_done: int
    files_unchanged: int
    files_failed: int
    files_deleted: int
    chunks_added: int
    chunks_deleted: int
    embeddings_computed: int
    progress: float = Field(ge=0, le=1)
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    errors: list[IngestFileError]
