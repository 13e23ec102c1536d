"""The OpenAPI 3.1 document of the API, built from the same pydantic models that validate
requests (`chat/schemas.py`, `ingestion/schemas.py`), and its human docs page.

`GET /api/openapi.json` serves the document; `GET /api/docs` renders it with Swagger
UI, whose files come from the drf-spectacular-sidecar package through the static files
(nothing is loaded from a CDN). The schemathesis test (tests/test_api_schema.py) holds
the running server to this document.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema

import ragsite
from chat.schemas import (
    ChatRequest,
    ChatResult,
    DoneEvent,
    ErrorEvent,
    FeedbackRequest,
    MetaEvent,
    SearchParams,
    SearchResponse,
    SourcesEvent,
    TokenEvent,
)
from ingestion.schemas import IngestAccepted, IngestRequest, IngestStatus

from .http import allow_methods

REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    """The inner object of every error answer."""

    code: str
    message: str
    details: dict[str, Any]


class ErrorResponse(BaseModel):
    """Every error before a stream starts: `{"error": {"code", "message", "details"}}`."""

    error: ErrorDetail


class HealthCheck(BaseModel):
    """One component's state; each component adds its own fields."""

    model_config = ConfigDict(extra="allow")

    status: str


class IndexSummary(BaseModel):
    """What the index holds."""

    documents: int
    chunks: int
    last_ingested_at: str | None


class HealthReport(BaseModel):
    """GET /api/health."""

    status: Literal["ok", "degraded", "down"]
    version: str
    checks: dict[str, HealthCheck]
    index: IndexSummary


MODELS: list[type[BaseModel]] = [
    ChatRequest,
    ChatResult,
    MetaEvent,
    SourcesEvent,
    TokenEvent,
    DoneEvent,
    ErrorEvent,
    FeedbackRequest,
    SearchResponse,
    IngestRequest,
    IngestAccepted,
    IngestStatus,
    HealthReport,
    ErrorResponse,
]

CHAT_STREAM_DESCRIPTION = """\
With `stream: true` (the default): Server-Sent Events, each
`event: <name>\\ndata: <one line of JSON>\\n\\n`, in this order: `meta` (MetaEvent),
`sources` (SourcesEvent), zero or more `token` (TokenEvent), then `done` (DoneEvent) or,
if the answer fails mid-stream, `error` (ErrorEvent). Comment lines (`: ping`) may be sent
as keep-alives. With `stream: false`: one JSON object (ChatResult)."""

ERROR_DESCRIPTIONS = {
    "400": "The request is malformed or fails validation.",
    "401": "No bearer token.",
    "403": "A wrong bearer token, or ingestion over the API is disabled.",
    "404": "Not found.",
    "408": "The request body did not arrive in time (REQUEST_BODY_TIMEOUT_S).",
    "409": "An ingestion is already running (`details.task_id`).",
    "413": "The request body is larger than API_MAX_BODY_BYTES.",
    "415": "The request body is not application/json.",
    "429": "Over the rate limit; see the Retry-After header.",
    "502": "The language model failed.",
    "503": "The vector store or the embedder is unavailable.",
}
BODY_ERRORS = ("400", "408", "413", "415")


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: str) -> dict[str, Any]:
    responses = {code: {"$ref": f"#/components/responses/Error{code}"} for code in codes}
    if "429" in codes:
        responses["429"] = {"$ref": "#/components/responses/RateLimited"}
    return responses


def _body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(model)}}}


