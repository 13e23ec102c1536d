"""Read-only queries over the ingestion models. (Stub: replaced by the ingestion work.)"""

from __future__ import annotations

from typing import Any


def index_summary() -> dict[str, Any]:
    """Return {"documents", "chunks", "last_ingested_at"} for the health endpoint."""
    return {"documents": 0, "chunks": 0, "last_ingested_at": None}
