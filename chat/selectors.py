"""Reads of chat data: a conversation's recent turns, and the questions the book missed."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from chat.models import Conversation, Message
from chat.prompts import Turn


def conversation_history(
    *, conversation: Conversation, turns: int, exclude_id: int | None = None
) -> list[Turn]:
    """Return the last `turns` exchanges of a conversation, oldest first.

    Failed answers are skipped; a partial one (the reader left) still tells what the
    conversation is about.
    """
    if turns <= 0:
        return []
    queryset = (
        Message.objects.filter(conversation=conversation)
        .exclude(status=Message.Status.ERROR)
        .order_by("-created_at", "-id")
    )
    if exclude_id is not None:
        queryset = queryset.exclude(pk=exclude_id)
    recent = list(queryset[:turns])
    recent.reverse()
    return [
        Turn(
            question=message.question,
            answer=message.answer,
            rewritten_query=message.rewritten_query,
            top_heading=(message.sources[0].get("heading", "") if message.sources else ""),
        )
        for message in recent
    ]


@dataclass(slots=True)
class UnansweredGroup:
    """Uncertain questions that came closest to the same section of the book."""

    section: str  # "<path> › <heading>", or "" when nothing came close
    title: str
    url: str | None
    messages: list[Message] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many questions landed here."""
        return len(self.messages)

    @property
    def last_asked(self) -> datetime | None:
        """When the latest of them was asked."""
        return max((m.created_at for m in self.messages), default=None)


def unanswered_by_section(*, since: datetime | None = None) -> list[UnansweredGroup]:
    """Group uncertain questions by their closest section, largest group first."""
    queryset = Message.objects.filter(uncertain=True).order_by("-created_at")
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    groups: dict[str, UnansweredGroup] = defaultdict(lambda: UnansweredGroup("", "", None))
    for message in queryset:
        section = message.closest_section
        group = groups[section]
        if not group.messages:
            top = message.sources[0] if message.sources else {}
            group.section, group.title, group.url = section, top.get("title", ""), top.get("url")
        group.messages.append(message)
    return sorted(
        groups.values(),
        key=lambda g: (-g.count, -(g.last_asked.timestamp() if g.last_asked else 0)),
    )
