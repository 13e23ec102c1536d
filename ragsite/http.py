"""The API's one validation layer: JSON bodies and query strings in, one error shape out.

Every API view parses its input here, against the pydantic model of its endpoint
(`chat/schemas.py`, `ingestion/schemas.py`), and every failure becomes the error shape
of API.md, `{"error": {"code", "message", "details"}}`, never Django's HTML pages. The
ASGI guard in `ragsite/guard.py` caps the body's size and read time before Django reads
it; this module checks again, so the Django test client (which bypasses ASGI) sees the
same answers.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from .rag.exceptions import (
    BadRequest,
    PayloadTooLarge,
    RagError,
    TooManyParameters,
    UnsupportedMediaType,
)

API_PREFIX = "/api/"
# Our bodies are flat objects; anything deeper than this is not a request of ours.
MAX_JSON_DEPTH = 32

INVALID_JSON_MESSAGE = "The request body must be a JSON object."
INVALID_REQUEST_MESSAGE = "The request is invalid."
TOO_DEEP_MESSAGE = f"The request body is nested more than {MAX_JSON_DEPTH} levels deep."
NUL_MESSAGE = "The request must not contain NUL characters."
UNSUPPORTED_MEDIA_MESSAGE = "The request body must be JSON, sent as Content-Type: application/json."
PAYLOAD_TOO_LARGE_MESSAGE = "The request body is larger than {limit} bytes."
TOO_MANY_PARAMETERS_MESSAGE = "The request has too many query parameters."
METHOD_NOT_ALLOWED_MESSAGE = "This endpoint only accepts {methods}."
NOT_FOUND_MESSAGE = "No such endpoint."
CSRF_FAILED_MESSAGE = "The request was refused by the CSRF check."
FORBIDDEN_MESSAGE = "This request is not allowed."
INTERNAL_ERROR_MESSAGE = "Something went wrong on our side."

# The only details a 5xx answer keeps: ids the caller already knows, never paths or hosts.
PUBLIC_DETAILS = frozenset({"message_id", "task_id", "retry_after"})

logger = logging.getLogger(__name__)

AsyncView = Callable[..., Awaitable[HttpResponse]]
Model = TypeVar("Model", bound=BaseModel)


def json_error(
    code: str, message: str, status: int, details: dict[str, Any] | None = None
) -> JsonResponse:
    """Return an API error response."""
    return JsonResponse(
        {"error": {"code": code, "message": message, "details": details or {}}}, status=status
    )


def public_message(exc: RagError) -> str:
    """What the caller is told. A 4xx message is about their request and is shown as is;
    a 5xx one may name folders, hosts or an upstream error, so the caller gets the
    failure class's one-line docstring instead (the full message is logged)."""
    if exc.status < 500:
        return exc.message
    if type(exc) is RagError or not type(exc).__doc__:
        return INTERNAL_ERROR_MESSAGE
    return type(exc).__doc__.strip().splitlines()[0]


def error_response(exc: RagError) -> JsonResponse:
    """Map one of our exceptions to its API error response."""
    if exc.status < 500:
        return json_error(exc.code, exc.message, exc.status, exc.details)
    logger.warning("%s answered %s: %s", exc.code, exc.status, exc.message)
    details = {key: value for key, value in exc.details.items() if key in PUBLIC_DETAILS}
    return json_error(exc.code, public_message(exc), exc.status, details)


def validation_details(error: ValidationError) -> dict[str, Any]:
    """Return a pydantic ValidationError as {"fields": [{"field", "message"}]}."""
    return {
        "fields": [
            {
                "field": ".".join(str(p) for p in item["loc"]) or "body",
                "message": item["msg"].removeprefix("Value error, "),
            }
            for item in error.errors(include_url=False, include_input=False)
        ]
    }


def invalid_request(error: ValidationError) -> BadRequest:
    """Return a validation failure as a BadRequest led by its first problem (one sentence
    the widget can show) with every field in `details`."""
    details = validation_details(error)
    first = details["fields"][0]["message"] if details["fields"] else INVALID_REQUEST_MESSAGE
    return BadRequest(first, details=details)


