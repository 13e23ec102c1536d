"""Conversation memory: sessions that expire when idle, messages, and readers' feedback."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from chat.models import Conversation, Feedback, Message
from ragsite.rag.config import get_config
from ragsite.rag.exceptions import NotFound

logger = logging.getLogger(__name__)

MESSAGE_NOT_FOUND_MESSAGE = "No answer with this message_id exists."


def _parse_uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def conversation_resolve(
    *, session_id: str | None, idle_minutes: int | None = None
) -> Conversation:
    """Return the reader's live conversation, or a new one.

    A missing, malformed, unknown or idle-expired `session_id` starts a new
    conversation (with a new session_id); the caller reports the one actually used.
    """
    idle = get_config().chat_session_idle_minutes if idle_minutes is None else idle_minutes
    wanted = _parse_uuid(session_id)
    if wanted is not None:
        conversation = Conversation.objects.filter(session_id=wanted).first()
        if conversation is not None:
            if conversation.last_active_at >= timezone.now() - timedelta(minutes=idle):
                return conversation
            logger.info("session %s expired after %d idle minutes", wanted, idle)
    return Conversation.objects.create()


def message_start(*, conversation: Conversation, question: str, selection: str = "") -> Message:
    """Create the message row for a question being answered (status partial until done)."""
    return Message.objects.create(
        conversation=conversation,
        question=question,
        selection=selection,
        status=Message.Status.PARTIAL,
    )


def message_finish(*, message: Message, **fields) -> Message:
    """Store the outcome of an answer on its message and mark the conversation active."""
    for name, value in fields.items():
        setattr(message, name, value)
    with transaction.atomic():
        message.save()
        Conversation.objects.filter(pk=message.conversation_id).update(
            last_active_at=timezone.now()
        )
    return message


def feedback_submit(*, message_id: str, rating: str, comment: str = "") -> Feedback:
    """Record a reader's rating of an answer; a second rating replaces the first.

    Raises:
        NotFound: when no message has this id.
    """
    wanted = _parse_uuid(message_id)
    message = Message.objects.filter(message_id=wanted).first() if wanted else None
    if message is None:
        raise NotFound(MESSAGE_NOT_FOUND_MESSAGE, details={"message_id": message_id})
    feedback, _ = Feedback.objects.update_or_create(
        message=message, defaults={"rating": rating, "comment": comment}
    )
    return feedback