def _sse_event_schema() -> dict[str, Any]:
    """One event of the chat stream (OpenAPI 3.1 reads a text/event-stream schema as the
    schema of each event): its name, and its `data` line as JSON of that event's model."""
    events = {
        "meta": MetaEvent,
        "sources": SourcesEvent,
        "token": TokenEvent,
        "done": DoneEvent,
        "error": ErrorEvent,
    }
    return {
        "oneOf": [
            {
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"const": name},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": _ref(model),
                    },
                },
            }
            for name, model in events.items()
        ]
    }


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The fields of a query model as OpenAPI query parameters."""
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = {key: value for key, value in prop.items() if key != "title"}
        description = prop.pop("description", None)
        parameter = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _paths() -> dict[str, Any]:
    ingest_status = {
        "200": _json(IngestStatus, "The task."),
        **_errors("404"),
    }
    return {
        "/api/health": {
            "get": {
                "operationId": "health",
                "summary": "The state of every component",
                "tags": ["health"],
                "responses": {
                    "200": _json(HealthReport, "Everything works, or the service is degraded."),
                    "503": _json(HealthReport, "The service cannot answer questions."),
                },
            }
        },
        "/api/search": {
            "get": {
                "operationId": "search",
                "summary": "The book's best distinct chunks for a query (retrieval only)",
                "tags": ["chat"],
                "parameters": _query_parameters(SearchParams),
                "responses": {
                    "200": _json(SearchResponse, "The results, best first."),
                    **_errors("400", "429", "503"),
                },
            }
        },
        "/api/chat": {
            "post": {
                "operationId": "chat",
                "summary": "Answer a question from the book, with citations",
                "tags": ["chat"],
                "requestBody": _body(ChatRequest),
                "responses": {
                    "200": {
                        "description": CHAT_STREAM_DESCRIPTION,
                        "content": {
                            "text/event-stream": {"schema": _sse_event_schema()},
                            "application/json": {"schema": _ref(ChatResult)},
                        },
                    },
                    **_errors(*BODY_ERRORS, "429", "502", "503"),
                },
            }
        },
        "/api/feedback": {
            "post": {
                "operationId": "feedback",
                "summary": "A reader's thumbs up or down on an answer",
                "tags": ["chat"],
                "requestBody": _body(FeedbackRequest),
                "responses": {
                    "204": {"description": "Stored (a second vote replaces the first)."},
                    **_errors(*BODY_ERRORS, "404", "429"),
                },
            }
        },
        "/api/ingest": {
            "post": {
                "operationId": "ingest",
                "summary": "Start an ingestion of BOOK_DIR in the background",
                "tags": ["ingestion"],
                "security": [{"bearer": []}],
                "requestBody": _body(IngestRequest, required=False),
                "responses": {
                    "202": _json(IngestAccepted, "Queued."),
                    **_errors(*BODY_ERRORS, "401", "403", "409", "429"),
                },
            }
        },
        "/api/ingest/status": {
            "get": {
                "operationId": "ingestStatusLatest",
                "summary": "The latest ingestion task",
                "tags": ["ingestion"],
                "responses": ingest_status,
            }
        },
        "/api/ingest/status/{task_id}": {
            "get": {
                "operationId": "ingestStatus",
                "summary": "One ingestion task",
                "tags": ["ingestion"],
                "parameters": [
                    {
                        "name": "task_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": ingest_status,
            }
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "tags": ["meta"],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/api/docs": {
            "get": {
                "operationId": "docs",
                "summary": "This document, rendered for people (Swagger UI)",
                "tags": ["meta"],
                "responses": {
                    "200": {
                        "description": "An HTML page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document (built once per process)."""
    _, schemas = models_json_schema([(model, "validation") for model in MODELS], ref_template=REF)
    error_responses = {
        f"Error{code}": _json(ErrorResponse, description)
        for code, description in ERROR_DESCRIPTIONS.items()
    }
    error_responses["RateLimited"] = {
        **_json(ErrorResponse, ERROR_DESCRIPTIONS["429"]),
        "headers": {
            "Retry-After": {
                "description": "Seconds until the caller may try again.",
                "required": True,
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ragsite",
            "version": ragsite.__version__,
            "description": (
                "Chat with this book. Every error before a stream starts is "
                '`{"error": {"code", "message", "details"}}`; no bad request is a 500.'
            ),
        },
        "paths": _paths(),
        "components": {
            "schemas": schemas["$defs"],
            "responses": error_responses,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "INGEST_TOKEN",
                }
            },
        },
    }


@allow_methods("GET", "HEAD")
async def openapi_json(request: HttpRequest) -> JsonResponse:
    """GET /api/openapi.json: the OpenAPI document."""
    return JsonResponse(openapi_document(), json_dumps_params={"ensure_ascii": False})


@allow_methods("GET", "HEAD")
async def docs(request: HttpRequest) -> HttpResponse:
    """GET /api/docs: Swagger UI over /api/openapi.json, from bundled static files."""
    return render(request, "api_docs.html")
