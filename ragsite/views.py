"""Project-level views: health, the demo page, and JSON error handlers for /api/."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from ingestion.overview import book_overview

from .health import health_report
from .http import allow_methods, json_error


@allow_methods("GET", "HEAD")
async def health(request: HttpRequest) -> JsonResponse:
    """GET /api/health: the state of every component (200 ok/degraded, 503 down)."""
    report, status = await health_report()
    return JsonResponse(report, status=status)


@require_safe
def demo(request: HttpRequest) -> HttpResponse:
    """GET /: a page about the indexed book that embeds the widget the way its site would.

    Its title, copy and starter questions come from the book (ingestion.overview); the
    default book, ragsite's own docs/, keeps the page that explains ragsite.
    """
    book = book_overview()
    starters = "|".join(q.replace("|", "/") for q in book.questions)
    return render(
        request, "demo.html", {"site_url": settings.SITE_URL, "book": book, "starters": starters}
    )


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404 handler: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return json_error("not_found", "No such endpoint.", 404, {"path": request.path})
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """500 handler: JSON under /api/ so the widget can show a message."""
    if request.path.startswith("/api/"):
        return json_error("internal_error", "Something went wrong on our side.", 500)
    from django.views.defaults import server_error as default_server_error

    return default_server_error(request)
