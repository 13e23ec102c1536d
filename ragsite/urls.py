"""URL routes. The API paths are the public contract in API.md."""

from django.contrib import admin
from django.urls import path

from chat import views as chat_views
from ingestion import views as ingestion_views

from . import agents, observability, views

urlpatterns = [
    path("", views.demo, name="demo"),
    path("api/health", views.health, name="health"),
    path("api/ingest", ingestion_views.ingest, name="ingest"),
    path("api/ingest/status", ingestion_views.ingest_status, name="ingest-status"),
    path(
        "api/ingest/status/<str:task_id>", ingestion_views.ingest_status, name="ingest-status-task"
    ),
    path("api/search", chat_views.search, name="search"),
    path("api/chat", chat_views.chat, name="chat"),
    path("api/feedback", chat_views.feedback, name="feedback"),
    path("llms.txt", agents.llms_txt, name="llms-txt"),
    path("llms-full.txt", agents.llms_full_txt, name="llms-full-txt"),
    path("pages/<path:path>", agents.page_markdown, name="page-markdown"),
    path("metrics", observability.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
]

handler404 = "ragsite.views.not_found"
handler500 = "ragsite.views.server_error"
