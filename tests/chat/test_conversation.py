"""Conversation memory: a question is rewritten with earlier turns only when it depends
on them. Six unrelated questions in one session keep their own topics; real follow-ups
carry theirs; an LLM that rewrites too slowly is replaced by the rule."""

from __future__ import annotations

import json

import pytest

from chat import prompts
from chat.models import Message
from chat.prompts import Turn
from chat.services import depends_on_history, query_rewrite_rule

pytestmark = pytest.mark.django_db(transaction=True)

# Six questions across chapters, asked one after the other in one session.
ACROSS_CHAPTERS = [
    ("How does LiDAR measure distance?", "part-1/chapter-2-sensors.mdx"),
    ("What is a Kalman filter?", "part-1/chapter-3-state-estimation.mdx"),
    ("How do I tune a PID controller?", "part-1/chapter-4-motion-planning.mdx"),
    ("What is a ROS 2 node?", "part-2/chapter-6-ros2.mdx"),
    ("How does a humanoid keep its balance when walking?", "part-3/chapter-10-balance.mdx"),
    ("What is inverse kinematics?", "part-3/chapter-9-kinematics.mdx"),
]


@pytest.mark.parametrize(
    "question",
    [
        *(question for question, _ in ACROSS_CHAPTERS),
        "How do I define a trait?",
        "How do I write a decorator in Python?",
        "What is ownership and why does it matter?",
        "Does Rust let you borrow a value while you mutate it?",
        "Is it possible to borrow a value twice?",
        "What is a function that is async?",
    ],
)
def test_an_independent_question_never_depends_on_history(question):
    assert depends_on_history(question) is False
    history = [Turn(question="How does LiDAR measure distance?", answer="Lasers [1].")]
    assert query_rewrite_rule(message=question, history=history) == question


@pytest.mark.parametrize(
    "question",
    [
        "what about its cost?",
        "and for depth cameras?",
        "Why does it drift?",
        "How much does it cost?",
        "Is that expensive?",
        "Why does that happen?",
        "What are these?",
        "How do I fix this error?",
        "Why?",
        "Tell me more",
    ],
)
def test_a_question_that_leans_on_earlier_turns_depends_on_history(question):
    assert depends_on_history(question) is True


