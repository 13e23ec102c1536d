"""Chat API views (API.md): search, the streaming chat, feedback.

Views parse and validate, call one service, and format. Anything that goes wrong before
the first byte is an ordinary JSON error; once a stream has started, the service
reports failures as one `error` event. The chat is a public API for a widget on
another origin (CORS is configured), so it is CSRF-exempt: there is no cookie session
to protect.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from pydantic import ValidationError

from chat.schemas import ChatRequest, FeedbackRequest, SearchParams
from chat.services import answer_collect, answer_stream, book_search, feedback_submit
from chat.sse import sse_event, with_keepalive
from ragsite.budget import budget_charge_result, budget_gate, budget_metered
from ragsite.health import vector_store_gate
from ragsite.http import (
    allow_methods,
    error_response,
    json_error,
    parse_json_body,
    validation_details,
)
from ragsite.rag.exceptions import BadRequest, RagError
from ragsite.ratelimit import async_ratelimit

logger = logging.getLogger(__name__)

INVALID_REQUEST_MESSAGE = "The request is invalid."


def _invalid(error: ValidationError) -> JsonResponse:
    details = validation_details(error)
    # Lead with the first problem so the widget can show one readable sentence.
    first = details["fields"][0]["message"] if details["fields"] else INVALID_REQUEST_MESSAGE
    return json_error("bad_request", first.removeprefix("Value error, "), 400, details)


def _search_result(hit: Any) -> dict[str, Any]:
    chunk = hit.chunk
    return {
        "id": chunk.id,
        "score": round(hit.score, 4),
        "text": chunk.text,
        "title": chunk.title,
        "heading": chunk.heading,
        "path": chunk.path,
        "url": chunk.url,
    }


@allow_methods("GET")
@async_ratelimit(group="search", rate_setting="SEARCH_RATE_LIMIT")
async def search(request: HttpRequest) -> HttpResponse:
    """GET /api/search?q=&k=: the book's best distinct chunks for a query."""
    try:
        params = SearchParams.model_validate(
            {key: request.GET[key] for key in ("q", "k") if request.GET.get(key, "") != ""}
        )
    except ValidationError as exc:
        return _invalid(exc)
    if (unavailable := await vector_store_gate()) is not None:  # limits: 503, not a stream
        return unavailable
    try:
        retrieval = await book_search(query=params.q, k=params.k)
    except RagError as exc:
        return error_response(exc)
    return JsonResponse(
        {"query": params.q, "results": [_search_result(hit) for hit in retrieval.hits]},
        json_dumps_params={"ensure_ascii": False},
    )


async def _encoded(events: AsyncIterator[tuple[str, dict[str, Any]]]) -> AsyncIterator[bytes]:
    async for event, data in events:
        yield sse_event(event, data)


@csrf_exempt
@allow_methods("POST")
@async_ratelimit(group="chat", rate_setting="CHAT_RATE_LIMIT")
async def chat(request: HttpRequest) -> HttpResponse:
    """POST /api/chat: the answer as an SSE stream (or one JSON object with stream:false)."""
    try:
        body = parse_json_body(request)
        payload = ChatRequest.model_validate(body)
    except BadRequest as exc:
        return error_response(exc)
    except ValidationError as exc:
        return _invalid(exc)
    if (unavailable := await vector_store_gate()) is not None:  # limits: 503, not a stream
        return unavailable
    if (spent := await budget_gate(request, session_id=payload.session_id)) is not None:
        return spent  # limits: daily LLM token budget (ragsite/budget.py)
    arguments = {
        "message": payload.message,
        "session_id": payload.session_id,
        "selection": payload.selection,
    }
    if not payload.stream:
        try:
            result = await answer_collect(**arguments)
        except RagError as exc:
            return error_response(exc)
        await budget_charge_result(request, result)  # limits: charge the LLM tokens
        return JsonResponse(result, json_dumps_params={"ensure_ascii": False})
    response = StreamingHttpResponse(
        with_keepalive(
            _encoded(  # limits: budget_metered charges the LLM tokens of `done`
                budget_metered(
                    answer_stream(**arguments), request=request, session_id=payload.session_id
                )
            )
        ),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@csrf_exempt
@allow_methods("POST")
@async_ratelimit(group="feedback", rate_setting="FEEDBACK_RATE_LIMIT")
async def feedback(request: HttpRequest) -> HttpResponse:
    """POST /api/feedback: a reader's thumbs up/down on an answer → 204."""
    try:
        payload = FeedbackRequest.model_validate(parse_json_body(request))
        await sync_to_async(feedback_submit)(
            message_id=payload.message_id, rating=payload.rating, comment=payload.comment
        )
    except ValidationError as exc:
        return _invalid(exc)
    except RagError as exc:
        return error_response(exc)
    return HttpResponse(status=204)
