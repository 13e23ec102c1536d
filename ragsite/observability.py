"""Observability: one request id per request, access log lines, and Prometheus metrics.

The request id comes from the caller's `X-Request-ID` (when it is a short token) or is
made here; it is in every log record of the request (`RequestIdFilter`), in the access
log line, in the `X-Request-ID` response header and in the chat stream's `meta` event.

Metrics are prometheus-client objects in this process. With several uvicorn workers, set
`PROMETHEUS_MULTIPROC_DIR` to an empty folder shared by them (prometheus-client's
multiprocess mode) and `/metrics` adds up every worker's figures.
"""

from __future__ import annotations

import contextvars
import hmac
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

access_logger = logging.getLogger("ragsite.access")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

HTTP_REQUESTS = Counter(
    "ragsite_http_requests_total",
    "HTTP requests by endpoint (URL name), method and status.",
    ["endpoint", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "ragsite_http_request_duration_seconds",
    "Time to the response's first byte, by endpoint (a stream's start, not its end).",
    ["endpoint"],
    buckets=_LATENCY_BUCKETS,
)
CHAT_TIME_TO_SOURCES = Histogram(
    "ragsite_chat_time_to_sources_seconds",
    "From the chat request to its `sources` event.",
    buckets=_LATENCY_BUCKETS,
)
CHAT_TIME_TO_FIRST_TOKEN = Histogram(
    "ragsite_chat_time_to_first_token_seconds",
    "From the chat request to the answer's first token, by the answer's mode.",
    ["mode"],
    buckets=_LATENCY_BUCKETS,
)
CHAT_ANSWERS = Counter(
    "ragsite_chat_answers_total", "Chat answers by mode and outcome.", ["mode", "outcome"]
)
for _mode in ("llm", "extractive"):  # export the series before the first answer
    CHAT_TIME_TO_FIRST_TOKEN.labels(_mode)
RETRIEVAL_LATENCY = Histogram(
    "ragsite_retrieval_duration_seconds",
    "book_search: query embedding, store search and filtering.",
    buckets=_LATENCY_BUCKETS,
)
LLM_TOKENS = Counter("ragsite_llm_tokens_total", "LLM tokens used, by kind.", ["kind"])
INGESTION_RUNS = Counter(
    "ragsite_ingestion_runs_total", "Finished ingestion runs by status.", ["status"]
)
INGESTION_CHUNKS = Counter(
    "ragsite_ingestion_chunks_total", "Chunks written or removed by ingestion.", ["op"]
)


async def chat_observed(events: AsyncIterator[Any], *, started: float) -> AsyncIterator[Any]:
    """Pass a chat's typed events through, timing `sources` and the first token and
    counting the answer's outcome and LLM tokens (`started`: time.perf_counter())."""
    first_token: float | None = None
    async for event in events:
        if event.name == "sources":
            CHAT_TIME_TO_SOURCES.observe(time.perf_counter() - started)
        elif event.name == "token" and first_token is None:
            first_token = time.perf_counter() - started
        elif event.name == "done":
            if first_token is not None:
                CHAT_TIME_TO_FIRST_TOKEN.labels(event.mode).observe(first_token)
            CHAT_ANSWERS.labels(event.mode, "uncertain" if event.uncertain else "answered").inc()
            llm_tokens_count(event.usage if event.mode == "llm" else {})
        elif event.name == "error":
            CHAT_ANSWERS.labels("-", "failed").inc()
        yield event


def llm_tokens_count(usage: dict[str, Any]) -> None:
    """Count an LLM answer's prompt and completion tokens."""
    for kind in ("prompt_tokens", "completion_tokens"):
        if isinstance(usage.get(kind), int) and usage[kind] > 0:
            LLM_TOKENS.labels(kind.removesuffix("_tokens")).inc(usage[kind])


def ingestion_finished(task) -> None:
    """Count a finished (non dry-run) ingestion task and the chunks it changed."""
    INGESTION_RUNS.labels(task.status).inc()
    INGESTION_CHUNKS.labels("added").inc(task.chunks_added)
    INGESTION_CHUNKS.labels("deleted").inc(task.chunks_deleted)


class RequestIdFilter(logging.Filter):
    """Put the current request id (or "-") on every log record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = request_id_var.get() or "-"
        return True


def request_id_from(request: HttpRequest) -> str:
    """Return the caller's X-Request-ID when it is a safe token, else a new id."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _REQUEST_ID_RE.match(given) else uuid.uuid4().hex


def _endpoint(request: HttpRequest) -> str:
    # The URL name keeps the label set small (no ids or query strings in labels).
    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return "static" if request.path.startswith(settings.STATIC_URL) else "unmatched"
    return match.url_name or match.route or "unnamed"


class ObservabilityMiddleware:
    """Give each request an id, log one access line, and count it in the metrics."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponse]]):
        if not iscoroutinefunction(get_response):
            raise TypeError("ObservabilityMiddleware needs the async request path (ASGI)")
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request)
        request.request_id = request_id
        token = request_id_var.set(request_id)
        started = request.started_at = time.perf_counter()
        try:
            response = await self.get_response(request)
        finally:
            request_id_var.reset(token)
        elapsed = time.perf_counter() - started
        response[REQUEST_ID_HEADER] = request_id
        endpoint = _endpoint(request)
        HTTP_REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
        HTTP_LATENCY.labels(endpoint).observe(elapsed)
        access_logger.info(
            '%s "%s %s" %s %.1fms',
            client_ip(request),
            request.method,
            request.get_full_path()[:300],
            response.status_code,
            elapsed * 1000,
            extra={"request_id": request_id},
        )
        return response


def client_ip(request: HttpRequest) -> str:
    """The client address as rate limits see it (TRUSTED_PROXY_HOPS applied)."""
    from .ratelimit import client_ip as address

    return address(request)


def _registry() -> CollectorRegistry | None:
    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return None


async def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: the Prometheus text format (Bearer METRICS_TOKEN when one is set)."""
    from .http import json_error

    if not settings.METRICS_ENABLED:
        return json_error("not_found", "Metrics are turned off.", 404)
    if settings.METRICS_TOKEN:
        expected = f"Bearer {settings.METRICS_TOKEN}".encode()
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return json_error("unauthorized", "A valid metrics token is required.", 401)
    registry = _registry()
    body = generate_latest(registry) if registry is not None else generate_latest()
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
