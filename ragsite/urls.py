"""URL routes. The API paths are the public contract in API.md.

Every /api/ route is CSRF-exempt: the JSON API uses no cookies (ingestion takes a
bearer token), so there is no session for a forged request to ride on. The admin keeps
Django's CSRF protection. Any other /api/ path is a JSON 404, whatever the method.
"""

from django.contrib import admin
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from chat import views as chat_views
from ingestion import views as ingestion_views

from . import agents, http, observability, openapi, views


def api(route: str, view, name: str):
    """A CSRF-exempt route under /api/."""
    return path(f"api/{route}", csrf_exempt(view), name=name)


urlpatterns = [
    path("", views.demo, name="demo"),
    api("health", views.health, "health"),
    api("ingest", ingestion_views.ingest, "ingest"),
    api("ingest/status", ingestion_views.ingest_status, "ingest-status"),
    api("ingest/status/<str:task_id>", ingestion_views.ingest_status, "ingest-status-task"),
    api("search", chat_views.search, "search"),
    api("chat", chat_views.chat, "chat"),
    api("feedback", chat_views.feedback, "feedback"),
    api("openapi.json", openapi.openapi_json, "openapi"),
    api("docs", openapi.docs, "api-docs"),
    re_path(r"^api/(?P<rest>.*)$", csrf_exempt(http.api_not_found), name="api-not-found"),
    path("llms.txt", agents.llms_txt, name="llms-txt"),
    path("llms-full.txt", agents.llms_full_txt, name="llms-full-txt"),
    path("pages/<path:path>", agents.page_markdown, name="page-markdown"),
    path("metrics", observability.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
]

handler400 = "ragsite.http.bad_request"
handler403 = "ragsite.http.permission_denied"
handler404 = "ragsite.views.not_found"
handler500 = "ragsite.views.server_error"
