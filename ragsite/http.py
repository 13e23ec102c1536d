"""JSON helpers shared by every API view: one error shape, one place that maps
exceptions to statuses (API.md: `{"error": {"code", "message", "details"}}`)."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from .rag.exceptions import BadRequest, RagError

INVALID_JSON_MESSAGE = "The request body must be a JSON object."
METHOD_NOT_ALLOWED_MESSAGE = "This endpoint only accepts {methods}."

AsyncView = Callable[..., Awaitable[HttpResponse]]


def json_error(
    code: str, message: str, status: int, details: dict[str, Any] | None = None
) -> JsonResponse:
    """Return an API error response."""
    return JsonResponse(
        {"error": {"code": code, "message": message, "details": details or {}}}, status=status
    )


def error_response(exc: RagError) -> JsonResponse:
    """Map one of our exceptions to its API error response."""
    return json_error(exc.code, exc.message, exc.status, exc.details)


def parse_json_body(request: HttpRequest) -> dict[str, Any]:
    """Return the request body as a dict; an empty body is {}; raise BadRequest otherwise."""
    if not request.body:
        return {}
    try:
        data = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest(INVALID_JSON_MESSAGE) from None
    if not isinstance(data, dict):
        raise BadRequest(INVALID_JSON_MESSAGE)
    return data


def validation_details(error: Any) -> dict[str, Any]:
    """Return a pydantic ValidationError as {"fields": [{"field", "message"}]}."""
    return {
        "fields": [
            {"field": ".".join(str(p) for p in item["loc"]) or "body", "message": item["msg"]}
            for item in error.errors()
        ]
    }


def allow_methods(*methods: str) -> Callable[[AsyncView], AsyncView]:
    """Answer other methods with a JSON 405 (and an Allow header) before anything else."""

    def decorator(view: AsyncView) -> AsyncView:
        @functools.wraps(view)
        async def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in methods:
                response = json_error(
                    "method_not_allowed",
                    METHOD_NOT_ALLOWED_MESSAGE.format(methods=", ".join(methods)),
                    405,
                )
                response["Allow"] = ", ".join(methods)
                return response
            return await view(request, *args, **kwargs)

        return wrapped

    return decorator