async def ask(async_client, message: str, session_id: str | None = None) -> dict:
    body = {"message": message, "stream": False}
    if session_id:
        body["session_id"] = session_id
    response = await async_client.post(
        "/api/chat", data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 200
    return response.json()


async def ask_in_turn(async_client, questions: list[str]) -> list[tuple[dict, Message]]:
    """Ask the questions in one session; each answer with its stored message."""
    answers, session_id = [], None
    for question in questions:
        answer = await ask(async_client, question, session_id)
        session_id = answer["session_id"]
        answers.append((answer, await Message.objects.aget(message_id=answer["message_id"])))
    assert len({answer["session_id"] for answer, _ in answers}) == 1
    return answers


async def test_six_unrelated_questions_in_one_session_keep_their_own_topic(
    async_client, small_book
):
    answers = await ask_in_turn(async_client, [question for question, _ in ACROSS_CHAPTERS])
    for (question, page), (answer, message) in zip(ACROSS_CHAPTERS, answers, strict=True):
        assert message.rewritten_query == question
        assert answer["sources"][0]["path"] == page, question
        assert answer["uncertain"] is False


async def test_real_follow_ups_carry_the_topic_they_refer_to(async_client, small_book):
    answers = await ask_in_turn(
        async_client,
        [
            "How does an IMU measure orientation?",
            "Why does it drift?",
            "How much does LiDAR cost?",
            "and for depth cameras?",
        ],
    )
    (_, imu), (drift, drift_row), (_, _), (cameras, cameras_row) = answers
    assert imu.rewritten_query == "How does an IMU measure orientation?"
    assert "IMU" in drift_row.rewritten_query
    assert "drift" in drift_row.rewritten_query
    assert drift["sources"][0]["heading"] == "Inertial Measurement Units"
    assert "LiDAR" in cameras_row.rewritten_query
    assert "depth cameras" in cameras_row.rewritten_query
    assert "Depth Cameras" in [source["heading"] for source in cameras["sources"]]


def llm_replies(*, rewrite: str):
    """A fake-server responder: a short streamed answer, a fixed rewrite, two follow-ups."""

    def respond(body: dict) -> str:
        if body.get("stream"):
            return "The book answers this [1]."
        if body["messages"][0]["content"] == prompts.REWRITE_SYSTEM_PROMPT:
            return rewrite
        return "What else does the book say?\nWhere is this explained?"

    return respond


async def test_the_llm_rewrite_prompt_states_the_rule_and_its_reply_is_searched(
    async_client, llm_settings, fake_openai, small_book
):
    fake_openai.reply_with(llm_replies(rewrite="LiDAR price and trade-offs"))
    first = await ask(async_client, "How does LiDAR measure distance?")
    second = await ask(async_client, "what about its cost?", first["session_id"])
    [rewrite] = [
        body
        for body in fake_openai.chat_requests
        if body["messages"][0]["content"] == prompts.REWRITE_SYSTEM_PROMPT
    ]
    assert "returned unchanged" in prompts.REWRITE_SYSTEM_PROMPT
    assert "How does LiDAR measure distance?" in rewrite["messages"][1]["content"]
    assert rewrite["messages"][1]["content"].endswith("Last message: what about its cost?")
    message = await Message.objects.aget(message_id=second["message_id"])
    assert message.rewritten_query == "LiDAR price and trade-offs"
    assert second["mode"] == "llm"


async def test_an_llm_rewrite_past_its_budget_gives_way_to_the_rule(
    async_client, llm_settings, fake_openai, small_book
):
    llm_settings.REWRITE_TIMEOUT_S = 0.2
    llm_settings.LLM_FIRST_TOKEN_TIMEOUT_S = 1.0  # also the follow-ups' budget
    fake_openai.reply_with(llm_replies(rewrite="something the rule would never write"))
    fake_openai.slow_completions(20)  # rewrites and follow-ups; the answer stream is quick
    questions = [question for question, _ in ACROSS_CHAPTERS] + ["what about its cost?"]
    answers = await ask_in_turn(async_client, questions)
    history: list[Turn] = []
    for question, (answer, message) in zip(questions, answers, strict=True):
        assert message.rewritten_query == query_rewrite_rule(message=question, history=history)
        assert answer["mode"] == "llm"
        history.append(Turn(question=question, answer=answer["answer"]))
    for (question, page), (answer, message) in zip(ACROSS_CHAPTERS, answers[:6], strict=True):
        assert message.rewritten_query == question
        assert answer["sources"][0]["path"] == page
    # The follow-up at the end still found its topic (the last topic-setting question).
    assert "kinematics" in answers[-1][1].rewritten_query


def test_concurrent_answers_are_all_stored_and_a_failed_write_frees_the_next():
    """SQLite writes of this process queue on one lock (conversations._write): many
    answers stored at once all land, and a write that fails lets the next one through."""
    import threading

    from django.db import IntegrityError, connection

    from chat.services.conversations import AnswerStart, message_store
    from chat.services.events import AnswerOutcome

    starts = [AnswerStart.new() for _ in range(40)]
    failures: list[BaseException] = []

    def store(batch):
        try:
            for start in batch:
                message_store(start=start, question="q", selection="", outcome=AnswerOutcome())
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=store, args=(starts[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert Message.objects.count() == 40

    with pytest.raises(IntegrityError):  # the same message id again: the write fails
        message_store(start=starts[0], question="q", selection="", outcome=AnswerOutcome())
    message_store(start=AnswerStart.new(), question="q", selection="", outcome=AnswerOutcome())
    assert Message.objects.count() == 41


def test_answers_that_finish_together_are_stored_in_one_transaction():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from chat.models import Conversation
    from chat.services.conversations import AnswerStart, MessageWrite, messages_store
    from chat.services.events import AnswerOutcome

    earlier = Conversation.objects.create()
    returning = AnswerStart(earlier.session_id, AnswerStart.new().message_id, earlier.pk, [])
    writes = [
        MessageWrite(AnswerStart.new(), f"question {i}", "", AnswerOutcome()) for i in range(5)
    ]
    writes.append(MessageWrite(returning, "a follow-up", "", AnswerOutcome(answer="Yes [1].")))
    with CaptureQueriesContext(connection) as queries:
        stored = messages_store(writes)
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 2  # the new conversations, then every message
    assert [message.question for message in stored] == [w.question for w in writes]
    assert Message.objects.count() == 6
    assert Conversation.objects.count() == 6  # five new ones, and the returning reader's
    follow_up = Message.objects.get(question="a follow-up")
    assert follow_up.conversation_id == earlier.pk
    assert follow_up.answer == "Yes [1]."
    earlier.refresh_from_db()
    assert earlier.last_active_at > earlier.created_at
    for write in writes[:5]:
        message = Message.objects.get(message_id=write.start.message_id)
        assert message.conversation.session_id == write.start.session_id


def test_a_write_that_cannot_be_stored_loses_none_of_the_others():
    from django.db import IntegrityError

    from chat.services.conversations import AnswerStart, MessageWrite, messages_store
    from chat.services.events import AnswerOutcome

    [first] = messages_store([MessageWrite(AnswerStart.new(), "first", "", AnswerOutcome())])
    again = AnswerStart(AnswerStart.new().session_id, first.message_id, None, [])
    writes = [
        MessageWrite(AnswerStart.new(), "before", "", AnswerOutcome()),
        MessageWrite(again, "the same message id", "", AnswerOutcome()),
        MessageWrite(AnswerStart.new(), "after", "", AnswerOutcome()),
    ]
    stored = messages_store(writes)
    assert isinstance(stored[1], IntegrityError)
    assert {m.question for m in Message.objects.all()} == {"first", "before", "after"}


async def test_concurrent_answers_writes_are_batched_and_each_waits_for_its_own(monkeypatch):
    import asyncio

    from asgiref.sync import sync_to_async

    from chat.services import answering
    from chat.services.conversations import AnswerStart, messages_store
    from chat.services.events import AnswerOutcome

    batches: list[int] = []

    def counted(writes):
        batches.append(len(writes))
        return messages_store(writes)

    monkeypatch.setattr(answering, "messages_store", counted)
    starts = [AnswerStart.new() for _ in range(30)]

    async def store(start):
        await answering._store(start=start, question="q", selection="", outcome=AnswerOutcome())
        # Stored once `_store` returns: `done` is only sent after it.
        return await sync_to_async(Message.objects.filter(message_id=start.message_id).exists)()

    assert all(await asyncio.gather(*(store(start) for start in starts)))
    assert sum(batches) == 30
    assert batches[0] == 1  # the first write did not wait for company
    assert len(batches) < 30
    assert await sync_to_async(Message.objects.count)() == 30