def _check_value(value: Any, depth: int = 0) -> None:
    """Raise unless a parsed JSON value is shallow enough and free of NUL characters."""
    if depth > MAX_JSON_DEPTH:
        raise BadRequest(TOO_DEEP_MESSAGE)
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequest(NUL_MESSAGE)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_value(key, depth + 1)
            _check_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_value(item, depth + 1)


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json"


def parse_json_body(request: HttpRequest) -> dict[str, Any]:
    """Return the request body as a dict; an empty body is {}.

    Raises:
        PayloadTooLarge: the body is over API_MAX_BODY_BYTES (checked before reading it).
        UnsupportedMediaType: a non-empty body that is not application/json.
        BadRequest: not a JSON object, nested too deep, or a string holding NUL.
    """
    limit = settings.API_MAX_BODY_BYTES
    too_large = PayloadTooLarge(
        PAYLOAD_TOO_LARGE_MESSAGE.format(limit=limit), details={"limit_bytes": limit}
    )
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    try:
        body = request.body
    except RequestDataTooBig:
        raise too_large from None
    if not body:
        return {}
    if len(body) > limit:
        raise too_large
    if not _is_json(request.content_type or ""):
        raise UnsupportedMediaType(UNSUPPORTED_MEDIA_MESSAGE)
    try:
        # pydantic's parser (jiter) stops at depth 200 with a ValueError, where the
        # standard library's json raises RecursionError; it also refuses bad UTF-8.
        data = from_json(body)
    except ValueError:
        raise BadRequest(INVALID_JSON_MESSAGE) from None
    if not isinstance(data, dict):
        raise BadRequest(INVALID_JSON_MESSAGE)
    _check_value(data)
    return data


def parse_body(request: HttpRequest, model: type[Model]) -> Model:
    """Return the JSON body validated by `model`; raise a RagError (4xx) otherwise."""
    data = parse_json_body(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc) from None


def parse_query(request: HttpRequest, model: type[Model]) -> Model:
    """Return the query string validated by `model` (a blank value counts as absent)."""
    try:
        query = request.GET
    except TooManyFieldsSent:
        raise TooManyParameters(
            TOO_MANY_PARAMETERS_MESSAGE,
            details={"limit": settings.DATA_UPLOAD_MAX_NUMBER_FIELDS},
        ) from None
    data = {key: query[key] for key in model.model_fields if query.get(key, "") != ""}
    _check_value(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc) from None


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
                    {"allowed": list(methods)},
                )
                response["Allow"] = ", ".join(methods)
                return response
            return await view(request, *args, **kwargs)

        return wrapped

    return decorator


# --- handlers for what fails before a view runs ------------------------------------------


def is_api(request: HttpRequest) -> bool:
    """True for a request under /api/ (answered in JSON, never HTML)."""
    return request.path.startswith(API_PREFIX)


async def api_not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Any unknown /api/ path (and any method): a JSON 404."""
    return json_error("not_found", NOT_FOUND_MESSAGE, 404, {"path": request.path})


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """400 handler (too many fields, a disallowed Host...): JSON under /api/."""
    if is_api(request):
        if isinstance(exception, TooManyFieldsSent):
            return error_response(TooManyParameters(TOO_MANY_PARAMETERS_MESSAGE))
        if isinstance(exception, RequestDataTooBig):
            limit = settings.API_MAX_BODY_BYTES
            return error_response(PayloadTooLarge(PAYLOAD_TOO_LARGE_MESSAGE.format(limit=limit)))
        return json_error("bad_request", INVALID_REQUEST_MESSAGE, 400)
    from django.views.defaults import bad_request as default_bad_request

    return default_bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """403 handler: JSON under /api/."""
    if is_api(request):
        return json_error("forbidden", FORBIDDEN_MESSAGE, 403)
    from django.views.defaults import permission_denied as default_permission_denied

    return default_permission_denied(request, exception)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: JSON under /api/ (which is CSRF-exempt, so this is a safety
    net); Django's page for the admin."""
    if is_api(request):
        return json_error("csrf_failed", CSRF_FAILED_MESSAGE, 403)
    from django.views.csrf import csrf_failure as default_csrf_failure

    return default_csrf_failure(request, reason)
