"""Conversations with the book: sessions, the messages asked in them, readers' feedback."""

from __future__ import annotations

import uuid

from django.db import models


class Conversation(models.Model):
    """A reader's session: the `session_id` the widget sends back with each question."""

    session_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_active_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-last_active_at"]

    def __str__(self) -> str:
        return str(self.session_id)


class Message(models.Model):
    """One question and the answer streamed for it, with what it cost and how it went."""

    class Mode(models.TextChoices):
        LLM = "llm", "LLM"
        EXTRACTIVE = "extractive", "Extractive"

    class Status(models.TextChoices):
        COMPLETE = "complete", "Complete"
        PARTIAL = "partial", "Partial (reader left)"
        ERROR = "error", "Error"

    message_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    question = models.TextField()
    rewritten_query = models.TextField(
        blank=True, help_text="The stand-alone query retrieval searched for."
    )
    selection = models.TextField(blank=True, help_text="Text the reader highlighted, if any.")
    answer = models.TextField(blank=True)
    sources = models.JSONField(default=list, blank=True)
    citations = models.JSONField(default=list, blank=True)
    follow_ups = models.JSONField(default=list, blank=True)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.EXTRACTIVE)
    uncertain = models.BooleanField(
        default=False, help_text="Retrieval found no support above the score floor."
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PARTIAL, db_index=True
    )
    error = models.TextField(blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField("time to first token (ms)", null=True, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.question[:80]

    @property
    def total_tokens(self) -> int | None:
        """Prompt + completion tokens the model reported (None when it reported none)."""
        return self.usage.get("total_tokens") if isinstance(self.usage, dict) else None

    @property
    def closest_section(self) -> str:
        """'<path> › <heading>' of the top source: where the book came closest."""
        if not self.sources:
            return ""
        top = self.sources[0]
        parts = [p for p in (top.get("path", ""), top.get("heading", "")) if p]
        return " › ".join(parts) or top.get("title", "")


class UnansweredQuestion(Message):
    """Admin view of uncertain messages (no table: a proxy listed on the admin index)."""

    class Meta:
        proxy = True
        verbose_name = "unanswered question"
        verbose_name_plural = "unanswered questions"


class Feedback(models.Model):
    """A reader's thumbs up or down on one answer; a second vote replaces the first."""

    class Rating(models.TextChoices):
        UP = "up", "👍 up"
        DOWN = "down", "👎 down"

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="feedback")
    rating = models.CharField(max_length=8, choices=Rating.choices)
    comment = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "feedback"

    def __str__(self) -> str:
        return f"{self.rating}: {self.message}"
