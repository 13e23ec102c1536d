"""Ingestion API (API.md): `POST /api/ingest`, `GET /api/ingest/status[/<task_id>]`."""

from __future__ import annotations

import hmac

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from ragsite.http import allow_methods, error_response, parse_body
from ragsite.rag.exceptions import Forbidden, NotFound, RagError, Unauthorized
from ragsite.ratelimit import async_ratelimit

from .schemas import IngestRequest
from .selectors import task_as_dict, task_get, task_latest
from .services import task_start

AUTH_MISSING_MESSAGE = "This endpoint needs an 'Authorization: Bearer <INGEST_TOKEN>' header."
AUTH_WRONG_MESSAGE = "The ingest token is not valid."
INGEST_DISABLED_MESSAGE = "Ingestion over the API is disabled: no INGEST_TOKEN is configured."
NO_TASK_MESSAGE = "No ingestion has run yet."
UNKNOWN_TASK_MESSAGE = "No ingestion task with this id."


def _check_token(request: HttpRequest) -> None:
    """Raise unless the request carries the configured bearer token."""
    expected = settings.INGEST_TOKEN
    if not expected:  # disabled, whatever the request carries
        raise Forbidden(INGEST_DISABLED_MESSAGE)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(AUTH_MISSING_MESSAGE)
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Forbidden(AUTH_WRONG_MESSAGE)


@csrf_exempt  # bearer-token API, no cookies involved
@allow_methods("POST")
@async_ratelimit(group="ingest", rate_setting="INGEST_RATE_LIMIT")  # wrong tokens count too
async def ingest(request: HttpRequest) -> JsonResponse:
    """POST /api/ingest: start an ingestion in the background; 202 with its task id."""
    try:
        _check_token(request)
        body = parse_body(request, IngestRequest)
        task = await sync_to_async(task_start)(source="api", path=body.path, force=body.force)
    except RagError as exc:
        return error_response(exc)
    return JsonResponse({"task_id": str(task.id), "status": task.status}, status=202)


@allow_methods("GET", "HEAD")
async def ingest_status(request: HttpRequest, task_id: str | None = None) -> JsonResponse:
    """GET /api/ingest/status[/<task_id>]: the latest task, or the one named."""
    if task_id is None:
        task = await sync_to_async(task_latest)()
        if task is None:
            return error_response(NotFound(NO_TASK_MESSAGE))
    else:
        task = await sync_to_async(task_get)(task_id)
        if task is None:
            return error_response(NotFound(UNKNOWN_TASK_MESSAGE, details={"task_id": task_id}))
    return JsonResponse(task_as_dict(task))
