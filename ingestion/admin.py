"""Ingestion admin: documents, tasks (read-only), the dashboard and the "Ingest now" button.

"Ingest now" runs `task_start(source="admin")` in the serving process, which holds the
embedded store: it is how an author re-ingests while the server runs.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from ragsite.rag import providers
from ragsite.rag.exceptions import RagError

from .models import Dashboard, Document, DocumentChunk, IngestionTask
from .overview import book_overview
from .selectors import embeddings_saved, ingestion_stats
from .services import task_start

INGEST_STARTED_MESSAGE = "Ingestion started (task {task_id}); this page shows its progress."
INGEST_REFUSED_MESSAGE = "Ingestion not started: {reason}"
# The lists of `IngestionTask.file_changes`, in the order a task page shows them.
FILE_CHANGE_GROUPS = ("new", "changed", "deleted", "failed", "skipped")

logger = logging.getLogger(__name__)


def _task_link(task: IngestionTask | None) -> str:
    if task is None:
        return "—"
    url = reverse("admin:ingestion_ingestiontask_change", args=[task.pk])
    return format_html('<a href="{}">{}</a>', url, str(task.pk)[:8])


class ReadOnlyMixin:
    """Rows written only by ingestion: viewable, never edited by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DocumentChunkInline(ReadOnlyMixin, admin.TabularInline):
    model = DocumentChunk
    fields = ("position", "heading", "token_count", "content_hash", "id")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(Document)
class DocumentAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("path", "title", "chunk_count", "token_count", "status", "last_ingested_at")
    list_filter = ("status",)
    search_fields = ("path", "title")
    ordering = ("path",)
    readonly_fields = (
        "path", "title", "page_link", "status", "error", "chunk_count", "token_count",
        "content_sha256", "signature", "created_at", "updated_at", "last_ingested_at",
    )  # fmt: skip
    fields = readonly_fields
    inlines = [DocumentChunkInline]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the next ingestion would put it back; delete the file instead

    @admin.display(description="published page")
    def page_link(self, obj: Document) -> str:
        return format_html('<a href="{0}">{0}</a>', obj.url) if obj.url else "—"


@admin.register(IngestionTask)
class IngestionTaskAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "short_id", "status", "source", "created_at", "duration_s", "files_total",
        "files_new", "files_changed", "files_unchanged", "files_deleted", "files_failed",
        "embeddings_computed", "saved",
    )  # fmt: skip
    list_filter = ("status", "source", "dry_run")
    ordering = ("-created_at",)
    readonly_fields = (
        "id", "status", "source", "book_dir", "path", "force", "dry_run", "progress",
        "created_at", "started_at", "finished_at", "duration_s",
        "files_total", "files_done", "files_new", "files_changed", "files_unchanged",
        "files_failed", "files_deleted", "files_skipped",
        "chunks_added", "chunks_deleted", "chunks_unchanged",
        "embeddings_computed", "embeddings_reused", "tokens_embedded",
        "files_changed_list", "error_list", "pid", "hostname", "updated_at",
    )  # fmt: skip
    fields = readonly_fields
    change_list_template = "admin/ingestion/ingestiontask/change_list.html"

    @admin.display(description="task", ordering="created_at")
    def short_id(self, obj: IngestionTask) -> str:
        return str(obj.pk)[:8]

    @admin.display(description="embeddings saved")
    def saved(self, obj: IngestionTask) -> int:
        return embeddings_saved(obj)

    @admin.display(description="files")
    def files_changed_list(self, obj: IngestionTask) -> str:
        """The pages this run added, changed, deleted, could not read or skipped as drafts."""
        changes = obj.file_changes or {}
        groups = [(name, changes[name]) for name in FILE_CHANGE_GROUPS if changes.get(name)]
        if not groups:
            return "no page changed"
        return format_html_join(
            "",
            "<p><strong>{} ({})</strong></p><ul>{}</ul>",
            (
                (
                    name,
                    len(paths),
                    format_html_join("", "<li><code>{}</code></li>", ((p,) for p in paths)),
                )
                for name, paths in groups
            ),
        )

    @admin.display(description="errors")
    def error_list(self, obj: IngestionTask) -> str:
        if not obj.errors:
            return "—"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li><code>{}</code> {}</li>",
                ((e.get("path") or "(run)", e.get("message", "")) for e in obj.errors),
            ),
        )


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    """The ingestion dashboard at /admin/ingestion/dashboard/ and its "Ingest now" button."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (
            request.user.is_active
            and request.user.is_staff
            and (
                request.user.has_perm("ingestion.view_ingestiontask")
                or request.user.has_perm("ingestion.view_dashboard")
            )
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Dashboard]:
        return super().get_queryset(request).none()

    def get_urls(self) -> list[Any]:
        return [
            path(
                "ingest-now/",
                self.admin_site.admin_view(require_POST(self.ingest_now_view)),
                name="ingestion_ingest_now",
            ),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            store = providers.get_store()
        except RagError:
            store = None  # the stats say the store is unavailable
        stats = ingestion_stats(store=store)
        if store is None:
            stats["store_error"] = "The vector store could not be opened."
        try:
            book = book_overview(questions=False)
        except Exception:  # the dashboard shows the index even when the book folder is gone
            logger.warning("dashboard: the book folder could not be read", exc_info=True)
            book = None
        context = {
            **self.admin_site.each_context(request),
            "title": "Ingestion dashboard",
            "opts": self.model._meta,
            "stats": stats,
            "book": book,
            "last_success_link": _task_link(stats["last_success"]),
            "can_ingest": request.user.has_perm("ingestion.add_ingestiontask")
            or request.user.is_superuser,
            **(extra_context or {}),
        }
        return render(request, "admin/ingestion/dashboard.html", context)

    def ingest_now_view(self, request: HttpRequest) -> HttpResponse:
        """POST: start an ingestion of BOOK_DIR in this process (source "admin")."""
        if not (request.user.has_perm("ingestion.add_ingestiontask") or request.user.is_superuser):
            raise PermissionDenied
        force = request.POST.get("force") == "on"
        try:
            task = task_start(source=IngestionTask.Source.ADMIN, force=force)
        except RagError as exc:
            self.message_user(
                request, INGEST_REFUSED_MESSAGE.format(reason=exc.message), messages.ERROR
            )
        else:
            self.message_user(
                request, INGEST_STARTED_MESSAGE.format(task_id=task.pk), messages.SUCCESS
            )
        return HttpResponseRedirect(reverse("admin:ingestion_dashboard_changelist"))
