"""Chat API views (API.md): search, the streaming chat, feedback.

Views parse and validate, call one service, and format. Anything that goes wrong before
the first byte is an ordinary JSON error; once a stream has started, the service
reports failures as one `error` event. Input is validated by `ragsite.http` against
the models of `chat/schemas.py`. The API is for a widget on another origin (CORS is
configured) and uses no cookies, so it is CSRF-exempt: there is no session to protect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from chat.schemas import ChatRequest, FeedbackRequest, SearchParams
from chat.services import ChatEvent, answer_collect, answer_stream, book_search, feedback_submit
from chat.sse import sse_event, with_keepalive
from ragsite import observability as metrics
from ragsite.budget import budget_charge_result, budget_gate, budget_metered
from ragsite.health import vector_store_gate
from ragsite.http import allow_methods, error_response, parse_body, parse_query
from ragsite.rag.exceptions import RagError
from ragsite.ratelimit import async_ratelimit

logger = logging.getLogger(__name__)


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
        params = parse_query(request, SearchParams)
    except RagError as exc:
        return error_response(exc)
    if (unavailable := await vector_store_gate()) is not None:  # limits: 503, not a stream
        return unavailable
    try:
        retrieval = await book_search(query=params.q, k=params.k)
    except RagError as exc:
        return error_response(exc)
    return JsonResponse(
        {
            "query": params.q,
            "results": [_search_result(hit) for hit in retrieval.hits],
            "supported": retrieval.supported,  # the chat's `uncertain`, inverted
        },
        json_dumps_params={"ensure_ascii": False},
    )


async def _encoded(events: AsyncIterator[ChatEvent], *, request_id: str) -> AsyncIterator[bytes]:
    async for event in events:
        data = event.data()
        if event.name == "meta" and request_id:  # the access log's id, for support
            data["request_id"] = request_id
        yield sse_event(event.name, data)


@csrf_exempt
@allow_methods("POST")
@async_ratelimit(group="chat", rate_setting="CHAT_RATE_LIMIT")
async def chat(request: HttpRequest) -> HttpResponse:
    """POST /api/chat: the answer as an SSE stream (or one JSON object with stream:false)."""
    try:
        payload = parse_body(request, ChatRequest)
    except RagError as exc:
        return error_response(exc)
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
        if result.get("mode") == "llm":
            metrics.llm_tokens_count(result.get("usage") or {})
        result["request_id"] = getattr(request, "request_id", "")
        return JsonResponse(result, json_dumps_params={"ensure_ascii": False})
    response = StreamingHttpResponse(
        with_keepalive(
            _encoded(  # limits: budget_metered charges the LLM tokens of `done`
                metrics.chat_observed(
                    budget_metered(
                        answer_stream(**arguments), request=request, session_id=payload.session_id
                    ),
                    started=getattr(request, "started_at", time.perf_counter()),
                ),
                request_id=getattr(request, "request_id", ""),
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
        payload = parse_body(request, FeedbackRequest)
        await sync_to_async(feedback_submit)(
            message_id=payload.message_id, rating=payload.rating, comment=payload.comment
        )
    except RagError as exc:
        return error_response(exc)
    return HttpResponse(status=204)
