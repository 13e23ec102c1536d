"""Ingestion API views. (Stub: replaced by the ingestion work.)"""

from ragsite.http import json_error


async def ingest(request):
    """POST /api/ingest."""
    return json_error("not_implemented", "Not implemented yet.", 501)


async def ingest_status(request, task_id=None):
    """GET /api/ingest/status[/<task_id>]."""
    return json_error("not_implemented", "Not implemented yet.", 501)
