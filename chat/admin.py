"""Admin for the reader chat: conversations, answers, feedback, and what the book misses.

Read-only views of what readers asked and got: the records are written by the chat
service, and editing them would falsify the history.
"""

from __future__ import annotations

import json
from datetime import timedelta

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from chat.models import Conversation, Feedback, Message, UnansweredQuestion
from chat.selectors import unanswered_by_section

UNANSWERED_PERIODS = {"7": 7, "30": 30, "90": 90}


class ReadOnlyAdmin(admin.ModelAdmin):
    """Nothing here is added or edited by hand; deleting (e.g. for privacy) is allowed."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("created_at", "question", "short_answer", "mode", "uncertain", "status")
    readonly_fields = fields
    ordering = ("created_at",)

    @admin.display(description="answer")
    def short_answer(self, obj: Message) -> str:
        return obj.answer[:200] + ("…" if len(obj.answer) > 200 else "")

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin):
    list_display = ("session_id", "created_at", "last_active_at", "message_count")
    date_hierarchy = "created_at"
    search_fields = ("session_id", "messages__question")
    inlines = [MessageInline]

    @admin.display(description="messages")
    def message_count(self, obj: Conversation) -> int:
        return obj.messages.count()


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = (
        "question_short", "mode", "uncertain", "status", "latency_ms", "ttft_ms",
        "tokens", "rating", "created_at",
    )  # fmt: skip
    list_filter = ("mode", "uncertain", "status", "created_at", "feedback__rating")
    search_fields = ("question", "answer", "rewritten_query", "message_id")
    date_hierarchy = "created_at"
    list_select_related = ("feedback",)
    readonly_fields = (
        "message_id", "conversation", "created_at", "question", "rewritten_query",
        "selection", "answer", "sources_list", "citations", "follow_ups", "mode",
        "uncertain", "status", "error", "latency_ms", "ttft_ms", "usage_pretty",
    )  # fmt: skip
    exclude = ("sources", "usage")

    @admin.display(description="question", ordering="question")
    def question_short(self, obj: Message) -> str:
        return obj.question[:100]

    @admin.display(description="tokens")
    def tokens(self, obj: Message) -> int | None:
        return obj.total_tokens

    @admin.display(description="feedback")
    def rating(self, obj: Message) -> str:
        feedback = getattr(obj, "feedback", None)
        return feedback.get_rating_display() if feedback else "—"

    @admin.display(description="sources")
    def sources_list(self, obj: Message) -> str:
        if not obj.sources:
            return "—"
        return format_html(
            "<ol>{}</ol>",
            format_html_join(
                "",
                '<li><a href="{}">{}</a> <small>{} · score {}</small></li>',
                (
                    (
                        source.get("url") or "#",
                        " > ".join(p for p in (source.get("title"), source.get("heading")) if p),
                        source.get("path", ""),
                        source.get("score", ""),
                    )
                    for source in obj.sources
                ),
            ),
        )

    @admin.display(description="usage")
    def usage_pretty(self, obj: Message) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.usage, indent=2, sort_keys=True))


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    list_display = ("rating", "question", "rated_answer", "comment_short", "created_at")
    list_filter = ("rating", "created_at")
    search_fields = ("comment", "message__question", "message__answer")
    date_hierarchy = "created_at"
    list_select_related = ("message",)
    fields = ("rating", "comment", "question_full", "answer_full", "message", "created_at")
    readonly_fields = fields

    @admin.display(description="question")
    def question(self, obj: Feedback) -> str:
        return obj.message.question[:100]

    @admin.display(description="rated answer")
    def rated_answer(self, obj: Feedback) -> str:
        answer = obj.message.answer
        return answer[:160] + ("…" if len(answer) > 160 else "")

    @admin.display(description="question")
    def question_full(self, obj: Feedback) -> str:
        return obj.message.question

    @admin.display(description="answer")
    def answer_full(self, obj: Feedback) -> str:
        return obj.message.answer

    @admin.display(description="comment")
    def comment_short(self, obj: Feedback) -> str:
        return obj.comment[:120]


@admin.register(UnansweredQuestion)
class UnansweredQuestionAdmin(ReadOnlyAdmin):
    """Uncertain questions grouped by the section that came closest: what the book lacks."""

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context=None) -> TemplateResponse:
        period = request.GET.get("days", "30")
        days = UNANSWERED_PERIODS.get(period)
        since = timezone.now() - timedelta(days=days) if days else None
        groups = unanswered_by_section(since=since)
        context = {
            **self.admin_site.each_context(request),
            "title": "Unanswered questions",
            "opts": self.model._meta,
            "groups": groups,
            "total": sum(group.count for group in groups),
            "period": period if days else "all",
            "periods": [*UNANSWERED_PERIODS, "all"],
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/chat/unanswered.html", context)
