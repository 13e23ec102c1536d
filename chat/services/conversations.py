"""Conversation memory: sessions that expire when idle, messages, and readers' feedback."""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from chat.models import Conversation, Feedback, Message
from chat.prompts import Turn
from chat.selectors import conversation_history
from ragsite.rag.config import get_config
from ragsite.rag.exceptions import NotFound

from .events import AnswerOutcome

logger = logging.getLogger(__name__)

MESSAGE_NOT_FOUND_MESSAGE = "No answer with this message_id exists."


def _parse_uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class AnswerStart:
    """What an answer knows before it searches: ids for `meta` and the recent turns.

    Nothing is written yet: the conversation (when new) and the message row are stored
    once, with the outcome, by `message_store`.
    """

    session_id: uuid.UUID
    message_id: uuid.UUID
    conversation_pk: int | None  # None: a new conversation, created by message_store
    history: list[Turn]

    @classmethod
    def new(cls) -> AnswerStart:
        """A new conversation's first answer (no database read needed)."""
        return cls(uuid.uuid4(), uuid.uuid4(), None, [])


def answer_start(
    *, session_id: str | None, turns: int, idle_minutes: int | None = None
) -> AnswerStart:
    """Read the reader's live conversation and its last `turns` exchanges (no writes).

    A missing, malformed, unknown or idle-expired `session_id` means a new conversation
    with a new session_id, which the caller reports in `meta`.
    """
    idle = get_config().chat_session_idle_minutes if idle_minutes is None else idle_minutes
    wanted = _parse_uuid(session_id)
    conversation = None
    if wanted is not None:
        conversation = Conversation.objects.filter(session_id=wanted).first()
        if conversation is not None and conversation.last_active_at < timezone.now() - timedelta(
            minutes=idle
        ):
            logger.info("session %s expired after %d idle minutes", wanted, idle)
            conversation = None
    if conversation is None:
        return AnswerStart.new()
    return AnswerStart(
        session_id=conversation.session_id,
        message_id=uuid.uuid4(),
        conversation_pk=conversation.pk,
        history=conversation_history(conversation=conversation, turns=turns),
    )


# SQLite has one writer at a time, and a writer that finds the file locked sleeps and
# polls (1, 2, 5, ... 100 ms): waiters sleep while the lock stands free, and an unlucky
# one starves. Under 200 streams, answers' writes were found waiting there. This
# process's writers queue on a lock instead, each woken the moment the one before has
# committed: 16 threads storing answers as fast as they could, the slowest write took
# 1.1-1.2 s without it and 0.2-0.3 s with it, at the same writes/s. (PostgreSQL takes
# concurrent writes; its writers do not queue here.)
_sqlite_writes = threading.Lock()


@contextlib.contextmanager
def _write() -> Iterator[None]:
    """One write transaction; on SQLite, one of this process's at a time."""
    queue = _sqlite_writes if connection.vendor == "sqlite" else contextlib.nullcontext()
    with queue, transaction.atomic():
        yield


@dataclass(frozen=True, slots=True)
class MessageWrite:
    """One answer's message row to store (`messages_store`)."""

    start: AnswerStart
    question: str
    selection: str
    outcome: AnswerOutcome


def message_store(
    *, start: AnswerStart, question: str, selection: str, outcome: AnswerOutcome
) -> Message:
    """Store an answer's message (and its conversation when new) in one transaction.

    Called once per answer (`answer_stream` makes sure of it), so it only inserts.
    """
    [message] = _messages_insert([MessageWrite(start, question, selection, outcome)])
    return message


def messages_store(writes: Sequence[MessageWrite]) -> list[Message | Exception]:
    """Store several answers' messages (and their new conversations) in one transaction;
    per write, its message or the error that kept it from being stored.

    Under load, answers finish together: one transaction for all of them instead of one
    each (on SQLite each statement hands the GIL to a busy thread and waits to get it
    back, with the process's write lock held: 50 answers' writes queued there for
    ~150 ms). When the transaction fails, each write is tried on its own, so one that
    cannot be stored loses no other.
    """
    if not writes:
        return []
    try:
        return list(_messages_insert(writes))
    except Exception:
        if len(writes) == 1:
            raise
        logger.warning("could not store %d answers together; storing each", len(writes))
    stored: list[Message | Exception] = []
    for write in writes:
        try:
            stored.extend(_messages_insert([write]))
        except Exception as exc:  # reported to that answer's stream
            stored.append(exc)
    return stored


def _messages_insert(writes: Sequence[MessageWrite]) -> list[Message]:
    with _write():
        new = [
            Conversation(session_id=w.start.session_id)
            for w in writes
            if w.start.conversation_pk is None
        ]
        Conversation.objects.bulk_create(new)  # sets the primary keys (SQLite 3.35+, PostgreSQL)
        created = {conversation.session_id: conversation.pk for conversation in new}
        if existing := {
            w.start.conversation_pk for w in writes if w.start.conversation_pk is not None
        }:
            Conversation.objects.filter(pk__in=existing).update(last_active_at=timezone.now())
        messages = [
            Message(
                message_id=w.start.message_id,
                conversation_id=w.start.conversation_pk or created[w.start.session_id],
                question=w.question,
                selection=w.selection,
                **{f.name: getattr(w.outcome, f.name) for f in fields(w.outcome)},
            )
            for w in writes
        ]
        Message.objects.bulk_create(messages)
    return messages


def feedback_submit(*, message_id: str, rating: str, comment: str = "") -> Feedback:
    """Record a reader's rating of an answer; a second rating replaces the first.

    Raises:
        NotFound: when no message has this id.
    """
    wanted = _parse_uuid(message_id)
    message = Message.objects.filter(message_id=wanted).first() if wanted else None
    if message is None:
        raise NotFound(MESSAGE_NOT_FOUND_MESSAGE, details={"message_id": message_id})
    with _write():
        feedback, _ = Feedback.objects.update_or_create(
            message=message, defaults={"rating": rating, "comment": comment}
        )
    return feedback
